"""The mitmproxy addon: options, hooks, annotations, commands (taddons + tflow, no network)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import weakref
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons import proxyserver
from mitmproxy.options import Options
from mitmproxy.test import taddons, tflow, tutils

from logoutguard.engine.engine import Engine
from logoutguard.guard import META_KEY, LogoutGuard
from logoutguard.logout_flow import LOGOUT_KEY
from procs import start_backend

RULES = """
category: test
rules:
  - id: 100001
    msg: union select
    phase: 2
    targets: [ARGS, REQUEST_BODY]
    transforms: [lowercase]
    operator: rx
    argument: "union\\\\s+select"
    examples: {match: ["union select"], no_match: ["union"]}
  - id: 100002
    msg: leaked SQL error
    phase: 4
    severity: critical
    targets: [RESPONSE_BODY]
    operator: contains
    argument: "You have an error in your SQL syntax"
    examples: {match: ["You have an error in your SQL syntax near"], no_match: ["fine"]}
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    return tmp_path


class Recorder:
    """An addon that keeps every flow mitmproxy's addons saw finished (with a response or an error)."""

    def __init__(self) -> None:
        self.flows: list[http.HTTPFlow] = []

    def response(self, flow: http.HTTPFlow) -> None:
        self.flows.append(flow)

    def error(self, flow: http.HTTPFlow) -> None:  # a flow without a response (the app gave no answer)
        self.flows.append(flow)


@pytest.fixture
def guard() -> LogoutGuard:
    return LogoutGuard()


def base_options(rules_dir: Path, tmp_path: Path) -> dict[str, object]:
    return {
        "guard_rules": [str(rules_dir)],
        "guard_session_store": "memory",
        "guard_audit_log": str(tmp_path / "audit.jsonl"),
    }


def flow_for(
    path: str = "/", method: str = "GET", body: bytes = b"", headers: dict | None = None, live: bool = True
) -> http.HTTPFlow:
    req = tutils.treq(method=method.encode(), path=path.encode(), content=body)
    req.headers.clear()
    req.headers["Host"] = "app.test"
    for k, v in (headers or {}).items():
        req.headers[k] = v
    if body:
        req.headers["Content-Length"] = str(len(body))
    return tflow.tflow(req=req, live=live)


async def test_attack_is_denied_in_enforce_mode(guard: LogoutGuard, rules_dir: Path, tmp_path: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path), guard_mode="enforce")
        f = flow_for("/search?q=1%20UNION%20SELECT%20password")
        await guard.request(f)
        assert f.response is not None and f.response.status_code == 403
        assert b"union" not in f.response.content.lower()
        record = f.metadata[META_KEY]
        assert record["score"] == 5 and record["blocked"] is True and record["action"] == "deny"
        assert [m["id"] for m in record["matches"]] == [100001]
        assert record["matches"][0]["target"] == "ARGS:q"
        assert f.marked and "100001" in f.comment and "deny" in f.comment
        json.dumps(record)  # plain JSON-able data


async def test_attack_passes_annotated_in_detect_mode(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path), guard_mode="detect")
        f = flow_for("/search?q=union select")
        await guard.request(f)
        assert f.response is None
        assert f.metadata[META_KEY]["action"] == "log"
        assert f.marked and "log" in f.comment


async def test_benign_request_is_untouched(guard: LogoutGuard, rules_dir: Path, tmp_path: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path))
        f = flow_for("/search?q=union station")
        await guard.request(f)
        assert f.response is None and not f.marked and not f.comment
        assert f.metadata[META_KEY]["score"] == 0 and f.metadata[META_KEY]["action"] == "none"


async def test_outbound_leak_is_replaced_in_enforce_mode(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path))
        f = flow_for("/item?id=1")
        await guard.request(f)
        f.response = tutils.tresp(content=b"<p>You have an error in your SQL syntax near ''</p>")
        await guard.response(f)
        assert f.response.status_code == 403 and b"SQL" not in f.response.content
        record = f.metadata[META_KEY]
        assert record["outbound_score"] == 5 and record["action"] == "deny (outbound)"


async def test_saved_flow_is_judged_but_not_answered(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path), guard_mode="enforce")
        f = flow_for("/?q=union select", live=False)
        f.response = tutils.tresp(content=b"recorded answer")
        await guard.request(f)
        await guard.response(f)
        assert f.response.content == b"recorded answer"
        record = f.metadata[META_KEY]
        assert record["blocked"] is True and record["action"] == "none (offline)"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("guard_mode", "block", "guard_mode"),
        ("guard_paranoia", 5, "guard_paranoia"),
        ("guard_inbound_threshold", 0, "guard_inbound_threshold"),
        ("guard_body_limit", 0, "guard_body_limit"),
        ("guard_error_action", "explode", "guard_error_action"),
        ("guard_rules", ["/nonexistent/rules"], "/nonexistent/rules"),
    ],
)
def test_bad_options_are_refused(guard: LogoutGuard, option: str, value: object, message: str) -> None:
    with taddons.context(guard) as tctx, pytest.raises(exceptions.OptionsError, match=message):
        tctx.configure(guard, **{option: value})


def test_bad_rule_file_names_file_rule_and_field(guard: LogoutGuard, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(RULES.replace("[lowercase]", "[lowercas]"))
    with taddons.context(guard) as tctx, pytest.raises(exceptions.OptionsError) as info:
        tctx.configure(guard, guard_rules=[str(tmp_path)])
    text = str(info.value)
    assert "bad.yaml" in text and "100001" in text and "transforms[0]" in text and "'lowercase'" in text


async def test_reload_with_a_broken_file_keeps_the_running_ruleset(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path))
        running = guard.pipeline.engine
        (rules_dir / "rules.yaml").write_text(RULES.replace("operator: rx", "operator: rxx"))
        assert "refused" in guard.reload()
        assert guard.pipeline.engine is running
        f = flow_for("/?q=union select")
        await guard.request(f)
        assert f.response is not None and f.response.status_code == 403
        (rules_dir / "rules.yaml").write_text(RULES.replace("union", "onion"))
        assert "reloaded 2 rules" in guard.reload()
        f = flow_for("/?q=union select")
        await guard.request(f)
        assert f.response is None


def frozen(thing: object) -> bool:
    """gc.freeze() moved it out of the collector's generations (get_objects lists those only)."""
    return gc.get_freeze_count() > 0 and not any(o is thing for o in gc.get_objects())


def test_the_running_engine_is_kept_out_of_the_collectors_way_and_a_replaced_one_is_freed(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    try:
        with taddons.context(guard) as tctx:
            tctx.configure(guard, **base_options(rules_dir, tmp_path))
            assert frozen(guard.pipeline.engine)  # the engine and everything loaded with it
            replaced = weakref.ref(guard.pipeline.engine)
            assert "reloaded 2 rules" in guard.reload()
            assert replaced() is None and frozen(guard.pipeline.engine)  # the old one freed, the new frozen
            replaced = weakref.ref(guard.pipeline.engine)
            tctx.configure(guard, guard_paranoia=2)  # a change while running builds a new engine
            assert replaced() is None and frozen(guard.pipeline.engine)
    finally:
        gc.unfreeze()


async def test_explain_lists_rules_and_totals(guard: LogoutGuard, rules_dir: Path, tmp_path: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path))
        f = flow_for("/?q=union select")
        await guard.request(f)
        rows = guard.explain_flows([f, flow_for("/never-judged")])
        assert all(len(row) == 2 for row in rows)  # mitmproxy's Data: a table in the console
        labels = [label for label, _ in rows]
        assert labels == ["flow", "verdict", "rule 100001", "scores", "decision", "reason", "flow", "verdict"]
        assert rows[2][1] == "union select | ARGS:q = 'union select' | +5 test PL1"
        assert rows[3][1].startswith("inbound 5 of 5,") and rows[-1][1] == "not judged by LogoutGuard"
        # through mitmproxy's command manager, which checks the rows against the declared Data type
        assert tctx.master.commands.call("guard.explain", [f]) == rows[:6]


class FailingEngine(Engine):
    def inspect_request(self, tx):  # type: ignore[no-untyped-def]
        raise RuntimeError("engine failure for the test")


@pytest.mark.parametrize(("error_action", "status"), [("deny", 403), ("pass", None)])
async def test_internal_error_still_gives_a_verdict(
    guard: LogoutGuard, rules_dir: Path, error_action: str, status: int | None, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path), guard_error_action=error_action)
        assert guard.ruleset is not None
        guard.pipeline.engine = FailingEngine(guard.ruleset)
        f = flow_for("/")
        await guard.request(f)
        assert (f.response.status_code if f.response else None) == status
        assert "engine failure" in f.metadata[META_KEY]["error"]


BAD_INPUTS = {
    "invalid percent-encoding": dict(path="/a%zz%?q=%%41%u12&x=%"),
    "invalid utf-8": dict(
        path="/p",
        method="POST",
        body=b"name=\xff\xfe\xc3\x28&b=\xed\xa0\x80",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "binary body": dict(
        path="/upload",
        method="POST",
        body=bytes(range(256)) * 64,
        headers={"Content-Type": "application/octet-stream"},
    ),
    "multipart without boundary": dict(
        path="/u",
        method="POST",
        body=b"--x\r\n\r\nhello\r\n--x--",
        headers={"Content-Type": "multipart/form-data"},
    ),
    "multipart garbage": dict(
        path="/u",
        method="POST",
        body=b"\x00--b\r\nContent-Disposition: \xff\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ),
    "truncated json": dict(
        path="/api",
        method="POST",
        body=b'{"a": [1, {"b": "union select',
        headers={"Content-Type": "application/json"},
    ),
    "deep json": dict(
        path="/api",
        method="POST",
        body=b"[" * 100_000 + b"]" * 100_000,
        headers={"Content-Type": "application/json"},
    ),
    "10000 args": dict(path="/?" + "&".join(f"a{i}=v{i}" for i in range(10_000))),
    "5 MB body": dict(
        path="/big",
        method="POST",
        body=b"a=" + b"x" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "odd header bytes": dict(
        path="/", headers={"X-\x7fodd": "va\x00l\x1bue\xff", "Cookie": "=; ;a;==;\x00=1"}
    ),
    "gzip that is not gzip": dict(
        path="/",
        method="POST",
        body=b"not gzip",
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
async def test_bad_input_gets_a_verdict(
    guard: LogoutGuard, rules_dir: Path, name: str, tmp_path: Path
) -> None:
    spec = dict(BAD_INPUTS[name])
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path))
        f = flow_for(spec.pop("path"), **spec)
        await guard.request(f)
        record = f.metadata[META_KEY]
        assert "error" not in record, record.get("error")
        assert isinstance(record["score"], int)
        json.dumps(record)


async def test_truncated_json_is_still_inspected_raw(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path))
        f = flow_for(
            "/api",
            method="POST",
            body=b'{"a": "1 union select pass',
            headers={"Content-Type": "application/json"},
        )
        await guard.request(f)
        assert f.metadata[META_KEY]["matches"][0]["target"] == "REQUEST_BODY"


# -- sessions, policy and the forced logout (unit level; the e2e tests use the real demo app) -----

POLICY = """
session: {cookies: [JSESSIONID], csrf_cookie: csrftoken, grace_period: 0}
logout:
  steps:
    - path: /account
      take: {csrf: {form_field: csrf, form_action: /logout}}
  method: POST
  path: /logout
  body: "csrf={csrf}"
  client_response: {type: redirect, location: "/login?bye=1"}
actions: {revoked_session: redirect, unknown_session: strip, redirect_location: /login}
cumulative: {scored_requests: 2, window: 600, action: logout}
"""
UPSTREAM = "reverse:http://127.0.0.1:9"


def session_options(rules_dir: Path, tmp_path: Path, **extra: object) -> dict[str, object]:
    policy = tmp_path / "policy" / "policy.yaml"
    policy.parent.mkdir(exist_ok=True)
    policy.write_text(POLICY)
    return {
        **base_options(rules_dir, tmp_path),
        "guard_policy": str(policy),
        "mode": [UPSTREAM],
        **extra,
    }


async def login(guard: LogoutGuard, session_id: str = "S1", csrf: str = "T1") -> None:
    """Let the guard learn a session from a login response, as the application issues it."""
    f = flow_for(
        "/login",
        method="POST",
        body=b"username=guest&password=guest",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await guard.request(f)
    f.response = tutils.tresp(status_code=302, content=b"")
    f.response.headers.add("Set-Cookie", f"JSESSIONID={session_id}; Path=/; HttpOnly")
    f.response.headers.add("Set-Cookie", f"csrftoken={csrf}; Path=/")
    await guard.response(f)


AUTH = {
    "Cookie": "JSESSIONID=S1; csrftoken=T1; theme=dark",
    "Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q=",
    "X-Forwarded-Host": "evil.test",
    "User-Agent": "Mozilla/5.0 test",
}


async def test_attack_on_a_session_becomes_the_logout_request(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    app = start_backend()  # the application: answers the logout with a new session cookie
    app.response_body = b'<form method="post" action="/logout"><input name="csrf" value="T1"></form>'
    app.response_headers = [("Set-Cookie", "JSESSIONID=NEW; Path=/; HttpOnly")]
    try:
        with taddons.context(guard) as tctx:
            tctx.configure(guard, **session_options(rules_dir, tmp_path, mode=[f"reverse:{app.url}"]))
            await login(guard)
            f = flow_for(
                "http://evil.test/search?q=1 union select pass", headers={**AUTH, "Host": "evil.test"}
            )
            shown = Recorder()
            tctx.master.addons.add(shown)
            await guard.request(f)
            record = f.metadata[META_KEY]
            assert record["situation"] == "authenticated_over_threshold" and record["action"] == "logout"
            # the flow keeps the attacker's request; the logout is a flow of its own, handed to mitmproxy
            assert f.request.path == "http://evil.test/search?q=1 union select pass"
            assert f.request.headers["Host"] == "evil.test" and "original_request" not in record
            await asyncio.gather(*guard._background)
            [logout_flow] = shown.flows
            assert logout_flow.id == record["logout_flow"] != f.id and not logout_flow.live
            req = logout_flow.request
            assert (req.method, req.path, req.host, req.port) == ("POST", "/logout", "127.0.0.1", app.port)
            assert req.content == b"csrf=T1"
            # the app's answer to the logout (this backend answers every request with the step's form)
            assert (logout_flow.response.status_code, logout_flow.response.content) == (200, app.response_body)
            assert logout_flow.metadata[LOGOUT_KEY]["for flow"] == f.id
            assert logout_flow.metadata[LOGOUT_KEY]["result"] == "not verifiable"  # no check path
            assert logout_flow.marked and logout_flow.comment.startswith(f"LogoutGuard: forced logout for flow {f.id[:8]}")
            assert META_KEY not in logout_flow.metadata  # LogoutGuard's hooks skipped it
            sent = {
                "Host": f"127.0.0.1:{app.port}",
                "User-Agent": "LogoutGuard (forced logout)",
                # this backend sets JSESSIONID=NEW on every answer, the step's too: the recipe's jar
                # follows the application as a browser would; the attacker's csrftoken never travels
                "Cookie": "JSESSIONID=NEW",
                "Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q=",
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": "7",
            }
            assert dict(req.headers) == sent
            [got] = [r for r in app.received if r.method == "POST"]  # the logout reached the app once
            assert (got.method, got.path, got.body) == ("POST", "/logout", b"csrf=T1")
            assert {k: v for k, v in got.headers if k != "Connection"} == sent
            # before it, the recipe's step: the page fetched with the session only (its token taken)
            [step] = [r for r in app.received if r.path == "/account"]
            assert dict(step.headers)["Cookie"] == "JSESSIONID=S1"
            assert await guard.pipeline.tracker.store.is_revoked(record["session"]["hash"])
            # the ID issued to the attacker's session during the step is revoked with it
            assert await guard.pipeline.tracker.store.is_revoked(guard.pipeline.tracker.hasher.hash("NEW"))
            # the client gets the policy's redirect, with the application's new cookie
            assert f.response.status_code == 302 and f.response.headers["Location"] == "/login?bye=1"
            assert f.response.headers["Set-Cookie"].startswith("JSESSIONID=NEW")
            logout = record["logout"]
            assert logout["cookie_replaced"] is True and logout["accepted"] is True and logout["status"] == 200
            # this backend answers every page alike: whether the session ended cannot be told
            assert logout["result"] == "unverifiable" and logout["probe"].startswith("unclear: GET / looks the same")
            await guard.response(f)  # our own answer: nothing more happens
            assert f.response.status_code == 302
            # the old ID is refused from now on, with the policy's revoked-session action
            again = flow_for("/account", headers=AUTH)
            await guard.request(again)
            assert again.metadata[META_KEY]["situation"] == "revoked_session"
            assert again.response.status_code == 302 and again.response.headers["Location"] == "/login"
            audit = (tmp_path / "audit.jsonl").read_text()
            assert "S1" not in audit.replace("S1=", "") and "Z3Vlc3Q6" not in audit and "logout" in audit
    finally:
        app.stop()


async def test_logout_to_a_dead_upstream_still_revokes_and_answers(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **session_options(rules_dir, tmp_path))  # nothing listens on port 9
        await login(guard)
        f = flow_for("/search?q=union select", headers=AUTH)
        await guard.request(f)
        logout = f.metadata[META_KEY]["logout"]
        assert logout["ok"] is False and logout["status"] is None and logout["error"]
        assert logout["result"] == "failed" and logout["warning"] is True
        assert f.response.status_code == 302  # the policy's answer all the same
        assert await guard.pipeline.tracker.store.is_revoked(f.metadata[META_KEY]["session"]["hash"])


async def test_unknown_session_is_stripped_and_passed_as_anonymous(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **session_options(rules_dir, tmp_path))
        f = flow_for("/account", headers={"Cookie": "JSESSIONID=forged; theme=dark"})
        await guard.request(f)
        record = f.metadata[META_KEY]
        assert f.response is None and record["action"] == "strip" and record["session"]["state"] == "unknown"
        assert f.request.headers["Cookie"] == "theme=dark"
        assert 945100 in [m["id"] for m in record["matches"]] or record["matches"] == []


def scoring_two_rules(tmp_path: Path) -> Path:
    """RULES with its union-select rule scoring 2 (under the inbound threshold: only the window counts it)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        RULES.replace('argument: "union\\\\s+select"', 'argument: "union\\\\s+select"\n    score: 2')
    )
    return rules


async def test_cumulative_scored_requests_force_the_logout(guard: LogoutGuard, tmp_path: Path) -> None:
    rules = scoring_two_rules(tmp_path)
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **session_options(rules, tmp_path))
        await login(guard)
        first = flow_for("/search?q=union select", headers=AUTH)
        await guard.request(first)
        assert first.metadata[META_KEY]["action"] == "none" and first.metadata[META_KEY]["score"] == 2
        second = flow_for("/search?q=union select", headers=AUTH)
        await guard.request(second)
        assert second.metadata[META_KEY]["situation"] == "cumulative_threshold"
        assert second.metadata[META_KEY]["action"] == "logout" and second.request.path == "/search?q=union select"
        assert second.metadata[META_KEY]["logout"]["path"] == "/logout"


async def test_only_scored_requests_count_toward_the_cumulative_window(
    guard: LogoutGuard, tmp_path: Path
) -> None:
    rules = scoring_two_rules(tmp_path)
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **session_options(rules, tmp_path))
        await login(guard)
        for _ in range(3):  # clean requests of the session: not scored, not counted
            clean = flow_for("/search?q=shoes", headers=AUTH)
            await guard.request(clean)
            assert clean.metadata[META_KEY]["score"] == 0
        scored = flow_for("/search?q=union select", headers=AUTH)
        await guard.request(scored)
        record = scored.metadata[META_KEY]
        assert record["score"] == 2 and record["situation"] == "clean" and record["action"] == "none"


async def test_offline_judging_changes_nothing_live(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **session_options(rules_dir, tmp_path))
        await login(guard)
        saved = flow_for("/search?q=union select", headers=AUTH, live=False)
        saved.response = tutils.tresp(content=b"recorded")
        await guard.request(saved)
        await guard.response(saved)
        assert saved.request.path == "/search?q=union select" and saved.response.content == b"recorded"
        record = saved.metadata[META_KEY]
        assert record["action"] == "none (offline)" and record["decision"] == "deny"
        assert record["session"]["state"] == "unknown"  # the offline tracker never saw the login
        live_hash = guard.pipeline.tracker.hasher.hash("S1")
        assert not await guard.pipeline.tracker.store.is_revoked(live_hash)
        assert not (tmp_path / "audit.jsonl").read_text().count("none (offline)")


async def test_revoke_command_kills_the_session(guard: LogoutGuard, rules_dir: Path, tmp_path: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **session_options(rules_dir, tmp_path))
        await login(guard)
        f = flow_for("/account", headers=AUTH)
        await guard.request(f)
        assert f.response is None
        assert "S1" not in guard.sessions() and guard.pipeline.tracker.hasher.hash("S1") in guard.sessions()
        assert "revoking 1 session" in guard.revoke([f])
        await asyncio.sleep(0.05)
        again = flow_for("/account", headers=AUTH)
        await guard.request(again)
        assert again.metadata[META_KEY]["situation"] == "revoked_session"


@pytest.mark.parametrize("evil", ["Basic x\r\nX-Injected: 1", "Basic x\x00"])
async def test_session_values_cannot_inject_into_the_logout(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path, evil: str
) -> None:
    """The credentials the logout keeps (Authorization) carry CR/LF/NUL: no logout is built. (The
    CSRF cookie of the attacking request, used here before issue 10, no longer travels at all.)"""
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **session_options(rules_dir, tmp_path))
        await login(guard)
        f = flow_for("/search?q=union select", headers={**AUTH, "Authorization": evil})
        await guard.request(f)
        record = f.metadata[META_KEY]
        assert record["action"] == "deny (logout not sent)" and f.response.status_code == 403
        assert "CR, LF or NUL" in record["logout"]["error"]
        assert await guard.pipeline.tracker.store.is_revoked(record["session"]["hash"])


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_store_unavailable_follows_the_fail_mode(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path, fail_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(
            guard,
            **session_options(
                rules_dir, tmp_path, guard_fail_mode=fail_mode, guard_session_store=str(tmp_path / "s.sqlite")
            ),
        )
        await login(guard)
        await guard.store.close()  # every store call now raises StoreError
        anonymous = flow_for("/account")
        await guard.request(anonymous)
        assert anonymous.response is None
        with_session = flow_for("/account", headers=AUTH)
        await guard.request(with_session)
        record = with_session.metadata[META_KEY]
        assert "closed" in record["store_error"]
        if fail_mode == "closed":
            assert with_session.response.status_code == 503 and record["situation"] == "store_unavailable"
        else:
            assert with_session.response is None
            attack = flow_for("/search?q=union select", headers=AUTH)
            await guard.request(attack)
            record = attack.metadata[META_KEY]
            assert record["action"] == "logout" and record["logout"]["sent"]
            assert attack.request.path == "/search?q=union select"  # kept as sent
            # the revocation could not be recorded, but this worker still refuses the ID (its local cache)
            again = flow_for("/account", headers=AUTH)
            await guard.request(again)
            assert again.metadata[META_KEY]["situation"] == "revoked_session"
            assert again.response.status_code == 302 and again.response.headers["Location"] == "/login"
        assert (
            sum("session store unavailable" in r.getMessage() for r in caplog.records) == 1
        )  # once, not per request


DEBIAN_CRS = Path("/usr/share/modsecurity-crs/rules")


@pytest.fixture
def debian_crs() -> None:
    if not DEBIAN_CRS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's modsecurity-crs is not installed (.ci/run installs it)")
        pytest.skip("Debian's modsecurity-crs is not installed")


async def test_owasp_crs_runs_beside_our_rules(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path, debian_crs: None
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path), guard_crs="debian")
        attack = flow_for(
            "/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
            headers={"User-Agent": "Mozilla/5.0", "Accept": "text/html"},
        )
        await guard.request(attack)
        record = attack.metadata[META_KEY]
        ids = {m["id"] for m in record["matches"]}
        assert 100001 in ids and 942100 in ids  # ours and the CRS's libinjection rule
        assert attack.response.status_code == 403
        benign = flow_for("/search?q=shoes", headers={"User-Agent": "Mozilla/5.0", "Accept": "text/html"})
        await guard.request(benign)
        assert benign.response is None and benign.metadata[META_KEY]["matches"] == []


def test_bad_crs_path_is_refused(guard: LogoutGuard, tmp_path: Path) -> None:
    with taddons.context(guard) as tctx, pytest.raises(exceptions.OptionsError, match="guard_crs"):
        tctx.configure(guard, guard_session_store="memory", guard_crs=str(tmp_path / "no-crs-here"))


EXCLUSIONS = """
exclusions:
  - reason: the report builder sends SQL on purpose
    rules: [100001]
    targets: ["ARGS:query"]
    when: {path_prefix: /reports/, method: POST}
  - rules: [942100]
    ruleset: crs
"""


async def test_exclusions_apply_to_our_rules_and_the_crs(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path, debian_crs: None
) -> None:
    exclusions = tmp_path / "conf" / "exclusions.yaml"  # not in the rules folder (tmp_path)
    exclusions.parent.mkdir()
    exclusions.write_text(EXCLUSIONS)
    with taddons.context(guard) as tctx:
        tctx.configure(
            guard,
            **base_options(rules_dir, tmp_path),
            guard_crs="debian",
            guard_exclusions=[str(exclusions)],
        )
        sqli = "query=1%27%20UNION%20SELECT%20password%20FROM%20users--"
        headers = {"User-Agent": "Mozilla/5.0", "Accept": "text/html"}
        excluded = flow_for(f"/reports/run?{sqli}", method="POST", headers=headers)
        await guard.request(excluded)
        ids = {m["id"] for m in excluded.metadata[META_KEY]["matches"]}
        assert 100001 not in ids and 942100 not in ids  # ours for this path, the CRS's everywhere
        elsewhere = flow_for(f"/shop/run?{sqli}", method="POST", headers=headers)
        await guard.request(elsewhere)
        ids = {m["id"] for m in elsewhere.metadata[META_KEY]["matches"]}
        assert 100001 in ids and 942100 not in ids
        assert elsewhere.response is not None and elsewhere.response.status_code == 403


def test_a_bad_exclusions_file_is_refused_naming_the_option_entry_and_field(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    exclusions = tmp_path / "conf" / "exclusions.yaml"  # not in the rules folder (tmp_path)
    exclusions.parent.mkdir()
    exclusions.write_text("exclusions:\n  - rules: [100003]\n")
    with taddons.context(guard) as tctx, pytest.raises(exceptions.OptionsError) as info:
        tctx.configure(
            guard, **base_options(rules_dir, tmp_path), guard_exclusions=[str(exclusions)]
        )
    assert str(info.value) == (
        f"guard_exclusions: {exclusions} exclusions[0] field 'rules[0]': "
        "no rule 100003 in our rules (did you mean 100002?)"
    )


def test_an_option_error_while_mitmproxy_loads_the_script_is_one_log_line(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """mitmproxy configures a script it loads with every option, inside an `except Exception` that logs
    the traceback (addons/script.py): that call logs the one line instead; one option set later raises
    (mitmproxy refuses it and rolls it back)."""
    with taddons.context(guard) as tctx:
        tctx.options.update(**base_options(rules_dir, tmp_path), guard_paranoia=1)
        tctx.options._options["guard_paranoia"].value = 9  # as a --set value the script's load applied
        guard.configure(set(tctx.options.keys()))
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert [(r.getMessage(), r.exc_info) for r in errors] == [("guard_paranoia: 9 is not in 1-4", None)]
        assert guard.pipeline.engine.paranoia == 1  # as the raise would leave it: the parts built before
        with pytest.raises(exceptions.OptionsError, match=r"^guard_paranoia: 9 is not in 1-4$"):
            guard.configure({"guard_paranoia"})


async def test_reload_rereads_the_exclusions_and_refuses_a_broken_file(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    exclusions = tmp_path / "conf" / "exclusions.yaml"  # not in the rules folder (tmp_path)
    exclusions.parent.mkdir()
    exclusions.write_text("exclusions:\n  - {rules: [100001], when: {path: /reports}}\n")
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **base_options(rules_dir, tmp_path), guard_exclusions=[str(exclusions)])
        f = flow_for("/reports?q=union select")
        await guard.request(f)
        assert f.response is None  # excluded there
        exclusions.write_text("exclusions:\n  - {rules: [100009]}\n")
        assert "refused" in guard.reload() and "no rule 100009" in guard.reload()
        f = flow_for("/reports?q=union select")
        await guard.request(f)
        assert f.response is None  # the running exclusions stay in force
        exclusions.write_text("exclusions: []\n")
        assert "reloaded 2 rules" in guard.reload()
        f = flow_for("/reports?q=union select")
        await guard.request(f)
        assert f.response is not None and f.response.status_code == 403


class ConfigureCounter:
    """An addon that notes every configure mitmproxy sends it."""

    def __init__(self) -> None:
        self.updates: list[set[str]] = []

    def configure(self, updated: set[str]) -> None:
        self.updates.append(set(updated))


def test_the_options_the_addon_needs_are_set_at_load_and_running_changes_none(
    guard: LogoutGuard, rules_dir: Path, tmp_path: Path
) -> None:
    """connection_strategy=lazy and the Host rewrite taken over (reverse mode) are set when the script
    loads, before mitmproxy listens: set in `running`, each made mitmproxy configure every addon again
    after "listening at", in the first request's way."""
    options = Options(mode=["reverse:http://127.0.0.1:8080"])
    counter = ConfigureCounter()
    with taddons.context(proxyserver.Proxyserver(), counter, options=options) as tctx:  # it declares them
        assert options.connection_strategy == "eager" and not options.keep_host_header  # mitmproxy's defaults
        tctx.master.addons.add(guard)  # load
        assert options.connection_strategy == "lazy" and options.keep_host_header and guard.rewrites_host
        tctx.configure(guard, **base_options(rules_dir, tmp_path))
        counter.updates.clear()
        guard.running()
        assert counter.updates == []
