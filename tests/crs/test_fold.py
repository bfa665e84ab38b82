"""crs/fold.py: what the CRS's TX bookkeeping decides the same for every request is decided at load.

Each test checks both what was folded (the plan) and that the folded engine judges requests exactly
as the same engine without folding does (fold=None: every rule runs, as before folding existed).
"""

from __future__ import annotations

import dataclasses

import pytest

from logoutguard.crs.fold import access, fold, fold_plans
from logoutguard.crs.loader import DEBIAN_RULES, DEBIAN_SETUP, load_crs
from logoutguard.crs.modsec import prepare
from logoutguard.engine.engine import Engine
from logoutguard.engine.evaluator import plan
from logoutguard.engine.exclusions import Condition, Exclusion, Exclusions
from logoutguard.engine.rules import Ctl, Phase, Rule, Ruleset
from logoutguard.engine.transaction import build_transaction

from .helpers import imported

# A miniature CRS: crs-setup and 901 defaults, a paranoia gate with a rule behind it that carries no
# paranoia tag (so only the gate keeps it from running at PL1), scoring and the blocking rule.
RULES = """
SecAction "id:900990,phase:1,nolog,pass,setvar:tx.crs_setup_version=334"
SecRule &TX:critical_anomaly_score "@eq 0" "id:901140,phase:1,pass,nolog,setvar:tx.critical_anomaly_score=5"
SecAction "id:901200,phase:1,pass,nolog,setvar:tx.anomaly_score=0"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:942011,phase:2,pass,nolog,skipAfter:END-942"
SecRule ARGS "@contains evil" "id:942100,phase:2,block,msg:'evil',setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:942013,phase:2,pass,nolog,skipAfter:END-942"
SecRule ARGS "@contains bad" "id:942200,phase:2,block,msg:'bad',setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecMarker "END-942"
SecRule TX:ANOMALY_SCORE "@ge 5" "id:949110,phase:2,deny,msg:'over'"
"""
# A gate on a level crs-setup sets, and (RUNTIME) a rule that sets that level from a request header.
LEVEL_GATE = """
SecAction "id:900001,phase:1,nolog,pass,setvar:tx.detection_level=1"
SecRule TX:DETECTION_LEVEL "@lt 2" "id:942013,phase:2,pass,nolog,skipAfter:END-942"
SecRule ARGS "@contains bad" "id:942200,phase:2,block,msg:'bad',setvar:'tx.anomaly_score=+5'"
SecMarker "END-942"
"""
RUNTIME = """
SecRule REQUEST_HEADERS:X-Level "@rx ^(\\d)$" "id:900500,phase:1,pass,nolog,capture,setvar:tx.detection_level=%{tx.1}"
"""
# A CRS-style exclusion rule: for /admin, the PL2 gate is removed.
CTL_EXCLUSION = """
SecRule REQUEST_URI "@beginsWith /admin" "id:1000,phase:1,pass,nolog,ctl:ruleRemoveById=942013"
"""


def engine(text: str, paranoia: int, exclusions: Exclusions | None = None) -> Engine:
    """The engine load_crs would build for `text` at `paranoia` (pinned levels, nolog rules quiet)."""
    pinned = {"paranoia_level": str(paranoia), "executing_paranoia_level": str(paranoia)}
    result = imported(text, pinned)
    return Engine(
        Ruleset.build(result.items),
        paranoia=paranoia,
        tx_defaults=pinned,
        prepare=prepare,
        quiet_ids=frozenset(i for i, info in result.infos.items() if not info.logged),
        exclusions=exclusions,
        score_vars=("anomaly_score", "outbound_anomaly_score"),
        fold=fold,
    )


def planned(e: Engine, phase: Phase = Phase.REQUEST_BODY) -> list[int]:
    return [i.id for i in e._plans[phase].items if isinstance(i, Rule)]


def stats(e: Engine):
    return fold_plans(e, plan(e.ruleset, e.paranoia))[2]


def judged(e: Engine, uri: str, headers: tuple[tuple[str, str], ...] = ()) -> tuple:
    tx = build_transaction(method="GET", uri=uri, headers=[("Host", "x"), *headers])
    verdict, state = e.inspect_request(tx)
    return verdict.rule_ids, verdict.inbound_score, verdict.blocked, state.vars


def assert_same(e: Engine, uri: str, headers: tuple[tuple[str, str], ...] = ()) -> tuple:
    """The folded engine and the same engine unfolded agree on `uri`: ids, score, block, and the final
    TX but for the variables nothing reads (set by rules left out as dead, or left out of the start)."""
    by_id = e.ruleset.by_id()
    folding = stats(e)
    unread = {name for i in folding.dead for name in access(by_id[i]).writes} | set(folding.unread)
    folded, unfolded = judged(e, uri, headers), judged(dataclasses.replace(e, fold=None), uri, headers)
    assert folded[:3] == unfolded[:3]
    assert folded[3] == {k: v for k, v in unfolded[3].items() if k not in unread}
    return folded


REQUESTS = ["/", "/?a=evil", "/?a=bad", "/?a=evil&b=bad", "/admin?a=bad", "/admin?a=evil&b=bad"]


def test_a_gate_is_folded_at_pl1_and_the_rule_behind_it_left_out():
    pl1 = engine(RULES, 1)
    assert planned(pl1) == [942100, 949110]  # both gates decided, 942200 behind the PL2 gate gone
    assert {942011, 942013} <= set(stats(pl1).dropped)
    for uri in REQUESTS:
        assert_same(pl1, uri)
    assert judged(pl1, "/?a=bad")[0] == []


def test_at_pl2_the_gate_lets_the_rule_run():
    pl2 = engine(RULES, 2)
    assert planned(pl2) == [942100, 942200, 949110]
    for uri in REQUESTS:
        assert_same(pl2, uri)
    assert judged(pl2, "/?a=bad")[:3] == ([942200, 949110], 5, True)


def test_setup_and_initialisation_setvars_become_the_starting_tx():
    e = engine(RULES, 1)
    assert planned(e, Phase.REQUEST_HEADERS) == []
    assert set(stats(e).preset) == {900990, 901140, 901200}
    # crs_setup_version is read by no rule nor the verdict (which reads `*_score` variables): it is
    # not copied into each request's TX
    assert e._start_tx == {
        "paranoia_level": "1",
        "executing_paranoia_level": "1",
        "critical_anomaly_score": "5",
        "anomaly_score": "0",
    }
    assert stats(e).unread == ["crs_setup_version"]
    assert judged(e, "/?a=evil")[:3] == ([942100, 949110], 5, True)  # the score still adds up


def test_a_tx_variable_written_at_run_time_is_not_folded():
    constant = engine(LEVEL_GATE, 1)
    assert planned(constant) == [] and 942013 in stats(constant).dropped
    e = engine(LEVEL_GATE + RUNTIME, 1)
    assert planned(e) == [942013, 942200]
    assert 942013 not in stats(e).dropped  # 900500 may change the level: the gate runs
    assert e._start_tx["detection_level"] == "1"  # set before 900500 runs: still the start
    for headers in ((), (("X-Level", "2"),), (("X-Level", "0"),)):
        for uri in REQUESTS:
            assert_same(e, uri, headers)
    assert judged(e, "/?a=bad", (("X-Level", "2"),))[:2] == ([942200], 5)
    assert judged(e, "/?a=bad")[:2] == ([], 0)


def test_a_ctl_exclusion_that_removes_the_gate_still_works():
    e = engine(CTL_EXCLUSION + RULES, 1)
    assert 942013 in planned(e) and 942200 in planned(e)
    for uri in REQUESTS:
        assert_same(e, uri)
    assert judged(e, "/admin?a=bad")[0] == [942200, 949110]
    assert judged(e, "/?a=bad")[0] == []


def test_an_engine_exclusion_that_removes_an_initialisation_rule_still_works():
    remove = Exclusions((Exclusion((Ctl.parse("ruleRemoveById=901140"),), Condition(path_prefix="/admin")),))
    e = engine(RULES, 1, remove)
    assert 901140 in planned(e, Phase.REQUEST_HEADERS)  # not preset: some requests skip it
    assert "critical_anomaly_score" not in e._start_tx
    for uri in REQUESTS:
        assert_same(e, uri)
    assert judged(e, "/admin?a=evil")[:3] == ([942100], 0, False)  # no critical_anomaly_score: +0
    assert judged(e, "/?a=evil")[:3] == ([942100, 949110], 5, True)


debian = pytest.mark.skipif(
    not (DEBIAN_SETUP.is_file() and DEBIAN_RULES.is_dir()), reason="Debian modsecurity-crs not installed"
)


@debian
@pytest.mark.parametrize("paranoia", [1, 2])
def test_debian_crs_folded_judges_as_unfolded(paranoia):
    e = load_crs(paranoia=paranoia).engine()
    folded = stats(e)
    assert {901100, 901200} <= set(folded.preset)  # 901's defaults and the anomaly score's start
    gate = 942014  # TX:EXECUTING_PARANOIA_LEVEL "@lt 2" ... skipAfter:END-REQUEST-942-...
    assert gate in folded.dropped
    assert 949110 in planned(e)  # the blocking evaluation reads the score: it runs
    assert 901318 in folded.dead  # tx.ua_hash: only the IP collection (not kept) read it
    for uri in ["/", "/?id=1%27%20or%201=1--", "/?q=<script>alert(1)</script>", "/etc/passwd?x=../../"]:
        assert_same(e, uri, (("User-Agent", "Mozilla/5.0"), ("Accept", "*/*")))


# A kept rule that reads a variable before a SecAction sets it, and one that may jump over a SecAction.
ORDER = """
SecRule REQUEST_HEADERS:X-Mode "@rx ^on$" "id:900600,phase:1,pass,nolog,setvar:tx.mode_seen=x%{tx.mode}"
SecAction "id:900601,phase:1,pass,nolog,setvar:tx.mode=strict"
SecRule REQUEST_HEADERS:X-Skip "@rx ." "id:900700,phase:1,pass,nolog,skipAfter:END-SETUP"
SecAction "id:900701,phase:1,pass,nolog,setvar:tx.extra=1"
SecMarker "END-SETUP"
SecRule TX:MODE_SEEN "@streq xstrict" "id:942300,phase:2,block,msg:'late',setvar:'tx.anomaly_score=+5'"
SecRule TX:EXTRA "@eq 1" "id:942301,phase:2,block,msg:'extra',setvar:'tx.anomaly_score=+1'"
"""


def test_setvars_a_kept_rule_could_see_earlier_are_not_preset():
    e = engine(ORDER, 1)
    assert not {900601, 900701} & set(stats(e).preset)
    assert "mode" not in e._start_tx and "extra" not in e._start_tx
    for headers in ((), (("X-Mode", "on"),), (("X-Skip", "1"),), (("X-Mode", "on"), ("X-Skip", "1"))):
        assert_same(e, "/", headers)
    assert judged(e, "/", (("X-Mode", "on"),))[0] == [942301]  # mode_seen is "x": 900601 had not run
    assert judged(e, "/", (("X-Skip", "1"),))[0] == []  # 900701 jumped over: no tx.extra


SETUP_METHODS = """
SecAction "id:900200,phase:1,nolog,pass,setvar:'tx.allowed_methods=GET POST'"
"""
CHECK_METHOD = """
SecRule REQUEST_METHOD "!@within %{tx.allowed_methods}" "id:911100,phase:1,block,msg:'method',setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
"""
METHODS_FROM_HEADER = """
SecRule REQUEST_HEADERS:X-Methods "@rx ^(.+)$" "id:900210,phase:1,pass,nolog,capture,setvar:'tx.allowed_methods=%{tx.1}'"
"""


def method_rule(e: Engine) -> Rule:
    (rule,) = [i for i in e._plans[Phase.REQUEST_HEADERS].items if isinstance(i, Rule) and i.id == 911100]
    return rule


def judged_method(e: Engine, method: str, headers: tuple[tuple[str, str], ...] = ()) -> tuple:
    tx = build_transaction(method=method, uri="/", headers=[("Host", "x"), *headers])
    verdict, _ = e.inspect_request(tx)
    unfolded, _ = dataclasses.replace(e, fold=None).inspect_request(tx)
    assert (verdict.rule_ids, verdict.inbound_score, verdict.blocked) == (
        unfolded.rule_ids,
        unfolded.inbound_score,
        unfolded.blocked,
    )
    return verdict.rule_ids, verdict.inbound_score


def test_known_tx_macros_are_written_into_kept_rules():
    e = engine(RULES + SETUP_METHODS + CHECK_METHOD, 1)
    rule = method_rule(e)
    assert rule.head.operator.argument == "GET POST"
    assert [a.argument for a in rule.head.actions] == ["tx.anomaly_score=+5"]
    assert judged_method(e, "GET") == ([], 0)
    assert judged_method(e, "DELETE") == ([911100, 949110], 5)


def test_a_macro_of_a_tx_variable_written_at_run_time_stays():
    e = engine(RULES + SETUP_METHODS + METHODS_FROM_HEADER + CHECK_METHOD, 1)
    assert method_rule(e).head.operator.argument == "%{tx.allowed_methods}"
    assert judged_method(e, "DELETE", (("X-Methods", "GET DELETE"),)) == ([], 0)
    assert judged_method(e, "DELETE") == ([911100, 949110], 5)
