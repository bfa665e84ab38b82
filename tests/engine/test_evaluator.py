"""evaluator: one phase over a transaction -> matches; chains, actions, captures, markers, ctl."""

from __future__ import annotations

import pytest

from logoutguard.engine.evaluator import apply_ctl, evaluate_rule, inspected_values, plan, run_phase
from logoutguard.engine.rules import Action, Ctl, Marker, Phase, Ruleset
from logoutguard.engine.state import EvalState
from logoutguard.engine.targets import parse_target

from .helpers import link, request, rule

P2 = Phase.REQUEST_BODY


def state_for(uri: str = "/", **kwargs: object) -> EvalState:
    return EvalState(tx=request(uri, **kwargs))  # type: ignore[arg-type]


def ids(items: list[object], uri: str, paranoia: int = 4) -> list[int]:
    ruleset = Ruleset.build(items)  # type: ignore[arg-type]
    return [m.id for m in run_phase(plan(ruleset, paranoia), state_for(uri), P2)]


def test_plan_keeps_markers_and_the_rules_of_the_paranoia_level() -> None:
    ruleset = Ruleset.build(
        [rule(1, link(), paranoia=1), Marker("M", P2), rule(2, link(), paranoia=3), rule(3, link(), phase=1)]
    )
    plans = plan(ruleset, 2)
    assert [getattr(i, "id", None) or i.name for i in plans[P2].items] == [1, "M"]
    assert plans[P2].marker_index == {"M": 1}
    assert [i.id for i in plans[Phase.REQUEST_HEADERS].items] == [3]
    assert plans[Phase.RESPONSE_BODY].items == ()


def test_rules_run_in_order_and_a_match_names_its_first_value() -> None:
    r = rule(
        7, link(["ARGS:b", "ARGS:a"], "contains", "x"), category="c", severity="warning", score=3, tags=("t",)
    )
    (match,) = run_phase(plan(Ruleset.build([r]), 1), state_for("/?a=x1&b=x2"), P2)
    assert (match.id, match.target, match.excerpt) == (7, "ARGS:b", "x2")
    assert (match.category, match.severity, match.score, match.tags, match.phase) == (
        "c",
        "warning",
        3,
        ("t",),
        2,
    )


def test_skip_after_jumps_past_its_marker_and_to_the_end_without_one() -> None:
    hit = link("ARGS", "contains", "x")
    items = [rule(1, hit, skip_after="M"), rule(2, hit), Marker("M", P2), rule(3, hit)]
    assert ids(items, "/?a=x") == [1, 3]
    items = [rule(1, hit, skip_after="NOWHERE"), rule(2, hit)]
    assert ids(items, "/?a=x") == [1]
    items = [
        rule(1, link("ARGS", "contains", "y"), skip_after="M"),
        rule(2, hit),
        Marker("M", P2),
        rule(3, hit),
    ]
    assert ids(items, "/?a=x") == [2, 3]  # no match, no jump


def test_a_deny_ends_the_phase_and_marks_the_state() -> None:
    hit = link("ARGS", "contains", "x")
    state = state_for("/?a=x")
    matches = run_phase(plan(Ruleset.build([rule(1, hit, disruptive="deny"), rule(2, hit)]), 1), state, P2)
    assert [m.id for m in matches] == [1] and matches[0].disruptive == "deny" and state.interrupted


def test_a_chain_matches_only_when_every_link_does_and_reads_matched_vars() -> None:
    head = link("ARGS", "contains", "x")
    chained = rule(1, head, link("MATCHED_VARS_NAMES", "streq", "ARGS:b"))
    assert ids([chained], "/?a=x&b=x") == [1]
    assert ids([chained], "/?a=x") == []
    assert ids([rule(2, head, link("REQUEST_METHOD", "streq", "POST"))], "/?a=x") == []


def test_setvar_runs_once_per_matching_value_and_macros_see_the_value() -> None:
    counting = link(
        "ARGS",
        "contains",
        "x",
        actions=[Action("setvar", "tx.n=+1"), Action("setvar", "tx.last=%{MATCHED_VAR}")],
    )
    state = state_for("/?a=x1&b=y&c=x3")
    evaluate_rule(rule(1, counting), state)
    assert state.vars["n"] == "2" and state.vars["last"] == "x3"


def test_capture_stores_groups_in_tx_0_to_9() -> None:
    state = state_for("/?a=key=value")
    state.vars["9"] = "stale"
    evaluate_rule(rule(1, link("ARGS", "rx", "^(\\w+)=(\\w+)$", capture=True)), state)
    assert {k: state.vars[k] for k in ("0", "1", "2")} == {"0": "key=value", "1": "key", "2": "value"}
    assert "9" not in state.vars


def test_msg_macros_are_expanded_in_the_match() -> None:
    state = state_for("/?a=x")
    match = evaluate_rule(rule(1, link("ARGS", "contains", "x"), msg="found %{MATCHED_VAR_NAME}"), state)
    assert match is not None and match.msg == "found ARGS:a"


def test_negated_operators_and_exclusions() -> None:
    assert ids([rule(1, link("REQUEST_METHOD", "streq", "POST", negate=True))], "/") == [1]
    assert ids([rule(1, link(["ARGS", "!ARGS:safe"], "contains", "x"))], "/?safe=x") == []
    assert ids([rule(1, link(["ARGS", "!ARGS:/^sa/"], "contains", "x"))], "/?safe=x&other=x") == [1]


def test_multi_match_tries_every_distinct_step_of_the_transformations() -> None:
    chain = ("url_decode", "lowercase")
    value = "%41B"
    state = state_for()
    assert inspected_values(link(transforms=chain), value, state) == ["ab"]
    assert inspected_values(link(transforms=chain, multi_match=True), value, state) == ["%41B", "AB", "ab"]
    assert inspected_values(link(transforms=("lowercase",), multi_match=True), "ab", state) == ["ab"]
    # only the untransformed value holds "%41": found with multi_match alone
    assert ids([rule(1, link("ARGS", "contains", "%41", transforms=chain))], "/?a=%2541") == []
    assert ids(
        [rule(1, link("ARGS", "contains", "%41", transforms=chain, multi_match=True))], "/?a=%2541"
    ) == [1]


def test_long_values_are_transformed_once_per_step() -> None:
    state = state_for()
    long = "%41" * 200
    chain = link(transforms=("url_decode", "lowercase"))
    assert inspected_values(chain, long, state) == ["a" * 200]
    assert state.transform_cache[(long, "url_decode")] == "A" * 200  # the step, reusable by other chains
    assert inspected_values(link(transforms=("url_decode",)), long, state) == ["A" * 200]


# --- ctl ---------------------------------------------------------------------------------------------


def test_ctl_rule_removal_by_id_and_range() -> None:
    items = [
        rule(1, link("ARGS", "contains", "x", actions=[Ctl.parse("ruleRemoveById=2 4-5")])),
        *(rule(n, link("ARGS", "contains", "x")) for n in (2, 3, 4, 5, 6)),
    ]
    assert ids(items, "/?a=x") == [1, 3, 6]


def test_ctl_rule_removal_by_tag_is_a_regex() -> None:
    items = [
        rule(1, link("ARGS", "contains", "x", actions=[Ctl.parse("ruleRemoveByTag=^attack-sq")])),
        rule(2, link("ARGS", "contains", "x"), tags=("attack-sqli",)),
        rule(3, link("ARGS", "contains", "x"), tags=("attack-xss",)),
    ]
    assert ids(items, "/?a=x") == [1, 3]


def test_ctl_target_removal_by_id_range_and_by_tag() -> None:
    remove = [
        Ctl.parse("ruleRemoveTargetById=940000-942999;ARGS:pwd"),
        Ctl.parse("ruleRemoveTargetByTag=t;ARGS:c"),
    ]
    items = [
        rule(1, link("REQUEST_METHOD", "streq", "GET", actions=remove)),
        rule(941100, link("ARGS", "contains", "x")),
        rule(943100, link("ARGS", "contains", "x")),
        rule(5, link("ARGS", "contains", "x"), tags=("t",)),
    ]
    assert ids(items, "/?pwd=x") == [1, 943100, 5]
    assert ids(items, "/?c=x") == [1, 941100, 943100]
    assert ids(items, "/?pwd=x&c=x") == [1, 941100, 943100, 5]


@pytest.mark.parametrize(
    ("ctl", "attribute", "value"),
    [
        ("ruleEngine=Off", "engine_off", True),
        ("ruleEngine=On", "engine_off", False),
        ("forceRequestBodyVariable=On", "force_request_body", True),
        ("forceRequestBodyVariable=0", "force_request_body", False),
        ("requestBodyProcessor=json", "body_processor", "JSON"),
    ],
)
def test_ctl_settings(ctl: str, attribute: str, value: object) -> None:
    state = state_for()
    apply_ctl(state, Ctl.parse(ctl))
    assert getattr(state, attribute) == value


def test_a_ctl_value_with_a_macro_is_expanded_when_the_rule_matches() -> None:
    state = state_for()
    state.vars["victim"] = "942100"
    apply_ctl(state, Ctl.parse("ruleRemoveById=%{tx.victim}"))
    assert state.removed_ids == {942100}
    state.vars["processor"] = "xml"
    apply_ctl(state, Ctl.parse("requestBodyProcessor=%{tx.processor}"))
    assert state.body_processor == "XML"


def test_a_ctl_changes_what_later_rules_of_the_phase_read() -> None:
    json_body = request("/", method="POST", headers=[("Content-Type", "application/json")], body=b'{"a":"x"}')
    items = [
        rule(1, link("REQUEST_BODY", "contains", "x")),
        rule(2, link("ARGS", "contains", "x", actions=[Ctl.parse("forceRequestBodyVariable=On")])),
        rule(3, link("REQUEST_BODY", "contains", "x")),
    ]
    state = EvalState(tx=json_body)
    state.prefilter_cache["derived"] = 1
    assert [m.id for m in run_phase(plan(Ruleset.build(items), 1), state, P2)] == [2, 3]
    assert state.prefilter_cache == {}


def test_removed_targets_leave_other_members_in_place() -> None:
    state = state_for("/?pwd=x&user=x")
    apply_ctl(state, Ctl.parse("ruleRemoveTargetById=1;ARGS:PWD"))
    match = evaluate_rule(rule(1, link("ARGS", "contains", "x")), state)
    assert match is not None and match.target == "ARGS:user"
    assert state.removed_targets == [(1, 1, parse_target("ARGS:PWD")[1])]  # member names: any case
