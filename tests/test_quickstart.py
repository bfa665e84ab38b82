"""`logoutguard quickstart` and `logoutguard run`: the mitmdump command line, the printed guide, real runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e.browser import Browser

from logoutguard.cli import build_parser, main
from logoutguard.demo.app import DemoApp
from logoutguard.quickstart import (
    ADDON_SCRIPT,
    DEMO_POLICY,
    XSS_PATH,
    Setup,
    instructions,
    mitmdump_command,
    own_program,
    upstream_problem,
)
from procs import BIN, free_port, wait_port

TEST_RULES = os.environ.get("LOGOUTGUARD_TEST_RULES")  # as tests/procs.py: another ruleset on request


def test_the_package_ships_the_addon_script_and_the_demo_policy() -> None:
    assert ADDON_SCRIPT.name == "main.py" and ADDON_SCRIPT.is_file()
    assert "LogoutGuard()" in ADDON_SCRIPT.read_text()
    assert DEMO_POLICY.is_file()


def test_mitmdump_command() -> None:
    argv = mitmdump_command(
        Path("/v/bin/mitmdump"),
        "http://127.0.0.1:8080",
        [("guard_policy", "/p.yaml"), ("guard_audit_log", "/a b.jsonl")],
        ("127.0.0.1", 8081),
        ["--set", "guard_paranoia=2"],
    )
    assert argv == [
        "/v/bin/mitmdump",
        "-s",
        str(ADDON_SCRIPT),
        "--mode",
        "reverse:http://127.0.0.1:8080",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        "8081",
        "--set",
        "guard_policy=/p.yaml",
        "--set",
        "guard_audit_log=/a b.jsonl",
        "--set",
        "guard_paranoia=2",
    ]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8080", None),
        ("https://app.internal", None),
        ("ftp://127.0.0.1", "is not an http(s) URL"),
        ("127.0.0.1:8080", "is not an http(s) URL"),
        ("http://127.0.0.1:70000", "Port out of range"),
    ],
)
def test_upstream_problem(url: str, problem: str | None) -> None:
    found = upstream_problem(url)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("defective", "direct"),
    [
        (False, "302 to /login: the application itself killed the session"),
        (True, "200 with the account page"),
    ],
)
def test_instructions_are_copy_pasteable(defective: bool, direct: str) -> None:
    text = instructions(Setup(8080, 8081, Path("/tmp/qs"), defective))
    assert (
        "curl -i -c /tmp/qs/cookies.txt -d username=guest -d password=guest http://127.0.0.1:8081/login"
        in text
    )
    assert "curl -i -b /tmp/qs/cookies.txt http://127.0.0.1:8081/account" in text
    assert f"curl -i -b /tmp/qs/cookies.txt -c /tmp/qs/cookies.txt 'http://127.0.0.1:8081{XSS_PATH}'" in text
    assert 'curl -i -b "JSESSIONID=$OLD" http://127.0.0.1:8081/account' in text
    assert 'curl -i -b "JSESSIONID=$OLD" http://127.0.0.1:8080/account' in text
    assert "tail -f /tmp/qs/audit.jsonl" in text and "Ctrl-C" in text
    assert direct in text


def test_default_ports_are_the_readmes() -> None:
    """The application on 8080, the proxy on 8088: never mitmweb's web UI port 8081."""
    quick = build_parser().parse_args(["quickstart"])
    assert (quick.app_port, quick.proxy_port) == (8080, 8088)
    run = build_parser().parse_args(["run", "--upstream", "http://127.0.0.1:8080"])
    assert (run.listen_host, run.listen_port) == ("127.0.0.1", 8088)


def test_the_tour_calls_logoutguard_by_a_path_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `bash .ci/setup` the program is .venv/bin/logoutguard, not on PATH: the tour says its path;
    when it is the one on PATH, its name."""
    beside = str(BIN / "logoutguard")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert own_program("logoutguard") == beside
    assert f"      {beside} audit-logout http://127.0.0.1:8080 " in instructions(Setup(8080, 8088, tmp_path, False))
    monkeypatch.setenv("PATH", str(BIN))
    assert own_program("logoutguard") == "logoutguard"


@pytest.mark.parametrize("option", ["--app-port", "--proxy-port"])
def test_quickstart_refuses_a_busy_port(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DemoApp(port=0) as busy:
        port = busy.port
        ports = {"--app-port": "0", "--proxy-port": "0", option: str(port)}
        status = main(
            ["quickstart", *(x for pair in ports.items() for x in pair), "--state-dir", str(tmp_path)]
        )
    assert status == 2
    assert f"quickstart: cannot start: {option} {port}: Address already in use" in capsys.readouterr().err


# -- real runs ------------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace") if path.exists() else ""
        if text in output:
            return output
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before printing {text!r}:\n{output}")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not printed after {timeout}s:\n{path.read_text(errors='replace')}")


def audit_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def refused(port: int) -> bool:
    try:
        wait_port(port, timeout=0.3)
    except TimeoutError:
        return True
    return False


@pytest.mark.e2e
@pytest.mark.parametrize("defective", [False, True], ids=["correct-logout", "defective-logout"])
def test_quickstart_runs_the_printed_scenario(tmp_path: Path, defective: bool) -> None:
    out = tmp_path / "quickstart.out"
    argv = [str(BIN / "logoutguard"), "quickstart", "--app-port", "0", "--proxy-port", "0"]
    argv += ["--state-dir", str(tmp_path / "state")] + (["--defective-logout"] if defective else [])
    argv += ["--rules", TEST_RULES] if TEST_RULES else []
    with open(out, "wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
    try:
        text = wait_for_text(out, "Ctrl-C here stops", proc)
        app_port = int(re.search(r"^app port (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
        proxy_port = int(re.search(r"^proxy port (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
        (mitmdump,) = children(proc.pid)
        assert "mitmdump" in Path(f"/proc/{mitmdump}/cmdline").read_text()

        user = Browser(proxy_port)
        old = user.login()  # step 1
        assert user.get("/account").status == 200  # step 2
        attack = user.get(XSS_PATH)  # step 4: the forced logout
        assert attack.status == 302 and attack.header("Location") == "/login?reason=signed-out"
        assert user.cookies["JSESSIONID"] != old
        stolen = Browser(proxy_port).get("/account", cookies={"JSESSIONID": old})  # step 5
        assert stolen.status == 302 and stolen.header("Location") == "/login"
        direct = Browser(app_port).get("/account", cookies={"JSESSIONID": old})  # step 6
        assert direct.status == (200 if defective else 302)
        actions = [line["action"] for line in audit_lines(tmp_path / "state" / "audit.jsonl")]
        assert "logout" in actions and "redirect" in actions  # the forced logout, the refused old ID
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert "stopping mitmdump and the demo app" in out.read_text()
    assert not alive(mitmdump)
    assert refused(proxy_port) and refused(app_port)


@pytest.mark.e2e
def test_run_execs_mitmdump_with_the_addon_in_reverse_mode(tmp_path: Path) -> None:
    port = free_port()
    with DemoApp(port=0) as app:
        argv = [str(BIN / "logoutguard"), "run", "--upstream", app.url, "--policy", str(DEMO_POLICY), "--"]
        argv += ["--listen-host", "127.0.0.1", "--listen-port", str(port)]
        argv += [
            "--set",
            f"guard_session_store={tmp_path / 's.sqlite'}",
            "--set",
            f"guard_audit_log={tmp_path / 'a.jsonl'}",
        ]
        argv += ["--set", f"guard_rules={TEST_RULES}"] if TEST_RULES else []
        log = tmp_path / "run.log"
        with open(log, "wb") as sink:
            proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_port(port, timeout=90, proc=proc)
            assert "mitmdump" in Path(f"/proc/{proc.pid}/cmdline").read_text()  # exec'd, not a child
            health = Browser(port).get("/health")
            assert health.status == 200 and health.body == b"ok"
            attack = Browser(port).get(XSS_PATH)  # anonymous + over threshold: the policy denies
            assert attack.status == 403
        finally:
            proc.send_signal(signal.SIGINT)
            status = proc.wait(timeout=30)
    assert status == 0, log.read_text()
    assert [(line["path"], line["action"]) for line in audit_lines(tmp_path / "a.jsonl")] == [
        ("/search", "deny")
    ]
