"""The forced logout: upstream, the logout request and its rewrite, sending and probing over real HTTP, the outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy.test import tflow, tutils

from logoutguard.exchange import Exchange
from logoutguard.flow_bridge import read_request
from logoutguard.forced_logout import (
    LOGOUT_USER_AGENT,
    Delivery,
    LogoutOutcome,
    Probe,
    Upstream,
    answer_client,
    build_logout_request,
    configured_upstream,
    confirms_logout,
    force_logout,
    parse_upstream,
    probe_session,
    rewrite_to_logout,
    send_logout,
    status_ok,
)
from logoutguard.judge import Judgement, Situation
from logoutguard.policy import (
    Action,
    ClientAnswer,
    ClientResponse,
    LogoutMode,
    TemplateValueError,
    parse_policy,
)
from logoutguard.sessions.cookies import SessionCookieMatcher
from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.health import StoreHealth
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.tracker import SessionTracker
from procs import free_port, start_backend

POLICY = parse_policy(
    {
        "session": {"cookies": ["JSESSIONID"], "csrf_cookie": "csrftoken"},
        "logout": {
            "method": "POST",
            "path": "/logout?from=guard",
            "body": "csrf={csrf}",
            "headers": {"X-Why": "forced"},
        },
    }
)
UPSTREAM = Upstream("http", "127.0.0.1", 8080)


def attack_flow(cookie: str = "JSESSIONID=S1; csrftoken=T1; theme=dark") -> tflow.HTTPFlow:
    request = tutils.treq(method=b"GET", path=b"/search?q=<script>", content=b"")
    request.headers.clear()
    request.headers.update(
        {"Host": "evil.test", "Cookie": cookie, "Authorization": "Basic Z3Vlc3Q=", "User-Agent": "attack/1"}
    )
    return tflow.tflow(req=request)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("reverse:http://127.0.0.1:8080", Upstream("http", "127.0.0.1", 8080)),
        ("reverse:https://app.test", Upstream("https", "app.test", 443)),
        ("regular", None),
        ("not a mode", None),
    ],
)
def test_parse_upstream(spec: str, expected: Upstream | None) -> None:
    assert parse_upstream(spec) == expected


def test_configured_upstream_prefers_the_option_then_the_first_reverse_mode() -> None:
    modes = ["regular", "reverse:http://127.0.0.1:9000", "reverse:http://127.0.0.1:9001"]
    assert configured_upstream("", modes) == Upstream("http", "127.0.0.1", 9000)
    assert configured_upstream("http://app.test:81", modes) == Upstream("http", "app.test", 81)
    assert configured_upstream("", ["regular"]) is None
    assert Upstream("https", "a", 443).url("/x") == "https://a/x"
    assert Upstream("http", "a", 8080).authority == "a:8080"


def test_the_logout_request_comes_from_the_policy_with_only_the_session_credentials() -> None:
    flow = attack_flow()
    logout = build_logout_request(POLICY, flow.request, {"JSESSIONID": "S1"}, UPSTREAM)
    assert (logout.method, logout.path, logout.body) == ("POST", "/logout?from=guard", b"csrf=T1")
    assert dict(logout.headers) == {
        "Host": "127.0.0.1:8080",
        "User-Agent": LOGOUT_USER_AGENT,
        "Cookie": "JSESSIONID=S1; csrftoken=T1",
        "Authorization": "Basic Z3Vlc3Q=",
        "X-Why": "forced",
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": "7",
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
    assert r.headers.get_all("host") == ["127.0.0.1:8080"] and r.content == b"csrf=T1"


def test_a_value_that_would_inject_is_refused() -> None:
    with pytest.raises(TemplateValueError, match="CR, LF or NUL"):
        build_logout_request(POLICY, attack_flow("JSESSIONID=S1; csrftoken=T1\r\nX: 1").request, {}, UPSTREAM)


@pytest.mark.parametrize(
    ("status", "expect", "ok"),
    [(200, (), True), (499, (), True), (500, (), False), (302, (302,), True), (200, (302,), False)],
)
def test_status_ok(status: int, expect: tuple[int, ...], ok: bool) -> None:
    policy = parse_policy({"logout": {"expect_status": list(expect)}} if expect else {})
    assert status_ok(status, policy.logout) is ok


@pytest.mark.parametrize(
    ("set_cookies", "confirmed"),
    [
        (["JSESSIONID=NEW; Path=/"], True),
        (["JSESSIONID=; Max-Age=0"], True),
        (["JSESSIONID=S1; Path=/"], False),  # the same ID again
        (["other=1"], False),
        ([], False),
    ],
)
def test_confirms_logout(set_cookies: list[str], confirmed: bool) -> None:
    assert confirms_logout(set_cookies, {"JSESSIONID": "S1"}) is confirmed


async def test_send_and_probe_over_real_http() -> None:
    app = start_backend()
    app.response_headers = [("Set-Cookie", "JSESSIONID=NEW; Path=/")]
    try:
        upstream = Upstream("http", "127.0.0.1", app.port)
        logout = build_logout_request(POLICY, attack_flow().request, {"JSESSIONID": "S1"}, upstream)
        delivery = await send_logout(logout, upstream, 5)
        assert (delivery.status, delivery.error, delivery.set_cookies) == (
            200,
            "",
            ["JSESSIONID=NEW; Path=/"],
        )
        assert delivery.body == app.response_body and delivery.elapsed_ms > 0
        [got] = app.received
        assert (got.method, got.path, got.body) == ("POST", "/logout?from=guard", b"csrf=T1")
        verify = {"check_path": "/account"}
        alive = parse_policy({"logout": {"verify": verify}})
        assert await probe_session(upstream, alive, "JSESSIONID=S1") == (Probe.ALIVE, "")
        dead = parse_policy({"logout": {"verify": {**verify, "alive_status": [204]}}})
        assert await probe_session(upstream, dead, "JSESSIONID=S1") == (Probe.DEAD, "")
        wrong_body = parse_policy({"logout": {"verify": {**verify, "alive_body": "Welcome"}}})
        assert await probe_session(upstream, wrong_body, "JSESSIONID=S1") == (Probe.DEAD, "")
        assert await probe_session(upstream, POLICY, "JSESSIONID=S1") == (Probe.NOT_RUN, "")
        assert (
            app.received[-1].path == "/account"
            and dict(app.received[-1].headers)["Cookie"] == "JSESSIONID=S1"
        )
    finally:
        app.stop()


async def test_nothing_listening_is_an_error_not_an_exception() -> None:
    upstream = Upstream("http", "127.0.0.1", free_port())
    logout = build_logout_request(POLICY, attack_flow().request, {"JSESSIONID": "S1"}, upstream)
    delivery = await send_logout(logout, upstream, 2)
    assert delivery.status is None and delivery.error
    probe, why = await probe_session(
        upstream, parse_policy({"logout": {"verify": {"check_path": "/a"}}}), "s=1"
    )
    assert probe is Probe.FAILED and why


@pytest.mark.parametrize(
    ("client", "delivery", "status", "location"),
    [
        (
            ClientResponse(ClientAnswer.REDIRECT, location="/bye"),
            Delivery(200, set_cookies=["sid=new"]),
            302,
            "/bye",
        ),
        (
            ClientResponse(ClientAnswer.STATUS, status=401, body="gone"),
            Delivery(200, set_cookies=["sid=new"]),
            401,
            None,
        ),
        (
            ClientResponse(),
            Delivery(200, headers=[("X-App", "1"), ("Connection", "close")], body=b"bye", set_cookies=[]),
            200,
            None,
        ),
        (ClientResponse(), Delivery(None, error="refused"), 502, None),
    ],
)
def test_answer_client(client: ClientResponse, delivery: Delivery, status: int, location: str | None) -> None:
    flow = attack_flow()
    answer_client(flow, client, delivery)
    assert flow.response is not None and flow.response.status_code == status
    assert flow.response.headers.get("Location") == location
    if delivery.set_cookies:
        assert flow.response.headers.get_all("Set-Cookie") == delivery.set_cookies
    if client.type is ClientAnswer.APPLICATION and delivery.status is not None:
        assert flow.response.content == b"bye" and flow.response.headers["X-App"] == "1"
        assert "Connection" not in flow.response.headers


def test_outcome_json_keeps_todays_keys_and_reads_back() -> None:
    not_sent = LogoutOutcome(LogoutMode.REWRITE, ["h1"], error="logout request not sent: x")
    assert not_sent.to_json() == {
        "mode": "rewrite",
        "revoked": ["h1"],
        "ok": False,
        "error": "logout request not sent: x",
    }
    assert not not_sent.sent and not_sent.session_dead is None and not not_sent.defective_app_logout
    sent = LogoutOutcome(
        LogoutMode.OUT_OF_BAND,
        ["h1"],
        locked_out="203.0.113.0/24",
        method="POST",
        path="/logout",
        delivery=Delivery(200, elapsed_ms=12.345),
        ok=True,
        confirmed=True,
        probe=Probe.ALIVE,
    )
    data = sent.to_json()
    assert list(data) == [
        "mode", "revoked", "locked_out", "method", "path", "sent", "status", "ok", "error", "confirmed", "probe", "elapsed_ms",
    ]  # fmt: skip
    assert (data["sent"], data["status"], data["probe"], data["elapsed_ms"]) == (True, 200, "alive", 12.3)
    assert sent.defective_app_logout and sent.session_dead is False
    assert LogoutOutcome.from_json(json.loads(json.dumps(data))).to_json() == data
    failed = LogoutOutcome(
        LogoutMode.REWRITE, [], method="GET", path="/logout", probe=Probe.FAILED, probe_error="TimeoutError"
    )
    assert failed.to_json()["probe"] == "failed: TimeoutError"
    assert LogoutOutcome.from_json(failed.to_json()).probe_error == "TimeoutError"


async def test_force_logout_revokes_first_then_sends_and_answers(tmp_path: Path) -> None:
    app = start_backend()
    app.response_headers = [("Set-Cookie", "JSESSIONID=NEW; Path=/")]
    policy = parse_policy(
        {
            "session": {"cookies": ["JSESSIONID"], "csrf_cookie": "csrftoken"},
            "logout": {
                "method": "POST",
                "body": "csrf={csrf}",
                "client_response": {"type": "redirect", "location": "/in"},
            },
            "lockout": {"enabled": True, "duration": 60},
        }
    )
    matcher = SessionCookieMatcher(None, ("JSESSIONID",))
    tracker = SessionTracker(MemoryStore(), SessionHasher(b"k" * 32), matcher, 0, 0)
    try:
        flow = attack_flow()
        flow.client_conn.peername = ("203.0.113.9", 5000)
        seen = read_request(flow, matcher, 1024)
        judgement = Judgement(Situation.AUTHENTICATED_OVER_THRESHOLD, Action.LOGOUT)
        upstream = Upstream("http", "127.0.0.1", app.port)
        outcome = await force_logout(
            Exchange(flow, seen, judgement, tracker), policy, upstream, StoreHealth()
        )
        revoked = tracker.hasher.hash("S1")
        assert outcome.revoked == [revoked] and await tracker.store.is_revoked(revoked)
        assert outcome.locked_out == "203.0.113.0/24" and await tracker.is_locked_out("203.0.113.7", seen.at)
        assert (outcome.sent, outcome.status, outcome.ok, outcome.confirmed) == (True, 200, True, True)
        assert outcome.original_request is None and flow.request.path == "/search?q=<script>"  # kept as sent
        assert outcome.request is not None and (outcome.request.path, outcome.request.body) == ("/logout", b"csrf=T1")
        [got] = app.received
        assert (got.method, got.path, got.body) == ("POST", "/logout", b"csrf=T1")
        assert flow.response.status_code == 302 and flow.response.headers["Location"] == "/in"
        # the application's new cookie was learned: the new ID is an active session
        new = await tracker.store.get(tracker.hasher.hash("NEW"))
        assert new is not None and str(new.state) == "active"
    finally:
        app.stop()


async def test_force_logout_without_an_upstream_denies_and_keeps_the_revocation() -> None:
    matcher = SessionCookieMatcher(None, ("JSESSIONID",))
    tracker = SessionTracker(MemoryStore(), SessionHasher(b"k" * 32), matcher, 0, 0)
    flow = attack_flow()
    seen = read_request(flow, matcher, 1024)
    judgement = Judgement(Situation.CUMULATIVE_THRESHOLD, Action.LOGOUT)
    outcome = await force_logout(Exchange(flow, seen, judgement, tracker), POLICY, None, StoreHealth())
    assert not outcome.sent and "no reverse-proxy upstream" in outcome.error
    assert flow.response.status_code == 403 and flow.request.path == "/search?q=<script>"
    assert await tracker.store.is_revoked(tracker.hasher.hash("S1"))
