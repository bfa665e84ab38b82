"""engine: a ruleset at a paranoia level with thresholds; phases in order, Transaction in, Verdict out."""

from __future__ import annotations

import pytest

from logoutguard.engine import prefilter
from logoutguard.engine.engine import Engine
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset
from logoutguard.engine.rules import Ctl, Phase, Ruleset
from logoutguard.engine.scoring import Thresholds
from logoutguard.engine.state import EvalState
from logoutguard.engine.transaction import Limits, build_transaction

from .helpers import link, request, rule


def ruleset() -> Ruleset:
    return Ruleset.build(
        [
            rule(1, link("REQUEST_METHOD", "streq", "GET"), phase=1, score=2, severity="notice"),
            rule(2, link("ARGS", "contains", "evil"), phase=2),
            rule(3, link("ARGS", "contains", "paranoid"), phase=2, paranoia=3),
            rule(4, link("RESPONSE_HEADERS:Server", "contains", "Apache"), phase=3, score=2),
            rule(5, link("RESPONSE_BODY", "contains", "SQL syntax"), phase=4, score=4),
        ]
    )


@pytest.mark.parametrize("paranoia", [0, 5])
def test_paranoia_outside_1_to_4_is_refused(paranoia: int) -> None:
    with pytest.raises(ValueError, match=f"paranoia level must be 1-4, not {paranoia}"):
        Engine(ruleset(), paranoia=paranoia)


def test_request_phases_then_response_phases() -> None:
    engine = Engine(ruleset())
    tx = request("/?q=evil")
    verdict, state = engine.inspect_request(tx)
    assert verdict.rule_ids == [1, 2] and (verdict.inbound_score, verdict.inbound_blocked) == (7, True)
    response = tx.with_response(500, (("Server", "Apache"),), "You have an error in your SQL syntax")
    final = engine.inspect_response(state, response, verdict.matches)
    assert final.rule_ids == [1, 2, 4, 5] and final.outbound_score == 6 and final.outbound_blocked
    assert state.tx is response


def test_inspect_runs_the_response_phases_only_when_there_is_a_response() -> None:
    engine = Engine(ruleset())
    tx = request("/?q=evil")
    assert engine.inspect(tx).rule_ids == [1, 2]
    assert engine.inspect(tx.with_response(200, (("Server", "Apache"),), "")).rule_ids == [1, 2, 4]


def test_rules_above_the_paranoia_level_do_not_run() -> None:
    tx = request("/?q=paranoid")
    assert Engine(ruleset(), paranoia=2).inspect(tx).rule_ids == [1]
    assert Engine(ruleset(), paranoia=3).inspect(tx).rule_ids == [1, 3]


def test_thresholds_come_from_the_engine() -> None:
    engine = Engine(ruleset(), inbound_threshold=8, outbound_threshold=7)
    assert engine.thresholds == Thresholds(8, 7)
    verdict = engine.inspect(request("/?q=evil"))
    assert verdict.inbound_score == 7 and not verdict.blocked
    assert (verdict.inbound_threshold, verdict.outbound_threshold) == (8, 7)


def test_prepare_runs_before_each_phase_and_may_change_what_rules_read() -> None:
    calls: list[tuple[Phase, str]] = []

    def prepare(state: EvalState, phase: Phase) -> None:
        calls.append((phase, state.tx.query))
        if phase == Phase.REQUEST_BODY:
            state.tx = request("/?q=evil")

    engine = Engine(ruleset(), prepare=prepare)
    verdict, state = engine.inspect_request(request("/?q=fine"))
    assert verdict.rule_ids == [1, 2]  # phase 2 read what prepare put there
    engine.inspect_response(state, state.tx.with_response(200, (), ""), verdict.matches)
    assert [phase for phase, _ in calls] == [
        Phase.REQUEST_HEADERS,
        Phase.REQUEST_BODY,
        Phase.RESPONSE_HEADERS,
        Phase.RESPONSE_BODY,
    ]


def test_a_deny_stops_the_transaction() -> None:
    rules = Ruleset.build(
        [
            rule(1, link("ARGS", "contains", "stop"), phase=1, disruptive="deny", scoring=False),
            rule(2, link("ARGS", "contains", "stop"), phase=1),
            rule(3, link("ARGS", "contains", "stop"), phase=2),
        ]
    )
    engine = Engine(rules)
    verdict, state = engine.inspect_request(request("/?q=stop"))
    assert verdict.rule_ids == [1] and state.interrupted and verdict.inbound_blocked
    assert verdict.reason == "denied by rule 1"
    assert engine.inspect_response(state, state.tx.with_response(200, (), ""), verdict.matches).rule_ids == [
        1
    ]


def test_rule_engine_off_stops_the_later_rules_and_phases() -> None:
    rules = Ruleset.build(
        [
            rule(1, link("ARGS", "contains", "off", actions=[Ctl.parse("ruleEngine=Off")]), phase=1),
            rule(2, link("ARGS", "contains", "off"), phase=1),
            rule(3, link("ARGS", "contains", "off"), phase=2),
        ]
    )
    verdict, state = Engine(rules).inspect_request(request("/?q=off"))
    assert verdict.rule_ids == [1] and state.engine_off and not state.interrupted


def test_quiet_rules_are_left_out_of_the_verdict_unless_they_deny() -> None:
    rules = Ruleset.build(
        [
            rule(1, link("REQUEST_METHOD", "streq", "GET"), phase=1, scoring=False),
            rule(2, link("ARGS", "contains", "x"), phase=1, disruptive="deny", scoring=False),
        ]
    )
    engine = Engine(rules, quiet_ids=frozenset({1, 2}))
    assert engine.inspect(request("/")).rule_ids == []
    assert engine.inspect(request("/?q=x")).rule_ids == [2]


def test_tx_defaults_and_score_variables() -> None:
    rules = Ruleset.build([rule(1, link("ARGS", "contains", "x"), phase=2, scoring=False)])
    engine = Engine(
        rules, tx_defaults={"anomaly_score": "6", "other": "1"}, score_vars=("anomaly_score", "out")
    )
    state = engine.new_state(request("/"))
    assert state.vars == {"anomaly_score": "6", "other": "1"} and state.paranoia == 1
    verdict = engine.inspect(request("/?q=x"))
    assert verdict.inbound_score == 6 and verdict.inbound_blocked  # the total kept in TX counts


@pytest.mark.skipif(not prefilter.available(), reason="hyperscan is not installed")
def test_operators_can_be_kept_out_of_the_prefilter_without_changing_a_verdict() -> None:
    shipped = load_ruleset([DEFAULT_RULES_DIR])
    full = Engine(shipped, paranoia=2)
    no_rx = Engine(shipped, paranoia=2, prefilter_skip=frozenset({"rx"}))
    plain = Engine(shipped, paranoia=2, prefilter=False)
    assert plain._prefilter is None
    assert full._prefilter is not None and no_rx._prefilter is not None
    assert no_rx._prefilter.stats.gated_links < full._prefilter.stats.gated_links
    for uri in (
        "/?q=1%27%20union%20select%20password%20from%20users--",
        "/?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/a?b=c",
    ):
        tx = request(uri, headers=[("User-Agent", "Mozilla/5.0"), ("Accept", "*/*")])
        assert full.inspect(tx).to_json() == no_rx.inspect(tx).to_json() == plain.inspect(tx).to_json()


def test_a_request_over_a_limit_meets_only_the_rules_about_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped limit rule denies it, and no other rule (of any phase) is evaluated."""
    from logoutguard.engine import evaluator
    from logoutguard.engine.transaction import Limits, build_transaction

    engine = Engine(load_ruleset([DEFAULT_RULES_DIR]))
    cookies = "; ".join(f"sessionid=v{n}" for n in range(10_000))
    tx = build_transaction(
        method="GET",
        uri="/?q=<script>alert(1)</script>",
        headers=[("Host", "h"), ("Cookie", cookies)],
        limits=Limits(cookies=200),
    )
    evaluated: list[int] = []
    original = evaluator.evaluate_rule

    def counting(rule, state):  # type: ignore[no-untyped-def]
        evaluated.append(rule.id)
        return original(rule, state)

    monkeypatch.setattr(evaluator, "evaluate_rule", counting)
    verdict = engine.inspect(tx)
    assert evaluated == [920395]
    assert verdict.rule_ids == [920395] and verdict.inbound_blocked
    assert verdict.matches[0].excerpt.endswith("10000 > 200")
    assert "denied by rule 920395" in verdict.reason
    under = build_transaction(method="GET", uri="/?q=<script>alert(1)</script>", headers=[("Host", "h")])
    evaluated.clear()
    assert 920395 not in engine.inspect(under).rule_ids and len(evaluated) > 1


def test_needs_response_says_when_no_response_rule_can_run() -> None:
    """Without a response rule that would run, inspect_response's verdict is the request's matches
    scored again: the pipeline then skips the response Transaction and phases 3-4."""
    tx = request("/?q=evil")
    request_only = Ruleset.build([rule(2, link("ARGS", "contains", "evil"), phase=2)])
    paranoid_response = Ruleset.build(
        [
            rule(2, link("ARGS", "contains", "evil"), phase=2),
            rule(5, link("RESPONSE_BODY", "contains", "SQL syntax"), phase=4, paranoia=2),
        ]
    )
    for engine, needed in (
        (Engine(ruleset()), True),
        (Engine(request_only), False),
        (Engine(paranoid_response), False),  # its response rule is above PL1
        (Engine(paranoid_response, paranoia=2), True),
        (Engine(request_only, prepare=lambda state, phase: None), True),  # prepare may change the state
    ):
        verdict, state = engine.inspect_request(tx)
        assert engine.needs_response(state) is needed
        if not needed:
            response = tx.with_response(500, (("Server", "Apache"),), "You have an error in your SQL syntax")
            assert engine.inspect_response(state, response, verdict.matches) == engine.verdict(
                [*verdict.matches], state
            )


def test_needs_response_is_false_after_a_deny_and_true_for_the_rules_about_limits() -> None:
    stopping = Ruleset.build(
        [
            rule(1, link("ARGS", "contains", "stop"), phase=1, disruptive="deny", scoring=False),
            rule(5, link("RESPONSE_BODY", "contains", "SQL syntax"), phase=4),
        ]
    )
    engine = Engine(stopping)
    _, state = engine.inspect_request(request("/?q=stop"))
    assert state.interrupted and not engine.needs_response(state)
    _, state = engine.inspect_request(request("/?q=go"))
    assert engine.needs_response(state)
    limits = Ruleset.build([rule(6, link("LIMITS_EXCEEDED", "rx", "."), phase=3)])
    over = build_transaction(method="GET", uri="/?" + "&".join(["a=1"] * 3), limits=Limits(args=2))
    engine = Engine(limits)
    assert engine.needs_response(engine.inspect_request(over)[1])
    assert engine.needs_response(engine.inspect_request(request("/"))[1])  # rule 6 runs for any request
    plain = Engine(ruleset())  # response rules, none about limits: none runs for a request over a limit
    assert not plain.needs_response(plain.inspect_request(over)[1])
