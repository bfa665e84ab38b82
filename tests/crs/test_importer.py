"""Importer: ModSecurity 2 semantics of imported SecLang rules, run on the engine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logoutguard.crs.importer import operator_name, transformation_name

from .helpers import engine_for, ids, imported, run, tx_vars


@pytest.mark.parametrize(
    ("crs", "ours"),
    [
        ("urlDecodeUni", "url_decode_uni"),
        ("htmlEntityDecode", "html_entity_decode"),
        ("utf8toUnicode", "utf8_to_unicode"),
        ("normalisePath", "normalize_path"),
        ("normalizePathWin", "normalize_path_win"),
        ("cmdLine", "cmd_line"),
        ("base64Decode", "base64_decode"),
        ("removeNulls", "remove_nulls"),
    ],
)
def test_transformation_names(crs, ours):
    assert transformation_name(crs) == ours


@pytest.mark.parametrize(
    ("crs", "ours"),
    [
        ("pmFromFile", "pm_from_file"),
        ("pmf", "pm_from_file"),
        ("detectSQLi", "detect_sqli"),
        ("detectXSS", "detect_xss"),
        ("validateByteRange", "validate_byte_range"),
        ("endsWith", "ends_with"),
        ("ipMatch", "ip_match"),
        ("rx", "rx"),
    ],
)
def test_operator_names(crs, ours):
    assert operator_name(crs) == ours


def test_block_means_the_default_action_and_deny_blocks():
    engine = engine_for(
        'SecRule ARGS "@contains evil" "id:1,phase:2,block,setvar:tx.score=+5"\n'
        'SecRule TX:score "@ge 5" "id:2,phase:2,deny"\n'
    )
    verdict, state = run(engine, uri="/?a=evil")
    assert verdict.rule_ids == [1, 2] and state.interrupted and verdict.blocked
    verdict, state = run(engine, uri="/?a=fine")
    assert verdict.rule_ids == [] and not verdict.blocked


def test_setvar_runs_once_per_matched_variable():
    engine = engine_for('SecRule ARGS "@contains x" "id:1,phase:2,pass,setvar:tx.n=+1"\n')
    assert tx_vars(engine, uri="/?a=x&b=x&c=y")["n"] == "2"


def test_chain_link_actions_run_when_that_link_matches():
    # 920440 style: the head's setvar feeds the next link's operator argument
    engine = engine_for(
        "SecAction \"id:5,phase:1,pass,nolog,setvar:'tx.restricted=.bak/ .sql/'\"\n"
        'SecRule REQUEST_BASENAME "@rx \\.([^.]+)$" "id:10,phase:2,block,capture,t:none,'
        'setvar:tx.extension=.%{tx.1}/,chain"\n'
        '  SecRule TX:EXTENSION "@within %{tx.restricted}" "setvar:tx.hit=%{tx.1}"\n'
    )
    assert 10 in ids(engine, uri="/backup/site.bak")
    assert tx_vars(engine, uri="/backup/site.bak")["hit"] == "bak"
    assert 10 not in ids(engine, uri="/index.html")
    assert tx_vars(engine, uri="/index.html")["extension"] == ".html/"  # head matched: its setvar ran


def test_skip_after_jumps_to_the_marker_within_the_phase():
    engine = engine_for(
        'SecAction "id:9,phase:1,pass,nolog,setvar:tx.pl=1"\n'
        'SecRule TX:pl "@lt 2" "id:1,phase:2,pass,nolog,skipAfter:END"\n'
        'SecRule ARGS "@contains x" "id:2,phase:2,pass"\n'
        'SecMarker "END"\n'
        'SecRule ARGS "@contains x" "id:3,phase:2,pass"\n'
    )
    assert ids(engine, uri="/?a=x") == [9, 1, 3]


def test_capture_and_macro_in_setvar_name():
    engine = engine_for(
        'SecRule REQUEST_HEADERS_NAMES "@rx ^(x-\\w+)$" "id:1,phase:1,pass,capture,t:lowercase,'
        'setvar:tx.header_%{tx.1}=/%{tx.0}/"\n'
    )
    assert tx_vars(engine, headers=[("X-Forwarded", "a")])["header_x-forwarded"] == "/x-forwarded/"


def test_multi_match_checks_every_transformation_step():
    rule = 'SecRule ARGS "@rx ^abc$" "id:1,phase:2,pass,t:none,t:urlDecode,t:lowercase{}"\n'
    assert ids(engine_for(rule.format(",multiMatch")), uri="/?a=abc%41") == []
    assert ids(engine_for(rule.format(",multiMatch")), uri="/?a=%61bc") == [1]  # after urlDecode
    assert ids(engine_for(rule.format("")), uri="/?a=ABC") == [1]


def test_exclusions_and_counts():
    engine = engine_for(
        'SecRule REQUEST_COOKIES|!REQUEST_COOKIES:/^__utm/ "@contains evil" "id:1,phase:1,pass"\n'
        'SecRule &ARGS "@gt 2" "id:2,phase:2,pass"\n'
    )
    assert ids(engine, headers=[("Cookie", "__utma=evil")]) == []
    assert ids(engine, headers=[("Cookie", "sess=evil")]) == [1]
    assert ids(engine, uri="/?a=1&b=2&c=3") == [2]


def test_exclusion_directives_act_on_rules_defined_before_them():
    text = (
        'SecRule ARGS "@contains x" "id:1,phase:2,pass"\n'
        'SecRule ARGS "@contains x" "id:2,phase:2,pass"\n'
        'SecRule ARGS "@contains x" "id:3,phase:2,pass,tag:\'attack-x\'"\n'
        "SecRuleRemoveById 1\n"
        'SecRuleUpdateTargetById 2 "!ARGS:safe"\n'
        'SecRuleUpdateActionById 3 "deny"\n'
        'SecRule ARGS "@contains x" "id:4,phase:2,pass"\n'
        "SecRuleRemoveByTag attack-y\n"
    )
    engine = engine_for(text)
    assert ids(engine, uri="/?safe=x") == [3]
    verdict, _ = run(engine, uri="/?other=x")
    assert verdict.rule_ids == [2, 3] and verdict.blocked  # 3 now denies and stops the phase


def test_ctl_rule_remove_by_id_at_run_time():
    engine = engine_for(
        'SecRule REQUEST_URI "@beginsWith /api" "id:1,phase:1,pass,nolog,ctl:ruleRemoveById=2"\n'
        'SecRule ARGS "@contains x" "id:2,phase:2,pass"\n'
    )
    assert ids(engine, uri="/api?a=x") == [1]
    assert ids(engine, uri="/web?a=x") == [2]


def test_pinned_variables_ignore_setvar():
    result = imported(
        'SecAction "id:1,phase:1,pass,setvar:tx.paranoia_level=3,setvar:tx.other=1"\n',
        pinned={"paranoia_level": "2"},
    )
    (rule,) = result.items
    assert [a.argument for a in rule.head.actions] == ["tx.other=1"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('SecRule ARGS "@rx a" "id:7,phase:5,pass"', "phase 5"),
        ('SecRule ARGS "@geoLookup" "id:7,phase:1,pass"', "operator @geoLookup"),
        ('SecRule NOPE "@rx a" "id:7,phase:1,pass"', "unknown collection 'NOPE'"),
        ('SecRule ARGS "@rx a" "id:7,phase:1,pass,t:nope"', "t:nope"),
        ('SecRule ARGS "@rx a" "id:7,phase:1,allow"', "'allow'"),
        ('SecRule ARGS "@rx a" "id:7,phase:1,pass,skip:1"', "'skip'"),
        ('SecRule ARGS "@rx (" "id:7,phase:1,pass"', "@rx: bad regex '('"),
        ('SecRule ARGS "@rx a" "id:7,phase:1,pass,bogus:1"', "unknown action"),
    ],
)
def test_unsupported_constructs_are_reported_and_the_rule_skipped(text, reason):
    result = imported(text + '\nSecRule ARGS "@rx b" "id:8,phase:1,pass"\n')
    assert [r.id for r in result.items if hasattr(r, "id")] == [8]
    (problem,) = [p for p in result.problems if p.skipped]
    assert problem.rule_id == 7 and problem.line == 3 and problem.file.endswith("test.conf")
    assert reason in problem.reason


def test_logged_flag_follows_the_default_merge():
    result = imported(
        'SecRule ARGS "@rx a" "id:1,phase:1,pass,nolog"\n'
        'SecRule ARGS "@rx a" "id:2,phase:1,pass"\n'
        'SecRule ARGS "@rx a" "id:3,phase:1,pass,nolog,auditlog"\n'
    )
    assert {i: info.logged for i, info in result.infos.items()} == {1: False, 2: True, 3: True}


def test_persistent_collections_are_empty_with_a_note():
    result = imported('SecRule &IP:block "@eq 0" "id:1,phase:1,pass,setvar:ip.x=1"\n')
    assert len(result.items) == 1
    assert {p.skipped for p in result.problems} == {False}
    assert ids(engine_for('SecRule &IP:block "@eq 0" "id:1,phase:1,pass"\n')) == [1]


def test_ctl_remove_target_by_id_range_covers_the_loaded_rules_in_it():
    engine = engine_for(
        'SecRule REQUEST_FILENAME "@beginsWith /cms" '
        '"id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetById=941000-942999;ARGS:body"\n'
        'SecRule ARGS "@contains <" "id:941100,phase:2,pass"\n'
        'SecRule ARGS "@contains <" "id:943100,phase:2,pass"\n'
    )
    assert ids(engine, uri="/cms?body=%3C") == [1, 943100]
    assert ids(engine, uri="/web?body=%3C") == [941100, 943100]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "SecRule",
                "SecAction",
                "SecMarker",
                "SecRuleRemoveById",
                "SecRuleUpdateTargetById",
                '"',
                "'",
                "\\",
                "ARGS",
                "@rx",
                "id:1",
                "chain",
                "phase:2",
                ",",
                ":",
                "|",
                "!",
                "&",
                "t:",
                "setvar:tx.a=+1",
                "ctl:ruleRemoveById=1",
                "skipAfter:X",
                "(",
                "[",
                "%{tx.a}",
                " ",
                "\n",
                "\\\n",
            ]
        ),
        max_size=40,
    )
)
def test_any_text_loads_without_raising(pieces):
    result = imported("".join(pieces))
    assert all(p.reason for p in result.problems)
