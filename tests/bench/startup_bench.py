"""Warm at start (issue 11 item 5): the first request after start-up against the hundredth.

Each proxy kind starts in front of the bench backend: bare mitmdump (the baseline: what mitmproxy's own
first request costs), the addon with its defaults (SQLite session store, audit log), and in full mode
the addon with the OWASP CRS beside our rules. Once mitmdump's log says it is listening, 100 requests
of one shape (the e2e GET with query arguments and a session cookie, and the 2 KB form POST), each on a
new connection, are timed; the figures are the first, the 100th and the median of 2-100, and the
ratios first/median and first/100th (1.0: the first request costs what any other does).

`held_s` is the other side of start-up: mitmproxy binds the port before it loads the script, so a
client that connects as soon as the port accepts (before the "listening" line) waits until the addon
is loaded and configured; the proxy holds the request meanwhile (judged once the addon is ready, or
refused with 503 if its configuration fails), and that wait is the load time.
"""

from __future__ import annotations

import http.client
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.e2e import Shape, shapes, start_backend
from tests.procs import Mitmdump, start_mitmdump

REQUESTS = 100
LISTENING = "listening at"


def start(kind: str, upstream: str, workdir: Path) -> Mitmdump:
    if kind == "bare":
        return start_mitmdump(upstream, workdir, addon=False)
    options = [
        f"guard_session_store={workdir / f'{kind}.sqlite'}",
        f"guard_audit_log={workdir / 'audit.jsonl'}",
    ]
    if kind == "addon_crs":
        options.append("guard_crs=debian")
    return start_mitmdump(upstream, workdir, *options)


def wait_listening(proxy: Mitmdump, timeout: float = 120.0) -> float:
    """Seconds from now until the log says listening."""
    started = time.perf_counter()
    while LISTENING not in proxy.log():
        if proxy.proc.poll() is not None or time.perf_counter() - started > timeout:
            raise RuntimeError(f"mitmdump never said it is listening:\n{proxy.log()[-2000:]}")
        time.sleep(0.01)
    return time.perf_counter() - started


def timed_request(port: int, shape: Shape) -> float:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(shape.method, shape.path, body=shape.body or None, headers=shape.headers)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    if not 200 <= response.status < 400:
        raise RuntimeError(f"{shape.method} {shape.path}: {response.status} (the bench request must pass)")
    return time.perf_counter() - started


def first_and_rest(port: int, shape: Shape) -> dict[str, float]:
    latencies = [timed_request(port, shape) for _ in range(REQUESTS)]
    first, rest = latencies[0], latencies[1:]
    median = statistics.median(rest)
    return {
        "first_ms": round(first * 1000, 2),
        "hundredth_ms": round(latencies[-1] * 1000, 2),
        "median_2_100_ms": round(median * 1000, 2),
        "first_to_median": round(first / median, 2),
        "first_to_hundredth": round(first / latencies[-1], 2),
    }


def startup_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    kinds = ("bare", "addon") if smoke else ("bare", "addon", "addon_crs")
    chosen = shapes()
    if smoke:
        chosen = {"get_args_session": chosen["get_args_session"]}
    out: dict[str, object] = {"requests": REQUESTS, "each_on_a_new_connection": True}
    backend, backend_port = start_backend()
    upstream = f"http://127.0.0.1:{backend_port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            for kind in kinds:
                figures: dict[str, object] = {}
                for name, shape in chosen.items():
                    proxy = start(kind, upstream, workdir)  # returns once the port accepts connections
                    try:
                        figures["listening_after_accepting_s"] = round(wait_listening(proxy), 2)
                        figures[name] = result = first_and_rest(proxy.port, shape)
                    finally:
                        proxy.stop()
                    log(
                        f"startup {kind} {name}: first {result['first_ms']} ms, median of 2-100 "
                        f"{result['median_2_100_ms']} ms, 100th {result['hundredth_ms']} ms "
                        f"(first/median {result['first_to_median']})"
                    )
                if kind != "bare":
                    proxy = start(kind, upstream, workdir)
                    try:  # a client that connects as soon as the port accepts: held until the addon is ready
                        figures["held_s"] = round(timed_request(proxy.port, chosen["get_args_session"]), 2)
                    finally:
                        proxy.stop()
                    log(
                        f"startup {kind}: a request sent as soon as the port accepted waited {figures['held_s']} s"
                    )
                out[kind] = figures
    finally:
        backend.terminate()
        backend.wait(timeout=10)
    return out
