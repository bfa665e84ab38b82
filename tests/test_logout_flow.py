"""The forced logout as a flow of its own: the logout as sent, the app's answer, linked to the attack, never judged."""

from __future__ import annotations

import json

from mitmproxy.test import tflow, tutils
from test_flow_record import logged_out

from logoutguard.flow_record import MARK_ACTED
from logoutguard.forced_logout import Delivery, LogoutOutcome, LogoutRequest, Probe, Upstream
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


def outcome(delivery: Delivery | None, probe: Probe = Probe.DEAD) -> LogoutOutcome:
    return LogoutOutcome(
        LogoutMode.REWRITE,
        ["h1"],
        None,
        "POST",
        "/logout",
        delivery,
        ok=bool(delivery and delivery.status),
        probe=probe,
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
    shown = logout_flow(flow, LOGOUT, UPSTREAM, outcome(answer), logged_out(), sent_at=1000.0)
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
    shown = logout_flow(
        attack(), LOGOUT, UPSTREAM, outcome(Delivery(None, "ConnectionRefusedError")), logged_out(), 1.0
    )
    assert shown.response is None and "ConnectionRefusedError" in shown.error.msg
    assert shown.metadata[LOGOUT_KEY]["result"] == "app failed" and shown.comment.endswith(": app failed")


def test_a_long_attack_path_is_cut_in_the_comment() -> None:
    flow = attack()
    flow.request.path = "/x?" + "a" * 500
    shown = logout_flow(flow, LOGOUT, UPSTREAM, outcome(Delivery(200)), logged_out(), 1.0)
    assert len(shown.comment) < 160 and shown.comment.endswith("...): ended")
