"""Verification: classifying the old session's answer against decisive checks, or against the page before the
logout and an anonymous one (table-driven), and the snapshots over real HTTP."""

from __future__ import annotations

import pytest

from logoutguard.logout_probe import Probe, Snapshot, baseline, classify, needs_baseline, normalized, snapshot
from logoutguard.policy import PageCheck, Verify
from logoutguard.upstream_http import Upstream
from procs import free_port, start_backend

LOGIN_FORM = b'<html><form action="j_security_check;jsessionid=%s"><input name="j_username"></form></html>'
ACCOUNT = b"<html><p>Signed in as alice</p><form action=/logout><input name=csrf value=%s></form></html>"


def login_form(token: str = "A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6") -> Snapshot:
    return Snapshot(200, body=LOGIN_FORM % token.encode())


def account(csrf: str = "tok-123456789012345678") -> Snapshot:
    return Snapshot(200, body=ACCOUNT % csrf.encode())


def to_login(next_: str = "/account/") -> Snapshot:
    return Snapshot(302, location=f"/accounts/login/?next={next_}")


PLAIN = Verify(check_path="/account/")
MARKED = Verify(
    check_path="/account/",
    logged_in=PageCheck((200,), "Signed in as"),
    logged_out=PageCheck((200,), "j_security_check"),
)
REDIRECTS = Verify(check_path="/account/", logged_out=PageCheck((302,), location="/accounts/login/"))
STATUS_ONLY = Verify(check_path="/account/", logged_in=PageCheck((200,)))  # the old alive_status: [200]

CASES = [
    # (name, verify, after, before, anonymous, probe, words)
    (
        "login page 200 after, as anonymous: dead",
        PLAIN,
        login_form("X" * 32),
        account(),
        login_form(),
        Probe.DEAD,
        "as without a session",
    ),
    (
        "account page after, as before: alive",
        PLAIN,
        account("other-token-0000000000"),
        account(),
        login_form(),
        Probe.ALIVE,
        "as it did logged in",
    ),
    (
        "redirect after, as anonymous: dead",
        PLAIN,
        to_login(),
        account(),
        to_login(),
        Probe.DEAD,
        "as without a session",
    ),
    (
        "same page with and without a session: unclear",
        PLAIN,
        account(),
        account(),
        account("zzz-00000000000000000"),
        Probe.UNCLEAR,
        "cannot tell",
    ),
    (
        "no answer after: failed",
        PLAIN,
        Snapshot(None, error="timeout"),
        account(),
        login_form(),
        Probe.FAILED,
        "no answer",
    ),
    ("a server error after: failed", PLAIN, Snapshot(500), account(), login_form(), Probe.FAILED, "500"),
    ("no baseline: unclear", PLAIN, login_form(), None, None, Probe.UNCLEAR, "no page to compare"),
    (
        "neither page: unclear",
        PLAIN,
        Snapshot(200, body=b"<p>maintenance</p>"),
        account(),
        login_form(),
        Probe.UNCLEAR,
        "neither",
    ),
    (
        "same status, other redirect target: dead by place",
        PLAIN,
        Snapshot(302, location="/accounts/login/?next=/x"),
        account(),
        Snapshot(302, location="/accounts/login/?next=/x", body=b"a"),
        Probe.DEAD,
        "as without",
    ),
    ("marker: still logged in", MARKED, account(), account(), None, Probe.ALIVE, "still looks logged in"),
    ("marker: login form", MARKED, login_form(), account(), None, Probe.DEAD, "looks logged out"),
    (
        "marker: neither",
        MARKED,
        Snapshot(200, body=b"<p>?</p>"),
        account(),
        None,
        Probe.UNCLEAR,
        "matches neither",
    ),
    (
        "marker does not describe the page before: unclear",
        MARKED,
        login_form(),
        Snapshot(200, body=b"<p>hi</p>"),
        None,
        Probe.UNCLEAR,
        "did not look logged in",
    ),
    (
        "status-only logged_in falls back to the comparison",
        STATUS_ONLY,
        login_form("Y" * 32),
        account(),
        login_form(),
        Probe.DEAD,
        "as without",
    ),
    (
        "status-only logged_in, login page 200: not alive",
        STATUS_ONLY,
        login_form(),
        account(),
        login_form(),
        Probe.DEAD,
        "as without",
    ),
    ("logged_out redirect: dead", REDIRECTS, to_login(), account(), None, Probe.DEAD, "looks logged out"),
    (
        "logged_out redirect, page as before: alive",
        REDIRECTS,
        account(),
        account(),
        None,
        Probe.ALIVE,
        "as before",
    ),
    (
        "logged_out matched already before: unclear",
        REDIRECTS,
        to_login(),
        to_login(),
        None,
        Probe.UNCLEAR,
        "already looked logged out",
    ),
]


@pytest.mark.parametrize(
    ("verify", "after", "before", "anonymous", "probe", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_classify(
    verify: Verify,
    after: Snapshot,
    before: Snapshot | None,
    anonymous: Snapshot | None,
    probe: Probe,
    words: str,
) -> None:
    got, why = classify(verify, after, before, anonymous)
    assert got is probe and words in why, why


def test_normalized_hides_what_differs_between_two_visits() -> None:
    assert normalized(login_form("A" * 32).body) == normalized(login_form("B" * 32).body)
    assert normalized(account("t1").body) == normalized(account("t2").body)  # attribute values
    assert normalized(b"<p>Page 1 of 12</p>") == normalized(b"<p>Page   3 of 4</p>")
    assert normalized(account().body) != normalized(login_form().body)


def test_needs_baseline() -> None:
    assert needs_baseline(PLAIN) == (True, True) and needs_baseline(STATUS_ONLY) == (True, True)
    assert needs_baseline(MARKED) == (True, False) and needs_baseline(REDIRECTS) == (True, False)


async def test_snapshots_over_real_http() -> None:
    app = start_backend()
    app.response_body = b"<p>Signed in as alice</p>"
    app.response_headers = [("Location", "/x")]
    try:
        upstream = Upstream("http", "127.0.0.1", app.port)
        shot = await snapshot(upstream, "/account", [("Cookie", "sid=S1")], 2)
        assert (shot.status, shot.location, shot.body) == (200, "/x", b"<p>Signed in as alice</p>")
        before, anonymous = await baseline(upstream, PLAIN, [("Cookie", "sid=S1")])
        assert before is not None and anonymous is not None and before.status == anonymous.status == 200
        sent = sorted((r.path, dict(r.headers).get("Cookie", "")) for r in app.received[1:])
        assert sent == [("/account/", ""), ("/account/", "sid=S1")]
        marked_before, none = await baseline(upstream, MARKED, [("Cookie", "sid=S1")])
        assert marked_before is not None and none is None
    finally:
        app.stop()
    down = await snapshot(Upstream("http", "127.0.0.1", free_port()), "/", [], 1)
    assert down.status is None and down.error and not down.answered
