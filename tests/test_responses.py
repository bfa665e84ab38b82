"""Responses: the small flow changes (deny, redirect, drop, page, relay, strip cookies)."""

from __future__ import annotations

from mitmproxy.test import tflow, tutils

from logoutguard.responses import (
    add_set_cookies,
    deny,
    drop,
    page,
    redirect,
    relay,
    signed_out,
    strip_cookies,
    strip_identifiers,
)
from logoutguard.sessions.identifiers import IdKind, SessionId


def test_deny_says_nothing_about_why() -> None:
    flow = tflow.tflow(req=tutils.treq(path=b"/?q=<script>"))
    deny(flow, 418)
    assert flow.response.status_code == 418 and b"<script>" not in flow.response.content
    assert flow.response.headers["Cache-Control"] == "no-store"


def test_redirect_keeps_the_set_cookies() -> None:
    flow = tflow.tflow()
    redirect(flow, "/login", ["sid=new; Path=/", "csrftoken=1"])
    r = flow.response
    assert (r.status_code, r.headers["Location"], r.content) == (302, "/login", b"")
    assert r.headers.get_all("Set-Cookie") == ["sid=new; Path=/", "csrftoken=1"]


def test_drop_kills_a_live_flow_and_answers_one_that_cannot_be_killed() -> None:
    live = tflow.tflow(live=True)
    drop(live)
    assert live.error is not None and live.response is None
    saved = tflow.tflow(live=False)
    drop(saved)
    assert saved.response is not None and saved.response.status_code == 403


def test_page_and_relay() -> None:
    flow = tflow.tflow()
    page(flow, 401, "<p>signed out</p>", ["sid=; Max-Age=0"])
    assert flow.response.status_code == 401 and flow.response.text == "<p>signed out</p>"
    assert flow.response.headers["Set-Cookie"] == "sid=; Max-Age=0"
    relay(flow, 200, [("X-App", "1"), ("Transfer-Encoding", "chunked"), ("Connection", "close")], b"bye")
    headers = flow.response.headers
    assert flow.response.content == b"bye" and headers["Content-Length"] == "3" and headers["X-App"] == "1"
    assert "Transfer-Encoding" not in headers and "Connection" not in headers


def test_strip_cookies() -> None:
    request = tutils.treq()
    request.headers["Cookie"] = "sid=a; theme=dark; sid=b"
    assert strip_cookies(request, {"sid"}) == 2 and request.headers["Cookie"] == "theme=dark"
    assert strip_cookies(request, {"theme"}) == 1 and "Cookie" not in request.headers
    assert strip_cookies(request, {"sid"}) == 0


def test_strip_identifiers_takes_only_the_refused_name_and_value_pairs() -> None:
    request = tutils.treq(path=b"/a;jsessionid=OLD;v=1?x=1")
    request.headers["Cookie"] = "JSESSIONID=OLD; theme=dark"
    request.headers.add("Cookie", "JSESSIONID=FRESH")
    refused = [
        SessionId(IdKind.COOKIE, "JSESSIONID", "OLD", "JSESSIONID"),
        SessionId(IdKind.PATH, "jsessionid", "OLD", "JSESSIONID"),
    ]
    assert strip_identifiers(request, refused) == 2
    assert request.headers.get_all("Cookie") == ["theme=dark; JSESSIONID=FRESH"]
    assert request.path == "/a;v=1?x=1"
    assert strip_identifiers(request, refused) == 0


def test_signed_out_links_to_the_login_page_and_deletes_cookies() -> None:
    flow = tflow.tflow()
    signed_out(flow, 403, '/login?next="x"', ["sid=; Max-Age=0; Path=/"])
    r = flow.response
    assert r.status_code == 403 and b'href="/login?next=&quot;x&quot;"' in r.content
    assert r.headers["Set-Cookie"] == "sid=; Max-Age=0; Path=/" and r.headers["Cache-Control"] == "no-store"


def test_add_set_cookies_leaves_the_applications_own_cookie() -> None:
    response = tutils.tresp()
    response.headers["Set-Cookie"] = "sid=NEW; Path=/"
    add_set_cookies(response, ["sid=; Max-Age=0; Path=/", "remember_token=; Max-Age=0; Path=/"])
    assert response.headers.get_all("Set-Cookie") == ["sid=NEW; Path=/", "remember_token=; Max-Age=0; Path=/"]
