"""Private service processes for tests: a redis-server and an HAProxy on free loopback ports.

Never the machine's own Redis on 6379: each test run starts its own, without persistence. When a
program is missing the tests that need it are skipped with the reason, except under CI=true,
where a missing program is a failure (CI must run every test).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from procs import free_port, wait_port

INSTALL_HINT = "apt-get install -y {package} (Debian), or put {program} on PATH"


def require_program(program: str, package: str) -> str:
    """The path of `program`; skips the test when missing, fails it under CI=true."""
    path = shutil.which(program) or next(
        (p for d in ("/usr/sbin", "/usr/bin", "/sbin") if os.access(p := f"{d}/{program}", os.X_OK)), None
    )
    if path:
        return path
    reason = f"{program} not found: {INSTALL_HINT.format(package=package, program=program)}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class RedisServer:
    """A redis-server of our own: no persistence, loopback only; stop() and start() keep its port."""

    program: str
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.program,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        args += ["--daemonize", "no", "--protected-mode", "yes", "--dir", str(self.log_path.parent)]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, timeout=10, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"redis-server did not start: {self.log_path.read_text()[-2000:]}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)

    def flush(self) -> None:
        """FLUSHALL through a plain socket (no client library needed)."""
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            reply = s.recv(64)
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL on redis port {self.port}: {reply!r}")


def start_redis(log_dir: Path, port: int | None = None) -> RedisServer:
    program = require_program("redis-server", "redis-server")
    return RedisServer(program, port or free_port(), log_dir / "redis-server.log").start()


HAPROXY_CONFIG = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-server-close
frontend web
    bind 127.0.0.1:{port}
    default_backend proxies
backend proxies
    balance roundrobin
{servers}
"""


@dataclass
class HAProxy:
    proc: subprocess.Popen
    port: int
    config: Path
    log_path: Path

    def stop(self) -> None:
        stop_process(self.proc)


def haproxy_config(port: int, backends: list[int]) -> str:
    """Round robin, HTTP mode, over the given loopback ports (a one-second TCP check on each)."""
    servers = "\n".join(
        f"    server proxy{i} 127.0.0.1:{p} check inter 1s" for i, p in enumerate(backends, start=1)
    )
    return HAPROXY_CONFIG.format(port=port, servers=servers)


def start_haproxy(folder: Path, backends: list[int]) -> HAProxy:
    """haproxy -db -f <its own config> on a free loopback port, in front of `backends`."""
    program = require_program("haproxy", "haproxy")
    port = free_port()
    config = folder / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends))
    log_path = folder / "haproxy.log"
    check = subprocess.run([program, "-c", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy rejected {config}: {check.stdout}{check.stderr}")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([program, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=10, proc=proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError(f"haproxy did not start: {log_path.read_text()[-2000:]}") from None
    time.sleep(0.2)
    return HAProxy(proc, port, config, log_path)


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Wait until a freshly started mitmdump answers an HTTP request: it listens before the addon
    has finished loading, so its first request can take a few seconds (not a per-request cost)."""
    import http.client

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("GET", "/", headers={"User-Agent": "LogoutGuardTest/1.0 warm-up"})
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
