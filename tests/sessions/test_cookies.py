"""Tests for sessions/cookies.py: Set-Cookie parsing and events, the session cookie matcher, request IDs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logoutguard.sessions.cookies import (
    CookieEvent,
    CookieScope,
    SessionCookieMatcher,
    SetCookie,
    expiring_set_cookie,
    parse_http_date,
    parse_max_age,
    parse_set_cookie,
    request_session_ids,
    session_cookie_events,
)

NOW = 1_700_000_000.0  # 2023-11-14
MATCHER = SessionCookieMatcher()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("sid=abc", SetCookie("sid", "abc")),
        ("sid=abc; Path=/; HttpOnly", SetCookie("sid", "abc", (("path", "/"), ("httponly", "")))),
        ("  sid  =  abc  ;  path = /app ", SetCookie("sid", "abc", (("path", "/app"),))),
        ('sid="abc def"; Secure', SetCookie("sid", '"abc def"', (("secure", ""),))),
        ("sid=a=b==; Max-Age=60", SetCookie("sid", "a=b==", (("max-age", "60"),))),
        ("sid=x, y; Path=/", SetCookie("sid", "x, y", (("path", "/"),))),  # no split at commas
        ("sid=; Max-Age=0", SetCookie("sid", "", (("max-age", "0"),))),
        ("sid=abc;;; ;Path=/", SetCookie("sid", "abc", (("path", "/"),))),
        ("abc", SetCookie("", "abc")),  # RFC 6265bis: no '=' is a nameless value
        ("", None),
        ("   ", None),
        (";;", None),
        ("=; Path=/", None),
    ],
)
def test_parse_set_cookie(header: str, expected: SetCookie | None) -> None:
    assert parse_set_cookie(header) == expected


def test_last_attribute_wins() -> None:
    cookie = parse_set_cookie("sid=1; Max-Age=0; max-age=60")
    assert cookie is not None and cookie.attribute("max-age") == "60"
    assert cookie.attribute("expires") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("60", 60), ("-1", -1), ("", None), ("-", None), ("1.5", None), ("abc", None), ("٣", None)],
)
def test_parse_max_age(text: str, expected: int | None) -> None:
    assert parse_max_age(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0),
        ("Wed, 21-Oct-2015 07:28:00 GMT", 1445412480.0),  # Netscape style
        ("Wed Oct 21 07:28:00 2015", 1445412480.0),  # asctime, no zone: UTC
        ("not a date", None),
        ("", None),
    ],
)
def test_parse_http_date(text: str, expected: float | None) -> None:
    assert parse_http_date(text) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["PHPSESSID=abc123; path=/"], [CookieEvent("issued", "PHPSESSID", "abc123", "issued")]),
        (
            ["lang=de", "JSESSIONID=j1; Path=/; HttpOnly", "theme=dark; Max-Age=0", "sid=s1"],
            [
                CookieEvent("issued", "JSESSIONID", "j1", "issued"),
                CookieEvent("issued", "sid", "s1", "issued"),
            ],
        ),
        (["sid=deleted; Max-Age=0"], [CookieEvent("ended", "sid", "deleted", "max-age=0")]),
        (["sid=x; Max-Age=-5"], [CookieEvent("ended", "sid", "x", "max-age=-5")]),
        (
            ["sid=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"],
            [CookieEvent("ended", "sid", "x", "expires in the past")],
        ),
        (["sid=x; Expires=Fri, 01 Jan 2100 00:00:00 GMT"], [CookieEvent("issued", "sid", "x", "issued")]),
        # Max-Age wins over Expires, whichever comes first
        (
            ["sid=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=3600"],
            [CookieEvent("issued", "sid", "x", "issued")],
        ),
        (
            ["sid=x; Max-Age=0; Expires=Fri, 01 Jan 2100 00:00:00 GMT"],
            [CookieEvent("ended", "sid", "x", "max-age=0")],
        ),
        # a malformed Max-Age is ignored, so Expires decides
        (
            ["sid=x; Max-Age=soon; Expires=Thu, 01 Jan 1970 00:00:00 GMT"],
            [CookieEvent("ended", "sid", "x", "expires in the past")],
        ),
        (["sid=x; Expires=garbage"], [CookieEvent("issued", "sid", "x", "issued")]),
        (["sid=; Path=/"], [CookieEvent("ended", "sid", None, "empty value")]),
        (['sid=""'], [CookieEvent("ended", "sid", None, "empty value")]),
        (["  sid =  v1 ;Path=/;  Max-Age = 0 "], [CookieEvent("ended", "sid", "v1", "max-age=0")]),
        # a new ID after the old one is deleted (login rotation)
        (
            ["sid=; Max-Age=0", "sid=new"],
            [CookieEvent("ended", "sid", None, "max-age=0"), CookieEvent("issued", "sid", "new", "issued")],
        ),
        (["", ";;;", "=", "garbage", "\x00\xff=\x01", "lang=en"], []),
    ],
)
def test_session_cookie_events(headers: list[str], expected: list[CookieEvent]) -> None:
    assert session_cookie_events(headers, NOW, MATCHER) == expected


@given(st.lists(st.text(max_size=60), max_size=4))
def test_garbage_never_raises(headers: list[str]) -> None:
    events = session_cookie_events(headers, NOW, MATCHER)
    assert all(event.kind in ("issued", "ended") for event in events)


@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=6))
def test_session_ids_are_unique_non_empty_session_cookies(cookies: list[tuple[str, str]]) -> None:
    ids = request_session_ids(cookies, MATCHER)
    assert len(ids) == len(set(ids)) and all(value and MATCHER.matches(name) for name, value in ids)
    assert ids == list(dict.fromkeys(p for p in cookies if p[1] and MATCHER.matches(p[0])))  # in order


@pytest.mark.parametrize(
    "name",
    [
        "JSESSIONID",
        "jsessionid",
        "PHPSESSID",
        "ASPSESSIONIDQQGGQGPC",
        "ASP.NET_SessionId",
        ".AspNetCore.Session",
        "session_id",
        "session-id",
        "sessionid",
        "SessionID",
        "session",
        "sid",
        "connect.sid",
        "laravel_session",
        "ci_session",
        "_session",
        "_myapp_session",
        "CFID",
        "CFTOKEN",
        "__Host-sid",
        "__Secure-session",
    ],
)
def test_default_matcher_matches(name: str) -> None:
    assert MATCHER.matches(name)


@pytest.mark.parametrize(
    "name", ["lang", "csrftoken", "sidebar", "session_lang", "mysid", "JSESSIONID2", "remember_token", ""]
)
def test_default_matcher_rejects(name: str) -> None:
    assert not MATCHER.matches(name)


@pytest.mark.parametrize(
    ("pattern", "names", "name", "expected"),
    [
        (None, ["auth"], "auth", True),  # policy names on top of the default pattern
        (None, ["auth"], "AUTH", False),  # policy names are exact
        (None, ["auth"], "sid", True),
        ("", ["auth"], "sid", False),  # "" turns the pattern off
        ("", ["auth"], "auth", True),
        (r"^tok_\d+$", [], "TOK_12", True),  # custom pattern, case-insensitive
        (r"^tok_\d+$", [], "sid", False),
    ],
)
def test_matcher_configuration(pattern: str | None, names: list[str], name: str, expected: bool) -> None:
    assert SessionCookieMatcher(pattern, names).matches(name) is expected


def test_bad_pattern_names_itself() -> None:
    with pytest.raises(ValueError, match=r"session cookie pattern '\(unclosed'"):
        SessionCookieMatcher("(unclosed")


@pytest.mark.parametrize(
    ("cookies", "expected"),
    [
        ([], []),
        ([("lang", "en"), ("theme", "dark")], []),
        ([("sid", "abc"), ("lang", "en")], [("sid", "abc")]),
        ([("sid", "abc"), ("JSESSIONID", "j1")], [("sid", "abc"), ("JSESSIONID", "j1")]),
        ([("sid", "a"), ("sid", "b"), ("sid", "a")], [("sid", "a"), ("sid", "b")]),  # cookie tossing
        ([("sid", '"quoted"')], [("sid", '"quoted"')]),  # as the browser sends what it was given
        ([("sid", ""), ("lang", "en")], []),  # an empty value is no session
    ],
)
def test_request_session_ids(cookies: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    assert request_session_ids(cookies, MATCHER) == expected


@pytest.mark.parametrize(
    ("header", "scope"),
    [
        ("sid=1", CookieScope("/", "", False)),
        ("sid=1; Path=/app; Domain=.Example.test; Secure", CookieScope("/app", "Example.test", True)),
        ("sid=1; path=relative", CookieScope("/", "", False)),  # not a path: the default one
        ("__Host-sid=1; Path=/", CookieScope("/", "", True)),
    ],
)
def test_cookie_scope_of_a_set_cookie(header: str, scope: CookieScope) -> None:
    cookie = parse_set_cookie(header)
    assert cookie is not None and CookieScope.of(cookie) == scope


def test_expiring_set_cookie_repeats_the_scope() -> None:
    assert expiring_set_cookie("sid", CookieScope("/app", "example.test", True)) == (
        "sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app; Domain=example.test; Secure"
    )
    assert (
        expiring_set_cookie("sid", CookieScope())
        == "sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"
    )
