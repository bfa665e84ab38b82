"""End to end: CPU per request, requests per second and latency through mitmdump with the addon against
bare mitmdump.

Both proxies run in reverse mode in front of the same local backend (tests/bench/backend.py), one at
a time, alternating, in the same run. The load generator is wrk (Debian package `wrk`), bounded in
time, with a fixed number of connections; without wrk (smoke mode only) a small Python loop over
one keep-alive connection stands in. Two requests: a GET with query arguments and a session cookie
the addon has seen issued, and a 2 KB urlencoded POST, each sent again and again (what the addon
worked out for their values is kept: memo.py), and each once more with new values in every request
(a counter in the search term and page, the form's order number and comment), as real traffic brings. The addon runs with its defaults (enforce
mode, SQLite session store, audit log) in a temporary folder, and (full mode) once more with the
in-memory session store and once with a Redis store (a private redis-server), to show what the
store costs. Besides requests per second, the proxy process's CPU time (user + system, all threads,
from /proc) per request is measured over each run: unlike throughput it hardly depends on what else
runs on the machine, yet on a shared virtual machine bare mitmdump's own figure moves by 10-30% from
one round to the next. So the configurations take turns in several short rounds, and the CPU ratio
reported is the median of the rounds' ratios, each round's addon against the same round's bare
mitmdump, with their spread (lowest, highest) beside it; throughput takes each configuration's best
round. Instructions per request (instructions.py) are the repeatable figure beside it. The same GET
is also sent without the session cookie, so that the session's own cost is the difference of the two.

A yardstick runs beside them (full mode): `spin_addon`, a script whose request hook only spins
LOGOUTGUARD_BENCH_SPIN_US microseconds of CPU (default 100; tests/bench/spin_addon.py), so that each run
shows what a script doing that much work per request costs mitmdump.

LOGOUTGUARD_BENCH_E2E_KINDS (comma-separated, e.g. `bare,addon`) limits the configurations.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from tests.bench.backend import SESSION_COOKIE, SESSION_ID
from tests.bench.spin_addon import spin_us
from tests.procs import REPO, Mitmdump, free_port, start_mitmdump, wait_port

if TYPE_CHECKING:
    from tests.services import RedisServer

BROWSER = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "Accept-Encoding": "gzip, deflate",
}
COMMENT = (
    "Hello, I ordered the blue running shoes last week and they arrived quickly, thank you. "
    "Unfortunately the size is a little small, so I would like to exchange them for the next size up. "
    "Could you tell me whether the exchange is free of charge and how long it usually takes? "
    "I still have the original box and the receipt. Best regards from Lisbon, and have a nice day! "
)


# In a shape's path or body, replaced by a request counter (same width) on every request: values the
# addon has never seen, as in real traffic, rather than one request the engine's memo answers again.
COUNTER = "NNNNNNNN"


@dataclass(frozen=True)
class Shape:
    method: str
    path: str
    headers: dict[str, str]
    body: str = ""

    def numbered(self, n: int) -> tuple[str, str]:
        """The path and body of request number `n` (the same for every request without COUNTER)."""
        number = f"{n % 10**8:08d}"
        return self.path.replace(COUNTER, number), self.body.replace(COUNTER, number)


def shapes() -> dict[str, Shape]:
    form = {
        "name": "Maria O'Neil",
        "email": "maria.oneil@example.org",
        "phone": "+351 912 345 678",
        "address": "Rua das Flores 12, 3. esq, 1200-195 Lisboa",
        "order": "A-2024-118734",
        "subject": "Exchange request: running shoes, size 39 to 40",
        "comment": (COMMENT * 5)[:1500],
        "newsletter": "yes",
    }
    body = urlencode(form)
    # The same form with an order number and a comment of its own in every request.
    new_form = {
        **form,
        "order": f"A-2024-{COUNTER}",
        "comment": f"Order {COUNTER}: " + (COMMENT * 5)[: 1500 - 15],
    }
    cookie = f"{SESSION_COOKIE}={SESSION_ID}; theme=dark; lang=en"
    search = "/search?q=running+shoes&category=sport&page=2&sort=price_asc&size=40"
    referer = {"Referer": "https://shop.example/search?q=shoes"}
    form_headers = {**BROWSER, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    return {
        "get_args_session": Shape("GET", search, {**BROWSER, "Cookie": cookie, **referer}),
        "get_args_no_session": Shape("GET", search, {**BROWSER, "Cookie": "theme=dark; lang=en", **referer}),
        "post_2kb_urlencoded": Shape("POST", "/account/support", form_headers, body),
        # New values in every request: a search term and page, a form's order number and comment.
        "get_args_session_new_values": Shape(
            "GET",
            f"/search?q=running+shoes+{COUNTER}&category=sport&page={COUNTER}&sort=price_asc&size=40",
            {**BROWSER, "Cookie": cookie, **referer},
        ),
        "post_2kb_new_values": Shape("POST", "/account/support", form_headers, urlencode(new_form)),
    }


def lua_script(shape: Shape) -> str:
    lines = [f"wrk.method = {json.dumps(shape.method)}", f"wrk.path = {json.dumps(shape.path)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in shape.headers.items()]
    if shape.body:
        lines.append(f"wrk.body = {json.dumps(shape.body)}")
    if COUNTER in shape.path or COUNTER in shape.body:
        # Shape.numbered in Lua: wrk.format sets Content-Length for the body it is given.
        lines.append(
            "counter = 0\n"
            "request = function()\n"
            "  counter = counter + 1\n"
            '  local n = string.format("%08d", counter % 100000000)\n'
            f'  local path = string.gsub(wrk.path, "{COUNTER}", n)\n'
            f'  local body = wrk.body and string.gsub(wrk.body, "{COUNTER}", n) or nil\n'
            "  return wrk.format(nil, path, nil, body)\n"
            "end"
        )
    lines.append(
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format("WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"non_2xx_3xx\\": %d, '
        '\\"socket_errors\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, \\"mean_us\\": %.1f}\\n",\n'
        "    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,\n"
        "    latency:percentile(50), latency:percentile(99), latency.mean))\n"
        "end"
    )
    return "\n".join(lines) + "\n"


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (all its threads; Linux /proc), None where it
    cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(pid: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """`run()`'s result with the CPU the process `pid` spent during it, per request (ms)."""
    before = process_cpu_s(pid)
    result = run()
    after = process_cpu_s(pid)
    if before is None or after is None:
        raise RuntimeError(f"cannot read the CPU time of process {pid} from /proc")
    spent = after - before
    result["cpu_ms_per_request"] = round(spent * 1000 / max(result["requests"], 1), 3)
    return result


def run_wrk(url: str, shape: Shape, seconds: int, connections: int, workdir: Path) -> dict[str, float]:
    script = workdir / "shape.lua"
    script.write_text(lua_script(shape))
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return {
        "rps": round(data["requests"] / (data["duration_us"] / 1e6), 1),
        "p50_ms": round(data["p50_us"] / 1000, 2),
        "p99_ms": round(data["p99_us"] / 1000, 2),
        "mean_ms": round(data["mean_us"] / 1000, 2),
        "requests": data["requests"],
        "non_2xx_3xx": data["non_2xx_3xx"],
        "socket_errors": data["socket_errors"],
    }


def run_python(port: int, shape: Shape, seconds: float) -> dict[str, float]:
    """Sequential requests on one keep-alive connection (the smoke-mode stand-in for wrk)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    bad = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            path, body = shape.numbered(len(latencies) + 1)
            conn.request(shape.method, path, body=body or None, headers=shape.headers)
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - t0)
            bad += not 200 <= response.status < 400
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "rps": round(len(ordered) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "requests": len(ordered),
        "non_2xx_3xx": bad,
        "socket_errors": 0,
    }


def start_backend() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.backend", str(port)], cwd=REPO)
    wait_port(port, proc=proc)
    return proc, port


KINDS = {
    "bare": None,
    "addon": "sessions.sqlite",  # the defaults: SQLite session store, audit log
    "addon_memory_store": "memory",  # the same with the in-memory session store
    "addon_redis_store": "redis",  # the same with a Redis store (a private redis-server)
    # A yardstick, not the addon: a script that only spins LOGOUTGUARD_BENCH_SPIN_US us per request
    # (spin_addon.py): what any script doing that much work costs mitmdump end to end.
    "spin_addon": "spin",
}
SPIN_SCRIPT = Path(__file__).with_name("spin_addon.py")


def start_redis_server(workdir: Path) -> RedisServer:
    sys.path.insert(0, str(REPO / "tests"))  # tests/services.py imports its sibling modules by name
    from services import start_redis

    return start_redis(workdir)


def start_proxy(
    kind: str,
    upstream: str,
    workdir: Path,
    redis: RedisServer | None,
    wrapper: tuple[str, ...] = (),
    start_timeout: float = 20.0,
) -> Mitmdump:
    store = KINDS[kind]
    start = partial(start_mitmdump, upstream, workdir, wrapper=wrapper, start_timeout=start_timeout)
    if store is None:
        return start(extra_args=("-q",), addon=False)
    if store == "spin":
        return start(extra_args=("-q", "-s", str(SPIN_SCRIPT)), addon=False)
    options = [f"guard_audit_log={workdir / 'audit.jsonl'}"]
    if store == "redis":
        assert redis is not None
        key = workdir / "redis-session.key"
        if not key.exists():
            key.write_text(secrets.token_hex(32) + "\n")
            key.chmod(0o600)
        options += [f"guard_session_store={redis.url}", f"guard_session_key={key}"]
    else:
        options.append(f"guard_session_store={store if store == 'memory' else workdir / store}")
    return start(*options, extra_args=("-q",))


def warm_up(port: int, all_shapes: dict[str, Shape], timeout: float = 30, each: int = 20) -> None:
    """The backend issues the session cookie (so the addon knows it), then `each` of each request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/login", headers=BROWSER)
        conn.getresponse().read()
        for shape in all_shapes.values():
            for n in range(each):  # numbered from the top: the load's own requests start at 1
                path, body = shape.numbered(10**8 - 1 - n)
                conn.request(shape.method, path, body=body or None, headers=shape.headers)
                conn.getresponse().read()
    finally:
        conn.close()


def e2e_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    wrk = shutil.which("wrk")
    if wrk is None and not smoke:
        raise RuntimeError("the end-to-end benchmark needs wrk (Debian: apt-get install -y wrk)")
    seconds = 1 if smoke else 6
    rounds = 1 if smoke else 4
    connections = 16
    all_shapes = shapes()
    kinds = ("bare", "addon") if smoke else tuple(KINDS)
    chosen = os.environ.get("LOGOUTGUARD_BENCH_E2E_KINDS")
    if chosen:
        kinds = tuple(k for k in KINDS if k in chosen.split(","))
        if "bare" not in kinds or "addon" not in kinds:
            raise RuntimeError(
                f"LOGOUTGUARD_BENCH_E2E_KINDS={chosen!r}: bare and addon are needed, of {tuple(KINDS)}"
            )
    runs: dict[str, dict[str, list[dict[str, float]]]] = {k: {kind: [] for kind in kinds} for k in all_shapes}

    def load(proxy: Mitmdump, shape: Shape) -> dict[str, float]:
        if wrk is not None:
            return run_wrk(proxy.url, shape, seconds, connections, workdir)
        return run_python(proxy.port, shape, seconds)

    backend, backend_port = start_backend()
    redis: RedisServer | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            if "addon_redis_store" in kinds:
                redis = start_redis_server(workdir)
            for _ in range(rounds):
                for kind in kinds:
                    proxy = start_proxy(kind, f"http://127.0.0.1:{backend_port}", workdir, redis)
                    try:
                        warm_up(proxy.port, all_shapes)
                        for name, shape in all_shapes.items():
                            result = with_cpu(proxy.proc.pid, partial(load, proxy, shape))
                            runs[name][kind].append(result)
                            log(
                                f"e2e {name} {kind}: {result['rps']} req/s, p50 {result['p50_ms']} ms, "
                                f"CPU {result['cpu_ms_per_request']} ms/request"
                            )
                    finally:
                        proxy.stop()
    finally:
        if redis is not None:
            redis.stop()
        backend.terminate()
        backend.wait(timeout=10)
    out: dict[str, object] = {
        "load_generator": f"wrk -t1 -c{connections} -d{seconds:g}s" if wrk else "python, 1 connection",
        "rounds": rounds,
        "spin_us": spin_us() if "spin_addon" in kinds else None,
    }
    for name, by_kind in runs.items():
        best = {kind: max(results, key=lambda r: r["rps"]) for kind, results in by_kind.items()}
        out[name] = {**best, "all_runs": by_kind}
        out[name]["throughput_ratio"] = round(best["addon"]["rps"] / best["bare"]["rps"], 3)
        if "addon_memory_store" in best:
            ratio = best["addon_memory_store"]["rps"] / best["bare"]["rps"]
            out[name]["throughput_ratio_memory_store"] = round(ratio, 3)
        # CPU per request: each configuration's least (its least disturbed round), and the ratios to
        # bare mitmdump round by round (the same round's bare run), their median and spread.
        cpu = {kind: min(r["cpu_ms_per_request"] for r in results) for kind, results in by_kind.items()}
        out[name]["cpu_ms_per_request"] = cpu
        paired = {kind: paired_ratios(by_kind[kind], by_kind["bare"]) for kind in by_kind if kind != "bare"}
        out[name]["cpu_ratio"] = {kind: round(statistics.median(r), 3) for kind, r in paired.items()}
        out[name]["cpu_ratio_spread"] = {kind: [min(r), max(r)] for kind, r in paired.items()}
        out[name]["cpu_ratio_of_least"] = {
            kind: round(v / cpu["bare"], 3) for kind, v in cpu.items() if kind != "bare"
        }
    return out


def paired_ratios(runs: list[dict[str, float]], bare: list[dict[str, float]]) -> list[float]:
    """CPU per request of each round's run over the same round's bare mitmdump run."""
    return [round(r["cpu_ms_per_request"] / b["cpu_ms_per_request"], 3) for r, b in zip(runs, bare, strict=True)]

