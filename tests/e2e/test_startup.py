"""Start-up and reconfiguration with real mitmdump/mitmweb: a bad option value stops the start (non-zero
exit, one line on stderr naming the option and the value) and nothing reaches the application meanwhile;
a bad value set while running keeps the configuration in force (the proxy keeps blocking attacks);
`logoutguard run` likewise; the CRS options.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.test_mitmweb import Web
from logoutguard.crs.loader import DEBIAN_RULES, DEBIAN_SETUP
from procs import (
    ADDON_SCRIPT,
    BIN,
    REPO,
    Backend,
    Mitmdump,
    free_port,
    start_backend,
    start_mitmdump,
    wait_port,
)

pytestmark = pytest.mark.e2e

ATTACK = "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E"
STARTUP = "Error logged during startup, exiting..."


@pytest.fixture
def backend() -> Iterator[Backend]:
    started = start_backend()
    yield started
    started.stop()


class Hammer:
    """Sends the attack to a port over and over until stopped: what a client sees while the proxy starts."""

    def __init__(self, port: int) -> None:
        self.port, self.answers, self._stop = port, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("GET", ATTACK, headers={"User-Agent": "Mozilla/5.0", "Host": "app.test"})
                self.answers.append(conn.getresponse().status)
            except OSError:
                self._stop.wait(0.02)  # nothing listening (yet, or any more)
            finally:
                conn.close()

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=40)
        return self.answers


def start_refused(argv: list[str], port: int, backend: Backend) -> tuple[int, list[str], str]:
    """Run a start that must fail while a client keeps sending the attack; (status, stderr lines, stdout)."""
    hammer = Hammer(port)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL
        )
    finally:
        answers = hammer.stop()
    assert backend.received == [], "a request reached the application while the proxy started"
    assert set(answers) <= {503}, answers  # the gate's answer, if the port took any request at all
    return done.returncode, done.stderr.splitlines(), done.stdout


def mitmdump_argv(upstream: str, port: int, *options: str) -> list[str]:
    argv = [str(BIN / "mitmdump"), "-s", str(ADDON_SCRIPT), "--mode", f"reverse:{upstream}"]
    argv += ["--listen-host", "127.0.0.1", "--listen-port", str(port)]
    for option in ("guard_session_store=memory", "guard_audit_log=", *options):
        argv += ["--set", option]
    return argv


@pytest.fixture
def debian_crs() -> None:
    if not (DEBIAN_SETUP.is_file() and DEBIAN_RULES.is_dir()):
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's modsecurity-crs is not installed (.ci/run installs it)")
        pytest.skip("Debian's modsecurity-crs is not installed")


@pytest.fixture
def crs_without_setup(tmp_path: Path) -> Path:
    """A CRS folder as Debian's /usr/share/modsecurity-crs: rules, but crs-setup.conf elsewhere."""
    folder = tmp_path / "crs"
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "REQUEST-942-X.conf").write_text(
        'SecRule ARGS "@contains evil" "id:942001,phase:2,deny"\n'
    )
    return folder


@pytest.mark.parametrize(
    ("option", "line"),
    [
        ("guard_inbound_threshold=abc", "guard_inbound_threshold: 'abc' is not a whole number"),
        ("guard_paranoia=abc", "guard_paranoia: 'abc' is not a whole number"),
        ("guard_offline_revoke=maybe", "guard_offline_revoke: 'maybe' is not true or false"),
        ("guard_mode=block", "guard_mode: 'block' is not one of detect, enforce"),
        ("guard_rules={tmp}/missing", "guard_rules: {tmp}/missing: no such file or folder"),
        (
            "guard_crs={tmp}/crs",
            "guard_crs: {tmp}/crs: no crs-setup.conf (nor crs-setup.conf.example) in this CRS folder; without "
            "it the CRS refuses every request. Debian keeps it in /etc/modsecurity/crs/crs-setup.conf: give "
            "that file (its rules are found in /usr/share/modsecurity-crs/rules), or 'debian'",
        ),
    ],
)
def test_a_bad_option_value_stops_the_start_in_one_line(
    tmp_path: Path, backend: Backend, crs_without_setup: Path, option: str, line: str
) -> None:
    port = free_port()
    argv = mitmdump_argv(backend.url, port, option.format(tmp=tmp_path))
    status, stderr, stdout = start_refused(argv, port, backend)
    assert status != 0, (stderr, stdout)
    assert stderr == [f"LogoutGuard: {line.format(tmp=tmp_path)}", STARTUP], (stderr, stdout)
    assert "Traceback" not in stdout and "error in script" not in stdout, stdout


def test_logoutguard_run_with_a_bad_option_value_does_not_start(tmp_path: Path, backend: Backend) -> None:
    port = free_port()
    argv = [str(BIN / "logoutguard"), "run", "--upstream", backend.url, "--listen-port", str(port), "--"]
    argv += [
        "--set",
        "guard_paranoia=abc",
        "--set",
        "guard_session_store=memory",
        "--set",
        "guard_audit_log=",
    ]
    status, stderr, stdout = start_refused(argv, port, backend)
    assert status != 0, (stderr, stdout)
    assert stderr == ["LogoutGuard: guard_paranoia: 'abc' is not a whole number", STARTUP], (stderr, stdout)


RULES = """
category: test
rules:
  - id: 100001
    msg: union select
    phase: 2
    targets: [ARGS]
    transforms: [lowercase]
    operator: rx
    argument: "union\\\\s+select"
    examples: {match: ["union select"], no_match: ["union"]}
"""
SQLI = "/item?id=1%20UNION%20SELECT%20password"


def status_of(proxy: Mitmdump, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    try:
        conn.request("GET", path, headers={"User-Agent": "Mozilla/5.0", "Host": "app.test"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_bad_value_while_running_keeps_the_configuration_in_force(tmp_path: Path, backend: Backend) -> None:
    """mitmweb's command API: `set` with a value that does not parse, one the addon refuses, and a
    guard.reload of a broken rule file; after each the proxy still blocks the attack, and says why."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    web = Web(free_port(), secrets.token_urlsafe(16))
    proxy = start_mitmdump(
        backend.url,
        tmp_path,
        f"guard_rules={rules}",
        "guard_session_store=memory",
        "guard_audit_log=",
        "web_host=127.0.0.1",
        f"web_port={web.port}",
        "web_open_browser=false",
        f"web_password={web.password}",
        program="mitmweb",
    )
    try:
        wait_port(web.port, proc=proxy.proc)
        xsrf = web.xsrf_token()
        assert status_of(proxy, SQLI) == 403 and status_of(proxy, "/item?id=1") == 200
        for arguments, words in [
            (("guard_paranoia", "abc"), "not an integer: abc"),  # mitmproxy's own parser refuses it
            (("guard_paranoia", "9"), "guard_paranoia: 9 is not in 1-4"),
            (("guard_mode", "block"), "guard_mode: 'block' is not one of detect, enforce"),
            (("guard_rules", str(tmp_path / "missing")), "no such file or folder"),
        ]:
            answer = json.loads(web.command("set", *arguments, xsrf=xsrf).body)
            assert words in answer.get("error", ""), (arguments, answer)
            assert status_of(proxy, SQLI) == 403, arguments
        rules.write_text(RULES.replace("operator: rx", "operator: rxx"))
        answer = json.loads(web.command("guard.reload", xsrf=xsrf).body)
        assert answer["value"].startswith("reload refused"), answer
        assert status_of(proxy, SQLI) == 403 and status_of(proxy, "/item?id=1") == 200
        assert [r.path for r in backend.received] == ["/item?id=1", "/item?id=1"]
        log = proxy.log()
        assert "guard_paranoia: 9 is not in 1-4; the previous configuration stays in force" in log, log[
            -3000:
        ]
        assert "reload refused, the running ruleset and policy stay in force" in log
    finally:
        proxy.stop()


def test_crs_report_takes_what_guard_crs_takes(crs_without_setup: Path, debian_crs: None) -> None:
    debian = subprocess.run(
        [str(BIN / "logoutguard"), "crs", "report", "debian"], capture_output=True, text=True, timeout=120
    )
    assert debian.returncode == 0, debian.stderr
    assert debian.stdout.startswith("CRS 3.x from /usr/share/modsecurity-crs/rules: "), debian.stdout[:300]
    folder = subprocess.run(
        [str(BIN / "logoutguard"), "crs", "report", str(crs_without_setup)], capture_output=True, text=True
    )
    assert folder.returncode == 2 and "/etc/modsecurity/crs/crs-setup.conf" in folder.stderr, folder.stderr


def test_crs_report_into_a_closed_pipe_exits_quietly(debian_crs: None) -> None:
    """As `logoutguard crs report debian | head` once head has gone: the reader's end is closed before
    the report writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        report = subprocess.run(
            [str(BIN / "logoutguard"), "crs", "report", "debian"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert report.returncode == 141, report.stderr
    assert "Traceback" not in report.stderr and "Broken pipe" not in report.stderr, report.stderr


def test_a_request_sent_as_soon_as_the_port_accepts_is_judged_not_passed(
    tmp_path: Path, backend: Backend
) -> None:
    """mitmproxy binds the port before it loads the script: the attack sent at once waits for the addon
    and is refused by it; nothing reaches the application."""
    proxy = start_mitmdump(backend.url, tmp_path, "guard_session_store=memory", "guard_audit_log=")
    try:  # start_mitmdump returns as soon as the port accepts a connection
        assert status_of(proxy, ATTACK) == 403, proxy.log()[-2000:]
        assert backend.received == []
        assert status_of(proxy, "/item?id=1") == 200 and [r.path for r in backend.received] == ["/item?id=1"]
    finally:
        proxy.stop()
