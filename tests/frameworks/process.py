"""One application process: started on loopback ports with its output in a log file, stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from procs import wait_port


class MissingComponent(Exception):
    """A program, package or install step the application needs is not there (the message says how to fix)."""


def require_program(program: str, hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise MissingComponent(f"{program} not found on PATH: {hint}")
    return path


def require_file(path: Path, hint: str) -> Path:
    if not path.exists():
        raise MissingComponent(f"{path} is missing: {hint}")
    return path


def group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
                members.append(int(stat.parent.name))
    return members


@dataclass
class AppProcess:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM to the process group we created (the frameworks shut down on it; php -S workers too),
        SIGKILL to whatever of it is left after `timeout`; returns once none of it runs."""
        group = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while group_members(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.proc.wait()
        while group_members(group) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        return self.proc.returncode


def launch(
    name: str,
    args: list[str],
    *,
    log_dir: Path,
    ports: list[int],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    ready: Callable[[], bool] | None = None,
) -> AppProcess:
    """Start `args` in its own process group; wait until every port in `ports` accepts connections and
    `ready()` (if given: some servers listen before they serve) answers True."""
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    started = time.monotonic()
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=full_env, start_new_session=True
        )
    app = AppProcess(name, proc, log_path)
    try:
        for port in ports:
            wait_port(port, timeout=max(1.0, timeout - (time.monotonic() - started)), proc=proc)
        while ready is not None and not ready():
            if proc.poll() is not None or time.monotonic() - started > timeout:
                raise TimeoutError(f"not ready after {time.monotonic() - started:.1f}s")
            time.sleep(0.1)
    except Exception as exc:
        app.stop(timeout=2)
        raise RuntimeError(f"{name} did not start ({exc}); its log:\n{app.log()[-4000:]}") from None
    return app
