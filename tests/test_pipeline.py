"""The pipeline without mitmproxy options: parts handed in, flows through the stages, records and audit lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mitmproxy import http, websocket
from mitmproxy.test import tflow, tutils
from wsproto.frame_protocol import Opcode

from logoutguard import pipeline as pipeline_module
from logoutguard.audit_log import AuditLog
from logoutguard.engine.engine import Engine
from logoutguard.engine.loader import load_ruleset
from logoutguard.flow_bridge import read_request, with_response
from logoutguard.flow_record import META_KEY
from logoutguard.forced_logout import Upstream
from logoutguard.judge import SessionCheck
from logoutguard.pipeline import Mode, Pipeline, Settings
from logoutguard.policy import parse_policy
from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.store import StoreError
from logoutguard.sessions.tracker import SessionFacts, SessionTracker
from procs import start_backend

RULES = """
category: test
rules:
  - id: 100001
    msg: union select
    phase: 2
    targets: [ARGS]
    operator: contains
    argument: "union select"
    examples: {match: ["union select"], no_match: ["union"]}
  - id: 100002
    msg: leaked SQL error
    phase: 4
    targets: [RESPONSE_BODY]
    operator: contains
    argument: "SQL syntax"
    examples: {match: ["SQL syntax"], no_match: ["fine"]}
"""


class BrokenStore(MemoryStore):
    async def get(self, id_hash: str):  # type: ignore[no-untyped-def]
        raise StoreError("session store test: get failed: down")


@pytest.fixture
def make(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "r.yaml").write_text(RULES)
    ruleset = load_ruleset([tmp_path / "r.yaml"])

    def build(store: MemoryStore | None = None, policy: dict | None = None, **settings: object) -> Pipeline:
        policy = policy or {}
        p = Pipeline()
        p.engine = Engine(ruleset)
        p.use_policy(parse_policy({"session": {"grace_period": 0, "cookies": ["JSESSIONID"]}, **policy}))
        p.use_tracker(SessionTracker(store or MemoryStore(), SessionHasher(b"k" * 32), p.rules, 0, 0))
        p.audit = AuditLog(tmp_path / "audit.jsonl")
        p.use_settings(Settings(**settings))  # type: ignore[arg-type]
        return p

    return build


def flow(path: str, cookie: str = "", live: bool = True, **headers: str) -> http.HTTPFlow:
    request = tutils.treq(path=path.encode())
    request.headers.clear()
    request.headers["Host"] = "app.test"
    request.headers.update(headers)
    if cookie:
        request.headers["Cookie"] = cookie
    return tflow.tflow(req=request, live=live)


async def issue(
    p: Pipeline, set_cookies: list[str], path: str = "/login", cookie: str = "", **kw: str
) -> None:
    """A response of the application that sets cookies (a login: POST with a password field)."""
    login = flow(path, cookie, **kw)
    login.request.method = "POST"
    login.request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    login.request.content = b"username=u&password=p"
    await p.on_request(login)
    login.response = tutils.tresp(status_code=302, content=b"")
    for value in set_cookies:
        login.response.headers.add("Set-Cookie", value)
    await p.on_response(login)


async def test_enforce_denies_detect_logs(make) -> None:  # type: ignore[no-untyped-def]
    enforcing, detecting = make(), make(mode=Mode.DETECT)
    f, g = flow("/?q=union select"), flow("/?q=union select")
    await enforcing.on_request(f)
    await detecting.on_request(g)
    assert f.response.status_code == 403 and f.metadata[META_KEY]["action"] == "deny"
    assert (
        g.response is None
        and g.metadata[META_KEY]["action"] == "log"
        and g.metadata[META_KEY]["decision"] == "deny"
    )


async def test_a_request_and_its_response_make_one_record_and_one_audit_line(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make()
    f = flow("/item")
    await p.on_request(f)
    assert f.id in p.pending
    f.response = tutils.tresp(content=b"You have an error in your SQL syntax")
    f.response.headers["Set-Cookie"] = "JSESSIONID=NEW; Path=/"
    await p.on_response(f)
    record = f.metadata[META_KEY]
    assert (
        record["action"] == "deny (outbound)"
        and record["outbound_score"] == 5
        and f.response.status_code == 403
    )
    assert f.id not in p.pending
    assert await p.tracker.store.get(p.tracker.hasher.hash("NEW")) is not None  # learned from Set-Cookie
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [line["action"] for line in lines] == ["deny (outbound)"]
    failed = flow("/?q=union select")  # the upstream fails: the error hook audits the request's record
    await p.on_request(failed)
    failed.response = None
    p.on_error(failed)
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [line["action"] for line in lines] == ["deny (outbound)", "deny"]


async def test_saved_flows_use_a_private_tracker_and_change_nothing(make) -> None:  # type: ignore[no-untyped-def]
    p = make()
    f = flow("/?q=union select", live=False)
    f.response = tutils.tresp(status_code=302, content=b"")
    f.response.headers["Set-Cookie"] = "JSESSIONID=S9; Path=/"
    await p.on_request(f)
    await p.on_response(f)
    assert f.metadata[META_KEY]["action"] == "none (offline)" and f.response.status_code == 302
    assert await p.tracker.store.count() == 0  # learned by the offline tracker only
    assert p._offline is not None and await p._offline.store.count() == 1


async def test_store_down_fail_open_judges_the_session_as_valid(make) -> None:  # type: ignore[no-untyped-def]
    p = make(BrokenStore(), fail_closed=False)
    f = flow("/account", cookie="JSESSIONID=S1")
    await p.on_request(f)
    record = f.metadata[META_KEY]
    assert record["session"]["state"] == "active" and "down" in record["store_error"]
    assert f.response is None and p.health.down
    closed = make(BrokenStore(), fail_closed=True)
    g = flow("/account", cookie="JSESSIONID=S1")
    await closed.on_request(g)
    assert g.response.status_code == 503 and g.metadata[META_KEY]["situation"] == "store_unavailable"


async def test_an_error_still_gives_a_record(make) -> None:  # type: ignore[no-untyped-def]
    p = make(deny_on_error=True)
    p.engine = None  # judging now fails
    f = flow("/")
    await p.on_request(f)
    record = f.metadata[META_KEY]
    assert (
        record["situation"] == "error"
        and record["action"] == "deny (error)"
        and f.response.status_code == 403
    )


async def test_pending_and_recent_sessions_are_bounded(make, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(pipeline_module, "MAX_PENDING", 3)
    monkeypatch.setattr(pipeline_module, "MAX_RECENT_SESSIONS", 2)
    p = make()
    for i in range(5):
        await p.on_request(flow("/", cookie=f"JSESSIONID=S{i}"))
    assert len(p.pending) == 3 and len(p.recent) == 2
    assert p.tracker.hasher.hash("S4") in p.recent_sessions() and "S4" not in p.recent_sessions()
    await p.revoke_hashes([p.tracker.hasher.hash("S4")])
    assert await p.tracker.store.is_revoked(p.tracker.hasher.hash("S4"))
    assert p.recent[p.tracker.hasher.hash("S4")]["state"] == "revoked"


async def test_only_a_session_shown_authenticated_is_logged_out(make) -> None:  # type: ignore[no-untyped-def]
    """An ID issued outside a login (PHP's pre-login PHPSESSID) is anonymous: an attack is denied."""
    p = make()
    anonymous = flow("/login-page")
    await p.on_request(anonymous)
    anonymous.response = tutils.tresp(content=b"form")
    anonymous.response.headers["Set-Cookie"] = "JSESSIONID=PRE; Path=/"
    await p.on_response(anonymous)
    attack = flow("/?q=union select", cookie="JSESSIONID=PRE")
    await p.on_request(attack)
    record = attack.metadata[META_KEY]
    assert (record["situation"], record["action"]) == ("anonymous_over_threshold", "deny")
    assert record["session"]["authenticated"] == "0" and "logout" not in record
    assert not await p.tracker.store.is_revoked(p.tracker.hasher.hash("PRE"))
    await issue(p, ["JSESSIONID=IN; Path=/"], cookie="JSESSIONID=PRE")
    facts = await p.tracker.check_request(
        read_request(flow("/", cookie="JSESSIONID=IN"), p.rules, 1024).session_ids, "", None, 5.0
    )
    assert facts.authenticated


async def test_a_cross_site_attack_is_denied_without_a_logout(make) -> None:  # type: ignore[no-untyped-def]
    p = make()
    await issue(p, ["JSESSIONID=S1; Path=/"])
    attack = flow("/?q=union select", cookie="JSESSIONID=S1", **{"Sec-Fetch-Site": "cross-site"})
    await p.on_request(attack)
    record = attack.metadata[META_KEY]
    assert (record["situation"], record["action"]) == ("cross_site_over_threshold", "deny")
    assert attack.response.status_code == 403 and "logout" not in record
    assert not await p.tracker.store.is_revoked(p.tracker.hasher.hash("S1"))


async def test_a_refused_session_is_deleted_in_the_browser(make) -> None:  # type: ignore[no-untyped-def]
    """Deny: a page leading to the login page, and a Set-Cookie that deletes exactly that cookie
    where the application keeps it; so the next request, the login page's, goes through."""
    p = make()
    await issue(p, ["JSESSIONID=S1; Path=/app; HttpOnly"])
    await p.tracker.revoke("S1", "forced logout")
    refused = flow("/app/account", cookie="JSESSIONID=S1; theme=dark")
    await p.on_request(refused)
    response = refused.response
    assert response.status_code == 403 and b'href="/login"' in response.content
    assert response.headers.get_all("Set-Cookie") == [
        "JSESSIONID=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app"
    ]


async def test_redirect_for_a_refused_session_does_not_loop(make) -> None:  # type: ignore[no-untyped-def]
    p = make(policy={"actions": {"revoked_session": "redirect", "redirect_location": "/login?next=x"}})
    await issue(p, ["JSESSIONID=S1; Path=/"])
    await p.tracker.revoke("S1", "forced logout")
    page = flow("/account", cookie="JSESSIONID=S1")
    await p.on_request(page)
    assert page.response.status_code == 302 and page.response.headers["Location"] == "/login?next=x"
    assert page.response.headers["Set-Cookie"].startswith("JSESSIONID=; Max-Age=0")
    login_page = flow("/login", cookie="JSESSIONID=S1")  # the browser kept the cookie after all
    await p.on_request(login_page)
    assert login_page.response is None and "Cookie" not in login_page.request.headers  # passes, stripped
    login_page.response = tutils.tresp(content=b"login form")
    await p.on_response(login_page)
    assert login_page.response.headers["Set-Cookie"].startswith("JSESSIONID=; Max-Age=0")


async def test_strip_removes_only_the_refused_identifier(make) -> None:  # type: ignore[no-untyped-def]
    p = make(policy={"actions": {"revoked_session": "strip"}})
    await issue(p, ["JSESSIONID=OLD; Path=/"])
    await p.tracker.revoke("OLD", "forced logout")
    await issue(p, ["JSESSIONID=FRESH; Path=/"])
    both = flow("/account;jsessionid=OLD", cookie="JSESSIONID=OLD; JSESSIONID=FRESH; theme=dark")
    await p.on_request(both)
    assert both.response is None and both.metadata[META_KEY]["action"] == "strip"
    assert both.request.headers["Cookie"] == "JSESSIONID=FRESH; theme=dark"
    assert both.request.path == "/account"
    both.response = tutils.tresp(content=b"page")
    both.response.headers["Set-Cookie"] = "JSESSIONID=ROTATED; Path=/"  # the app's own cookie wins
    await p.on_response(both)
    assert both.response.headers.get_all("Set-Cookie") == ["JSESSIONID=ROTATED; Path=/"]


async def test_session_ids_in_the_path_never_reach_the_record(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make()
    await issue(p, ["JSESSIONID=SECRETID42; Path=/"])
    attack = flow("/a;jsessionid=SECRETID42?q=union select")
    await p.on_request(attack)
    attack.response = tutils.tresp(content=b"x")
    await p.on_response(attack)
    record = attack.metadata[META_KEY]
    assert record["request_path"] == "/a;jsessionid=[redacted]" and "SECRETID42" not in json.dumps(record)
    audit = (tmp_path / "audit.jsonl").read_text()
    assert "SECRETID42" not in audit and '"path":"/a;jsessionid=[redacted]"' in audit


async def test_session_ids_in_a_matched_value_never_reach_the_record(make) -> None:  # type: ignore[no-untyped-def]
    p = make()
    await issue(p, ["JSESSIONID=SECRETID42; Path=/"])
    for query, excerpt in (
        ("union select SECRETID42", "union select [redacted]"),
        ("union select", "union select"),
    ):
        attack = flow(f"/a?q={query}", cookie="JSESSIONID=SECRETID42")
        await p.on_request(attack)
        assert [m["excerpt"] for m in attack.metadata[META_KEY]["matches"]] == [excerpt]
        assert "SECRETID42" not in json.dumps(attack.metadata[META_KEY])


@pytest.mark.parametrize("mode", ["rewrite", "out_of_band"])
async def test_the_logout_is_its_own_flow_and_the_mode_says_what_the_client_gets(make, mode: str) -> None:  # type: ignore[no-untyped-def]
    """Both modes send the logout beside the attack (shown as a flow of its own, its path redacted);
    rewrite answers the attack as the logout it became (the app's answer), out_of_band refuses it."""
    app = start_backend()
    app.response_body = b"bye"
    app.response_headers = [("Set-Cookie", "JSESSIONID=; Max-Age=0; Path=/")]
    try:
        policy = {"logout": {"mode": mode, "verify": {"enabled": False}}, "actions": {"deny_status": 409}}
        p = make(policy=policy, upstream=Upstream("http", "127.0.0.1", app.port))
        shown: list[http.HTTPFlow] = []
        p.show_flow = shown.append
        await issue(p, ["JSESSIONID=SECRETID42; Path=/"])
        attack = flow("/a;jsessionid=SECRETID42?q=union select")
        await p.on_request(attack)
        record = attack.metadata[META_KEY]
        assert record["logout"]["result"] == "unverifiable" and record["logout"]["status"] == 200
        assert attack.request.path == "/a;jsessionid=SECRETID42?q=union select"  # the attack as sent
        [logout] = shown
        assert record["logout_flow"] == logout.id and logout.request.path == "/logout"
        assert logout.request.headers["Cookie"] == "JSESSIONID=SECRETID42"  # the logout as sent
        assert logout.response.content == b"bye"
        assert (
            "SECRETID42" not in logout.comment
            and "(GET /a;jsessionid=[redacted]?q=union select)" in logout.comment
        )
        assert "SECRETID42" not in json.dumps(logout.metadata)
        [sent] = [r for r in app.received if r.path == "/logout"]
        assert sent.method == "GET"
        assert attack.response.headers["Set-Cookie"] == "JSESSIONID=; Max-Age=0; Path=/"  # the cookie goes
        if mode == "rewrite":
            assert record["action"] == "logout"
            assert (attack.response.status_code, attack.response.content) == (200, b"bye")
        else:
            assert record["action"] == "logout (out-of-band)" and attack.response.status_code == 409
            assert b"bye" not in attack.response.content and b'href="/login"' in attack.response.content
    finally:
        app.stop()


def websocket_flow(content: bytes, from_client: bool = True) -> http.HTTPFlow:
    flow = tflow.twebsocketflow()
    flow.websocket.messages.append(websocket.WebSocketMessage(Opcode.TEXT, from_client, content))  # type: ignore[union-attr]
    return flow


def test_a_websocket_attack_is_dropped_and_its_connection_closed(make) -> None:  # type: ignore[no-untyped-def]
    p = make()
    closed: list[str] = []
    p.close_connection = lambda flow: closed.append(flow.id) or True
    flow = websocket_flow(b"1 union select password")
    flow.metadata[META_KEY] = {}
    p.on_websocket_message(flow)
    message = flow.websocket.messages[-1]  # type: ignore[union-attr]
    assert message.dropped and closed == [flow.id]
    line = flow.metadata[META_KEY]["websocket"][0]
    assert (line["rules"], line["action"], line["situation"]) == (
        [100001],
        "drop_close",
        "websocket_message_refused",
    )
    later = websocket.WebSocketMessage(Opcode.TEXT, False, b"the application's answer")
    flow.websocket.messages.append(later)  # type: ignore[union-attr]
    p.on_websocket_message(flow)
    assert later.dropped  # nothing more passes on a refused WebSocket


def test_websocket_messages_that_pass_or_come_from_the_server_are_left_alone(make) -> None:  # type: ignore[no-untyped-def]
    p = make()
    benign, from_server = websocket_flow(b"hello union"), websocket_flow(b"1 union select", from_client=False)
    for flow in (benign, from_server):
        flow.metadata[META_KEY] = {}
        p.on_websocket_message(flow)
        assert not flow.websocket.messages[-1].dropped and "websocket" not in flow.metadata[META_KEY]  # type: ignore[union-attr]


def test_detect_mode_logs_a_websocket_attack_and_drops_nothing(make) -> None:  # type: ignore[no-untyped-def]
    p = make(mode=Mode.DETECT)
    flow = websocket_flow(b"1 union select password")
    flow.metadata[META_KEY] = {}
    p.on_websocket_message(flow)
    assert not flow.websocket.messages[-1].dropped  # type: ignore[union-attr]
    assert flow.metadata[META_KEY]["websocket"][0]["action"] == "log"


async def _judged_flows(p: Pipeline, read_back: bool) -> list[tuple[object, ...]]:
    """Flows of every kind through a pipeline; read_back: the request's metadata is replaced by a copy
    before the response, so the response reads the record back from its JSON (as for a flow judged
    by another process) instead of continuing the request's record."""
    await issue(p, ["JSESSIONID=AUTH; Path=/"])
    results = []
    for path, cookie, body in (
        ("/item", "", b"fine"),
        ("/item?q=union select", "", b"fine"),  # refused on the request
        ("/item", "JSESSIONID=AUTH", b"You have an error in your SQL syntax"),  # refused on the response
        ("/item?q=union", "JSESSIONID=UNKNOWN", b"fine"),
    ):
        f = flow(path, cookie)
        await p.on_request(f)
        pending = p.pending[f.id]
        assert (pending.record_of(f.metadata[META_KEY]) is not None) is (pending.record.logout is None)
        if read_back:
            f.metadata[META_KEY] = dict(f.metadata[META_KEY])
            assert pending.record_of(f.metadata[META_KEY]) is None
        if f.response is None:
            f.response = tutils.tresp(content=body)
        await p.on_response(f)
        results.append((f.metadata[META_KEY], f.comment, f.marked, f.response.status_code))
    return results


@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.DETECT])
async def test_the_response_continues_the_request_record_as_if_read_back(
    make, tmp_path: Path, mode: Mode
) -> None:  # type: ignore[no-untyped-def]
    audit = tmp_path / "audit.jsonl"

    def audit_lines() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in audit.read_text().splitlines()]
        audit.unlink()
        return [{k: v for k, v in line.items() if k != "time"} for line in lines]

    kept = await _judged_flows(make(mode=mode), read_back=False)
    kept_lines = audit_lines()
    read = await _judged_flows(make(mode=mode), read_back=True)
    assert kept == read and kept_lines == audit_lines() and len(kept_lines) == 3
    assert any(record["outbound_score"] for record, *_ in kept) and any(
        record["reason"] for record, *_ in kept
    )


@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.DETECT])
async def test_the_request_record_stays_unless_the_response_changes_it(make, mode: Mode) -> None:  # type: ignore[no-untyped-def]
    """The response continues the request's record: the flow's metadata is written again when the
    response changed it (a response rule's score, the action, the exchange's reason), else the
    request's stays as it was."""
    p = make(mode=mode)
    leak = {"outbound_score", "scores", "matches", "outbound_blocked", "blocked", "reason", "action"}
    for path, body, changed in (
        ("/item", b"fine", set()),
        # scored: refused in enforce mode (no response judged); in detect mode the exchange's
        # verdict gives the reason (the judge's own words are the request's)
        ("/item?q=union select", b"fine", set() if mode is Mode.ENFORCE else {"reason"}),
        ("/item", b"You have an error in your SQL syntax", leak),  # a response rule's match
    ):
        f = flow(path)
        await p.on_request(f)
        written, marks = f.metadata[META_KEY], (f.marked, f.comment)
        before = json.loads(json.dumps(written))
        if f.response is None:
            f.response = tutils.tresp(content=body)
        await p.on_response(f)
        after = f.metadata[META_KEY]
        assert {k for k in after.keys() | before.keys() if after.get(k) != before.get(k)} == changed
        assert (after is written) is not changed
        if not changed:
            assert (f.marked, f.comment) == marks
        if "action" in changed:
            assert after["outbound_score"] == 5 and after["matches"][-1]["id"] == 100002
            assert after["action"] == ("deny (outbound)" if mode is Mode.ENFORCE else "log")
            assert f.marked and "out 5" in f.comment and marks != (f.marked, f.comment)


@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.DETECT])
async def test_without_response_rules_the_response_is_not_inspected_and_the_record_is_the_same(
    make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: Mode
) -> None:  # type: ignore[no-untyped-def]
    """A ruleset without response rules: the records are those of inspecting the response anyway."""
    (tmp_path / "request-only.yaml").write_text(RULES.split("  - id: 100002")[0])
    request_only = load_ruleset([tmp_path / "request-only.yaml"])
    skipping, inspecting = make(mode=mode), make(mode=mode)
    skipping.engine, inspecting.engine = Engine(request_only), Engine(request_only)
    monkeypatch.setattr(inspecting.engine, "needs_response", lambda state: True)
    built: list[object] = []
    monkeypatch.setattr(pipeline_module, "with_response", lambda *a: built.append(a) or with_response(*a))
    inspected = await _judged_flows(inspecting, read_back=False)
    answered = 4 if mode is Mode.ENFORCE else 5  # the login's and those of the flows the proxy did not answer
    assert len(built) == answered
    assert await _judged_flows(skipping, read_back=False) == inspected
    assert len(built) == answered  # the skipping pipeline built no response Transaction


@pytest.mark.parametrize("grace_period", [0, 3600])
async def test_a_request_without_a_session_gets_the_check_the_tracker_would_give(
    make, grace_period: int
) -> None:  # type: ignore[no-untyped-def]
    """Without identifiers and with lockout off, the session check is made without asking the tracker:
    the very check its lookup gives (in the grace period or not); with lockout on, the store is asked."""
    p = make()
    assert p.tracker is not None
    p.use_tracker(SessionTracker(MemoryStore(), p.tracker.hasher, p.rules, grace_period, time.time()))
    f = flow("/item", "theme=dark")
    seen = read_request(f, p.rules, p.settings.body_limit)
    lookup = await p.tracker.lookup(seen.session_ids, seen.client, seen.user_agent, seen.at)
    expected = SessionCheck.of(lookup, locked_out=False, store_error="")
    assert await p._check_session(p.tracker, seen) == expected
    assert expected.facts.in_grace is (grace_period > 0)
    await p.on_request(f)
    assert f.metadata[META_KEY]["session"] == SessionFacts(in_grace=grace_period > 0).to_json()
    locking = make(policy={"lockout": {"enabled": True}})
    await locking.tracker.lockout(seen.client, time.time() + 60)  # type: ignore[union-attr]
    assert (await locking._check_session(locking.tracker, seen)).locked_out  # type: ignore[arg-type]
