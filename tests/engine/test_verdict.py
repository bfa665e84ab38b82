"""verdict: Match and Verdict as plain JSON-able data; excerpts never show cookies or credentials."""

from __future__ import annotations

import dataclasses
import json

import pytest

from logoutguard.engine.verdict import EXCERPT_LENGTH, Match, Verdict, redact_excerpt


@pytest.mark.parametrize(
    ("target", "value", "excerpt"),
    [
        ("ARGS:q", "1' or 1=1", "1' or 1=1"),
        ("REQUEST_COOKIES:sid", "secret", "[redacted 6 bytes]"),
        ("REQUEST_COOKIES_NAMES:sid", "sid", "sid"),
        ("SESSION:state", "revoked", "[redacted 7 bytes]"),
        ("REQUEST_HEADERS:Cookie", "sid=abc", "[redacted 7 bytes]"),
        ("REQUEST_HEADERS:Authorization", "Bearer x", "[redacted 8 bytes]"),
        ("REQUEST_HEADERS:proxy-authorization", "Basic x", "[redacted 7 bytes]"),
        ("RESPONSE_HEADERS:Set-Cookie", "sid=1", "[redacted 5 bytes]"),
        ("&REQUEST_COOKIES", "2", "[redacted 1 bytes]"),
        ("REQUEST_HEADERS:User-Agent", "curl", "curl"),
        ("ARGS:q", "a\x00b\r\n\xe9", "a\\x00b\\x0d\\x0a\\xe9"),  # control and non-ASCII bytes escaped
        ("ARGS:q", "x" * 100, "x" * (EXCERPT_LENGTH - 3) + "..."),
    ],
)
def test_excerpts(target: str, value: str, excerpt: str) -> None:
    assert redact_excerpt(target, value) == excerpt


MATCH = Match(942100, "SQL", 2, "sqli", "critical", 5, 1, "ARGS:q", "x", tags=("a", "b"))


def test_match_to_json_is_plain_data() -> None:
    data = MATCH.to_json()
    assert data["tags"] == ["a", "b"] and data["scoring"] is True and data["disruptive"] == "pass"
    assert json.loads(json.dumps(data)) == data


def test_match_to_json_names_every_field_in_order() -> None:
    match = Match(941100, "XSS", 1, "xss", "error", 4, 2, "ARGS:x", "<s", False, "deny", ("t",))
    assert list(match.to_json().items()) == [
        *((f.name, getattr(match, f.name)) for f in dataclasses.fields(Match) if f.name != "tags"),
        ("tags", ["t"]),
    ]


def test_verdict_blocked_and_rule_ids() -> None:
    verdict = Verdict(matches=[MATCH, MATCH])
    assert not verdict.blocked and verdict.rule_ids == [942100, 942100]
    verdict.outbound_blocked = True
    assert verdict.blocked


def test_verdict_to_json_keeps_the_saved_keys_and_has_no_action() -> None:
    verdict = Verdict(
        inbound_score=7,
        outbound_score=1,
        scores={"sqli": 7},
        matches=[MATCH],
        paranoia=2,
        inbound_threshold=5,
        outbound_threshold=4,
        inbound_blocked=True,
        reason="inbound score 7 >= threshold 5",
    )
    data = verdict.to_json()
    assert data == {
        "score": 7,
        "inbound_score": 7,
        "outbound_score": 1,
        "scores": {"sqli": 7},
        "matches": [MATCH.to_json()],
        "paranoia": 2,
        "inbound_threshold": 5,
        "outbound_threshold": 4,
        "blocked": True,
        "inbound_blocked": True,
        "outbound_blocked": False,
        "reason": "inbound score 7 >= threshold 5",
    }
    assert json.loads(json.dumps(data)) == data
    assert not hasattr(verdict, "action")


def test_inbound_blocked_without_uses_the_verdicts_own_threshold() -> None:
    tagged = Match(
        945110, "revoked", 1, "session", "critical", 5, 1, "SESSION:state", "x", tags=("session-state",)
    )
    verdict = Verdict(matches=[tagged, MATCH], inbound_threshold=5)
    assert verdict.inbound_blocked_without("session-state")  # 5 from 942100 alone
    verdict.inbound_threshold = 6
    assert not verdict.inbound_blocked_without("session-state")
    assert verdict.inbound_blocked_without("other")  # 10 >= 6
