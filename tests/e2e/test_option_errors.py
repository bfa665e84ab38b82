"""A bad option given to real mitmdump: its message is one clear line, with no Python traceback, and
the proxy does not stay up.

mitmproxy configures a script it loads inside an `except Exception` that logs the traceback
(addons/script.py, Script.loadscript); LogoutGuard's configure says the error in one line there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from procs import ADDON_SCRIPT, BIN, REPO, free_port

pytestmark = pytest.mark.e2e


def run_mitmdump(tmp_path: Path, *options: str) -> tuple[int, str]:
    argv = [str(BIN / "mitmdump"), "-s", str(ADDON_SCRIPT), "--mode", "reverse:http://127.0.0.1:9"]
    argv += ["--listen-host", "127.0.0.1", "--listen-port", str(free_port())]
    for option in ("guard_session_store=memory", "guard_audit_log=", *options):
        argv += ["--set", option]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("option", "line"),
    [
        ("guard_paranoia=9", "guard_paranoia: 9 is not in 1-4"),
        ("guard_rules={tmp}/missing", "guard_rules: {tmp}/missing: no such file or folder"),
        (
            "guard_policy={tmp}/missing.yaml",
            "guard_policy: {tmp}/missing.yaml: cannot read: No such file or directory",
        ),
        (
            "guard_exclusions={tmp}/exclusions.yaml",
            "guard_exclusions: {tmp}/exclusions.yaml exclusions[0] field 'rules[0]': no rule 942101 in our rules "
            "(did you mean 942100?)",
        ),
    ],
)
def test_a_bad_option_is_one_line_without_a_traceback(tmp_path: Path, option: str, line: str) -> None:
    (tmp_path / "exclusions.yaml").write_text("exclusions:\n  - rules: [942101]\n")
    status, output = run_mitmdump(tmp_path, option.format(tmp=tmp_path))
    assert status != 0, output
    assert "Traceback" not in output and "error in script" not in output, output
    said = [text.split("] ", 1)[-1] for text in output.splitlines()]
    assert line.format(tmp=tmp_path) in said, output
