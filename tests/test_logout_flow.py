"""The forced logout as a flow of its own: the logout as sent, the app's answer, linked to the attack, never judged."""

from __future__ import annotations

import json

from mitmproxy.test import tflow, tutils
from test_flow_record import logged_out

from logoutguard.flow_record import MARK_ACTED
from logoutguard.forced_logout import Delivery, LogoutOutcome, LogoutRequest, LogoutResult, Probe, Upstream
from logoutguard.logout_flow import LOGOUT_KEY, is_logout_flow, logout_flow
from logoutguard.policy import LogoutMode

UPSTREAM = Upstream("http", "127.0.0.1", 8080)
LOGOUT = LogoutRequest(
    "POST",
    "/logout",
    (("Host", "127.0.0.1:8080"), ("Cookie", "JSESSIONID=S1"), ("Content-Length", "7")),
    b"csrf=T1",
)


def attack() -> tflow.HTTPFlow:
    req = tutils.treq(method=b"GET", path=b"/search?q=<script>alert(1)</script>", content=b"")
    req.headers["Cookie"] = "JSESSIONID=S1"
    flow = tflow.tflow(req=req)
    flow.client_conn.peername = ("198.51.100.7", 4000)
    return flow


def outcome(delivery: Delivery | None, result: LogoutResult = LogoutResult.ENDED) -> LogoutOutcome:
    return LogoutOutcome(
        LogoutMode.REWRITE,
        ["h1"],
        result=result,
        reason="POST /logout answered 200, but the session is still alive" if result.warning else "",
        method="POST",
        path="/logout",
        delivery=delivery,
        accepted=bool(delivery and delivery.status),
        probe=Probe.DEAD if result is LogoutResult.ENDED else Probe.NOT_RUN,
    )


def test_the_logout_as_sent_and_the_apps_answer_beside_the_untouched_attack() -> None:
    flow = attack()
    answer = Delivery(
        302,
        "",
        12.5,
        ["JSESSIONID=NEW; Path=/"],
        [("Location", "/login"), ("Set-Cookie", "JSESSIONID=NEW; Path=/")],
        b"bye",
    )
    shown = logout_flow(flow, LOGOUT, UPSTREAM, outcome(answer), logged_out(), 1000.0, flow.request.path)
    assert flow.request.path == "/search?q=<script>alert(1)</script>" and flow.response is None  # untouched
    assert shown.id != flow.id and not shown.live and shown.client_conn.peername == ("198.51.100.7", 4000)
    req = shown.request
    assert (req.method, req.host, req.port, req.path, req.content) == (
        "POST",
        "127.0.0.1",
        8080,
        "/logout",
        b"csrf=T1",
    )
    assert req.headers["Cookie"] == "JSESSIONID=S1" and req.timestamp_start == 1000.0
    assert shown.response.status_code == 302 and shown.response.headers["Location"] == "/login"
    assert shown.response.content == b"bye" and shown.response.timestamp_start == 1000.0125
    meta = shown.metadata[LOGOUT_KEY]
    assert (meta["for flow"], meta["result"], meta["top rule"]) == (flow.id, "ended", "942100 SQL injection")
    assert meta["attack"] == "GET /search?q=<script>alert(1)</script>" and meta["logout"]["status"] == 302
    json.dumps(shown.metadata)  # saved flows keep it
    assert shown.marked == MARK_ACTED
    assert (
        shown.comment
        == f"LogoutGuard: forced logout for flow {flow.id[:8]} (GET /search?q=<script>alert(1)</script>): ended"
    )
    assert is_logout_flow(shown) and not is_logout_flow(flow)


def test_no_answer_is_the_flows_error() -> None:
    flow = attack()
    failed = outcome(Delivery(None, "ConnectionRefusedError"), LogoutResult.FAILED)
    shown = logout_flow(flow, LOGOUT, UPSTREAM, failed, logged_out(), 1.0, flow.request.path)
    assert shown.response is None and "ConnectionRefusedError" in shown.error.msg
    assert shown.metadata[LOGOUT_KEY]["result"] == "app failed"
    assert shown.comment.endswith(
        ": app failed WARNING: forced logout request failed: POST /logout answered 200, but the session is still alive"
    )


def test_the_comment_shows_the_path_it_is_given_not_a_session_id_in_it() -> None:
    flow = attack()
    flow.request.path = "/search;jsessionid=SECRET42?q=<script>"
    shown = logout_flow(
        flow,
        LOGOUT,
        UPSTREAM,
        outcome(Delivery(200)),
        logged_out(),
        1.0,
        "/search;jsessionid=[redacted]?q=<script>",
    )
    assert "SECRET42" not in shown.comment and "SECRET42" not in json.dumps(shown.metadata)
    assert "(GET /search;jsessionid=[redacted]?q=<script>): ended" in shown.comment


def test_a_long_attack_path_is_cut_in_the_comment() -> None:
    flow = attack()
    flow.request.path = "/x?" + "a" * 500
    shown = logout_flow(flow, LOGOUT, UPSTREAM, outcome(Delivery(200)), logged_out(), 1.0, flow.request.path)
    assert len(shown.comment) < 160 and shown.comment.endswith("...): ended")
