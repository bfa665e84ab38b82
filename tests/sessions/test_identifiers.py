"""Session identifiers of a request: cookies, remember-me cookies, path parameters, bearer and Basic credentials;
removing refused ones from a path; redacting them from text."""

from __future__ import annotations

import random

import pytest

from logoutguard.sessions import identifiers
from logoutguard.sessions.cookies import SessionCookieMatcher
from logoutguard.sessions.identifiers import (
    REDACTED,
    IdentifierRules,
    IdKind,
    SessionId,
    path_parameters,
    redact_path,
    redact_values,
    request_identifiers,
    without_path_parameters,
)

RULES = IdentifierRules()
NO_CREDENTIALS = IdentifierRules(path_parameters={}, bearer=False, basic=False)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("JSESSIONID", IdKind.COOKIE),
        ("sessionid", IdKind.COOKIE),
        ("connect.sid", IdKind.COOKIE),
        ("remember_token", IdKind.REMEMBER),  # Flask-Login
        ("remember_user_token", IdKind.REMEMBER),  # Devise
        ("remember_web_59ba36addc2b2f9401580f014c7f58ea4e30989d", IdKind.REMEMBER),  # Laravel
        ("remember-me", IdKind.REMEMBER),  # Spring Security
        ("rememberMe", IdKind.REMEMBER),  # Shiro
        ("__Host-remember_me", IdKind.REMEMBER),
        ("csrftoken", None),
        ("remembered_theme", None),
        ("theme", None),
    ],
)
def test_cookie_kinds(name: str, kind: IdKind | None) -> None:
    assert RULES.cookie_kind(name) is kind


def test_path_parameters() -> None:
    assert path_parameters("/a;jsessionid=X1/b;v=2;JSESSIONID=Y?q=;jsessionid=Z") == [
        ("jsessionid", "X1"),
        ("v", "2"),
        ("JSESSIONID", "Y"),
    ]
    assert path_parameters("/plain") == [] and path_parameters("/a;flag") == []


def test_request_identifiers_in_order_without_duplicates() -> None:
    found = request_identifiers(
        [("JSESSIONID", "C"), ("theme", "dark"), ("JSESSIONID", "C"), ("remember_token", "R"), ("sid", "")],
        "/x;jsessionid=P;jsessionid=[redacted]",
        "Bearer  T1 ",
        RULES,
    )
    assert found == [
        SessionId(IdKind.COOKIE, "JSESSIONID", "C", "JSESSIONID"),
        SessionId(IdKind.REMEMBER, "remember_token", "R", "remember_token"),
        SessionId(IdKind.PATH, "jsessionid", "P", "JSESSIONID"),
        SessionId(IdKind.BEARER, "authorization", "T1"),
    ]
    basic = request_identifiers([], "/", "Basic Z3Vlc3Q6Z3Vlc3Q=", RULES)
    assert basic == [SessionId(IdKind.BASIC, "authorization", "Z3Vlc3Q6Z3Vlc3Q=")]
    assert request_identifiers([], "/x;jsessionid=P", "Bearer T", NO_CREDENTIALS) == []
    assert (
        request_identifiers([], "/", "Digest x", RULES) == []
        and request_identifiers([], "/", "Bearer ", RULES) == []
    )


def test_policy_names_and_patterns() -> None:
    rules = IdentifierRules(
        sessions=SessionCookieMatcher("", ("app_sid",)),
        remember=SessionCookieMatcher("", ("keep",)),
        path_parameters={"sid": "app_sid"},
    )
    assert rules.cookie_kind("app_sid") is IdKind.COOKIE and rules.cookie_kind("keep") is IdKind.REMEMBER
    assert rules.cookie_kind("JSESSIONID") is None and rules.parameter_cookie("SID") == "app_sid"


def test_without_path_parameters_takes_only_the_refused() -> None:
    refused = [SessionId(IdKind.PATH, "jsessionid", "OLD", "JSESSIONID")]
    assert (
        without_path_parameters("/a;jsessionid=OLD;v=1/b?x=;jsessionid=OLD", refused)
        == "/a;v=1/b?x=;jsessionid=OLD"
    )
    assert without_path_parameters("/a;jsessionid=NEW", refused) == "/a;jsessionid=NEW"
    assert without_path_parameters("/a;jsessionid=OLD", []) == "/a;jsessionid=OLD"


def test_redaction() -> None:
    assert (
        redact_path("/a;jsessionid=SECRET;v=1?q=;jsessionid=keep", RULES)
        == f"/a;jsessionid={REDACTED};v=1?q=;jsessionid=keep"
    )
    sid = [SessionId(IdKind.COOKIE, "sid", "SECRET-VALUE-123", "sid")]
    assert redact_values("x SECRET-VALUE-123 y", sid) == f"x {REDACTED} y"
    assert redact_values("/a;jsessionid=SECRET-VA", sid) == f"/a;jsessionid={REDACTED}"  # a cut-off excerpt
    assert redact_values("nothing here", sid) == "nothing here"
    assert redact_values("ab", [SessionId(IdKind.COOKIE, "sid", "ab", "sid")]) == "ab"  # too short to be one
    longer = [SessionId(IdKind.COOKIE, "sid", "abcdXYZW1234", "sid")]
    # the first start of the ID in the text's tail is not its end; the next one is
    assert redact_values("abcdQabcdX", longer) == f"abcdQ{REDACTED}"
    assert redact_values("x abcdXYZW", longer) == f"x {REDACTED}"
    assert redact_values("x abc", longer) == "x abc"


def _redact_values_by_every_length(text: str, identifiers: list[SessionId]) -> str:
    """redact_values as it was written first (an endswith for every length of a cut-off ID)."""
    for sid in identifiers:
        if len(sid.value) >= 4 and sid.value in text:
            text = text.replace(sid.value, REDACTED)
    for sid in identifiers:
        for keep in range(min(len(sid.value) - 1, len(text)), 3, -1):
            if text.endswith(sid.value[:keep]):
                text = text[: len(text) - keep] + REDACTED
                break
    return text


def test_redaction_is_what_a_search_by_every_length_gives() -> None:
    rng = random.Random(12)
    for alphabet in ("ab", "abc;=", "acted]", "[redacted]x") * 2000:
        identifiers = [
            SessionId(IdKind.COOKIE, "s", "".join(rng.choices(alphabet, k=rng.randint(0, 12))), "s")
            for _ in range(rng.randint(1, 3))
        ]
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 24)))
        assert redact_values(text, identifiers) == _redact_values_by_every_length(text, identifiers)


def test_cookie_kinds_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identifiers, "COOKIE_KINDS", 2)
    rules = IdentifierRules(sessions=SessionCookieMatcher(names=["sid"]))
    names = ["sid", "remember_token", "theme", "sid", "lang", "remember_token"]
    kinds = [IdKind.COOKIE, IdKind.REMEMBER, None, IdKind.COOKIE, None, IdKind.REMEMBER]
    for _ in range(2):
        assert [rules.cookie_kind(name) for name in names] == kinds
        assert len(rules._kinds) <= 2
    assert rules == IdentifierRules(sessions=rules.sessions, remember=rules.remember)  # memo not compared
