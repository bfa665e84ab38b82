"""The paths under test, each behind its own counting tap: the target directly, LogoutGuard, Apache + ModSecurity + CRS.

Everything listens on 127.0.0.1 and is started here (never a service already running on the machine):
* the target (`python -m tests.yardstick.target`), logging the request ids it handles;
* per path a tap (bare mitmdump in reverse mode with `tap.py`, `keep_host_header`), which the tools
  talk to as `http://localhost:PORT/` (a host name in the Host header, not a numeric IP);
* `direct`: tap -> target;
* `logoutguard-plN`: tap -> `mitmdump -s addon/main.py --mode reverse:TARGET` in enforce mode at PL N,
  memory session store, built-in default policy (anonymous over threshold: deny), audit log kept;
* `crs-plN`: tap -> a private Apache 2 + ModSecurity 2 + OWASP CRS 3.3.4 (Debian's packages, the
  configuration of `tests/crs/differential.py`, mod_proxy to the target) at PL N.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crs.differential import APACHE, APT_LINE, apache_config, missing_parts

from procs import REPO, Mitmdump, free_port, start_mitmdump, wait_port

TAP_SCRIPT = Path(__file__).resolve().parent / "tap.py"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
HOST_NAME = "localhost"  # resolves to 127.0.0.1; the Host header then carries a name


def get(url: str, timeout: float = 60.0) -> tuple[int, bytes]:
    """A plain GET with the browser User-Agent (warm-up and control requests)."""
    req = urllib.request.Request(url, headers={"User-Agent": BROWSER_UA})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class TargetProcess:
    proc: subprocess.Popen
    port: int
    data: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reached(self, tap_name: str) -> set[int]:
        """Ids (of the tap `tap_name`) of the requests the application handled."""
        ids: set[int] = set()
        prefix = tap_name + "."
        if self.log.exists():
            for line in self.log.read_text(errors="replace").splitlines():
                try:
                    tag = json.loads(line).get("req", "")
                except json.JSONDecodeError:
                    continue
                if isinstance(tag, str) and tag.startswith(prefix) and tag[len(prefix) :].isdigit():
                    ids.add(int(tag[len(prefix) :]))
        return ids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_target(work: Path) -> TargetProcess:
    port = free_port()
    data, log = work / "target-data", work / "target-requests.jsonl"
    out = open(work / "target.log", "wb")  # noqa: SIM115 - kept open for the child's lifetime
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.yardstick.target",
            "--port",
            str(port),
            "--data",
            str(data),
            "--log",
            str(log),
        ],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    target = TargetProcess(proc, port, data, log)
    try:
        wait_port(port, timeout=30, proc=proc)
        status, body = get(f"{target.url}/health")
        health = json.loads(body)
    except Exception as exc:
        target.stop()
        raise RuntimeError(
            f"yardstick target did not start: {exc}\n{(work / 'target.log').read_text()[-2000:]}"
        ) from None
    if status != 200 or not health.get("shell_sandbox"):
        target.stop()
        raise RuntimeError(
            "yardstick target: the shell sandbox (a network namespace for each command) is not available "
            "here, so command injection could reach the network; refusing to run"
        )
    return target


@dataclass
class Tap:
    """The counting layer in front of one path: tools talk to `url`."""

    process: Mitmdump
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST_NAME}:{self.process.port}"

    def label(self, name: str) -> None:
        status, _ = get(f"http://127.0.0.1:{self.process.port}/__tap__/label?name={name}", timeout=10)
        if status != 200:
            raise RuntimeError(f"tap on {self.process.port} refused the label {name!r}")

    def records(self, label: str | None = None) -> list[dict]:
        out = []
        if self.log.exists():
            for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
                record = json.loads(line)
                if label is None or record["label"] == label:
                    out.append(record)
        return out


def start_tap(upstream: str, work: Path, name: str, mark_served: bool = False) -> Tap:
    log = work / f"tap-{name}.jsonl"
    confdir = work / "mitmproxy-conf"
    confdir.mkdir(exist_ok=True)
    process = start_mitmdump(
        upstream,
        work,
        "keep_host_header=true",
        "flow_detail=0",
        "connection_strategy=lazy",
        f"confdir={confdir}",
        f"tap_log={log}",
        f"tap_name={name}",
        f"tap_mark_served={'true' if mark_served else 'false'}",
        addon=False,
        extra_args=("-s", str(TAP_SCRIPT)),
    )
    return Tap(process, log)


class ApacheCRS:
    """A private Apache + ModSecurity 2 + CRS reverse proxy in front of `backend_port` (context manager)."""

    def __init__(self, backend_port: int, paranoia: int) -> None:
        missing = missing_parts()
        if missing:
            raise FileNotFoundError(f"missing: {', '.join(missing)}; install with: {APT_LINE}")
        self.root = Path(tempfile.mkdtemp(prefix="lg-yardstick-apache-"))
        self.port = free_port()
        config = apache_config(self.root, self.port, backend_port, paranoia)
        # only requests ModSecurity flagged go to the audit log (the full run sends tens of thousands)
        self.config = config.replace("SecAuditEngine On", "SecAuditEngine RelevantOnly")

    def start(self) -> ApacheCRS:
        conf = self.root / "httpd.conf"
        conf.write_text(self.config)
        os.chmod(self.root, 0o755)
        (self.root / "audit.log").touch()
        shutil.chown(self.root / "audit.log", "www-data", "www-data")
        env = {**os.environ, "APACHE_RUN_DIR": str(self.root), "APACHE_LOG_DIR": str(self.root)}
        done = subprocess.run(
            [str(APACHE), "-f", str(conf), "-k", "start"], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"apache2 did not start: {done.stderr or done.stdout}")
        wait_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        pid_file = self.root / "httpd.pid"
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and pid_file.exists():
                time.sleep(0.05)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PathUnderTest:
    name: str  # direct | logoutguard-pl1 | crs-pl1 ...
    kind: str  # direct | logoutguard | crs
    paranoia: int
    entry: str  # URL of the proxy (or the target) the tap forwards to
    tap: Tap
    stops: list = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception as exc:
                print(f"yardstick: stopping {self.name}: {exc}", file=sys.stderr)


def parse_path_name(name: str) -> tuple[str, int]:
    """'direct' -> (direct, 0); 'logoutguard-pl2' -> (logoutguard, 2); 'crs-pl1' -> (crs, 1)."""
    if name == "direct":
        return "direct", 0
    kind, _, level = name.rpartition("-pl")
    if kind not in ("logoutguard", "crs") or level not in ("1", "2", "3", "4"):
        raise ValueError(f"unknown path {name!r}: direct, logoutguard-plN or crs-plN (N 1-4)")
    return kind, int(level)


def start_path(name: str, upstream_port: int, work: Path) -> PathUnderTest:
    kind, paranoia = parse_path_name(name)
    upstream = f"http://127.0.0.1:{upstream_port}"
    stops: list = []
    try:
        if kind == "direct":
            entry = upstream
        elif kind == "logoutguard":
            confdir = work / "mitmproxy-conf"
            confdir.mkdir(exist_ok=True)
            guard = start_mitmdump(
                upstream,
                work,
                f"guard_paranoia={paranoia}",
                "guard_mode=enforce",
                "guard_session_store=memory",
                f"guard_audit_log={work / f'audit-{name}.jsonl'}",
                f"confdir={confdir}",
                "flow_detail=0",
            )
            stops.append(guard.stop)
            entry = guard.url
        else:
            apache = ApacheCRS(upstream_port, paranoia).start()
            stops.append(apache.stop)
            entry = f"http://127.0.0.1:{apache.port}"
        get(entry + "/", timeout=120)  # warm-up, not counted (LogoutGuard compiles on its first request)
        tap = start_tap(entry, work, name)
        stops.append(tap.process.stop)
    except BaseException:
        for stop in reversed(stops):
            stop()
        raise
    return PathUnderTest(name, kind, paranoia, entry, tap, stops)


def start_paths(names: list[str], upstream_port: int, work: Path) -> Iterator[PathUnderTest]:
    for name in names:
        yield start_path(name, upstream_port, work)
