"""The logout recipe: the jar, token taking from every kind of source, the steps over real HTTP, the logout request."""

from __future__ import annotations

import time

import pytest
from mitmproxy.test import tflow, tutils

from logoutguard.logout_recipe import (
    CookieJar,
    build_logout_request,
    form_field,
    json_field,
    meta_content,
    rewrite_to_logout,
    run_steps,
    safe_cookie_pair,
    take_token,
)
from logoutguard.policy import SourceKind, Step, TemplateValueError, TokenSource, parse_policy
from logoutguard.upstream_http import USER_AGENT, Delivery, Upstream
from procs import free_port, start_backend

PAGE = b"""<!doctype html><html><head><meta name="csrf-token" content="META-TOK">
<meta name="CSRF-Param" content="authenticity_token"></head><body>
<form action="/search"><input name="csrf" value="SEARCH-TOK"><input name="q"></form>
<form method="post" action="/accounts/logout/;jsessionid=ABC">
  <input type="hidden" name="csrfmiddlewaretoken" value="a&amp;b">
  <button name="go" value="1">Log out</button>
</form>
<input name="loose" value="L"></body></html>"""


@pytest.mark.parametrize(
    ("name", "action", "expected"),
    [
        ("csrfmiddlewaretoken", "/accounts/logout/", "a&b"),  # entities decoded, ;jsessionid= ignored
        ("csrfmiddlewaretoken", None, "a&b"),
        ("csrf", None, "SEARCH-TOK"),  # the first form that has it
        ("csrf", "/accounts/logout/", None),  # not in the logout form
        ("go", "/accounts/logout/", "1"),
        ("loose", None, "L"),  # outside any form
        ("loose", "/search", None),
        ("missing", None, None),
    ],
)
def test_form_field(name: str, action: str | None, expected: str | None) -> None:
    assert form_field(PAGE, name, action) == expected


def test_meta_and_json_fields() -> None:
    assert (
        meta_content(PAGE, "csrf-token") == "META-TOK"
        and meta_content(PAGE, "csrf-param") == "authenticity_token"
    )
    assert meta_content(b"<p>no meta", "csrf-token") is None
    body = b'{"data": {"token": "J1", "n": 5, "ok": true, "items": [{"id": "x"}]}}'
    assert json_field(body, "data.token") == "J1" and json_field(body, "data.n") == "5"
    assert json_field(body, "data.items.0.id") == "x"
    for path in ("data.ok", "data", "data.items.9.id", "nope"):
        assert json_field(body, path) is None
    assert json_field(b"not json", "a") is None and json_field(b"\xff\xfe", "a") is None


def test_take_token_from_every_kind_of_source() -> None:
    answer = Delivery(200, headers=[("X-CSRF-Token", "H1")], body=PAGE + b' var token = "R-9";')
    jar = CookieJar({"sessionid": "S"})
    jar.update(["csrftoken=C1; Path=/", "other=; Max-Age=0"])
    cases = {
        TokenSource(SourceKind.COOKIE, "csrftoken"): "C1",
        TokenSource(SourceKind.COOKIE, "sessionid"): None,  # a cookie the app did not set: not a token
        TokenSource(SourceKind.FORM_FIELD, "csrfmiddlewaretoken", "/accounts/logout/"): "a&b",
        TokenSource(SourceKind.META, "csrf-token"): "META-TOK",
        TokenSource(SourceKind.HEADER, "x-csrf-token"): "H1",
        TokenSource(SourceKind.HEADER, "x-none"): None,
        TokenSource(SourceKind.REGEX, r'token = "([^"]+)"'): "R-9",
        TokenSource(SourceKind.REGEX, r"nothing (here)"): None,
    }
    for source, expected in cases.items():
        assert take_token(source, answer, jar) == expected, source


def test_the_jar_follows_the_application_and_keeps_its_header_parseable() -> None:
    jar = CookieJar({"sessionid": "S1"})
    jar.update(["csrftoken=T1; Path=/", "sessionid=S2; HttpOnly", "gone=x", "gone=; Max-Age=0", "=bare"])
    assert jar.cookies == {"sessionid": "S2", "csrftoken": "T1"} and jar.set_by_app == {
        "csrftoken",
        "sessionid",
        "gone",
    }
    assert jar.header() == "sessionid=S2; csrftoken=T1"
    jar.cookies["bad"] = 'a"; injected=1'
    assert jar.header() == "sessionid=S2; csrftoken=T1" and jar.refused() == ["bad"]


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("sid", "abc-._~!#$%&'()*+/:<=>?@[]^`{|}", True),
        ("sid", '"quoted"', True),
        ("sid", "", True),
        ("sid", "s%3Aabc.sig", True),
        ("sid", "ab\udcffc", True),  # a non-UTF-8 byte as mitmproxy keeps it
        ("sid", 'a"b', False),
        ("sid", '"a"b"', False),
        ("sid", "a;b", False),
        ("sid", "a,b", False),
        ("sid", "a b", False),
        ("sid", "a\\b", False),
        ("sid", "a\x00", False),
        ("s id", "x", False),
        ("s;id", "x", False),
    ],
)
def test_safe_cookie_pair(name: str, value: str, ok: bool) -> None:
    assert safe_cookie_pair(name, value) is ok


async def test_steps_send_the_session_take_tokens_and_stay_within_the_deadline() -> None:
    app = start_backend()
    app.response_body = b'<form action="/logout"><input name="csrf" value="T-1"></form>'
    app.response_headers = [("Set-Cookie", "csrftoken=C-1; Path=/")]
    try:
        upstream = Upstream("http", "127.0.0.1", app.port)
        steps = [
            Step("/account", take=(("csrf", TokenSource(SourceKind.FORM_FIELD, "csrf", "/logout")),)),
            Step("/api", method="POST", take=(("cookie", TokenSource(SourceKind.COOKIE, "csrftoken")),)),
            Step("/other", expect_status=(204,), take=(("nope", TokenSource(SourceKind.META, "nope")),)),
        ]
        jar = CookieJar({"sid": "S1"})
        run = await run_steps(steps, upstream, jar, "Bearer X", time.monotonic() + 5)
        assert run.tokens == {"csrf": "T-1", "cookie": "C-1"}
        assert [s.to_json() for s in run.steps] == [
            {"method": "GET", "path": "/account", "status": 200, "took": ["csrf"]},
            {"method": "POST", "path": "/api", "status": 200, "took": ["cookie"]},
            {"method": "GET", "path": "/other", "status": 200, "missing": ["nope"]},
        ]
        assert run.problems == ["GET /other: answered 200; token nope not found"]
        first, second, _ = app.received
        assert (
            dict(first.headers)["Cookie"] == "sid=S1" and dict(first.headers)["Authorization"] == "Bearer X"
        )
        assert dict(first.headers)["User-Agent"] == USER_AGENT
        assert dict(second.headers)["Cookie"] == "sid=S1; csrftoken=C-1"  # what the app set, as a browser
        late = await run_steps(steps[:1], upstream, CookieJar({}), None, time.monotonic() - 1)
        assert late.steps[0].status is None and "no time left" in late.problems[0]
    finally:
        app.stop()


async def test_a_step_without_an_answer_misses_its_tokens() -> None:
    upstream = Upstream("http", "127.0.0.1", free_port())
    step = Step("/account", take=(("csrf", TokenSource(SourceKind.FORM_FIELD, "csrf")),))
    run = await run_steps([step], upstream, CookieJar({"sid": "S"}), None, time.monotonic() + 2)
    assert run.steps[0].status is None and run.steps[0].missing == ["csrf"] and "no answer" in run.problems[0]


POLICY = parse_policy(
    {
        "session": {"cookies": ["JSESSIONID"]},
        "logout": {
            "steps": [{"path": "/account", "take": {"csrf": {"form_field": "csrf"}}}],
            "method": "POST",
            "path": "/logout?from=guard",
            "body": "csrf={token:csrf}&c={cookie:csrftoken}&s={session_cookie}",
            "headers": {"X-Why": "forced", "X-Trace": "{header:X-Trace}"},
        },
    }
)
UPSTREAM = Upstream("http", "127.0.0.1", 8080)


def attack(cookie: str = "JSESSIONID=S1; csrftoken=ATTACKER; theme=dark") -> tflow.HTTPFlow:
    request = tutils.treq(method=b"GET", path=b"/search?q=<script>", content=b"")
    request.headers.clear()
    request.headers.update(
        {
            "Host": "evil.test",
            "Cookie": cookie,
            "Authorization": "Basic Z3Vlc3Q=",
            "X-Trace": "t1",
            "User-Agent": "x",
        }
    )
    return tflow.tflow(req=request)


def test_the_logout_request_has_the_apps_tokens_and_the_sessions_cookies_only() -> None:
    flow = attack()
    jar = CookieJar({"JSESSIONID": "S1"})
    jar.update(["csrftoken=FROM-APP"])
    logout = build_logout_request(POLICY, flow.request, jar, UPSTREAM, {"csrf": "T1"})
    assert (logout.method, logout.path) == ("POST", "/logout?from=guard")
    assert logout.body == b"csrf=T1&c=FROM-APP&s=JSESSIONID=S1; csrftoken=FROM-APP"
    assert dict(logout.headers) == {
        "Host": "127.0.0.1:8080",
        "User-Agent": USER_AGENT,
        "Cookie": "JSESSIONID=S1; csrftoken=FROM-APP",  # never the attacker's csrftoken or theme
        "Authorization": "Basic Z3Vlc3Q=",
        "X-Why": "forced",
        "X-Trace": "t1",
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(logout.body)),
    }
    rewrite_to_logout(flow, logout, UPSTREAM)
    r = flow.request
    assert (r.scheme, r.host, r.port, r.method, r.path) == (
        "http",
        "127.0.0.1",
        8080,
        "POST",
        "/logout?from=guard",
    )
    assert r.headers.get_all("host") == ["127.0.0.1:8080"] and r.content == logout.body


def test_a_missing_token_renders_empty_and_values_that_would_inject_are_refused() -> None:
    logout = build_logout_request(POLICY, attack().request, {"JSESSIONID": "S1"}, UPSTREAM)
    assert logout.body.startswith(b"csrf=&c=&s=JSESSIONID=S1")
    with pytest.raises(TemplateValueError, match="CR, LF or NUL"):
        build_logout_request(POLICY, attack().request, {"JSESSIONID": "S1"}, UPSTREAM, {"csrf": "a\r\nX: 1"})
    evil = attack()
    evil.request.headers["Authorization"] = "Basic a\x00b"
    with pytest.raises(TemplateValueError, match="CR, LF or NUL"):
        build_logout_request(POLICY, evil.request, {"JSESSIONID": "S1"}, UPSTREAM)
