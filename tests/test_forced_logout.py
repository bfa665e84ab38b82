"""The forced logout: revocation (with linked identifiers), the recipe against a real application, verification, the typed outcome.

The application is the demo app on a real HTTP server (its logout is CSRF-protected, and it can be
made defective); sessions are created in its own store and checked there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from mitmproxy.test import tflow, tutils

from logoutguard.demo.app import DemoApp
from logoutguard.exchange import Exchange
from logoutguard.flow_bridge import read_request
from logoutguard.forced_logout import (
    Delivery,
    LogoutOutcome,
    LogoutResult,
    Probe,
    Upstream,
    answer_client,
    conclude,
    configured_upstream,
    confirms_logout,
    force_logout,
    parse_upstream,
    probe_identity,
    session_jar,
)
from logoutguard.judge import Judgement, Situation
from logoutguard.logout_recipe import StepRecord
from logoutguard.policy import Action, ClientAnswer, ClientResponse, LogoutMode, Policy, parse_policy
from logoutguard.sessions.cookies import SessionCookieMatcher
from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.health import StoreHealth
from logoutguard.sessions.identifiers import IdentifierRules, IdKind, SessionId
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.tracker import SessionTracker
from procs import free_port

RULES = IdentifierRules(sessions=SessionCookieMatcher(None, ("JSESSIONID",)))
DEMO = {
    "session": {"cookies": ["JSESSIONID"]},
    "logout": {
        "steps": [{"path": "/account", "take": {"csrf": {"form_field": "csrf", "form_action": "/logout"}}}],
        "method": "POST",
        "path": "/logout",
        "body": "csrf={token:csrf}",
        "client_response": {"type": "redirect", "location": "/in"},
        "verify": {"check_path": "/account"},
    },
}


def policy(**changes: Any) -> Policy:
    data = json.loads(json.dumps(DEMO))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for key in path:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return parse_policy(data)


@pytest.fixture
def app() -> Iterator[DemoApp]:
    with DemoApp(port=0) as running:
        yield running


@pytest.fixture
def defective_app() -> Iterator[DemoApp]:
    with DemoApp(port=0, defective_logout=True) as running:
        yield running


def tracker() -> SessionTracker:
    return SessionTracker(MemoryStore(), SessionHasher(b"k" * 32), RULES, 0, 0)


def attack_flow(cookie: str, path: bytes = b"/search?q=<script>", **headers: str) -> tflow.HTTPFlow:
    request = tutils.treq(method=b"GET", path=path, content=b"")
    request.headers.clear()
    request.headers.update({"Host": "evil.test", "User-Agent": "attack/1", **headers})
    if cookie:
        request.headers["Cookie"] = cookie
    flow = tflow.tflow(req=request)
    flow.client_conn.peername = ("203.0.113.9", 5000)
    return flow


async def logout(
    flow: tflow.HTTPFlow, pol: Policy, upstream: Upstream | None, track: SessionTracker | None = None
) -> tuple[LogoutOutcome, SessionTracker]:
    track = track or tracker()
    seen = read_request(flow, RULES, 1024)
    judgement = Judgement(Situation.AUTHENTICATED_OVER_THRESHOLD, Action.LOGOUT)
    outcome = await force_logout(Exchange(flow, seen, judgement, track), pol, upstream, StoreHealth())
    return outcome, track


def upstream_of(app: DemoApp) -> Upstream:
    return Upstream("http", "127.0.0.1", app.port)


# -- upstream --------------------------------------------------------------------------------------
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


# -- against the real application -----------------------------------------------------------------
async def test_the_recipe_ends_the_session_without_the_attackers_csrf_cookie(app: DemoApp) -> None:
    """The attacker sends only the session cookie (and a garbled CSRF cookie): the token comes from
    the application's own page, the logout works, the probe finds the session dead."""
    sid, session = app.site.store.create("guest")
    flow = attack_flow(f"JSESSIONID={sid}; csrftoken=garbled; theme=dark")
    outcome, track = await logout(flow, policy(), upstream_of(app))
    assert not app.is_session_valid(sid)
    assert (outcome.result, outcome.ok, outcome.warning, outcome.probe) == (
        LogoutResult.ENDED,
        True,
        False,
        Probe.DEAD,
    )
    assert outcome.summary().startswith("forced logout: session ended at the application: POST /logout")
    assert outcome.accepted and outcome.status == 200 and outcome.cookie_replaced is True
    assert [s.to_json() for s in outcome.steps] == [
        {"method": "GET", "path": "/account", "status": 200, "took": ["csrf"]}
    ]
    # the logout as sent carries the app's token and the session cookie only; the attacker's request
    # stays as it was sent (the logout is shown as a flow of its own)
    sent = outcome.request
    assert sent is not None and (sent.method, sent.path) == ("POST", "/logout")
    assert sent.body == f"csrf={session.csrf}".encode()
    assert dict(sent.headers)["Cookie"] == f"JSESSIONID={sid}" and outcome.sent_at > 0
    assert flow.request.path == "/search?q=<script>"
    assert flow.request.headers["Cookie"] == f"JSESSIONID={sid}; csrftoken=garbled; theme=dark"
    assert flow.response.status_code == 302 and flow.response.headers["Location"] == "/in"
    assert outcome.revoked == [track.hasher.hash(sid)] and await track.store.is_revoked(outcome.revoked[0])
    assert "request=" not in repr(outcome) and sid not in json.dumps(outcome.to_json())  # never recorded
    assert "answered 200" in outcome.reason and "answers as without a session" in outcome.reason


async def test_a_defective_logout_is_reported_defective(
    defective_app: DemoApp, caplog: pytest.LogCaptureFixture
) -> None:
    sid, _ = defective_app.site.store.create("guest")
    caplog.set_level(logging.INFO, logger="logoutguard")
    outcome, track = await logout(attack_flow(f"JSESSIONID={sid}"), policy(), upstream_of(defective_app))
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith(
        "LogoutGuard: application logout defective: POST /logout answered 200"
    )
    assert sid not in caplog.text
    assert defective_app.is_session_valid(sid)  # the app's logout left it alive
    assert (outcome.result, outcome.warning, outcome.probe) == (LogoutResult.DEFECTIVE, True, Probe.ALIVE)
    assert "still alive at the application" in outcome.reason and "the proxy refuses it" in outcome.reason
    assert await track.store.is_revoked(track.hasher.hash(sid))


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"logout__steps": None, "logout__body": "csrf="}, 403, "not a status that means success"),
        ({"logout__path": "/log-out"}, 404, "answered 404"),
        ({"logout__expect_status": [302]}, 200, "not a status that means success (302)"),
    ],
    ids=["no token", "wrong path", "unexpected status"],
)
async def test_a_failed_application_logout_is_reported_failed(
    app: DemoApp, changes: dict[str, Any], status: int, words: str
) -> None:
    sid, _ = app.site.store.create("guest")
    outcome, _ = await logout(attack_flow(f"JSESSIONID={sid}"), policy(**changes), upstream_of(app))
    assert (outcome.result, outcome.status, outcome.warning, outcome.ok) == (
        LogoutResult.FAILED,
        status,
        True,
        False,
    )
    assert words in outcome.reason
    assert outcome.probe is Probe.NOT_RUN  # a failed logout is not probed


async def test_a_step_that_finds_no_token_is_named_in_the_outcome(app: DemoApp) -> None:
    sid, _ = app.site.store.create("guest")
    pol = policy(logout__steps=[{"path": "/account", "take": {"csrf": {"form_field": "nope"}}}])
    outcome, _ = await logout(attack_flow(f"JSESSIONID={sid}"), pol, upstream_of(app))
    assert outcome.result is LogoutResult.FAILED and outcome.status == 403
    assert "GET /account: token csrf not found" in outcome.reason
    assert outcome.steps[0].missing == ["csrf"]


async def test_the_builtin_logout_says_it_is_a_guess(app: DemoApp) -> None:
    sid, _ = app.site.store.create("guest")
    pol = parse_policy({"session": {"cookies": ["JSESSIONID"]}})
    outcome, _ = await logout(attack_flow(f"JSESSIONID={sid}"), pol, upstream_of(app))
    assert outcome.builtin and outcome.method == "GET" and outcome.path == "/logout"
    assert (
        outcome.result is LogoutResult.FAILED
        and "built-in logout (GET /logout) is only a guess" in outcome.reason
    )


async def test_verification_off_or_unclear_is_unverifiable(app: DemoApp) -> None:
    sid, _ = app.site.store.create("guest")
    off = policy(logout__verify={"enabled": False})
    outcome, _ = await logout(attack_flow(f"JSESSIONID={sid}"), off, upstream_of(app))
    assert not app.is_session_valid(sid)  # ended, but nobody looked
    assert outcome.result is LogoutResult.UNVERIFIABLE and "verification is off" in outcome.reason
    sid, _ = app.site.store.create("guest")
    public = policy(logout__verify={"check_path": "/static/style.css"})  # the same with and without a session
    outcome, _ = await logout(attack_flow(f"JSESSIONID={sid}"), public, upstream_of(app))
    assert outcome.result is LogoutResult.UNVERIFIABLE and outcome.probe is Probe.UNCLEAR
    assert "looks the same with the session and without one" in outcome.reason


async def test_a_session_kept_in_the_cookie_is_refused_at_the_proxy_only(defective_app: DemoApp) -> None:
    """A client-side session (the policy says so): alive after the logout is expected, not a defect."""
    sid, _ = defective_app.site.store.create("guest")
    pol = policy(session__kept_in="cookie")
    outcome, _ = await logout(attack_flow(f"JSESSIONID={sid}"), pol, upstream_of(defective_app))
    assert (outcome.result, outcome.ok, outcome.warning) == (LogoutResult.PROXY_ONLY, True, False)
    assert "session.kept_in: cookie" in outcome.reason


async def test_the_whole_recipe_is_bounded_by_the_policy_timeout() -> None:
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        upstream = Upstream("http", "127.0.0.1", silent.getsockname()[1])
        pol = policy(logout__timeout=1, logout__verify={"enabled": False})
        started = time.monotonic()
        outcome, _ = await logout(attack_flow("JSESSIONID=S1"), pol, upstream)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert elapsed < 1 + 1.5, elapsed
    assert outcome.result is LogoutResult.FAILED and outcome.status is None
    assert outcome.steps[0].status is None


async def test_nothing_listening_fails_truthfully() -> None:
    outcome, _ = await logout(
        attack_flow("JSESSIONID=S1"), policy(), Upstream("http", "127.0.0.1", free_port())
    )
    assert outcome.result is LogoutResult.FAILED and outcome.status is None and outcome.error
    assert "no answer from the application" in outcome.reason


async def test_without_an_upstream_it_denies_and_keeps_the_revocation() -> None:
    flow = attack_flow("JSESSIONID=S1")
    outcome, track = await logout(flow, policy(), None)
    assert (
        not outcome.sent
        and outcome.result is LogoutResult.FAILED
        and "no reverse-proxy upstream" in outcome.reason
    )
    assert flow.response.status_code == 403 and flow.request.path == "/search?q=<script>"
    assert await track.store.is_revoked(track.hasher.hash("S1"))


# -- identifiers beyond the session cookie -----------------------------------------------------------
async def test_a_path_parameter_session_is_logged_out_as_its_cookie(app: DemoApp) -> None:
    sid, _ = app.site.store.create("guest")
    flow = attack_flow("", path=f"/search;jsessionid={sid}?q=<script>".encode())
    outcome, _ = await logout(flow, policy(), upstream_of(app))
    assert outcome.result is LogoutResult.ENDED and not app.is_session_valid(sid)
    assert outcome.request is not None and dict(outcome.request.headers)["Cookie"] == f"JSESSIONID={sid}"
    assert flow.request.path == f"/search;jsessionid={sid}?q=<script>"  # as sent (its record redacts it)


async def test_linked_identifiers_are_revoked_with_the_session() -> None:
    track = tracker()
    await track.learn_from_response(
        ["JSESSIONID=S1; Path=/", "remember_token=R1; Path=/"], [], "203.0.113.9", None, 1.0, login=True
    )
    outcome, _ = await logout(attack_flow("JSESSIONID=S1"), policy(), None, track)
    assert set(outcome.revoked) == {track.hasher.hash("S1"), track.hasher.hash("R1")}
    assert await track.store.is_revoked(track.hasher.hash("R1"))


async def test_bearer_token_without_a_revocation_endpoint_is_proxy_only() -> None:
    flow = attack_flow("", Authorization="Bearer tok-123")
    outcome, track = await logout(flow, policy(), Upstream("http", "127.0.0.1", free_port()))
    assert outcome.result is LogoutResult.PROXY_ONLY and not outcome.sent
    assert "revoked at the proxy" in outcome.reason and flow.response.status_code == 403
    assert await track.store.is_revoked(track.hasher.hash("tok-123"))


async def test_basic_credentials_are_locked_out_for_the_policy_time() -> None:
    flow = attack_flow("", Authorization="Basic Z3Vlc3Q6Z3Vlc3Q=")
    outcome, track = await logout(flow, policy(lockout={"credentials": 120}), None)
    assert outcome.result is LogoutResult.PROXY_ONLY and outcome.credentials_locked is not None
    assert "refused at the proxy for 120s" in outcome.reason
    seen = read_request(flow, RULES, 1024)
    assert (await track.lookup(seen.session_ids, "203.0.113.9", None, seen.at + 60)).credentials_locked
    assert not (await track.lookup(seen.session_ids, "203.0.113.9", None, seen.at + 121)).credentials_locked


async def test_rfc7009_revocation_endpoint_is_the_bearer_logout(app: DemoApp) -> None:
    """The demo app has no revocation endpoint: the POST is answered 404 and the outcome says it failed."""
    pol = policy(logout__revocation_endpoint={"path": "/oauth/revoke"})
    outcome, _ = await logout(attack_flow("", Authorization="Bearer tok-1"), pol, upstream_of(app))
    assert (outcome.method, outcome.path, outcome.status) == ("POST", "/oauth/revoke", 404)
    assert outcome.result is LogoutResult.FAILED


def test_session_jar_and_probe_identity() -> None:
    ids = [
        SessionId(IdKind.PATH, "jsessionid", "P", "JSESSIONID"),
        SessionId(IdKind.COOKIE, "JSESSIONID", "C", "JSESSIONID"),
        SessionId(IdKind.REMEMBER, "remember_token", "R", "remember_token"),
        SessionId(IdKind.BEARER, "authorization", "T"),
    ]
    assert session_jar(ids) == {"JSESSIONID": "C", "remember_token": "R"}
    assert probe_identity(ids) == [("Cookie", "JSESSIONID=C"), ("Authorization", "Bearer T")]
    assert probe_identity(ids[2:3]) == [("Cookie", "remember_token=R")]  # alone, it is the session


# -- pure parts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("set_cookies", "replaced"),
    [
        (["JSESSIONID=NEW; Path=/"], True),
        (["JSESSIONID=; Max-Age=0"], True),
        (["JSESSIONID=S1; Path=/"], False),  # the same ID again
        (["other=1"], False),
        ([], False),
    ],
)
def test_confirms_logout(set_cookies: list[str], replaced: bool) -> None:
    assert confirms_logout(set_cookies, {"JSESSIONID": "S1"}) is replaced


SENT = LogoutOutcome(
    LogoutMode.REWRITE, ["h"], method="POST", path="/logout", delivery=Delivery(302), accepted=True
)


@pytest.mark.parametrize(
    ("outcome", "kept_in", "result", "words"),
    [
        (
            replace(SENT, delivery=None, error="logout request not sent: x"),
            "server",
            LogoutResult.FAILED,
            "not sent: x",
        ),
        (
            replace(SENT, delivery=Delivery(None, error="refused"), accepted=False),
            "server",
            LogoutResult.FAILED,
            "no answer",
        ),
        (
            replace(SENT, delivery=Delivery(403), accepted=False),
            "server",
            LogoutResult.FAILED,
            "answered 403",
        ),
        (
            replace(SENT, delivery=Delivery(301), accepted=False),
            "server",
            LogoutResult.FAILED,
            "answered 301",
        ),
        (
            replace(SENT, probe=Probe.DEAD, probe_reason="logged out"),
            "server",
            LogoutResult.ENDED,
            "logged out",
        ),
        (
            replace(SENT, probe=Probe.ALIVE, probe_reason="still in"),
            "server",
            LogoutResult.DEFECTIVE,
            "still alive",
        ),
        (
            replace(SENT, probe=Probe.ALIVE, probe_reason="still in"),
            "cookie",
            LogoutResult.PROXY_ONLY,
            "kept_in",
        ),
        (replace(SENT, probe=Probe.DEAD, probe_reason="gone"), "cookie", LogoutResult.ENDED, "gone"),
        (replace(SENT, probe=Probe.NOT_RUN), "server", LogoutResult.UNVERIFIABLE, "verification is off"),
        (
            replace(SENT, probe=Probe.UNCLEAR, probe_reason="same page"),
            "server",
            LogoutResult.UNVERIFIABLE,
            "same page",
        ),
        (
            replace(SENT, probe=Probe.FAILED, probe_reason="timeout"),
            "server",
            LogoutResult.UNVERIFIABLE,
            "timeout",
        ),
    ],
)
def test_conclude(outcome: LogoutOutcome, kept_in: str, result: LogoutResult, words: str) -> None:
    got, reason = conclude(outcome, parse_policy({"session": {"kept_in": kept_in}}))
    assert got is result and words in reason
    assert result.warning is (result in (LogoutResult.FAILED, LogoutResult.DEFECTIVE))


def test_conclude_names_step_problems_and_the_builtin_guess() -> None:
    outcome = replace(SENT, delivery=Delivery(403), accepted=False, builtin=True)
    _, reason = conclude(outcome, Policy(), ["GET /account: token csrf not found"])
    assert "token csrf not found" in reason and "only a guess" in reason


REDIRECT = ClientResponse(ClientAnswer.REDIRECT, location="/bye")
STATUS = ClientResponse(ClientAnswer.STATUS, status=401, body="gone")
APP_ANSWER = Delivery(200, headers=[("X-App", "1"), ("Connection", "close")], body=b"bye", set_cookies=[])
NEW_COOKIE = Delivery(200, set_cookies=["sid=new"])


@pytest.mark.parametrize(
    ("mode", "client", "delivery", "status", "location"),
    [
        (LogoutMode.REWRITE, REDIRECT, NEW_COOKIE, 302, "/bye"),
        (LogoutMode.REWRITE, STATUS, NEW_COOKIE, 401, None),
        (LogoutMode.REWRITE, ClientResponse(), APP_ANSWER, 200, None),  # the app's answer to the logout
        (LogoutMode.REWRITE, ClientResponse(), Delivery(None, error="refused"), 502, None),
        (LogoutMode.OUT_OF_BAND, REDIRECT, NEW_COOKIE, 302, "/bye"),
        (LogoutMode.OUT_OF_BAND, STATUS, NEW_COOKIE, 401, None),
        # the request is refused; the app's answer belongs to the logout beside it: the signed-out page
        (LogoutMode.OUT_OF_BAND, ClientResponse(), APP_ANSWER, 409, None),
        (LogoutMode.OUT_OF_BAND, ClientResponse(), NEW_COOKIE, 409, None),
        (LogoutMode.OUT_OF_BAND, ClientResponse(), Delivery(None, error="refused"), 409, None),
    ],
)
def test_answer_client(
    mode: LogoutMode, client: ClientResponse, delivery: Delivery, status: int, location: str | None
) -> None:
    pol = Policy()
    pol = replace(
        pol,
        logout=replace(pol.logout, mode=mode, client_response=client),
        actions=replace(pol.actions, deny_status=409, redirect_location="/sign-in"),
    )
    flow = attack_flow("JSESSIONID=S1")
    answer_client(flow, pol, delivery)
    assert flow.response is not None and flow.response.status_code == status
    assert flow.response.headers.get("Location") == location
    if delivery.set_cookies:
        assert flow.response.headers.get_all("Set-Cookie") == delivery.set_cookies
    relayed = mode is LogoutMode.REWRITE and client.type is ClientAnswer.APPLICATION
    if relayed and delivery.status is not None:
        assert flow.response.content == b"bye" and flow.response.headers["X-App"] == "1"
        assert "Connection" not in flow.response.headers
    if mode is LogoutMode.OUT_OF_BAND and client.type is ClientAnswer.APPLICATION:
        assert b"bye" not in flow.response.content and b'href="/sign-in"' in flow.response.content


def test_outcome_json_reads_back() -> None:
    not_sent = LogoutOutcome(LogoutMode.REWRITE, ["h1"], error="logout request not sent: x", reason="x")
    data = not_sent.to_json()
    assert data == {
        "mode": "rewrite",
        "revoked": ["h1"],
        "result": "failed",
        "reason": "x",
        "warning": True,
        "ok": False,
        "error": "logout request not sent: x",
    }
    sent = LogoutOutcome(
        LogoutMode.OUT_OF_BAND,
        ["h1"],
        locked_out="203.0.113.0/24",
        result=LogoutResult.DEFECTIVE,
        reason="alive",
        method="POST",
        path="/logout",
        delivery=Delivery(200, elapsed_ms=12.345),
        accepted=True,
        cookie_replaced=True,
        probe=Probe.ALIVE,
        steps=[StepRecord("GET", "/account", 200, took=["csrf"])],
    )
    data = sent.to_json()
    assert (data["result"], data["warning"], data["ok"], data["probe"], data["elapsed_ms"]) == (
        "defective",
        True,
        False,
        "alive",
        12.3,
    )
    assert LogoutOutcome.from_json(json.loads(json.dumps(data))).to_json() == data
    unclear = replace(sent, probe=Probe.UNCLEAR, probe_reason="the same page")
    assert unclear.to_json()["probe"] == "unclear: the same page"
    assert LogoutOutcome.from_json(unclear.to_json()).probe_reason == "the same page"
    assert LogoutOutcome.from_json({"mode": "odd", "result": "odd"}).result is LogoutResult.FAILED


async def test_rfc7009_revocation_request_carries_the_token_and_the_policys_client_credentials() -> None:
    from procs import start_backend

    app = start_backend()
    try:
        pol = policy(
            logout__revocation_endpoint={
                "path": "/oauth/revoke",
                "headers": {"Authorization": "Basic Y2xpZW50OnNlY3JldA=="},
                "token_type_hint": "refresh_token",
            },
            logout__verify={"enabled": False},
        )
        outcome, track = await logout(
            attack_flow("", Authorization="Bearer tok-9"), pol, Upstream("http", "127.0.0.1", app.port)
        )
        [got] = app.received
        assert (got.method, got.path, got.body) == (
            "POST",
            "/oauth/revoke",
            b"token=tok-9&token_type_hint=refresh_token",
        )
        assert (
            dict(got.headers)["Authorization"] == "Basic Y2xpZW50OnNlY3JldA=="
        )  # the client's, not the token
        assert outcome.accepted and outcome.result is LogoutResult.UNVERIFIABLE  # verification off
        assert await track.store.is_revoked(track.hasher.hash("tok-9"))
        # the revocation is the logout as sent (shown as a flow of its own)
        assert outcome.request is not None and (outcome.request.path, outcome.request.body) == (
            "/oauth/revoke",
            b"token=tok-9&token_type_hint=refresh_token",
        )
    finally:
        app.stop()
