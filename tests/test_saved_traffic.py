"""Saved traffic judged offline through the pipeline: the configuration's verdicts, nothing live, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import io
from mitmproxy.test import tflow

from logoutguard.logout_flow import LOGOUT_KEY
from logoutguard.saved_traffic import Configuration, SavedTrafficError, judge_files, read_flows
from procs import REPO

FLOWS = REPO / "tests" / "flows"
DEMO_POLICY = str(REPO / "addon" / "demo" / "policy.yaml")


def test_saved_attacks_judged_on_what_the_client_sent() -> None:
    judged = judge_files([FLOWS / "attack.mitm"], Configuration(policy=DEMO_POLICY))
    assert [j.index for j in judged] == list(range(len(judged)))
    logouts = [j for j in judged if j.would_logout]
    # the saved flows were rewritten into the logout by an older version: judged on the attack itself
    assert [(j.method, j.path) for j in logouts] == [("GET", "/search"), ("GET", "/search")]
    assert {m.category for j in logouts for m in j.record.verdict.matches} == {"xss", "sqli"}
    assert all(str(j.record.action) == "none (offline)" for j in judged)  # nothing was done
    assert [j.outcome for j in judged].count("redirect") == 1  # the revoked session, used again


def test_paranoia_changes_the_verdicts() -> None:
    low = judge_files([FLOWS / "benign.mitm"], Configuration(policy=DEMO_POLICY))
    high = judge_files([FLOWS / "benign.mitm"], Configuration(policy=DEMO_POLICY, paranoia=2))
    assert not any(j.record.verdict.blocked for j in low)
    assert sum(j.record.verdict.blocked for j in high) > 0 and len(high) == len(low)


def test_the_logouts_own_flows_are_left_out(tmp_path: Path) -> None:
    shown, attack = tflow.tflow(resp=True), tflow.tflow(resp=True)
    shown.metadata[LOGOUT_KEY] = {"for flow": attack.id}
    path = tmp_path / "saved.mitm"
    with path.open("wb") as fh:
        writer = io.FlowWriter(fh)
        writer.add(attack)
        writer.add(shown)
    assert [f.id for f in read_flows([path])] == [attack.id]


def test_errors_name_the_file_or_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SavedTrafficError, match=r"missing\.mitm: cannot read"):
        judge_files([tmp_path / "missing.mitm"], Configuration())
    junk = tmp_path / "junk.mitm"
    junk.write_bytes(b"this is not a flow file")
    with pytest.raises(SavedTrafficError, match=r"junk\.mitm: not a mitmproxy flow file"):
        judge_files([junk], Configuration())
    with pytest.raises(SavedTrafficError, match=r"^policy: "):
        judge_files([FLOWS / "benign.mitm"], Configuration(policy=str(tmp_path / "nope.yaml")))
    with pytest.raises(SavedTrafficError, match="paranoia 7"):
        judge_files([FLOWS / "benign.mitm"], Configuration(paranoia=7))


def test_exclusions_change_what_the_configuration_judges(tmp_path: Path) -> None:
    plain = judge_files([FLOWS / "attack.mitm"], Configuration(policy=DEMO_POLICY))
    hits = {m.id for j in plain for m in j.record.verdict.matches if m.category == "xss"}
    assert hits, "the saved attacks carry XSS"
    excl = tmp_path / "no-xss.yaml"
    excl.write_text("exclusions:\n  - reason: what-if\n    tags: [attack-xss]\n")
    excluded = judge_files(
        [FLOWS / "attack.mitm"], Configuration(policy=DEMO_POLICY, exclusions=(str(excl),))
    )
    assert len(excluded) == len(plain)
    assert not any(m.category == "xss" for j in excluded for m in j.record.verdict.matches)
    assert "exclusions" in Configuration(exclusions=(str(excl),)).describe()
