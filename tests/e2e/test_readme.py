"""The README's commands, word for word.

Every `sh` block of the README is either run here — in a scratch folder that looks like the checkout
(`addon`, `rules` and `.venv` linked in; the README's own example files, e.g. `my-exclusions.yaml`,
written from its blocks), with its long-running services started in the background and the
README's ports 8080 (application), 8088 (proxy) and 8081 (mitmweb's UI) moved to free ones, the only
words changed — or named in NOT_RUN_HERE with the reason. Every `logoutguard ...` command line in
the README parses, and every `--set NAME=...` of a mitmdump/mitmweb line names a real option.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from e2e.browser import Browser
from logoutguard.cli import build_parser
from logoutguard.demo.app import DemoApp
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset
from logoutguard.quickstart import XSS_PATH
from procs import ADDON_SCRIPT, BIN, REPO, free_port, wait_port
from readme import README, Block, fenced_blocks, logoutguard_commands, readme_commands

pytestmark = pytest.mark.e2e

# The sh blocks not run here (by the start of their first command), and why.
NOT_RUN_HERE = {
    "bash .ci/setup": "sets up this checkout, then quickstart runs until Ctrl-C (tests/test_quickstart.py runs it)",
    "bash .ci/run": "CI itself",
    ".venv/bin/python -m build": "needs PyPI: tests/e2e/test_wheel.py runs the 'Install from a wheel' blocks",
    "venv/bin/mitmdump": "the installed wheel's: tests/e2e/test_wheel.py runs it",
    "venv/bin/logoutguard run": "the installed wheel's: tests/e2e/test_wheel.py runs it",
    ".venv/bin/mitmdump -s addon/main.py --mode reverse:http://127.0.0.1:8080 --listen-host 127.0.0.1  --set "
    "guard_crs=debian": "my-app.yaml stands for your application's policy",
    "install -d -m 0700 /etc/logoutguard": "writes to /etc (root)",
    ".venv/bin/mitmdump --mode reverse:http://127.0.0.1:8080 --listen-host 127.0.0.1 --listen-port 8088 -w": "a "
    "person records a session in a browser: tests/e2e/test_framework_logout.py records each framework app "
    "through mitmdump -w, runs logoutguard learn and policy lint",
    "for i in 1 2 3 4; do": "needs Redis and /etc/logoutguard (tests/e2e/test_scaleout.py runs this set-up)",
    ".venv/bin/python -m pytest tests/fuzz": "minutes of fuzzing (.ci/run runs the fuzz targets)",
    ".venv/bin/python -m tests.yardstick": "the full measurement takes about half an hour "
    "(tests/yardstick/test_run.py runs the bounded --quick run)",
}
# Lines of run blocks that are not run, and why.
NOT_RUN_LINES = {"apt-get install -y modsecurity-crs": "needs root and the network (.ci/run installs it)"}
PORTS = {"8080": "app", "8088": "proxy", "8081": "web"}  # README port -> role


@dataclass
class Scratch:
    """The scratch checkout, the free ports standing in for the README's, and the running services."""

    cwd: Path
    ports: dict[str, int]
    env: dict[str, str]
    services: list[subprocess.Popen[bytes]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # command -> what it printed
    demo: DemoApp | None = None

    def words(self, command: str) -> str:
        """The command with the README's ports replaced by free ones."""
        return re.sub(r"\b(8080|8088|8081)\b", lambda m: str(self.ports[PORTS[m.group(1)]]), command)

    def run(self, command: str) -> str:
        done = subprocess.run(
            ["bash", "-c", self.words(command)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"{command}\nexited with {done.returncode}:\n{done.stdout}{done.stderr}"
        self.outputs[command] = done.stdout + done.stderr
        return done.stdout

    def start(self, command: str) -> None:
        """A service (a line ending with `&`, or mitmdump/mitmweb, which run until Ctrl-C)."""
        log = open(self.cwd / f"service-{len(self.services)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            ["bash", "-c", self.words(command.removesuffix("&").strip())],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.services.append(proc)
        argv = shlex.split(self.words(command.removesuffix("&")))
        for flag in ("--listen-port", "--port"):
            if flag in argv:
                wait_port(int(argv[argv.index(flag) + 1]), timeout=90, proc=proc)
        if any(a == "web_port=" + str(self.ports["web"]) for a in argv):
            wait_port(self.ports["web"], timeout=90, proc=proc)

    def stop_services(self) -> None:
        for proc in self.services:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.services.clear()
        if self.demo is not None:
            self.demo.stop()
            self.demo = None


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Scratch]:
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    for name in ("addon", "rules", ".venv"):
        (cwd / name).symlink_to(REPO / name if name != ".venv" else BIN.parent)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "BROWSER": "true", "PYTHONUNBUFFERED": "1"}
    (tmp_path / "home").mkdir()
    ports = {role: free_port() for role in PORTS.values()}
    s = Scratch(cwd, ports, env)
    yield s
    s.stop_services()


def is_service(command: str) -> bool:
    first = shlex.split(command)[0]
    return command.endswith("&") or (Path(first).name in ("mitmdump", "mitmweb") and " -n " not in command)


def not_run(block: Block) -> str | None:
    head = block.commands[0]
    return next((why for start, why in NOT_RUN_HERE.items() if head.startswith(start)), None)


# What to check after a block ran (by the start of its first command).
def check_mitmdump(s: Scratch) -> None:
    proxy = s.ports["proxy"]
    assert Browser(proxy).get("/health").body == b"ok"
    assert Browser(proxy).get(XSS_PATH).status == 403  # anonymous attack: the demo policy denies


def check_mitmweb_started(s: Scratch) -> None:
    assert Browser(s.ports["web"]).get("/").status in (200, 403)  # mitmweb's UI (403: no token)


def check_forced_logout(s: Scratch) -> None:
    (attack,) = [out for cmd, out in s.outputs.items() if "search?q=" in cmd]
    assert attack.startswith("HTTP/1.1 302") and "Location: /login?reason=signed-out" in attack, attack


def check_exclusions(s: Scratch) -> None:
    lint, scan = list(s.outputs.values())[-2:]
    shipped = len(load_ruleset([DEFAULT_RULES_DIR]))  # the count changes as rules are added
    files = len(list(Path(DEFAULT_RULES_DIR).glob("*.yaml")))
    assert lint == f"ok: {shipped} rules in {files} file(s); exclusions ok: my-exclusions.yaml\n"
    assert scan == "score 0 (threshold 5, PL1): pass\n"  # the attack in 'content' is excluded on /cms/


def check_scan(s: Scratch) -> None:
    verdict = yaml.safe_load(list(s.outputs.values())[-1])
    assert verdict["blocked"] is True and {m["category"] for m in verdict["matches"]} == {"sqli"}


def check_crs_report(s: Scratch) -> None:
    report = "\n".join(out for cmd, out in s.outputs.items() if "crs report" in cmd)
    assert "rules loaded" in report and "paranoia level 2" in report


def app_for_the_proxy(s: Scratch) -> None:
    """The README's mitmdump line protects 'the application at port 8080': the demo app stands in."""
    s.demo = DemoApp(port=s.ports["app"])
    s.demo.start()


BEFORE: dict[str, Callable[[Scratch], None]] = {".venv/bin/mitmdump -s addon/main.py": app_for_the_proxy}
AFTER: dict[str, Callable[[Scratch], None]] = {
    ".venv/bin/mitmdump -s addon/main.py": check_mitmdump,
    ".venv/bin/logoutguard demo-app": check_mitmweb_started,
    "curl -s -o /dev/null -c jar.txt": check_forced_logout,
    ".venv/bin/logoutguard rules lint --no-probe --exclusions": check_exclusions,
    "printf 'GET /search": check_scan,
    "apt-get install -y modsecurity-crs": check_crs_report,
}


def test_the_readme_sh_blocks_run_word_for_word(scratch: Scratch) -> None:
    from services import require_program

    require_program("curl", "curl")
    blocks = fenced_blocks(README.read_text())
    for block in blocks:
        if block.file_name and block.lang != "sh":
            (scratch.cwd / block.file_name).write_text(block.text)
    ran, skipped = [], []
    for block in (b for b in blocks if b.lang == "sh"):
        if not_run(block):
            skipped.append(block.commands[0])
            continue
        head = block.commands[0]
        starts_services = any(is_service(c) for c in block.commands)
        if starts_services:
            scratch.stop_services()  # the README's services are alternatives: one at a time
        for start, hook in BEFORE.items():
            if head.startswith(start):
                hook(scratch)
        for command in block.commands:
            if any(command.startswith(line) for line in NOT_RUN_LINES):
                continue
            if is_service(command):
                scratch.start(command)
            else:
                scratch.run(command)
        checks = [hook for start, hook in AFTER.items() if head.startswith(start)]
        assert checks, f"no check for the README block starting {head!r}: add one to AFTER"
        for check in checks:
            check(scratch)
        ran.append(head)
    assert len(ran) == len(AFTER) and len(skipped) == len(NOT_RUN_HERE), (ran, skipped)


def test_every_logoutguard_command_line_parses() -> None:
    commands = logoutguard_commands(README.read_text())
    assert len(commands) >= 10
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:  # --version and --help exit 0 after printing
            assert exc.code == 0, f"the README's `logoutguard {shlex.join(argv)}` does not parse"


def test_every_set_option_of_the_readme_exists(tmp_path: Path) -> None:
    listing = subprocess.run(
        [str(BIN / "mitmweb"), "-s", str(ADDON_SCRIPT), "--options"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
        stdin=subprocess.DEVNULL,
    )
    known = {k for k in (yaml.safe_load(listing.stdout) or {})}
    assert {"guard_rules", "guard_exclusions", "web_port", "listen_port"} <= known, listing.stderr[-2000:]
    used = {
        argv[i + 1].split("=", 1)[0]
        for argv in readme_commands(README.read_text())
        for i, word in enumerate(argv[:-1])
        if word == "--set"
    }
    assert len(used) >= 8 and used <= known, used - known
