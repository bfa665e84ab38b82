"""combined: several engines judge one transaction; the verdict is decided once, on the merged totals."""

from __future__ import annotations

from pathlib import Path

from crs.helpers import engine_for

from logoutguard.engine.combined import CombinedEngine, CombinedState
from logoutguard.engine.engine import Engine
from logoutguard.engine.scoring import Thresholds

from .helpers import request, yaml_rules

# An imported SecLang ruleset that scores the CRS way: in a TX variable, checked by a blocking rule.
CRS_LIKE = """
SecRule ARGS "@contains evil" "id:942001,phase:2,pass,setvar:tx.anomaly_score=+3"
SecRule RESPONSE_BODY "@contains SQL syntax" "id:951001,phase:4,pass,setvar:tx.outbound_anomaly_score=+4"
SecRule TX:ANOMALY_SCORE "@ge 10" "id:949110,phase:2,deny"
"""


def engines(tmp_path: Path, threshold: int = 5) -> tuple[Engine, Engine]:
    ours = Engine(
        yaml_rules(
            tmp_path,
            {"id": 1, "targets": ["ARGS"], "operator": "contains", "argument": "evil", "severity": "warning"},
        ),
        inbound_threshold=threshold,
    )
    crs = engine_for(
        CRS_LIKE, score_vars=("anomaly_score", "outbound_anomaly_score"), inbound_threshold=threshold
    )
    return ours, crs


def test_each_engine_under_the_threshold_the_sum_over_it_is_blocked(tmp_path: Path) -> None:
    ours, crs = engines(tmp_path)
    tx = request("/?q=evil")
    alone = [engine.inspect(tx) for engine in (ours, crs)]
    assert [(v.inbound_score, v.inbound_blocked) for v in alone] == [(3, False), (3, False)]
    verdict = CombinedEngine([ours, crs]).inspect(tx)
    assert verdict.inbound_score == 6 and verdict.inbound_blocked and verdict.blocked
    assert verdict.reason == "inbound score 6 >= threshold 5"
    assert verdict.rule_ids == [1, 942001]


def test_request_then_response_continues_each_engines_own_state(tmp_path: Path) -> None:
    ours, crs = engines(tmp_path)
    combined = CombinedEngine([ours, crs])
    tx = request("/?q=evil")
    verdict, state = combined.inspect_request(tx)
    assert isinstance(state, CombinedState) and state.tx is state.parts[0][0].tx
    assert [len(matches) for _, matches in state.parts] == [1, 1]
    response = tx.with_response(500, (("Content-Type", "text/html"),), "You have an error in your SQL syntax")
    final = combined.inspect_response(state, response, verdict.matches)
    assert final.rule_ids == [1, 942001, 951001]
    assert (final.inbound_score, final.outbound_score) == (6, 4)
    assert (
        final.outbound_blocked
        and final.reason == "inbound score 6 >= threshold 5; outbound score 4 >= threshold 4"
    )


def test_a_deny_in_one_engine_blocks_the_combined_verdict(tmp_path: Path) -> None:
    ours, crs = engines(tmp_path)
    tx = request("/?a=evil&b=evil&c=evil&d=evil")  # CRS-like: 12 >= 10 -> 949110 denies
    verdict = CombinedEngine([ours, crs]).inspect(tx)
    assert 949110 in verdict.rule_ids and verdict.inbound_blocked
    assert verdict.reason.endswith("denied by rule 949110")


def test_thresholds_and_paranoia_are_the_first_engines(tmp_path: Path) -> None:
    ours, crs = engines(tmp_path, threshold=7)
    combined = CombinedEngine([ours, crs])
    assert (combined.paranoia, combined.inbound_threshold, combined.outbound_threshold) == (1, 7, 4)
    assert combined.thresholds == Thresholds(7, 4)
    verdict = combined.inspect(request("/?q=evil"))
    assert verdict.inbound_score == 6 and not verdict.inbound_blocked and verdict.inbound_threshold == 7


def test_nothing_found_is_a_clean_verdict(tmp_path: Path) -> None:
    verdict = CombinedEngine(list(engines(tmp_path))).inspect(request("/?q=fine"))
    assert verdict.matches == [] and not verdict.blocked and verdict.reason == ""
