"""A loopback stand-in for wapiti's out-of-band endpoint, so its SSRF and XXE checks never leave the machine.

wapiti's SSRF payload is `{endpoint}ssrf/{session}/{path_id}/{hex_param}/`; when the target fetches it,
this server records the hit; wapiti then asks `{endpoint}get_ssrf.php?session_id=...` and gets the
hits as JSON, in the shape wapiti reads. XXE's out-of-band DTDs (`/dtd/...`) are recorded and
answered 404 (the target's XML parser has no network anyway); `get_xxe.php` reports nothing.
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Endpoint:
    """Context manager: the endpoint server on a free loopback port; `url` ends with a slash."""

    def __init__(self) -> None:
        self.hits: dict[str, dict[str, dict[str, list[dict[str, object]]]]] = {}
        self.dtd_hits: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> Endpoint:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                segments = [s for s in parts.path.split("/") if s]
                if segments[:1] == ["ssrf"] and len(segments) >= 4:
                    session, path_id, hex_param = segments[1:4]
                    hit = {
                        "url": self.path,
                        "date": datetime.now(UTC).isoformat(),
                        "ip": self.client_address[0],
                        "method": self.command,
                        "size": int(self.headers.get("Content-Length") or 0),
                    }
                    with endpoint.lock:
                        by_path = endpoint.hits.setdefault(session, {}).setdefault(path_id, {})
                        by_path.setdefault(hex_param, []).append(hit)
                    self._send(200, b"ok")
                elif parts.path == "/get_ssrf.php":
                    session = parse_qs(parts.query).get("session_id", [""])[0]
                    with endpoint.lock:
                        body = json.dumps(endpoint.hits.get(session, {})).encode()
                    self._send(200, body, "application/json")
                elif parts.path == "/get_xxe.php":
                    self._send(200, b"{}", "application/json")
                else:
                    if segments[:1] == ["dtd"]:
                        with endpoint.lock:
                            endpoint.dtd_hits.append(self.path)
                    self._send(404, b"not here")

            def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
