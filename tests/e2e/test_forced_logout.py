"""End to end: real mitmdump + addon + demo policy in front of the real demo app, real HTTP.

log in -> browse -> attack -> the forced logout; and what happens to the old session ID after.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import io as mitmio

from e2e.browser import Browser
from logoutguard.demo.app import DemoApp
from logoutguard.logout_flow import LOGOUT_KEY
from procs import BIN, REPO, Mitmdump, start_mitmdump

pytestmark = pytest.mark.e2e

DEMO_POLICY = REPO / "addon" / "demo" / "policy.yaml"
XSS = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"


def store_rows(path: Path) -> list[tuple]:
    """Every row of the SQLite store's data tables (its bytes and meta.opened_at change on open)."""
    with sqlite3.connect(path) as db:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta' ORDER BY name"
            )
        ]
        return [(t, *row) for t in tables for row in db.execute(f"SELECT * FROM {t} ORDER BY 1")]


def audit_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Stack:
    """The demo app and a mitmdump with the addon in front of it, with their files in one folder."""

    def __init__(
        self, tmp: Path, defective: bool = False, policy: Path = DEMO_POLICY, **options: str
    ) -> None:
        self.tmp = tmp
        self.app = DemoApp(port=0, defective_logout=defective).start()
        self.store = tmp / "sessions.sqlite"
        self.audit = tmp / "audit.jsonl"
        self.policy = policy
        self.options = options
        self.proxy = self.start_proxy()

    def start_proxy(self, *extra: str, port: int | None = None) -> Mitmdump:
        opts = {
            "guard_policy": str(self.policy),
            "guard_session_store": str(self.store),
            "guard_audit_log": str(self.audit),
            "guard_mode": "enforce",
            **self.options,
        }
        return start_mitmdump(
            self.app.url, self.tmp, *(f"{k}={v}" for k, v in opts.items()), extra_args=extra, port=port
        )

    def browser(self, **kwargs: object) -> Browser:
        return Browser(self.proxy.port, **kwargs)  # type: ignore[arg-type]

    def direct(self) -> Browser:
        """A client that talks to the application directly, bypassing the proxy."""
        return Browser(self.app.port)

    def stop(self) -> None:
        self.proxy.stop()
        self.app.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def defective(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, defective=True)
    yield s
    s.stop()


def test_attack_on_a_session_forces_the_logout(stack: Stack) -> None:
    user = stack.browser()
    old = user.login()
    assert user.get("/account").status == 200
    assert b"guest" in user.get("/search?q=shoes").body
    reply = user.get(XSS)
    # the client gets the policy's answer (redirect), with the application's new cookie
    assert reply.status == 302 and reply.header("Location") == "/login?reason=signed-out"
    assert user.cookies["JSESSIONID"] != old
    # the session is gone at the application itself (asked directly, bypassing the proxy)
    assert not stack.app.is_session_valid(old)
    assert stack.direct().get("/account", cookies={"JSESSIONID": old}).status == 302
    # ... and the proxy refuses the old ID (policy: revoked_session -> redirect to /login)
    stolen = stack.browser(cookies={"JSESSIONID": old})
    refused = stolen.get("/account")
    assert refused.status == 302 and refused.header("Location") == "/login"
    lines = audit_lines(stack.audit)
    logout = next(line for line in lines if line["action"] == "logout")
    assert logout["situation"] == "authenticated_over_threshold" and logout["path"] == "/search"
    # `confirmed` (issue 10: it only meant "the app sent a new cookie") is now `cookie_replaced`;
    # whether the session ended is the probe's and the result's to say
    assert logout["logout"]["ok"] is True and logout["logout"]["cookie_replaced"] is True
    assert logout["logout"]["probe"] == "dead" and logout["logout"]["result"] == "ended"
    assert logout["logout"]["steps"] == [{"method": "GET", "path": "/account", "status": 200, "took": ["csrf"]}]
    assert any(line["situation"] == "revoked_session" for line in lines)
    text = stack.audit.read_text()
    assert old not in text and "csrftoken=" not in text


def test_defective_logout_is_closed_by_the_proxy(defective: Stack, tmp_path: Path) -> None:
    """The demo's --defective-logout: reported defective in mitmdump's log (a WARNING), in the audit
    line and in the flow record (metadata, mark and comment), and the proxy refuses the old ID."""
    saved = tmp_path / "defective.mitm"
    port = defective.proxy.port
    defective.proxy.stop()
    defective.proxy = defective.start_proxy("-w", str(saved), port=port)
    user = defective.browser()
    old = user.login()
    assert user.get(XSS).status == 302
    # the application's logout left the old session alive on the server ...
    assert defective.app.is_session_valid(old)
    assert defective.direct().get("/account", cookies={"JSESSIONID": old}).status == 200
    # ... the verification says so, and the proxy refuses the old ID all the same
    assert defective.browser(cookies={"JSESSIONID": old}).get("/account").status == 302
    defective.proxy.stop()
    logout = next(line for line in audit_lines(defective.audit) if line["action"] == "logout")
    assert logout["logout"]["probe"] == "alive" and logout["logout"]["cookie_replaced"] is True
    assert logout["logout"]["result"] == "defective" and logout["logout"]["warning"] is True
    assert logout["warning"].startswith("application logout defective: POST /logout answered 200")
    log = defective.proxy.log()
    assert "application logout defective: POST /logout answered 200, but the session is still alive" in log
    warning = next(line for line in log.splitlines() if "application logout defective" in line)
    assert "[revoked: " in warning and old not in log
    with saved.open("rb") as fh:
        flows = list(mitmio.FlowReader(fh).stream())
    attack = next(f for f in flows if f.metadata.get("logoutguard", {}).get("action") == "logout")
    record = attack.metadata["logoutguard"]
    assert record["logout"]["result"] == "defective" and record["logout"]["warning"] is True
    assert attack.request.path == XSS  # the attack as sent; the logout is the flow it names
    assert attack.marked and "-> logout: app defective WARNING: application logout defective" in attack.comment
    [shown] = [f for f in flows if f.id == record["logout_flow"]]
    assert shown.request.path == "/logout" and "app defective WARNING: application logout defective" in shown.comment


def write_policy(tmp: Path, **changes: str) -> Path:
    text = DEMO_POLICY.read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "policy-variant.yaml"
    path.write_text(text)
    return path


def test_get_logout_and_application_response(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        **{
            '  steps:\n    - path: /account\n      take:\n        csrf: {form_field: csrf, form_action: /logout}\n'
            '  method: POST\n  path: /logout\n  body: "csrf={token:csrf}"': "  method: GET\n  path: /attack?Logout=true",
            "    type: redirect\n    location: /login?reason=signed-out": "    type: application",
        },
    )
    s = Stack(tmp_path, policy=policy)
    try:
        user = s.browser()
        old = user.login()
        reply = user.get(XSS)
        assert reply.status == 200 and b"logged out" in reply.body.lower()
        assert not s.app.is_session_valid(old)
    finally:
        s.stop()


def saved_flows(path: Path) -> list:
    with path.open("rb") as fh:
        return list(mitmio.FlowReader(fh).stream())


@pytest.mark.parametrize("answer", ["redirect", "application"])
def test_out_of_band_logout(tmp_path: Path, answer: str) -> None:
    """out_of_band: the attack is refused (the policy's redirect; with `type: application` the
    signed-out page, never the logout's own answer) while the logout goes beside it, and is saved as
    a flow of its own as in rewrite mode."""
    changes = {"  mode: rewrite": "  mode: out_of_band"}
    if answer == "application":
        changes["    type: redirect\n    location: /login?reason=signed-out"] = "    type: application"
    s = Stack(tmp_path, policy=write_policy(tmp_path, **changes))
    saved = tmp_path / "flows.mitm"
    port = s.proxy.port
    s.proxy.stop()
    s.proxy = s.start_proxy("-w", str(saved), port=port)
    try:
        user = s.browser()
        old = user.login()
        reply = user.get(XSS)
        if answer == "redirect":
            assert reply.status == 302 and reply.header("Location") == "/login?reason=signed-out"
        else:
            assert reply.status == 403 and b"sign in again" in reply.body and b"logged out" not in reply.body.lower()
            assert reply.header("Set-Cookie").startswith("JSESSIONID=")  # the app's new cookie replaces the old
            assert user.cookies["JSESSIONID"] != old
        assert not s.app.is_session_valid(old)
        logout = next(line for line in audit_lines(s.audit) if line["action"] == "logout (out-of-band)")
        assert logout["logout"]["status"] == 200 and logout["logout"]["probe"] == "dead"
        assert logout["logout"]["result"] == "ended" and logout["path"] == "/search"
        assert s.browser(cookies={"JSESSIONID": old}).get("/account").status == 302
    finally:
        s.stop()
    flows = saved_flows(saved)
    attack = next(f for f in flows if f.metadata.get("logoutguard", {}).get("action") == "logout (out-of-band)")
    assert attack.request.path == XSS and attack.response.status_code == reply.status  # as sent, as answered
    [shown] = [f for f in flows if f.id == attack.metadata["logoutguard"]["logout_flow"]]
    assert (shown.request.method, shown.request.path, shown.response.status_code) == ("POST", "/logout", 200)
    assert shown.metadata[LOGOUT_KEY]["for flow"] == attack.id and shown.comment.endswith("): ended")


def test_upstream_down_during_the_logout_still_revokes(stack: Stack) -> None:
    user = stack.browser()
    old = user.login()
    port = stack.app.port
    stack.app.stop()
    started = time.monotonic()
    reply = user.get(XSS)
    assert time.monotonic() - started < 10
    # the policy's answer all the same (a redirect to the login page), without a new cookie
    assert reply.status == 302 and reply.header("Location") == "/login?reason=signed-out"
    # the application comes back (same port): the old ID stays dead at the proxy
    stack.app = DemoApp(port=port).start()
    assert stack.browser(cookies={"JSESSIONID": old}).get("/account").status == 302
    failed = next(line for line in audit_lines(stack.audit) if line["action"] == "logout")
    assert failed["logout"]["ok"] is False and failed["logout"]["status"] is None
    assert "refused" in failed["logout"]["error"].lower()


def test_unknown_session_id_is_stripped(stack: Stack) -> None:
    forged = stack.browser(cookies={"JSESSIONID": "forged-id-never-issued"})
    reply = forged.get("/account")
    assert reply.status == 302 and reply.header("Location") == "/login"  # the app saw no session
    line = audit_lines(stack.audit)[-1]
    assert line["action"] == "strip" and 945100 in line["rules"]


def test_user_agent_change_scores_and_adds_up_to_a_logout(stack: Stack) -> None:
    user = stack.browser()
    old = user.login()
    thief = stack.browser(cookies=dict(user.cookies), user_agent="curl/8.5.0")  # the whole cookie jar stolen
    for _ in range(2):
        assert thief.get("/account").status == 200  # 3 points each: under the threshold
    reply = thief.get("/account")  # the third scored request in the window: cumulative logout
    assert reply.status == 302
    assert not stack.app.is_session_valid(old)
    lines = audit_lines(stack.audit)
    assert [945140 in line["rules"] for line in lines[-3:]] == [True, True, True]
    assert lines[-1]["situation"] == "cumulative_threshold" and lines[-1]["action"] == "logout"


def test_restart_of_mitmdump_keeps_revocations(stack: Stack) -> None:
    user = stack.browser()
    old = user.login()
    assert user.get(XSS).status == 302
    port = stack.proxy.port
    stack.proxy.stop()
    stack.proxy = stack.start_proxy(port=port)
    refused = stack.browser(cookies={"JSESSIONID": old}).get("/account")
    assert refused.status == 302 and refused.header("Location") == "/login"
    assert audit_lines(stack.audit)[-1]["situation"] == "revoked_session"


def test_two_concurrent_attacks_on_one_session(stack: Stack) -> None:
    user = stack.browser()
    old = user.login()
    replies = []

    def attack() -> None:
        replies.append(
            stack.browser(cookies={"JSESSIONID": old, "csrftoken": user.cookies["csrftoken"]}).get(XSS)
        )

    threads = [threading.Thread(target=attack) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in replies) == [302, 302]
    assert not stack.app.is_session_valid(old)
    assert "Traceback" not in stack.proxy.log()


def test_offline_replay_changes_nothing_live(stack: Stack, tmp_path: Path) -> None:
    saved = tmp_path / "saved.mitm"
    port = stack.proxy.port
    stack.proxy.stop()
    stack.proxy = stack.start_proxy("-w", str(saved), port=port)
    user = stack.browser()
    old = user.login()
    assert user.get(XSS).status == 302
    victim = stack.browser()
    alive = victim.login()
    stack.proxy.stop()
    before = store_rows(stack.store)
    audit_before = stack.audit.read_text()
    judged = tmp_path / "judged.mitm"
    offline = subprocess.run(
        [
            str(BIN / "mitmdump"),
            "-n",
            "-r",
            str(saved),
            "-w",
            str(judged),
            "-s",
            str(REPO / "addon" / "main.py"),
            "--set",
            f"guard_policy={DEMO_POLICY}",
            "--set",
            f"guard_session_store={stack.store}",
            "--set",
            f"guard_audit_log={stack.audit}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert store_rows(stack.store) == before and stack.audit.read_text() == audit_before
    assert stack.app.is_session_valid(alive) and not stack.app.is_session_valid(old)
    with judged.open("rb") as fh:
        flows = list(mitmio.FlowReader(fh).stream())
    # the forced logout was saved as a flow of its own beside the attack, and is not judged again
    [shown] = [f for f in flows if LOGOUT_KEY in f.metadata]
    assert shown.request.path == "/logout" and "logoutguard" not in shown.metadata
    records = {f.id: f.metadata["logoutguard"] for f in flows if f is not shown}
    attack = records[shown.metadata[LOGOUT_KEY]["for flow"]]
    assert attack["blocked"] and attack["action"] == "none (offline)"  # the attack, saved as it was sent
    assert any(m["target"] == "ARGS:q" for m in attack["matches"])
