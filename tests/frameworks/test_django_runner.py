"""Django 5 test site: POST-only logout with CSRF, the trailing-slash redirect, both CSRF storage variants,
and the django_session table as the store."""

from __future__ import annotations

import sqlite3

import pytest

from frameworks.client import matches
from frameworks.profile import USER
from frameworks.running import RunningApp

pytestmark = pytest.mark.e2e


def test_logout_is_post_only_and_needs_the_trailing_slash(django_app: RunningApp) -> None:
    browser = django_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    fields = browser.logout_token()
    assert browser.get("/accounts/logout/").status_code == 405  # Django 5: GET logout is gone
    lost = browser.post("/accounts/logout", data=fields)  # CommonMiddleware.APPEND_SLASH, DEBUG off
    assert lost.status_code == 301 and lost.headers["Location"] == "/accounts/logout/"
    assert django_app.session(sid) is not None and browser.is_logged_in()
    assert browser.post("/accounts/logout/", data=fields).status_code == 302
    assert django_app.session(sid) is None


def test_logout_expires_the_session_cookie_and_deletes_the_row(django_app: RunningApp) -> None:
    browser = django_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    response = browser.logout()
    assert response.headers["Location"] == "/accounts/login/"
    expiring = [c for c in response.headers.get_list("set-cookie") if c.startswith("sessionid=")]
    assert expiring and "Max-Age=0" in expiring[0], response.headers.get_list("set-cookie")
    with sqlite3.connect(django_app.database) as db:  # type: ignore[attr-defined]
        assert db.execute("SELECT COUNT(*) FROM django_session WHERE session_key = ?", (sid,)).fetchone() == (
            0,
        )


def test_default_csrf_token_is_the_csrftoken_cookie_and_not_bound_to_the_session(
    django_app: RunningApp,
) -> None:
    """Double submit: any matching cookie/field pair passes, so a logout can carry a pair nobody issued."""
    victim = django_app.client()
    victim.login()
    sid = victim.session_id()
    assert sid is not None and victim.cookie("csrftoken")
    stored = django_app.session(sid)
    assert stored is not None and "_csrftoken" not in stored.data
    minted = "M" * 32
    other = django_app.client(cookies={"sessionid": sid, "csrftoken": minted})
    response = other.send_logout({"csrfmiddlewaretoken": minted})
    assert response.status_code == 302
    assert django_app.session(sid) is None and not victim.is_logged_in()


def test_csrf_use_sessions_keeps_the_token_in_the_session_only(django_csrf_sessions_app: RunningApp) -> None:
    app = django_csrf_sessions_app
    browser = app.client()
    form, _ = browser.form("/accounts/login/")
    assert "csrfmiddlewaretoken" in form.fields
    assert "csrftoken" not in browser.cookies()
    anonymous_id = browser.session_id()
    assert anonymous_id is not None  # the login page opened a session to keep its token in
    anonymous = app.session(anonymous_id)
    assert anonymous is not None and anonymous.user is None and "_csrftoken" in anonymous.data
    browser.login()
    sid = browser.session_id()
    assert sid is not None and sid != anonymous_id
    assert app.session(anonymous_id) is None  # cycle_key() at login
    stored = app.session(sid)
    assert stored is not None and stored.user == USER.username and "_csrftoken" in stored.data
    assert "csrftoken" not in browser.cookies()
    token = browser.logout_token()["csrfmiddlewaretoken"]
    # a pair minted by the client is worthless here: the secret is the session's
    forged = app.client(cookies={"sessionid": sid, "csrftoken": "M" * 32})
    assert forged.send_logout({"csrfmiddlewaretoken": "M" * 32}).status_code == 403
    assert app.session(sid) is not None
    # the token from the page, sent with the session cookie only, is what works
    assert (
        app.client(cookies={"sessionid": sid}).send_logout({"csrfmiddlewaretoken": token}).status_code == 302
    )
    assert app.session(sid) is None
    assert matches(browser.browse(), app.profile.logged_out)


def test_store_lists_only_live_rows(django_app: RunningApp) -> None:
    browser = django_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    with sqlite3.connect(django_app.database) as db:  # type: ignore[attr-defined]
        db.execute(
            "UPDATE django_session SET expire_date = '2000-01-01 00:00:00' WHERE session_key = ?", (sid,)
        )
    assert django_app.session(sid) is None  # expired rows are what Django itself refuses
    assert not browser.is_logged_in()
