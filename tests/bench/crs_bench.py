"""The OWASP CRS on our engine against Apache + ModSecurity 2 + the same CRS (Debian's), PL1, in one run.

Two figures per request shape (a GET with 5 query arguments, a 2 KB urlencoded POST):
* end to end: CPU milliseconds per request of the proxy processes under wrk load: bare mitmdump,
  mitmdump with LogoutGuard and `guard_crs=debian` (our rules and the CRS, memory session store), and
  Apache (all its processes) with ModSecurity and the CRS (the differential test's Apache, tests/crs/,
  here with keep-alive and the audit log for relevant transactions only, as a production setup would);
  the ratios to Apache are measured in the same run.
* engine only: thread CPU µs per request of the CRS on our engine (crs/loader.py), best of a few runs.
"""

from __future__ import annotations

import http.client
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from logoutguard.crs.loader import load_crs
from logoutguard.engine.transaction import build_transaction
from tests.bench.e2e import BROWSER, Shape, process_cpu_s, run_python, run_wrk, start_backend, with_cpu
from tests.bench.engine_bench import best_of
from tests.crs.differential import Apache, missing_parts
from tests.procs import start_mitmdump

FORM = {
    "name": "Maria O'Neil",
    "email": "maria.oneil@example.org",
    "subject": "Exchange request: running shoes, size 39 to 40",
    "comment": (
        "Hello, I ordered the blue running shoes last week and they arrived quickly, thank you. "
        "Unfortunately the size is a little small, so I would like to exchange them for the next size up. "
    )
    * 10,
}


HEADERS = {"Host": "www.example.com", **BROWSER}  # a name: CRS warns about a numeric Host (920350)


# A round counts when at most this share of its answers failed (Apache's mod_proxy answers a few 502s
# under load when the Python test backend closes a kept-alive connection it wanted to reuse).
MAX_FAILED = 0.01


def shapes() -> dict[str, Shape]:
    from urllib.parse import urlencode

    body = urlencode(FORM)[:2048]
    return {
        "get_5_args": Shape("GET", "/search?q=running+shoes&category=sport&page=2&sort=price_asc&size=40", HEADERS),
        "post_2kb_urlencoded": Shape(
            "POST",
            "/account/support",
            {**HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
            body,
        ),
    }


def first_request(port: int) -> None:
    """One GET with a generous timeout: a proxy loading the CRS answers once the rules are in."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
    try:
        conn.request("GET", "/", headers=BROWSER)
        conn.getresponse().read()
    finally:
        conn.close()


def apache_pid(pid_file: Path) -> int:
    """Apache's master process (its pid file may appear a moment after the port opens)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def tree_cpu_s(root_pid: int) -> float | None:
    """CPU seconds of a process and its direct children (Apache's master and its workers)."""
    total = process_cpu_s(root_pid)
    if total is None:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == root_pid:
            total += process_cpu_s(int(entry.name)) or 0.0
    return total


def engine_us(shape: Shape, repeat: int) -> dict[str, float]:
    """Thread CPU µs per request of the CRS alone on our engine (PL1), and with our rules too."""
    load = load_crs(paranoia=1)
    engine = load.engine()
    headers = list(shape.headers.items())
    if shape.body:
        headers.append(("Content-Length", str(len(shape.body))))
    tx = build_transaction(method=shape.method, uri=shape.path, headers=headers, body=shape.body or None)
    engine.inspect(tx)  # the first request warms the memo tables as any earlier traffic would
    return {"crs_engine_us": round(best_of(lambda: engine.inspect(tx), repeat), 1)}


def crs_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    missing = missing_parts()
    if missing:
        raise RuntimeError(f"the CRS comparison needs Apache + ModSecurity + CRS: missing {missing}")
    wrk = shutil.which("wrk")
    if wrk is None and not smoke:
        raise RuntimeError("the CRS comparison needs wrk (Debian: apt-get install -y wrk)")
    seconds = 1 if smoke else 8
    rounds = 1 if smoke else 2
    connections = 4  # the private Apache has 8 worker threads; keep-alive holds one per connection
    all_shapes = shapes()
    out: dict[str, object] = {"load_generator": f"wrk -t1 -c{connections} -d{seconds}s" if wrk else "python"}
    for name, shape in all_shapes.items():
        out[name] = engine_us(shape, 3 if smoke else 20)
        log(f"crs engine {name}: {out[name]['crs_engine_us']} us")  # type: ignore[index]
    cpu: dict[str, dict[str, list[float]]] = {n: {} for n in all_shapes}
    failures: dict[str, dict[str, list[int]]] = {}

    def drive(kind: str, url: str, port: int, pid: int, total: Callable[[int], float | None]) -> None:
        first_request(port)
        for name, shape in all_shapes.items():
            run_python(port, shape, 0.5)  # warm-up
            if wrk is not None:
                result = _cpu_of(total, pid, lambda s=shape: run_wrk(url, s, seconds, connections, workdir))
            else:
                result = _cpu_of(total, pid, lambda s=shape: run_python(port, s, seconds))
            bad = result["non_2xx_3xx"] + result["socket_errors"]
            log(
                f"crs e2e {name} {kind}: {result.get('cpu_ms_per_request')} ms CPU/request "
                f"({result['requests']} requests, {bad} not 2xx/3xx or failed)"
            )
            failures.setdefault(name, {}).setdefault(kind, []).append(bad)
            if "cpu_ms_per_request" in result and bad <= result["requests"] * MAX_FAILED:
                cpu[name].setdefault(kind, []).append(result["cpu_ms_per_request"])

    backend, backend_port = start_backend()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            upstream = f"http://127.0.0.1:{backend_port}"
            for _ in range(rounds):
                for kind in ("bare", "logoutguard_crs"):
                    options = () if kind == "bare" else ("guard_crs=debian", "guard_session_store=memory")
                    proxy = start_mitmdump(upstream, workdir, *options, extra_args=("-q",), addon=kind != "bare")
                    try:
                        drive(kind, proxy.url, proxy.port, proxy.proc.pid, process_cpu_s)
                    finally:
                        proxy.stop()
                with Apache(paranoia=1, audit="RelevantOnly", keep_alive=True) as apache:
                    master = apache_pid(apache.root / "httpd.pid")
                    drive("apache_modsecurity_crs", f"http://127.0.0.1:{apache.port}", apache.port, master, tree_cpu_s)
    finally:
        backend.terminate()
        backend.wait(timeout=10)
    for name, by_kind in cpu.items():
        least = {kind: min(values) for kind, values in by_kind.items()}
        entry = out[name]
        entry["cpu_ms_per_request"] = least  # type: ignore[index]
        entry["failed_per_round"] = failures.get(name, {})  # type: ignore[index]
        apache = least.get("apache_modsecurity_crs")
        if apache and "logoutguard_crs" in least:
            entry["logoutguard_crs_vs_apache"] = round(least["logoutguard_crs"] / apache, 3)  # type: ignore[index]
        if apache and "bare" in least:
            entry["apache_vs_bare_mitmdump"] = round(apache / least["bare"], 3)  # type: ignore[index]
    return out


def _cpu_of(
    total: Callable[[int], float | None], pid: int, run: Callable[[], dict[str, float]]
) -> dict[str, float]:
    if total is process_cpu_s:
        return with_cpu(pid, run)
    before = total(pid)
    started = time.perf_counter()
    result = run()
    after = total(pid)
    if before is not None and after is not None and result["requests"]:
        result["cpu_ms_per_request"] = round((after - before) * 1000 / result["requests"], 3)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result
