"""The `logoutguard` command: rules lint / test and scan, in process (the other sub-commands have their own tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logoutguard.cli import build_parser, main

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
    assert {"rules", "scan", "demo-app", "crs", "audit-logout", "quickstart", "run"} <= set(commands)
