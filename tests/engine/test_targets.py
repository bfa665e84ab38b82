"""targets: the one parser of `[!|&]COLLECTION[:key|:/regex/]` for YAML rules and imported SecLang alike."""

from __future__ import annotations

import pytest

from logoutguard.engine.targets import TargetError, did_you_mean, parse_target, target_of


@pytest.mark.parametrize(
    ("text", "excluded", "shown", "count"),
    [
        ("ARGS", False, "ARGS", False),
        ("!REQUEST_COOKIES:/^_ga/", True, "REQUEST_COOKIES:/^_ga/", False),
        ("&REQUEST_HEADERS:Host", False, "REQUEST_HEADERS:Host", True),
        ("  ARGS:q  ", False, "ARGS:q", False),
        (
            "REQUEST_HEADERS:x:y",
            False,
            "REQUEST_HEADERS:x:y",
            False,
        ),  # the key is everything after the first colon
        ("XML:/*", False, "XML:/*", False),  # XPath, not a regex
    ],
)
def test_parse_target(text: str, excluded: bool, shown: str, count: bool) -> None:
    is_excluded, target = parse_target(text)
    assert is_excluded is excluded and target.count is count
    assert str(target).lstrip("&") == shown


def test_key_regexes_are_pcre_and_ignore_case() -> None:
    _, target = parse_target("ARGS:/^id$/")
    assert target.key is None and target.key_pattern == "^id$"
    assert target.selects("ID") and not target.selects("id\n")  # PCRE's `$` is the very end
    assert str(target) == "ARGS:/^id$/"
    _, xml = parse_target("XML:/*")
    assert xml.key == "/*" and xml.key_regex is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("args", "bad target 'args': expected [!|&]COLLECTION[:key|:/regex/]"),
        ("ARGS:", "bad target 'ARGS:': expected [!|&]COLLECTION[:key|:/regex/]"),
        ("!!ARGS", "bad target '!!ARGS': expected [!|&]COLLECTION[:key|:/regex/]"),
        ("ARGZ", "unknown collection 'ARGZ' (did you mean 'ARGS'?)"),
        ("REQUEST_HEADER:Host", "unknown collection 'REQUEST_HEADER' (did you mean 'REQUEST_HEADERS'?)"),
        ("QQQQQQQ", "unknown collection 'QQQQQQQ'"),
        (
            "ARGS:/a(/",
            "bad key regex '/a(/': bad regex 'a(': missing ), unterminated subpattern at position 1",
        ),
    ],
)
def test_bad_targets_say_why(text: str, reason: str) -> None:
    with pytest.raises(TargetError) as excinfo:
        parse_target(text)
    assert str(excinfo.value) == reason


def test_seclang_parts_any_case_and_collections_the_caller_supplies() -> None:
    excluded, target = target_of("!args", "/^x/")
    assert excluded and target.collection == "ARGS" and target.selects("X1")
    assert target_of("&tx", "score")[1].count
    with pytest.raises(TargetError, match="unknown collection 'UNIQUE_ID'"):
        target_of("UNIQUE_ID", None)
    assert target_of("UNIQUE_ID", None, also={"UNIQUE_ID"})[1].collection == "UNIQUE_ID"
    assert target_of("ARGS", "")[1].key is None  # `ARGS:` with nothing after the colon


def test_did_you_mean() -> None:
    assert did_you_mean("lowercas", ["lowercase", "uppercase"]) == " (did you mean 'lowercase'?)"
    assert did_you_mean("zzz", ["lowercase"]) == ""
