"""Instructions per request (valgrind's callgrind) of the engine alone: the repeatable figure beside the
engine section's microseconds (engine_bench.py), which move with the machine (on a shared virtual
machine, by a third within half an hour for the same code).

Two workloads, each run by a process of its own under `valgrind --tool=callgrind --instr-atstart=no`
with PYTHONHASHSEED=0 (the shipped rules at PL1, their hyperscan database from the cache):
- `benign`: the benign corpus in corpus order, one pass after the memo tables are cleared, so each
  request's own values are new and those of earlier requests warm (as the engine section measures);
- `post_2kb_new_values`: e2e.py's 2 KB form POST with an order number and a comment of its own in every
  request, after 50 of them (a body's long values read anew each time).

The worker loads the engine and warms up uncounted, then waits; the counters are switched on and zeroed,
it runs the workload's requests, waits again, and the counters are dumped: the instructions of those
requests, divided by their number, plus the few polls of a file the worker makes while the counters
are zeroed and dumped (it waits by polling, so that client code keeps running and callgrind takes the
commands of `callgrind_control`; a poll costs about 15,000 instructions, the measured requests 180
to 680 million in all in a full run, 18 to 73 million in a smoke run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.instructions import callgrind_control, dumped_instructions
from tests.procs import REPO

WORKLOADS = ("benign", "post_2kb_new_values")
WARM_POSTS = 50


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"engine instructions: {path.name} did not appear in {timeout:.0f} s")
        time.sleep(0.01)


def worker(workload: str, count: int, signals: Path) -> None:
    """Run in the process callgrind watches: load, warm up, then `count` requests between two waits."""
    from logoutguard.engine import memo
    from logoutguard.engine.engine import Engine
    from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset
    from logoutguard.engine.transaction import Transaction, build_transaction
    from tests.bench.e2e import shapes
    from tests.corpus.loader import load_benign

    engine = Engine(load_ruleset([DEFAULT_RULES_DIR]), paranoia=1)
    if workload == "benign":
        txs = [entry.transaction() for entry in load_benign()[:count]]
        for tx in txs[:5]:
            engine.inspect_request(tx)
        memo.clear_all()  # (after the warm-up: each request of the pass finds what the earlier ones left)
    else:
        shape = shapes()[workload]

        def post(n: int) -> Transaction:
            path, body = shape.numbered(n)
            headers = [("Host", "shop.example"), *shape.headers.items(), ("Content-Length", str(len(body)))]
            return build_transaction(method=shape.method, uri=path, headers=headers, body=body.encode())

        for n in range(1, WARM_POSTS + 1):
            engine.inspect_request(post(n))
        txs = [post(WARM_POSTS + n) for n in range(1, count + 1)]
    (signals / "ready").touch()
    _wait_for(signals / "go", 600)
    for tx in txs:
        engine.inspect_request(tx)
    (signals / "done").touch()
    _wait_for(signals / "exit", 600)


def measure(workload: str, count: int, workdir: Path) -> dict[str, int]:
    signals = workdir / workload
    signals.mkdir()
    out_file = workdir / f"callgrind-{workload}.%p"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        "-m",
        "tests.bench.engine_instructions",
        workload,
        str(count),
        str(signals),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    log_path = workdir / f"{workload}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        while not (signals / "ready").exists():
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"engine instructions {workload}: the worker exited before its run:\n{tail}")
            time.sleep(0.05)
        before = set(workdir.glob(f"callgrind-{workload}.{proc.pid}*"))
        callgrind_control("--instr=on", proc.pid)
        callgrind_control("-z", proc.pid)
        (signals / "go").touch()
        _wait_for(signals / "done", 1200)
        callgrind_control("-d", proc.pid)
        total = dumped_instructions(workdir, workload, proc.pid, before)
        (signals / "exit").touch()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"engine instructions {workload}: the worker failed ({proc.returncode}):\n{tail}")
    return {"requests": count, "instructions": total, "per_request": round(total / count)}


def engine_instructions_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("the instruction counts need valgrind (Debian: apt-get install -y valgrind)")
    from tests.corpus.loader import load_benign

    counts = {"benign": 40 if smoke else len(load_benign()), "post_2kb_new_values": 10 if smoke else 100}
    out: dict[str, object] = {"paranoia": 1, "hash_seed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in WORKLOADS:
            figures = measure(workload, counts[workload], Path(tmp))
            out[workload] = figures
            log(
                f"engine instructions {workload}: {figures['per_request']:,} per request "
                f"(callgrind, {figures['requests']} requests)"
            )
    return out


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
