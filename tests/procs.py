"""Real processes for tests: free ports, a recording backend, and mitmdump with the addon."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADDON_SCRIPT = REPO / "addon" / "main.py"


def tool(name: str) -> Path:
    """A program of this environment: beside the running Python (the repo's .venv), else on PATH."""
    for candidate in (BIN / name, REPO / ".venv" / "bin" / name):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is neither beside {sys.executable} nor on PATH (run bash .ci/setup)")
    return Path(found)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: the sockets stay bound until all are chosen (two calls of a
    one-port helper may give the same port twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Backend:
    """A local HTTP/1.1 server that records every request it gets and answers 200 with a small body."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    response_body: bytes = b"<html><body>backend ok</body></html>"
    response_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_backend() -> Backend:
    backend: Backend

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            backend.received.append(Received(self.command, self.path, list(self.headers.items()), body))
            payload = backend.response_body
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in backend.response_headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    backend = Backend(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return backend


@dataclass
class Mitmdump:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_mitmdump(
    upstream: str,
    log_dir: Path,
    *options: str,
    extra_args: tuple[str, ...] = (),
    program: str = "mitmdump",
    port: int | None = None,
    addon: bool = True,
    wrapper: tuple[str, ...] = (),
    start_timeout: float = 20.0,
) -> Mitmdump:
    """mitmdump -s addon/main.py --mode reverse:UPSTREAM on a free loopback port, with --set options.

    addon=False: bare mitmdump (no -s), e.g. as the baseline of the benchmarks. wrapper: a command the
    program runs under (e.g. valgrind and the Python interpreter)."""
    port = port or free_port()
    log_path = log_dir / f"{program}-{port}.log"
    args = [
        *wrapper,
        str(BIN / program),
        "--mode",
        f"reverse:{upstream}",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
    ]
    if addon:
        args += ["-s", str(ADDON_SCRIPT)]
    if addon and os.environ.get("LOGOUTGUARD_TEST_RULES"):  # run the e2e tests against another ruleset
        args += ["--set", f"guard_rules={os.environ['LOGOUTGUARD_TEST_RULES']}"]
    for option in options:
        args += ["--set", option]
    args += list(extra_args)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        wait_port(port, timeout=start_timeout, proc=proc)
    except Exception:
        proc.kill()
        raise RuntimeError(
            f"mitmdump did not start: {log_path.read_text(errors='replace')[-3000:]}"
        ) from None
    return Mitmdump(proc, port, log_path)
