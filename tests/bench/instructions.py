"""Instructions per request (valgrind's callgrind) of mitmdump with the addon against bare mitmdump.

The end-to-end CPU time per request (e2e.py) is the figure the performance targets are set in, but on
a shared virtual machine it moves by 10-30% from one round to the next, for bare mitmdump as much as
for the addon. The instructions a process executes for the same requests do not: callgrind counts
them whatever else the machine is doing. So each proxy (bare, and with the addon's defaults: enforce,
SQLite store, audit log) runs under `valgrind --tool=callgrind`, both at once, in front of the same
backend, not counting till the same warm-up as e2e.py is over; then for each request shape the
counters are zeroed, a fixed number of requests is sent over several keep-alive connections at once
(as wrk does), and the counters are dumped: every thread of the process, the event loop's and the
store's, counted.

Instructions are not time: an instruction that misses the cache costs more than one that hits, and
callgrind runs the threads one at a time. The ratio here is the share of work the addon adds; the CPU
ratio of e2e.py, what that work costs on the machine. Both are reported, neither stands for the other.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench.e2e import Shape, shapes, start_backend, start_proxy, warm_up
from tests.procs import Mitmdump

KINDS = ("bare", "addon")
CONNECTIONS = 8


def send(port: int, shape: Shape, first: int, count: int) -> int:
    """`count` requests of `shape` over one keep-alive connection, numbered from `first`; the number
    answered below 400 (the backend answers 200: anything else is the proxy's refusal)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    ok = 0
    try:
        for n in range(first, first + count):
            path, body = shape.numbered(n)
            conn.request(shape.method, path, body=body or None, headers=shape.headers)
            response = conn.getresponse()
            response.read()
            ok += response.status < 400
    finally:
        conn.close()
    return ok


def callgrind_control(option: str, pid: int) -> None:
    """Switch counting on (--instr=on), zero (-z) or dump (-d) the counters of the callgrind process
    `pid`; returns once it has."""
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True, timeout=300)


def dumped_instructions(workdir: Path, kind: str, pid: int, before: set[Path]) -> int:
    """The instruction total of the dump just written (the one file of `pid` that is new)."""
    new = sorted(set(workdir.glob(f"callgrind-{kind}.{pid}*")) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise RuntimeError(f"callgrind wrote no dump for {kind} (pid {pid}) in {workdir}")
    for line in new[-1].read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"{new[-1]}: no instruction total in the callgrind dump")


def measure(proxy: Mitmdump, kind: str, workdir: Path, shape: Shape, per_connection: int) -> dict[str, float]:
    pid = proxy.proc.pid
    before = set(workdir.glob(f"callgrind-{kind}.{pid}*"))
    callgrind_control("--instr=on", pid)
    callgrind_control("-z", pid)
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        answered = sum(
            pool.map(lambda c: send(proxy.port, shape, 1 + c * per_connection, per_connection), range(CONNECTIONS))
        )
    callgrind_control("-d", pid)
    requests = CONNECTIONS * per_connection
    if answered != requests:
        raise RuntimeError(f"{kind}: {requests - answered} of {requests} requests were refused")
    total = dumped_instructions(workdir, kind, pid, before)
    return {"requests": requests, "instructions": total, "per_request": round(total / requests)}


def instructions_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("the instruction counts need valgrind (Debian: apt-get install -y valgrind)")
    per_connection = 2 if smoke else 25
    all_shapes = shapes()
    chosen = ("get_args_session",) if smoke else tuple(all_shapes)
    warm = {name: all_shapes[name] for name in chosen}
    backend, backend_port = start_backend()
    counts: dict[str, dict[str, dict[str, float]]] = {name: {} for name in chosen}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            proxies: dict[str, Mitmdump] = {}
            started = time.perf_counter()
            try:
                for kind in KINDS:  # one after the other; they are warmed up and measured at once
                    wrapper = (
                        "valgrind",
                        "--tool=callgrind",
                        "--instr-atstart=no",  # counting starts with the first shape (several times faster till then)
                        f"--callgrind-out-file={workdir / f'callgrind-{kind}.%p'}",
                        sys.executable,
                    )
                    proxies[kind] = start_proxy(
                        kind, f"http://127.0.0.1:{backend_port}", workdir, None, wrapper, start_timeout=600
                    )
                log(f"instructions: started under callgrind in {time.perf_counter() - started:.0f} s")
                started = time.perf_counter()
                with ThreadPoolExecutor(len(KINDS)) as pool:
                    list(pool.map(lambda p: warm_up(p.port, warm, timeout=600, each=2 if smoke else 20), proxies.values()))
                log(f"instructions: warm-up {time.perf_counter() - started:.0f} s")

                def run(kind: str) -> dict[str, dict[str, float]]:
                    return {name: measure(proxies[kind], kind, workdir, all_shapes[name], per_connection) for name in chosen}

                with ThreadPoolExecutor(len(KINDS)) as pool:
                    for kind, by_shape in zip(KINDS, pool.map(run, KINDS), strict=True):
                        for name, figures in by_shape.items():
                            counts[name][kind] = figures
            finally:
                for proxy in proxies.values():
                    proxy.stop()
    finally:
        backend.terminate()
        backend.wait(timeout=10)
    out: dict[str, object] = {"connections": CONNECTIONS, "requests_per_shape": CONNECTIONS * per_connection}
    for name, by_kind in counts.items():
        ratio = round(by_kind["addon"]["per_request"] / by_kind["bare"]["per_request"], 3)
        out[name] = {**by_kind, "ratio": ratio}
        log(
            f"instructions {name}: bare {by_kind['bare']['per_request']:,}, addon {by_kind['addon']['per_request']:,}"
            f" per request -> x{ratio}"
        )
    return out
