"""SecLang directives -> AST: chains, defaults, markers, exclusion directives, problems."""

from logoutguard.crs.seclang import (
    Other,
    RemoveById,
    SecDefaultAction,
    SecMarker,
    SecRule,
    UpdateAction,
    UpdateTarget,
    parse_id_ranges,
    parse_text,
)

TEXT = """\
SecDefaultAction "phase:2,log,auditlog,pass"
SecRule REQUEST_HEADERS:Content-Type "@rx ^(text/\\\\w+)" \\
    "id:10,phase:1,pass,capture,chain"
    SecRule TX:1 "@streq text/x" "setvar:tx.a=1,chain"
        SecRule ARGS "@contains y"
SecAction "id:11,pass,nolog"
SecMarker "END-TEST"
SecRuleRemoveById 1 2-4
SecRuleUpdateTargetById 10 "!ARGS:foo"
SecRuleUpdateActionById 10 "deny,status:403"
SecComponentSignature "x"
"""


def test_parse_text_builds_nodes_with_lines():
    result = parse_text(TEXT, "t.conf")
    assert result.problems == []
    kinds = [type(n) for n in result.nodes]
    assert kinds == [
        SecDefaultAction,
        SecRule,
        SecRule,
        SecMarker,
        RemoveById,
        UpdateTarget,
        UpdateAction,
        Other,
    ]
    rule = result.nodes[1]
    assert isinstance(rule, SecRule)
    assert rule.id == 10 and len(rule.parts) == 3
    assert rule.head.operator == "@rx ^(text/\\w+)"
    assert [p.where.line for p in rule.parts] == [2, 4, 5]
    assert rule.parts[1].action("setvar") == "tx.a=1"
    action = result.nodes[2]
    assert isinstance(action, SecRule) and action.is_action and action.id == 11
    assert result.nodes[4] == RemoveById(((1, 1), (2, 4)), result.nodes[4].where)


def test_unfinished_chain_is_a_problem_with_its_rule_id():
    result = parse_text('SecRule ARGS "@rx a" "id:5,chain"\nSecMarker X\n', "t.conf")
    assert [(p.rule_id, p.where.line) for p in result.problems] == [(5, 1)]
    assert isinstance(result.nodes[0], SecMarker)


def test_bad_action_list_is_reported_not_raised():
    result = parse_text('SecRule ARGS "@rx a" "id:5,msg:\'x"\n', "t.conf")
    assert result.nodes == [] and "missing closing quote" in result.problems[0].reason


def test_parse_id_ranges():
    assert parse_id_ranges("1 5-7,9") == [(1, 1), (5, 7), (9, 9)]
