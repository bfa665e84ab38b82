"""rules: the value types of a compiled rule (Target, Operator, Ctl, Rule, Ruleset) and the severity table."""

from __future__ import annotations

import re

import pytest

from logoutguard.engine.rules import (
    CTL_SETTINGS,
    SEVERITIES,
    SEVERITY_SCORES,
    Ctl,
    Marker,
    Phase,
    Ruleset,
    Target,
    id_ranges,
    severity_name,
)

from .helpers import link, rule


@pytest.mark.parametrize(
    ("target", "member", "selected"),
    [
        (Target("ARGS"), "anything", True),
        (Target("ARGS", "Id"), "id", True),  # member names: any case
        (Target("ARGS", "id"), "idx", False),
        (Target("ARGS", key_regex=re.compile("^id_", re.I)), "ID_1", True),
        (Target("ARGS", key_regex=re.compile("^id_")), "x_id_", False),
    ],
)
def test_target_selects(target: Target, member: str, selected: bool) -> None:
    assert target.selects(member) is selected


@pytest.mark.parametrize(
    ("target", "text"),
    [
        (Target("ARGS"), "ARGS"),
        (Target("REQUEST_HEADERS", "User-Agent"), "REQUEST_HEADERS:User-Agent"),
        (Target("ARGS", count=True), "&ARGS"),
        (Target("ARGS", key_regex=re.compile("^a\\Z"), key_pattern="^a$"), "ARGS:/^a$/"),  # as written
        (Target("ARGS", key_regex=re.compile("^a")), "ARGS:/^a/"),
    ],
)
def test_target_text(target: Target, text: str) -> None:
    assert str(target) == text


def test_targets_are_equal_whatever_their_display_pattern() -> None:
    regex = re.compile("^a\\Z")
    assert Target("ARGS", key_regex=regex, key_pattern="^a$") == Target("ARGS", key_regex=regex)


def test_operator_text() -> None:
    assert str(link(operator="rx", argument="a+").operator) == "@rx a+"
    assert str(link(operator="rx", argument="a+", negate=True).operator) == "!@rx a+"


# --- ctl --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ruleRemoveById=942100", Ctl("ruleremovebyid", "942100", ids=((942100, 942100),))),
        (" ruleRemoveById = 1 5-7 x ", Ctl("ruleremovebyid", "1 5-7 x", ids=((1, 1), (5, 7)))),
        (
            "ruleRemoveTargetById=942100;ARGS:pwd",
            Ctl(
                "ruleremovetargetbyid",
                "942100;ARGS:pwd",
                ids=((942100, 942100),),
                target=Target("ARGS", "pwd"),
            ),
        ),
        (
            "ruleRemoveTargetById=941000-942999;args:body",
            Ctl(
                "ruleremovetargetbyid",
                "941000-942999;args:body",
                ids=((941000, 942999),),
                target=Target("ARGS", "body"),
            ),
        ),
        (
            "ruleRemoveTargetByTag=attack-sqli;REQUEST_COOKIES",
            Ctl(
                "ruleremovetargetbytag",
                "attack-sqli;REQUEST_COOKIES",
                target=Target("REQUEST_COOKIES"),
                tag="attack-sqli",
            ),
        ),
        ("ruleEngine=Off", Ctl("ruleengine", "Off", on=True)),
        ("ruleEngine=DetectionOnly", Ctl("ruleengine", "DetectionOnly", on=False)),
        ("forceRequestBodyVariable=on", Ctl("forcerequestbodyvariable", "on", on=True)),
        ("requestBodyProcessor=xml", Ctl("requestbodyprocessor", "xml", processor="XML")),
        ("ruleRemoveById=%{tx.x}", Ctl("ruleremovebyid", "%{tx.x}", dynamic=True)),
    ],
)
def test_ctl_is_parsed_once(text: str, expected: Ctl) -> None:
    assert Ctl.parse(text) == expected


def test_ctl_remove_by_tag_is_pcre_or_literal() -> None:
    assert Ctl.parse("ruleRemoveByTag=^attack-(sqli|xss)$").pattern.search("attack-xss")  # type: ignore[union-attr]
    literal = Ctl.parse("ruleRemoveByTag=a(b").pattern
    assert literal is not None and literal.search("xa(b") and not literal.search("ab")


@pytest.mark.parametrize("text", ["auditEngine=Off", "requestBodyAccess=On", "nonsense"])
def test_ctl_settings_the_engine_does_not_apply_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not supported"):
        Ctl.parse(text)
    assert text.partition("=")[0].lower() not in CTL_SETTINGS


@pytest.mark.parametrize(
    ("parts", "ranges", "bad"),
    [
        (["1", "5-7", " 9 - 10 "], ((1, 1), (5, 7), (9, 10)), ()),
        (["x", "5-", "-5", "1"], ((1, 1),), ("x", "5-", "-5")),
        ([], (), ()),
    ],
)
def test_id_ranges(parts: list[str], ranges: tuple[tuple[int, int], ...], bad: tuple[str, ...]) -> None:
    assert id_ranges(parts) == (ranges, bad)


# --- severities -------------------------------------------------------------------------------------


def test_the_severity_table_has_modsecuritys_eight_severities_in_order() -> None:
    assert SEVERITIES == ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
    assert list(SEVERITY_SCORES) == list(SEVERITIES)
    assert [SEVERITY_SCORES[s] for s in ("critical", "error", "warning", "notice")] == [5, 4, 3, 2]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("2", "critical"),
        ("0", "emergency"),
        ("7", "debug"),
        ("CRITICAL", "critical"),
        (" Warning ", "warning"),
        ("8", "8"),
        ("", ""),
    ],
)
def test_severity_names_from_numbers_or_names(text: str, name: str) -> None:
    assert severity_name(text) == name


# --- rules and rulesets -----------------------------------------------------------------------------


def test_a_ruleset_keeps_the_order_of_each_phase_with_its_markers() -> None:
    one, two, three = rule(1, link(), phase=1), rule(2, link()), rule(3, link())
    marker = Marker("END", Phase.REQUEST_BODY)
    ruleset = Ruleset.build([one, two, marker, three], ("a.yaml",))
    assert ruleset.rules == (one, two, three) and ruleset.markers == (marker,)
    assert ruleset.order[Phase.REQUEST_HEADERS] == (one,)
    assert ruleset.order[Phase.REQUEST_BODY] == (two, marker, three)
    assert ruleset.order[Phase.RESPONSE_BODY] == ()
    assert ruleset.by_id() == {1: one, 2: two, 3: three} and len(ruleset) == 3
    assert ruleset.sources == ("a.yaml",)


def test_a_rules_links_are_its_head_and_chain() -> None:
    head, second = link("ARGS"), link("REQUEST_METHOD")
    assert rule(1, head, second).links == (head, second)
    assert rule(1, head).links == (head,)
