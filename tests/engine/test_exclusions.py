"""Exclusions: the request a condition sees, conditions, and ctl actions applied before the first rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logoutguard.engine.engine import Engine
from logoutguard.engine.exclusions import (
    CRS,
    OURS,
    Condition,
    Exclusion,
    Exclusions,
    Request,
    host_name,
    request_path,
)
from logoutguard.engine.rules import Ctl, Ruleset
from logoutguard.engine.targets import parse_target

from .helpers import request, yaml_rules


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/cms/save", "/cms/save"),
        ("/cms/../admin", "/admin"),
        ("/cms/%2e%2e/admin", "/admin"),
        ("/cms/..%2fadmin", "/admin"),
        ("/cms\\..\\admin", "/admin"),
        ("//cms//./save", "/cms/save"),
        ("/a+b%20c", "/a+b c"),
        ("", "/"),
    ],
)
def test_the_path_a_condition_sees_is_decoded_and_normalised(raw: str, path: str) -> None:
    assert request_path(raw) == path


@pytest.mark.parametrize(
    ("host", "name"),
    [("Shop.Test:8080", "shop.test"), ("shop.test", "shop.test"), ("[::1]:8080", "[::1]"), (" A ", "a")],
)
def test_host_name(host: str, name: str) -> None:
    assert host_name(host) == name


CMS = Request("POST", "cms.test", "/cms/save")


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        (Condition(), True),
        (Condition(methods=frozenset({"POST"})), True),
        (Condition(methods=frozenset({"GET", "PUT"})), False),
        (Condition(hosts=frozenset({"cms.test"})), True),
        (Condition(hosts=frozenset({"shop.test"})), False),
        (Condition(path="/cms/save"), True),
        (Condition(path="/cms"), False),
        (Condition(path_prefix="/cms/"), True),
        (Condition(path_prefix="/api/"), False),
        (Condition(path_regex=re.compile(r"^/cms/[a-z]+$")), True),
        (Condition(path_regex=re.compile(r"^/cms$")), False),
        (Condition(methods=frozenset({"POST"}), path_prefix="/api/"), False),  # every part must hold
    ],
)
def test_condition(condition: Condition, holds: bool) -> None:
    assert condition.holds(CMS) is holds


def test_request_of_a_transaction() -> None:
    tx = request("/cms/%2E%2E/admin?x=1", method="post", headers=[("Host", "CMS.test:8443")])
    assert Request.of(tx) == Request("POST", "example.test", "/admin")  # the first Host header
    assert Request.of(request(headers=())).host == "example.test"


@pytest.fixture
def ruleset(tmp_path: Path) -> Ruleset:
    return yaml_rules(
        tmp_path,
        {"id": 1001, "targets": ["ARGS"], "operator": "contains", "argument": "evil", "tags": ["a"]},
        {"id": 1002, "targets": ["ARGS", "REQUEST_HEADERS"], "operator": "contains", "argument": "evil"},
        {"id": 1003, "targets": ["REQUEST_URI"], "operator": "contains", "argument": "evil", "tags": ["a"]},
    )


EVIL = ("/cms/save?content=evil&other=evil", "POST")


def matched(
    ruleset: Ruleset, exclusions: Exclusions | None, uri: str = EVIL[0], method: str = "POST"
) -> list:
    verdict = Engine(ruleset, exclusions=exclusions).inspect(request(uri, method=method))
    return [(m.id, m.target) for m in verdict.matches]


def only(*ctls: Ctl, when: Condition | None = None) -> Exclusions:
    return Exclusions((Exclusion(ctls, when),))


def target(text: str):
    return parse_target(text)[1]


def test_without_exclusions_every_rule_matches(ruleset: Ruleset) -> None:
    assert matched(ruleset, None) == [
        (1001, "ARGS:content"),
        (1002, "ARGS:content"),
        (1003, "REQUEST_URI"),
    ]


def test_a_rule_removed_everywhere(ruleset: Ruleset) -> None:
    exclusions = only(Ctl("ruleremovebyid", "1001 1003", ids=((1001, 1001), (1003, 1003))))
    assert matched(ruleset, exclusions) == [(1002, "ARGS:content")]


def test_rules_removed_by_tag(ruleset: Ruleset) -> None:
    exclusions = only(Ctl("ruleremovebytag", "a", pattern=re.compile("^a$")))
    assert matched(ruleset, exclusions) == [(1002, "ARGS:content")]


def test_a_target_removed_from_a_range_of_rules(ruleset: Ruleset) -> None:
    content = target("ARGS:content")
    exclusions = only(
        Ctl("ruleremovetargetbyid", "1001-1002;ARGS:content", ids=((1001, 1002),), target=content)
    )
    assert matched(ruleset, exclusions) == [(1001, "ARGS:other"), (1002, "ARGS:other"), (1003, "REQUEST_URI")]
    every_arg = only(Ctl("ruleremovetargetbyid", "1001;ARGS", ids=((1001, 1001),), target=target("ARGS")))
    assert matched(ruleset, every_arg) == [(1002, "ARGS:content"), (1003, "REQUEST_URI")]


def test_a_target_removed_by_tag_and_by_key_regex(ruleset: Ruleset) -> None:
    exclusions = only(
        Ctl(
            "ruleremovetargetbytag",
            "a;ARGS:/^(content|other)$/",
            target=target("ARGS:/^(content|other)$/"),
            tag="a",
        )
    )
    assert matched(ruleset, exclusions) == [(1002, "ARGS:content"), (1003, "REQUEST_URI")]


def test_a_conditional_exclusion_applies_only_where_its_condition_holds(ruleset: Ruleset) -> None:
    exclusions = only(
        Ctl("ruleremovebyid", "1001", ids=((1001, 1001),)),
        when=Condition(methods=frozenset({"POST"}), path_prefix="/cms/"),
    )
    assert 1001 not in dict(matched(ruleset, exclusions))
    assert 1001 in dict(matched(ruleset, exclusions, method="GET"))
    assert 1001 in dict(matched(ruleset, exclusions, uri="/shop/save?content=evil"))
    # a path that only looks like the excluded one is the path it resolves to
    assert 1001 in dict(matched(ruleset, exclusions, uri="/cms/../admin?content=evil"))
    assert 1001 in dict(matched(ruleset, exclusions, uri="/cms/%2e%2e/admin?content=evil"))


def test_exclusions_are_per_transaction(ruleset: Ruleset) -> None:
    """The state the ctl changes is the transaction's: the next request starts without the removal
    unless its own condition holds."""
    engine = Engine(
        ruleset,
        exclusions=only(Ctl("ruleremovebyid", "1001", ids=((1001, 1001),)), when=Condition(path="/cms/save")),
    )
    assert 1001 not in engine.inspect(request("/cms/save?a=evil")).rule_ids
    assert 1001 in engine.inspect(request("/other?a=evil")).rule_ids


def test_for_ruleset() -> None:
    ctl = Ctl("ruleremovebyid", "1", ids=((1, 1),))
    both, ours, crs = (
        Exclusion((ctl,)),
        Exclusion((ctl,), rulesets=frozenset({OURS})),
        Exclusion((ctl,), rulesets=frozenset({CRS})),
    )
    exclusions = Exclusions((both, ours, crs))
    assert exclusions.for_ruleset(OURS) == Exclusions((both, ours))
    assert exclusions.for_ruleset(CRS) == Exclusions((both, crs))
    assert Exclusions((ours,)).for_ruleset(CRS) is None
    assert len(exclusions) == 3
