"""examples: a rule's own match / no_match examples, placed where its target reads them, and the failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from logoutguard.engine.examples import check_rule, check_ruleset, example_target, example_transaction, place
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset
from logoutguard.engine.state import EvalState
from logoutguard.engine.targets import parse_target
from logoutguard.engine.variables import collect

from .helpers import yaml_rules


@pytest.mark.parametrize(
    ("target", "value"),
    [
        ("ARGS:q", "v"),
        ("ARGS_GET:q", "v"),
        ("ARGS_POST:q", "v"),
        ("ARGS_NAMES", "name"),
        ("ARGS_POST_NAMES", "name"),
        ("REQUEST_COOKIES:sid", "v"),
        ("REQUEST_COOKIES_NAMES", "sid"),
        ("REQUEST_HEADERS:User-Agent", "curl/8"),
        ("REQUEST_HEADERS:host", "other.test"),  # replaces the default Host
        ("REQUEST_HEADERS_NAMES", "X-Thing"),
        ("FILES", "a.php"),
        ("FILES_NAMES", "upload"),
        ("MULTIPART_PART_HEADERS:f", "Content-Type: text/x-php"),
        ("SESSION:state", "revoked"),
        ("RESPONSE_HEADERS:Server", "Apache"),
        ("RESPONSE_HEADERS_NAMES", "X-Powered-By"),
        ("REQUEST_FILENAME", "/a/b.php"),
        ("REQUEST_BASENAME", "/a/b.php"),
        ("REQUEST_URI", "/a?b=c"),
        ("REQUEST_URI_RAW", "/a?b=c"),
        ("REQUEST_LINE", "POST /a?b HTTP/1.0"),
        ("QUERY_STRING", "a=1"),
        ("REQUEST_BODY", "raw body"),
        ("REQUEST_METHOD", "PUT"),
        ("REQUEST_PROTOCOL", "HTTP/1.0"),
        ("REMOTE_ADDR", "203.0.113.5"),
        ("RESPONSE_BODY", "<html>"),
        ("REQBODY_ERROR_MSG", "bad"),
        ("REQUEST_BODY_TRUNCATED", "1"),
        ("RESPONSE_STATUS", "503"),
    ],
)
def test_a_value_is_placed_where_its_target_reads_it(target: str, value: str) -> None:
    _, parsed = parse_target(target)
    tx = place(parsed, value)
    found = [v for _, v in collect(EvalState(tx=tx), (parsed,), ())]
    assert ("b.php" if target == "REQUEST_BASENAME" else value) in found


def test_placing_into_a_collection_that_cannot_hold_a_value_says_to_use_a_request() -> None:
    with pytest.raises(
        ValueError, match="examples cannot be placed in TX; give requests as mappings instead"
    ):
        place(parse_target("TX:score")[1], "5")


def test_examples_go_to_examples_target_else_the_first_target(tmp_path: Path) -> None:
    ruleset = yaml_rules(
        tmp_path,
        {"id": 1, "targets": ["ARGS", "REQUEST_HEADERS:User-Agent"], "operator": "contains", "argument": "x"},
        {
            "id": 2,
            "targets": ["ARGS", "REQUEST_HEADERS:User-Agent"],
            "operator": "contains",
            "argument": "x",
            "examples": {"target": "REQUEST_HEADERS:User-Agent", "match": ["x"], "no_match": ["y"]},
        },
    )
    first, second = ruleset.rules
    assert (
        str(example_target(first)) == "ARGS" and str(example_target(second)) == "REQUEST_HEADERS:User-Agent"
    )
    assert example_transaction(second, "x").header("User-Agent") == "x"
    assert example_transaction(first, "caf\u00e9").query_args == (("example", "caf\xc3\xa9"),)  # UTF-8 bytes


def test_a_request_example_is_built_from_its_mapping(tmp_path: Path) -> None:
    (rule,) = yaml_rules(
        tmp_path, {"id": 1, "targets": ["ARGS"], "operator": "contains", "argument": "x"}
    ).rules
    tx = example_transaction(
        rule,
        (
            ("method", "POST"),
            ("uri", "/p?q=1"),
            ("headers", (("Host", "h"), ("Content-Type", "application/json"))),
            ("body", '{"k":"\u00e9"}'),
            ("session", (("state", "revoked"),)),
            ("response_status", 500),
            ("response_headers", (("Server", "x"),)),
            ("response_body", "err"),
        ),
    )
    assert (tx.method, tx.path, tx.headers[0], tx.body_args) == (
        "POST",
        "/p",
        ("Host", "h"),
        (("k", "\xc3\xa9"),),
    )
    assert tx.session == (("state", "revoked"),) and tx.response_status == 500 and tx.response_body == "err"
    bare = example_transaction(rule, (("uri", "/"),))
    assert bare.headers == (("Host", "example.test"),) and bare.client_addr == "192.0.2.10"


def test_failures_name_the_rule_the_example_and_what_went_wrong(tmp_path: Path) -> None:
    (rule,) = yaml_rules(
        tmp_path,
        {
            "id": 5,
            "targets": ["ARGS"],
            "operator": "contains",
            "argument": "x",
            "examples": {"match": ["x", "nope"], "no_match": ["y", "xx", {"uri": "/?a=x"}]},
        },
    ).rules
    failures = check_rule(rule)
    assert [str(f) for f in failures] == [
        f"{tmp_path / 'rules.yaml'} rule 5: match example 'nope' did not match",
        f"{tmp_path / 'rules.yaml'} rule 5: no_match example 'xx' matched",
        f"{tmp_path / 'rules.yaml'} rule 5: no_match example {{'uri': '/?a=x'}} matched",
    ]
    count, all_failures = check_ruleset(load_ruleset([tmp_path]))
    assert count == 5 and [str(f) for f in all_failures] == [str(f) for f in failures]


def test_the_shipped_examples_all_pass() -> None:
    count, failures = check_ruleset(load_ruleset([DEFAULT_RULES_DIR]))
    assert count > 1000 and failures == []
