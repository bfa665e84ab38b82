"""The `logoutguard` command: rules lint / test, scan, policy lint, --version, addon-path, and bad input
ending in one line with status 2 (the other sub-commands have their own tests)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

import logoutguard
from logoutguard import __version__
from logoutguard.cli import build_parser, main
from logoutguard.quickstart import DEMO_POLICY
from procs import BIN

RULES = """
category: test
rules:
  - id: 100001
    msg: union select
    phase: 2
    targets: [ARGS]
    transforms: [lowercase]
    operator: contains
    argument: "union select"
    examples: {match: ["UNION SELECT"], no_match: ["union"]}
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    (tmp_path / "r.yaml").write_text(RULES)
    return tmp_path


def test_rules_lint_and_test(rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "lint", "--no-probe", str(rules)]) == 0
    assert main(["rules", "test", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "ok: 1 rules in 1 file(s)" in out and "2/2 examples passed in 1 rules" in out


def test_rules_lint_names_file_rule_and_field(rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rules / "r.yaml").write_text(RULES.replace("[lowercase]", "[lowercas]"))
    assert main(["rules", "lint", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "r.yaml" in out and "100001" in out and "'lowercase'" in out


def test_a_failing_example_fails_rules_test(rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rules / "r.yaml").write_text(RULES.replace('no_match: ["union"]', 'no_match: ["union select"]'))
    assert main(["rules", "test", str(rules)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_scan(rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "request.txt"
    raw.write_bytes(b"GET /search?q=1%20UNION%20SELECT%20pw HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert main(["scan", str(raw), "--rules", str(rules), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["inbound_score"] == 5 and verdict["blocked"] is True
    assert [m["target"] for m in verdict["matches"]] == ["ARGS:q"]
    assert main(["scan", str(raw), "--rules", str(rules), "--inbound-threshold", "6"]) == 0
    assert "score 5 (threshold 6, PL1): pass" in capsys.readouterr().out
    raw.write_bytes(b"\x00 not http")
    assert main(["scan", str(raw), "--rules", str(rules)]) == 2


def test_every_sub_command_is_there() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {
        "rules",
        "scan",
        "policy",
        "demo-app",
        "crs",
        "audit-logout",
        "learn",
        "quickstart",
        "run",
        "addon-path",
    } <= set(commands)


# -- --version, addon-path ----------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert re.fullmatch(
        rf"logoutguard {re.escape(__version__)} \(mitmproxy 12\.\d+\.\d+, Python 3\.\d+\.\d+\)\n", out
    )
    assert __version__ == version("logoutguard")  # the installed metadata says the same


def test_addon_path_is_the_script_mitmdump_loads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["addon-path"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "main.py" and "LogoutGuard()" in path.read_text()
    assert path.parent == Path(logoutguard.__file__).parent


# -- exclusions -----------------------------------------------------------------------------------
def test_scan_and_lint_take_exclusions(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "request.txt"
    raw.write_bytes(b"GET /reports/x?q=1%20UNION%20SELECT%20pw HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    exclusions = tmp_path / "conf" / "exclusions.yaml"  # not in the rules folder (tmp_path)
    exclusions.parent.mkdir()
    exclusions.write_text(
        "exclusions:\n  - {rules: [100001], targets: ['ARGS:q'], when: {path_prefix: /reports/}}\n"
    )
    assert main(["scan", str(raw), "--rules", str(rules), "--exclusions", str(exclusions)]) == 0
    assert "score 0 (threshold 5, PL1): pass" in capsys.readouterr().out
    assert main(["rules", "lint", "--no-probe", str(rules), "--exclusions", str(exclusions)]) == 0
    assert f"ok: 1 rules in 1 file(s); exclusions ok: {exclusions}" in capsys.readouterr().out
    exclusions.write_text("exclusions:\n  - {rules: [100002]}\n")
    assert main(["rules", "lint", "--no-probe", str(rules), "--exclusions", str(exclusions)]) == 1
    captured = capsys.readouterr()
    assert (
        captured.out
        == f"{exclusions} exclusions[0] field 'rules[0]': no rule 100002 in our rules (did you mean 100001?)\n"
    )
    assert captured.err == "1 problem(s)\n"


# -- policy lint ----------------------------------------------------------------------------------
def test_policy_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", str(DEMO_POLICY)]) == 0
    assert capsys.readouterr().out == f"ok: {DEMO_POLICY} (LogoutGuard demo (WebGoat-like))\n"
    bad = tmp_path / "policy.yaml"
    bad.write_text("logout:\n  path: logout\n  timeout: 0\nactions: {revoked_session: logout}\n")
    assert main(["policy", "lint", str(DEMO_POLICY), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"ok: {DEMO_POLICY} (LogoutGuard demo (WebGoat-like))",
        f"{bad} field 'logout.path': 'logout' does not match '^/'",
        f"{bad} field 'logout.timeout': 0 is less than or equal to the minimum of 0",
        f"{bad} field 'actions.revoked_session': 'logout' is not one of ['deny', 'redirect', 'strip', 'log']",
    ]
    assert captured.err == "3 problem(s)\n"
    bad.write_text("logout: [\n")
    assert main(["policy", "lint", str(bad)]) == 1
    assert capsys.readouterr().out.startswith(f"{bad}: not valid YAML: ")


# -- bad input: problems, then one line, exit status 2 ---------------------------------------------
Recorded = tuple[str, str, bytes, int, list[tuple[bytes, bytes]], bytes]


def write_flows(path: Path, exchanges: list[Recorded], cookie: bytes = b"") -> None:
    """A flows file as mitmdump -w writes one: (method, path, request body, status, answer headers, body)."""
    from mitmproxy import io
    from mitmproxy.test import tflow

    with path.open("wb") as fh:
        writer = io.FlowWriter(fh)
        for method, where, body, status, headers, answer in exchanges:
            flow = tflow.tflow(resp=True)
            flow.request.method, flow.request.path, flow.request.content = method, where, body
            if body:
                flow.request.headers["Content-Type"] = "application/x-www-form-urlencoded"
            if cookie:
                flow.request.headers["Cookie"] = cookie.decode()
            flow.response.status_code, flow.response.content = status, answer
            for name, value in headers:
                flow.response.headers.add(name.decode(), value.decode())
            writer.add(flow)


def test_learn_writes_a_policy_the_loader_takes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows, policy = tmp_path / "session.mitm", tmp_path / "learned.yaml"
    gone = b"SID=; Max-Age=0; Path=/"
    account = (
        b"<p>Signed in as alice</p><form method=post action=/logout><input name=csrf value=tok-123456789>"
    )
    write_flows(
        flows,
        [
            (
                "POST",
                "/login",
                b"username=alice&password=x",
                302,
                [(b"Set-Cookie", b"SID=s1"), (b"Location", b"/a")],
                b"",
            ),
            ("GET", "/a", b"", 200, [], account),
            (
                "POST",
                "/logout",
                b"csrf=tok-123456789",
                302,
                [(b"Set-Cookie", gone), (b"Location", b"/login")],
                b"",
            ),
            ("GET", "/a", b"", 302, [(b"Location", b"/login")], b""),
        ],
        cookie=b"SID=s1",
    )
    assert main(["learn", str(flows), "-o", str(policy)]) == 0
    err = capsys.readouterr().err
    assert f"wrote {policy}" in err and "token csrf (body field csrf): form_field 'csrf' of GET /a" in err
    assert main(["policy", "lint", str(policy)]) == 0
    assert capsys.readouterr().out == f"ok: {policy} (learned from session.mitm)\n"
    assert main(["learn", str(flows), "--application", "shop"]) == 0  # no -o: the policy on stdout
    out = capsys.readouterr().out
    assert out.startswith("# LogoutGuard policy learned from session.mitm") and "application: shop" in out
    assert "body: csrf={token:csrf}" in out


def prepare(tmp_path: Path) -> None:
    """The input files of the bad-input cases."""
    good_request = tmp_path / "request.txt"
    good_request.write_bytes(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    (tmp_path / "not-http.txt").write_bytes(b"\x00 not http")
    (tmp_path / "bad-rules").mkdir()
    (tmp_path / "bad-rules" / "r.yaml").write_text(RULES.replace("    msg: union select\n", ""))
    (tmp_path / "exclusions.yaml").write_text("exclusions: [{rules: [1]}]\n")
    write_flows(tmp_path / "no-login.mitm", [("GET", "/", b"", 200, [], b"home")])


def bad_input(tmp_path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """command -> (argv, the lines it ends with on stderr)."""
    good_request = tmp_path / "request.txt"
    missing = str(tmp_path / "missing")
    return {
        "scan missing file": (
            ["scan", missing],
            [f"logoutguard scan: cannot read {missing}: No such file or directory"],
        ),
        "scan not http": (
            ["scan", str(tmp_path / "not-http.txt")],
            [f"logoutguard scan: {tmp_path / 'not-http.txt'}: not a valid HTTP request: "],
        ),
        "scan bad rules": (
            ["scan", str(good_request), "--rules", str(tmp_path / "bad-rules")],
            [
                f"{tmp_path / 'bad-rules' / 'r.yaml'} rule 100001: 'msg' is a required property",
                "logoutguard scan: 1 problem(s) in the rule files",
            ],
        ),
        "scan missing rules": (
            ["scan", str(good_request), "--rules", missing],
            [f"logoutguard scan: --rules {missing}: no such file or folder"],
        ),
        "scan bad exclusions": (
            ["scan", str(good_request), "--exclusions", str(tmp_path / "exclusions.yaml")],
            [
                f"{tmp_path / 'exclusions.yaml'} exclusions[0] field 'rules[0]': no rule 1 in our rules",
                "logoutguard scan: 1 problem(s) in the exclusions",
            ],
        ),
        "rules lint missing": (
            ["rules", "lint", missing],
            [f"logoutguard rules: rule path {missing}: no such file or folder"],
        ),
        "rules test missing": (
            ["rules", "test", missing],
            [f"logoutguard rules: rule path {missing}: no such file or folder"],
        ),
        "policy lint missing": (
            ["policy", "lint", missing],
            [f"logoutguard policy: policy file {missing}: no such file or folder"],
        ),
        "learn missing": (
            ["learn", missing],
            [f"logoutguard learn: flows file {missing}: no such file or folder"],
        ),
        "learn not flows": (
            ["learn", str(tmp_path / "not-http.txt")],
            [f"logoutguard learn: {tmp_path / 'not-http.txt'}: not a mitmproxy flow file"],
        ),
        "learn no login": (
            ["learn", str(tmp_path / "no-login.mitm")],
            [f"logoutguard learn: {tmp_path / 'no-login.mitm'}: no login in the recording"],
        ),
        "crs report missing": (
            ["crs", "report", missing],
            [f"logoutguard crs: {missing}: no such file or folder (give crs-setup.conf or a CRS folder)"],
        ),
    }


CASES = list(bad_input(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_ends_with_one_line_and_status_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare(tmp_path)
    argv, ending = bad_input(tmp_path)[case]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[-len(ending) :][:-1] == ending[:-1]
    assert lines[-1].startswith(ending[-1])
    assert "Traceback" not in captured.err + captured.out


def test_no_traceback_from_the_installed_command(tmp_path: Path) -> None:
    """The same through the `logoutguard` program (a bad option is argparse's: usage, message, 2)."""
    prepare(tmp_path)
    for argv, ending in [
        *bad_input(tmp_path).values(),
        (["scan", "--paranoia", "7"], ["logoutguard scan: error: argument --paranoia: invalid choice: 7"]),
    ]:
        done = subprocess.run(
            [str(BIN / "logoutguard"), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2, (argv, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.splitlines()[-1].startswith(ending[-1]), (
            done.stderr
        )


def test_the_other_commands_end_bad_input_with_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo-app", "--port", str(port), "--quiet"]) == 2
    assert capsys.readouterr().err == f"demo app: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert main(["run", "--upstream", "http://127.0.0.1:1", "--policy", "/nonexistent.yaml"]) == 2
    assert capsys.readouterr().err == "run: --policy '/nonexistent.yaml': no such file\n"
    assert main(["run", "--upstream", "ftp://x"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "run: --upstream 'ftp://x' is not an http(s) URL such as http://127.0.0.1:8080"
    ]
    assert main(["audit-logout", "notaurl"]) == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith("verdict: ERROR (could not complete the check): URL")
    )
