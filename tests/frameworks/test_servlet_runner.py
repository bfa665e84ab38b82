"""Servlet container test app (Tomcat 10.1): FORM auth, JSESSIONID in the cookie and in ;jsessionid=,
session.invalidate() at logout, the session Manager asked through JMXProxyServlet."""

from __future__ import annotations

import pytest

from frameworks.client import matches
from frameworks.running import RunningApp

pytestmark = pytest.mark.e2e


def test_form_login_keeps_a_session_before_login_and_changes_it(servlet_app: RunningApp) -> None:
    browser = servlet_app.client()
    page = browser.browse()
    assert page.status_code == 200 and "j_security_check" in page.text  # the login form, at the page's URL
    anonymous = browser.session_id()
    assert anonymous is not None and servlet_app.session(anonymous) is not None
    response = browser.login()
    assert response.status_code == 303 and response.headers["Location"] == "/account/"
    sid = browser.session_id()
    assert sid is not None and sid != anonymous
    assert servlet_app.session(anonymous) is None and servlet_app.session(sid) is not None


def test_the_session_id_in_the_path_is_the_session(servlet_app: RunningApp) -> None:
    browser = servlet_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    cookieless = servlet_app.client()
    by_path = cookieless.get(f"/account/;jsessionid={sid}")
    assert matches(by_path, servlet_app.profile.logged_in)
    assert cookieless.cookies() == {}
    browser.logout()
    assert servlet_app.session(sid) is None
    assert matches(servlet_app.client().get(f"/account/;jsessionid={sid}"), servlet_app.profile.logged_out)


def test_logout_leaves_the_dead_cookie_in_the_browser(servlet_app: RunningApp) -> None:
    browser = servlet_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    response = browser.logout()
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert response.headers.get_list("set-cookie") == []
    assert browser.session_id() == sid and servlet_app.session(sid) is None
    after = browser.browse()  # the container starts a new session for the login form
    assert matches(after, servlet_app.profile.logged_out) and browser.session_id() != sid


def test_logout_is_post_only(servlet_app: RunningApp) -> None:
    browser = servlet_app.client()
    browser.login()
    assert browser.get("/logout").status_code == 405
    assert browser.is_logged_in()
