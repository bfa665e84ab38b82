"""mitmdump script of the yardstick's counting layer: every request a tool sends, and what came back, as JSON lines.

The tap is a bare mitmdump in reverse mode in front of one path (the target directly, LogoutGuard,
or Apache + ModSecurity), with `keep_host_header` so the next hop sees the Host the tool sent. For
each flow it writes one record: id, label (the harness's current run), method, path, request headers,
body (first 16 KiB, UTF-8 with replacement), status, whether the application served it (its
`X-Yardstick-Served` header), response size, or the error. It tags each request with
`X-Yardstick-Req: <tap_name>.<id>` (the target logs the tags it handles) and returns the tag in the
response.

With `tap_mark_served` the tap is a marker instead, between a proxy and an application that does not
set the served header itself (the `--crawl-app` hook): it adds the header to the application's answers.

Control requests, answered by the tap and never forwarded: `GET /__tap__/label?name=NAME` sets the
label of the following flows; `GET /__tap__/count` returns the number of records written.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mitmproxy import ctx, http

SERVED_HEADER = "X-Yardstick-Served"
REQUEST_ID_HEADER = "X-Yardstick-Req"
CONTROL = "/__tap__/"
BODY_KEEP = 16 * 1024


class Tap:
    def __init__(self) -> None:
        self.next_id = 1
        self.label = ""
        self.written = 0
        self.out: Any = None
        self.lock = threading.Lock()

    def load(self, loader: Any) -> None:
        loader.add_option("tap_log", str, "", "JSON-lines file of every flow (required).")
        loader.add_option("tap_name", str, "tap", "Prefix of the request tags (unique per tap).")
        loader.add_option(
            "tap_mark_served",
            bool,
            False,
            "Marker mode, between a proxy and an application that does not mark its answers itself: "
            "add the served header to every answer the application sends.",
        )

    def configure(self, updated: set[str]) -> None:
        if "tap_log" in updated and ctx.options.tap_log:
            self.out = open(ctx.options.tap_log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.startswith(CONTROL):
            self._control(flow)
            return
        flow.metadata["tap_id"] = self.next_id
        flow.metadata["tap_label"] = self.label
        flow.metadata["tap_start"] = time.monotonic()
        self.next_id += 1
        flow.request.headers[REQUEST_ID_HEADER] = f"{ctx.options.tap_name}.{flow.metadata['tap_id']}"

    def response(self, flow: http.HTTPFlow) -> None:
        if "tap_id" not in flow.metadata or flow.response is None:
            return
        if ctx.options.tap_mark_served:
            flow.response.headers[SERVED_HEADER] = "1"
        flow.response.headers[REQUEST_ID_HEADER] = f"{ctx.options.tap_name}.{flow.metadata['tap_id']}"
        self._write(flow, None)

    def error(self, flow: http.HTTPFlow) -> None:
        if "tap_id" in flow.metadata and not flow.metadata.get("tap_written"):
            self._write(flow, str(flow.error) if flow.error else "error")

    def _control(self, flow: http.HTTPFlow) -> None:
        parts = urlsplit(flow.request.path)
        if parts.path == CONTROL + "label":
            self.label = parse_qs(parts.query).get("name", [""])[0]
            body = json.dumps({"label": self.label, "next_id": self.next_id})
        elif parts.path == CONTROL + "count":
            body = json.dumps({"written": self.written, "next_id": self.next_id})
        else:
            flow.response = http.Response.make(404, b"unknown tap control")
            return
        flow.response = http.Response.make(200, body.encode(), {"Content-Type": "application/json"})

    def _write(self, flow: http.HTTPFlow, error: str | None) -> None:
        flow.metadata["tap_written"] = True
        request = flow.request
        raw = request.raw_content or b""
        record: dict[str, Any] = {
            "id": flow.metadata["tap_id"],
            "label": flow.metadata["tap_label"],
            "method": request.method,
            "path": request.path,
            "headers": [
                [k, v] for k, v in request.headers.items(multi=True) if k.lower() != REQUEST_ID_HEADER.lower()
            ],
            "body": raw[:BODY_KEEP].decode("utf-8", "replace"),
            "body_len": len(raw),
            "status": flow.response.status_code if flow.response is not None else 0,
            "served": flow.response is not None and SERVED_HEADER in flow.response.headers,
            "response_len": len(flow.response.raw_content or b"") if flow.response is not None else 0,
            "error": error,
            "seconds": round(time.monotonic() - flow.metadata["tap_start"], 4),
        }
        if self.out is not None:
            with self.lock:
                self.out.write(json.dumps(record) + "\n")
                self.written += 1


addons = [Tap()]
