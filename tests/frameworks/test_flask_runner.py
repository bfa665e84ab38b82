"""Flask + Flask-Login test app: the session is the signed cookie (no store), remember_token logs in alone,
and the app's logout cannot end a copy of either cookie."""

from __future__ import annotations

import pytest

from frameworks.client import matches
from frameworks.profile import USER
from frameworks.running import NoServerStore, RunningApp

pytestmark = pytest.mark.e2e


def test_there_is_no_server_store_to_ask(flask_app: RunningApp) -> None:
    browser = flask_app.client()
    browser.login()
    with pytest.raises(NoServerStore, match="signed `session` cookie"):
        flask_app.session(browser.session_id() or "")
    with pytest.raises(NoServerStore):
        flask_app.sessions()


def test_the_session_cookie_carries_the_login(flask_app: RunningApp) -> None:
    browser = flask_app.client()
    browser.form("/login")
    before = flask_app.decode_cookie(browser.session_id() or "")  # type: ignore[attr-defined]
    assert "_user_id" not in before and "csrf_token" in before  # Flask-WTF's secret, pre-login
    browser.login()
    after = flask_app.decode_cookie(browser.session_id() or "")  # type: ignore[attr-defined]
    assert after["_user_id"] == USER.username and after["csrf_token"] == before["csrf_token"]


def test_remember_token_alone_logs_back_in(flask_app: RunningApp) -> None:
    browser = flask_app.client()
    browser.login()
    remember = browser.cookie("remember_token")
    assert remember and remember.startswith(f"{USER.username}|")
    alone = flask_app.client(cookies={"remember_token": remember})
    response = alone.browse()
    assert matches(response, flask_app.profile.logged_in)
    minted = alone.session_id()  # Flask-Login restored the login into a new session cookie
    assert minted and flask_app.decode_cookie(minted)["_user_id"] == USER.username  # type: ignore[attr-defined]


def test_logout_clears_the_browser_but_copies_of_both_cookies_still_log_in(flask_app: RunningApp) -> None:
    browser = flask_app.client()
    browser.login()
    old_session, remember = browser.session_id(), browser.cookie("remember_token")
    assert old_session and remember
    response = browser.logout()
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    cleared = response.headers.get_list("set-cookie")
    assert any(c.startswith("remember_token=;") and "Max-Age=0" in c for c in cleared), cleared
    assert browser.cookie("remember_token") is None and browser.session_id() != old_session
    assert matches(browser.browse(), flask_app.profile.logged_out)
    # what an attacker who copied the cookies before the logout still has:
    assert flask_app.client(cookies={"session": old_session}).is_logged_in()
    assert flask_app.client(cookies={"remember_token": remember}).is_logged_in()


def test_a_tampered_session_cookie_is_not_a_login(flask_app: RunningApp) -> None:
    browser = flask_app.client()
    browser.login()
    value = browser.session_id() or ""
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert not flask_app.client(cookies={"session": tampered}).is_logged_in()
