"""scoring: totals per category and direction, and the one comparison with the thresholds."""

from __future__ import annotations

import dataclasses

import pytest

from logoutguard.engine.scoring import Thresholds, decide, inbound_blocked_without, merge, score
from logoutguard.engine.verdict import Match, Verdict

THRESHOLDS = Thresholds(inbound=5, outbound=4)


def match(rule_id: int, points: int, phase: int = 2, **fields: object) -> Match:
    base = {"category": "sqli", "severity": "critical", "paranoia": 1, "target": "ARGS:q", "excerpt": "x"}
    return Match(id=rule_id, msg="m", phase=phase, score=points, **{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("score_", "inbound", "outbound"),
    [(0, False, False), (3, False, False), (4, False, True), (5, True, True), (50, True, True)],
)
def test_thresholds_are_reached_at_the_threshold(score_: int, inbound: bool, outbound: bool) -> None:
    assert THRESHOLDS.inbound_over(score_) is inbound
    assert THRESHOLDS.outbound_over(score_) is outbound


def test_thresholds_are_a_frozen_value() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        THRESHOLDS.inbound = 1  # type: ignore[misc]
    assert Thresholds() == THRESHOLDS


def test_scoring_matches_add_up_per_direction_and_category() -> None:
    matches = [
        match(1, 5, phase=1),
        match(2, 3, phase=2, category="xss"),
        match(3, 4, phase=4, category="leak"),
        match(4, 9, phase=2, scoring=False),
    ]
    verdict = score(matches, paranoia=2, thresholds=THRESHOLDS)
    assert (verdict.inbound_score, verdict.outbound_score) == (8, 4)
    assert verdict.scores == {"sqli": 5, "xss": 3, "leak": 4}
    assert (verdict.inbound_blocked, verdict.outbound_blocked, verdict.blocked) == (True, True, True)
    assert verdict.reason == "inbound score 8 >= threshold 5; outbound score 4 >= threshold 4"
    assert (verdict.paranoia, verdict.inbound_threshold, verdict.outbound_threshold) == (2, 5, 4)
    assert verdict.matches == matches


def test_under_the_thresholds_nothing_is_blocked() -> None:
    verdict = score([match(1, 4), match(2, 3, phase=3)], paranoia=1, thresholds=THRESHOLDS)
    assert not verdict.blocked and verdict.reason == ""


@pytest.mark.parametrize(
    ("phase", "inbound", "outbound"), [(1, True, False), (2, True, False), (3, False, True), (4, False, True)]
)
def test_a_denying_rule_blocks_its_direction_whatever_the_score(
    phase: int, inbound: bool, outbound: bool
) -> None:
    verdict = score(
        [match(949110, 0, phase=phase, disruptive="deny", scoring=False)], paranoia=1, thresholds=THRESHOLDS
    )
    assert (verdict.inbound_blocked, verdict.outbound_blocked) == (inbound, outbound)
    assert verdict.reason == "denied by rule 949110"


def test_totals_kept_in_tx_variables_count_and_name_categories() -> None:
    tx = {
        "anomaly_score": "10",
        "outbound_anomaly_score": "4",
        "sql_injection_score": "10",
        "xss_score": "0",
        "inbound_anomaly_score_threshold": "5",
        "bad_score": "x",
    }
    verdict = score(
        [match(942100, 5, scoring=False)],
        paranoia=1,
        thresholds=THRESHOLDS,
        tx_vars=tx,
        score_vars=("anomaly_score", "outbound_anomaly_score"),
    )
    assert (verdict.inbound_score, verdict.outbound_score) == (10, 4)
    assert verdict.scores == {"sql_injection": 10}
    assert verdict.reason == "inbound score 10 >= threshold 5; outbound score 4 >= threshold 4"


def test_the_larger_of_matches_and_tx_total_counts() -> None:
    verdict = score(
        [match(1, 7)],
        paranoia=1,
        thresholds=THRESHOLDS,
        tx_vars={"anomaly_score": "3"},
        score_vars=("anomaly_score", "o"),
    )
    assert verdict.inbound_score == 7


def test_engines_combined_are_decided_once_on_the_merged_totals() -> None:
    ours = score([match(920100, 3, category="protocol")], paranoia=1, thresholds=THRESHOLDS)
    crs = score([match(920101, 3, category="protocol")], paranoia=1, thresholds=THRESHOLDS)
    assert not ours.inbound_blocked and not crs.inbound_blocked
    merged = merge([ours, crs], THRESHOLDS)
    assert merged.inbound_score == 6 and merged.scores == {"protocol": 6}
    assert merged.inbound_blocked and merged.blocked  # 6 >= 5: no longer "6 against 5, not blocked"
    assert merged.reason == "inbound score 6 >= threshold 5"
    assert [m.id for m in merged.matches] == [920100, 920101]


def test_a_merge_keeps_a_deny_and_uses_the_thresholds_given() -> None:
    ours = score([match(1, 2)], paranoia=3, thresholds=THRESHOLDS)
    crs = score([match(2, 0, phase=4, disruptive="deny")], paranoia=3, thresholds=THRESHOLDS)
    merged = merge([ours, crs], Thresholds(2, 100))
    assert (merged.inbound_blocked, merged.outbound_blocked, merged.paranoia) == (True, True, 3)
    assert (merged.inbound_threshold, merged.outbound_threshold) == (2, 100)
    assert merged.reason == "inbound score 2 >= threshold 2; denied by rule 2"


def test_merge_needs_a_verdict() -> None:
    with pytest.raises(ValueError, match="at least one"):
        merge([], THRESHOLDS)


def test_decide_recomputes_flags_and_reason_from_the_totals() -> None:
    verdict = Verdict(inbound_score=9, inbound_blocked=False, reason="old")
    decide(verdict, Thresholds(10, 4))
    assert not verdict.inbound_blocked and verdict.reason == ""
    decide(verdict, Thresholds(9, 4))
    assert verdict.inbound_blocked and verdict.reason == "inbound score 9 >= threshold 9"


SESSION = "session-state"


@pytest.mark.parametrize(
    ("matches", "blocked"),
    [
        ([match(945110, 5, tags=(SESSION,))], False),  # only the session check
        ([match(945110, 5, tags=(SESSION,)), match(942100, 5)], True),
        ([match(945110, 5, tags=(SESSION,)), match(942100, 4)], False),
        ([match(942100, 3), match(941100, 2, category="xss")], True),
        ([match(942100, 5, phase=4)], False),  # response phases do not count
        ([match(942100, 5, scoring=False)], False),
        ([match(200002, 0, disruptive="deny", scoring=False)], True),  # a deny without the tag
        ([match(200002, 0, disruptive="deny", tags=(SESSION,))], False),
        ([match(951100, 0, phase=4, disruptive="deny")], False),
    ],
)
def test_inbound_blocked_without_a_tag(matches: list[Match], blocked: bool) -> None:
    verdict = score(matches, paranoia=1, thresholds=THRESHOLDS)
    assert inbound_blocked_without(verdict, SESSION) is blocked
    assert verdict.inbound_blocked_without(SESSION) is blocked
