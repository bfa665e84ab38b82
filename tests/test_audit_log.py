"""The audit log file: JSON lines, created 0600, off when no path, a write failure logged once."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from logoutguard.audit_log import AuditLog


def test_lines_are_appended_as_json_with_a_time(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path)
    log.write({"action": "logout", "rules": [942100]})
    log.close()
    AuditLog(path).write({"action": "deny"})  # a second process appends
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["action"] for line in lines] == ["logout", "deny"] and lines[0]["rules"] == [942100]
    assert all(isinstance(line["time"], float) for line in lines)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_path_no_log(tmp_path: Path) -> None:
    log = AuditLog(None)
    log.write({"action": "deny"})
    log.close()
    assert log.path is None and list(tmp_path.iterdir()) == []


def test_a_write_failure_is_logged_once_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog("/dev/full")
    log.write({"a": 1})
    log.write({"a": 2})
    log.close()  # the unwritten line is dropped, nothing raised
    assert sum("cannot write the audit log" in r.getMessage() for r in caplog.records) == 1
