"""`logoutguard quickstart` (demo app + mitmdump with the addon, and what to try) and `logoutguard run` (mitmdump wrapper).

Both build the same mitmdump command line: the addon script that ships in the package, reverse
mode to the application, the policy and state options. `quickstart` runs the demo app in a thread
and mitmdump as a child until Ctrl-C/SIGTERM; `run` replaces itself with mitmdump.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import logoutguard

from .demo.app import DemoApp

PACKAGE_DIR = Path(logoutguard.__file__).resolve().parent
ADDON_SCRIPT = PACKAGE_DIR / "main.py"
DEMO_POLICY = PACKAGE_DIR / "demo" / "policy.yaml"
XSS_PATH = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"
# The ports of the README's examples: the application on 8080, the proxy on 8088, mitmweb's web UI on
# its default 8081 (so the three never collide).
APP_PORT, PROXY_PORT = 8080, 8088
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class StartError(Exception):
    """Something needed to start is missing or did not come up."""


def find_mitmdump() -> Path:
    """mitmdump next to this Python (the same virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "mitmdump"
    if beside.exists():
        return beside
    found = shutil.which("mitmdump")
    if found is None:
        raise StartError(f"mitmdump not found next to {sys.executable} nor on PATH: install mitmproxy")
    return Path(found)


def own_program(name: str) -> str:
    """How to call a program of this installation in a copy-pasteable command: its bare name when it
    is the one on PATH, else its full path (e.g. .venv/bin/logoutguard after `bash .ci/setup`)."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found is not None and Path(found).resolve() == beside.resolve():
        return name
    return str(beside)


def mitmdump_command(
    mitmdump: Path,
    upstream: str,
    options: Sequence[tuple[str, str]] = (),
    listen: tuple[str, int] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The mitmdump argv: the addon, reverse mode to `upstream`, --set options, then `extra` verbatim."""
    argv = [str(mitmdump), "-s", str(ADDON_SCRIPT), "--mode", f"reverse:{upstream}"]
    if listen is not None:
        argv += ["--listen-host", listen[0], "--listen-port", str(listen[1])]
    for name, value in options:
        argv += ["--set", f"{name}={value}"]
    return argv + list(extra)


def upstream_problem(url: str) -> str | None:
    """Why `url` cannot be the reverse-proxy upstream, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"{url!r}: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL such as http://127.0.0.1:8080"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_free(port: int, option: str) -> None:
    """StartError when something already listens on 127.0.0.1:port (we would talk to it instead)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StartError(f"{option} {port}: {exc.strerror or exc} (pick another, or 0)") from None


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Until mitmdump says it is listening (it does once the addon is loaded; the port itself accepts
    earlier) and 127.0.0.1:port accepts; StartError when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StartError(f"mitmdump exited with status {proc.returncode} before listening:\n{tail}")
        said = log.exists() and "listening at" in log.read_text(errors="replace")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            if said:
                return
        time.sleep(0.1)
    raise StartError(f"mitmdump was not listening on 127.0.0.1:{port} after {timeout:g}s (log: {log})")


def stop_process(proc: subprocess.Popen[bytes]) -> int:
    """SIGINT (mitmdump shuts down cleanly), SIGKILL if it lingers; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@dataclass(frozen=True)
class Setup:
    app_port: int
    proxy_port: int
    state_dir: Path
    defective_logout: bool

    @property
    def jar(self) -> Path:
        return self.state_dir / "cookies.txt"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.jsonl"

    @property
    def session_store(self) -> Path:
        return self.state_dir / "sessions.sqlite"

    @property
    def mitmdump_log(self) -> Path:
        return self.state_dir / "mitmdump.log"


def instructions(s: Setup) -> str:
    """What to try, step by step, as copy-pasteable commands against the proxy (and the app directly)."""
    proxy, app, jar = f"http://127.0.0.1:{s.proxy_port}", f"http://127.0.0.1:{s.app_port}", s.jar
    direct_result = (
        "200 with the account page: this app's logout is defective (the server kept the session),\n"
        "     yet step 5 showed the proxy refuses the old ID: LogoutGuard covers the defect."
        if s.defective_logout
        else "302 to /login: the application itself killed the session."
    )
    return f"""\
LogoutGuard quick start
  demo app  {app}   (logout: {"DEFECTIVE, keeps the session on the server" if s.defective_logout else "correct"})
  proxy     {proxy}   (mitmdump + LogoutGuard, demo policy {DEMO_POLICY})
  state     {s.state_dir}
app port {s.app_port}
proxy port {s.proxy_port}

Try it in another terminal (user guest, password guest):

 1. Log in through the proxy; the cookie jar keeps JSESSIONID and csrftoken:
      curl -i -c {jar} -d username=guest -d password=guest {proxy}/login
    -> 302 to /account with Set-Cookie: JSESSIONID=...

 2. Browse a protected page with the session:
      curl -i -b {jar} {proxy}/account
    -> 200 "Signed in as guest"

 3. Save the session ID now, to reuse it after the attack:
      OLD=$(awk '$6 == "JSESSIONID" {{print $7}}' {jar}); echo "$OLD"

 4. Attack: an XSS in the search box, sent with the session:
      curl -i -b {jar} -c {jar} '{proxy}{XSS_PATH}'
    -> 302 to /login?reason=signed-out with a NEW JSESSIONID: the proxy turned the request into
       the application's own logout (POST /logout with the CSRF token); the attack never reached it.

 5. Reuse the OLD session ID through the proxy:
      curl -i -b "JSESSIONID=$OLD" {proxy}/account
    -> 302 to /login: the proxy refuses the revoked session.

 6. Ask the application directly (bypassing the proxy) with the old ID:
      curl -i -b "JSESSIONID=$OLD" {app}/account
    -> {direct_result}

 7. Check any application's logout yourself (exit 0 = session killed, 1 = still alive):
      {own_program("logoutguard")} audit-logout {app} --username guest --password guest --logout-path '/attack?Logout=true'

What the proxy decided, one JSON line per judged flow:
      tail -f {s.audit_log}
mitmdump's own log: {s.mitmdump_log}

Ctrl-C here stops the proxy and the demo app.
"""


def quickstart(setup_args: argparse.Namespace) -> int:
    """Start the demo app and mitmdump, print what to try, run until SIGINT/SIGTERM."""
    try:
        mitmdump = find_mitmdump()
        proxy_port = setup_args.proxy_port or free_port()
        check_free(proxy_port, "--proxy-port")
        app = DemoApp(port=setup_args.app_port, defective_logout=setup_args.defective_logout)
        try:
            app.start()
        except OSError as exc:
            raise StartError(
                f"--app-port {setup_args.app_port}: {exc.strerror or exc} (pick another, or 0)"
            ) from None
    except StartError as exc:
        print(f"quickstart: cannot start: {exc}", file=sys.stderr)
        return 2
    proc: subprocess.Popen[bytes] | None = None
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        state_dir = (
            Path(setup_args.state_dir).expanduser()
            if setup_args.state_dir
            else Path(tempfile.mkdtemp(prefix="logoutguard-quickstart-"))
        )
        state_dir.mkdir(parents=True, exist_ok=True)
        setup = Setup(app.port, proxy_port, state_dir.resolve(), setup_args.defective_logout)
        options = [
            ("guard_policy", str(DEMO_POLICY)),
            ("guard_session_store", str(setup.session_store)),
            ("guard_audit_log", str(setup.audit_log)),
        ] + [("guard_rules", r) for r in setup_args.rules or ()]
        argv = mitmdump_command(mitmdump, app.url, options, ("127.0.0.1", setup.proxy_port))
        with open(setup.mitmdump_log, "wb") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its log lines reach the file as they are said
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        wait_listening(setup.proxy_port, proc, START_TIMEOUT_S, setup.mitmdump_log)
        print(instructions(setup), flush=True)
        while not stopping.wait(0.5):
            if proc.poll() is not None:
                print(
                    f"quickstart: mitmdump exited with status {proc.returncode}; see {setup.mitmdump_log}",
                    file=sys.stderr,
                )
                return 1
        print("quickstart: stopping mitmdump and the demo app", flush=True)
        return 0
    except (StartError, OSError) as exc:
        print(f"quickstart: cannot start: {exc}", file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            stop_process(proc)
        app.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_quickstart(args: argparse.Namespace) -> int:
    return quickstart(args)


def cmd_run(args: argparse.Namespace) -> int:
    """Replace this process with mitmdump running the addon in reverse mode in front of --upstream."""
    problem = upstream_problem(args.upstream)
    if problem:
        print(f"run: --upstream {problem}", file=sys.stderr)
        return 2
    options = []
    if args.policy:
        policy = Path(args.policy).expanduser()
        if not policy.is_file():
            print(f"run: --policy {args.policy!r}: no such file", file=sys.stderr)
            return 2
        options.append(("guard_policy", str(policy.resolve())))
    try:
        argv = mitmdump_command(
            find_mitmdump(),
            args.upstream,
            options,
            listen=(args.listen_host, args.listen_port),
            extra=args.mitmdump_args,
        )
    except StartError as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0  # not reached


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "quickstart",
        help="start the demo app and mitmdump with LogoutGuard in front of it, and print what to try",
    )
    p.add_argument(
        "--app-port", type=int, default=APP_PORT, help=f"demo app port; 0 picks a free one (default: {APP_PORT})"
    )
    p.add_argument(
        "--proxy-port",
        type=int,
        default=PROXY_PORT,
        help=f"proxy port; 0 picks a free one (default: {PROXY_PORT})",
    )
    p.add_argument(
        "--defective-logout",
        action="store_true",
        help="the demo app's logout keeps the session on the server (the proxy still kills it)",
    )
    p.add_argument(
        "--state-dir",
        help="folder for the session store, audit log and mitmdump log (default: new temp folder)",
    )
    p.add_argument(
        "--rules", action="append", help="rule file or folder (repeatable; default: shipped rules)"
    )
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser(
        "run",
        help="run mitmdump with the LogoutGuard addon in reverse mode in front of an application",
        description="Exec mitmdump -s <addon> --mode reverse:UPSTREAM [--set guard_policy=FILE] "
        "[extra mitmdump args]. Example: logoutguard run --upstream http://127.0.0.1:8080 "
        "--policy app.yaml -- --set guard_paranoia=2",
    )
    p.add_argument("--upstream", required=True, help="the application's URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--policy", help="the application's policy file (YAML)")
    p.add_argument(
        "--listen-host",
        default="127.0.0.1",
        help="address the proxy listens on (default: 127.0.0.1; use 0.0.0.0 to serve other hosts)",
    )
    p.add_argument(
        "--listen-port", type=int, default=PROXY_PORT, help=f"port the proxy listens on (default: {PROXY_PORT})"
    )
    p.add_argument("mitmdump_args", nargs="*", help="after --: passed to mitmdump unchanged")
    p.set_defaults(func=cmd_run)
