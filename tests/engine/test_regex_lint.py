"""Regex lint: catastrophic backtracking is flagged (static check and timed probe); safe regexes pass."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from logoutguard.engine import regex_lint
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset


def kinds(pattern: str, probe: bool = False) -> set[str]:
    return {f.kind for f in regex_lint.check([re.compile(pattern, re.DOTALL | re.ASCII)], probe=probe)[0]}


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        (r"(a+)+b", "nested-quantifier"),
        (r"(?:\w+\s?)*$", "nested-quantifier"),
        (r"^(?:[a-z0-9]+\.?)+@", "nested-quantifier"),
        (r"(?:x(?:\d+)*)*y", "nested-quantifier"),
        (
            r"(?:a|aa)+b",
            "nested-quantifier",
        ),  # re parses it as a(?:|a): the optional a can start the next round
        (r"(?:[a-z]+|foo)*;", "overlapping-alternation"),
    ],
)
def test_static_check_flags_exponential_shapes(pattern: str, kind: str) -> None:
    assert kind in kinds(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+b)+c",  # every round must consume a b
        r"(?:[a-z]+,)*[a-z]+",
        r"(?:ab|cd)+",
        r"(?:a|ab)*c",  # one way to split
        r"(?:\w|\d)*!",  # re merges the alternatives into one class
        r"(?>a+)+b",  # atomic: no backtracking into it
        r"(?:a++)+b",  # possessive
        r"(?:\s*,\s*\w{1,8})*",  # bounded inner repeat
        r"union\s+select",
        r"<script[^>]*>",
    ],
)
def test_static_check_passes_safe_shapes(pattern: str) -> None:
    assert kinds(pattern) == set()


@pytest.mark.parametrize(
    "pattern",
    [
        r"\w+\s*=",  # search retries the leading repeat at every position: quadratic
        r"['\"]\s*\)*\s*or",  # two \s* competing around an optional part: quadratic
        r"a.*b.*c",
        r"\s*\s*x",  # cubic
        r"(a+)+b",  # exponential
    ],
)
def test_probe_flags_super_linear_regexes(pattern: str) -> None:
    assert "slow-probe" in kinds(pattern, probe=True)


@pytest.mark.parametrize(
    "pattern",
    [
        r"['\"]\s*(?:\)+\s*)?or",  # the rewrite of the one above
        r"(?<!\w)\w+\s*=",
        r"^\w+@example\.test$",  # anchored: one start position
        r"union\s+(?:all\s+)?select",
        r"<script[^>]*>",
        r"(?i)\b(?:eval|system|exec)\s*\(",
    ],
)
def test_probe_passes_linear_regexes(pattern: str) -> None:
    assert kinds(pattern, probe=True) == set()


def test_probe_inputs_lead_to_the_quantifier() -> None:
    inputs = regex_lint.probe_inputs(re.compile(r"select\s+\w+\s*from"), length=64)
    assert inputs
    assert all(long.startswith("select") and len(long) > 64 for _, _, long in inputs)


def test_shipped_rules_are_not_flagged() -> None:
    assert regex_lint.lint_ruleset(load_ruleset([DEFAULT_RULES_DIR])) == []


def write_rules(folder: Path, argument: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "900-test.yaml").write_text(
        "category: generic\n"
        "rules:\n"
        "  - id: 900100\n"
        "    msg: test\n"
        "    targets: [ARGS]\n"
        "    operator: rx\n"
        f"    argument: '{argument}'\n"
        "    examples: {match: ['a=1'], no_match: ['nothing']}\n"
    )
    return folder


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logoutguard.cli", "rules", "lint", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_lint_reports_rule_and_field(tmp_path: Path) -> None:
    result = run_cli(str(write_rules(tmp_path / "rules", r"\w+\s*=")))
    assert result.returncode == 1
    assert "900-test.yaml rule 900100 field 'argument': regex can backtrack catastrophically" in result.stdout
    assert "slow-probe" in result.stdout


def test_cli_lint_without_probe_keeps_the_static_check(tmp_path: Path) -> None:
    quadratic = run_cli("--no-probe", str(write_rules(tmp_path / "quadratic", r"\w+\s*=")))
    assert quadratic.returncode == 0
    nested = run_cli("--no-probe", str(write_rules(tmp_path / "nested", r"(\w+\s?)+=")))
    assert nested.returncode == 1
    assert "nested-quantifier" in nested.stdout
