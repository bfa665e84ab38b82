"""Express + express-session test app: the MemoryStore asked on its own port, pre-login session, the signed
connect.sid, req.session.destroy() at logout."""

from __future__ import annotations

from urllib.parse import quote, unquote

import httpx
import pytest

from frameworks.client import matches
from frameworks.express_runner import store_id
from frameworks.profile import USER
from frameworks.running import RunningApp

pytestmark = pytest.mark.e2e


def test_store_id_is_the_sid_inside_the_signed_cookie() -> None:
    assert store_id("s%3AabcDEF-_123.sig%2Fnature") == "abcDEF-_123"
    assert store_id("abcDEF") == "abcDEF"


def test_the_inspection_port_is_not_the_apps(express_app: RunningApp) -> None:
    admin = express_app.admin_url  # type: ignore[attr-defined]
    assert admin != express_app.url
    assert httpx.get(f"{express_app.url}/sessions", timeout=10).status_code == 404
    assert httpx.get(f"{admin}/account", timeout=10).status_code == 404
    assert isinstance(httpx.get(f"{admin}/sessions", timeout=10).json(), dict)


def test_login_page_opens_an_anonymous_session_login_replaces_it(express_app: RunningApp) -> None:
    browser = express_app.client()
    browser.form("/login")
    anonymous = browser.session_id()
    assert anonymous is not None and unquote(anonymous).startswith("s:")
    stored = express_app.session(anonymous)
    assert stored is not None and stored.user is None and "csrfToken" in stored.data
    browser.login()
    sid = browser.session_id()
    assert sid is not None and store_id(sid) != store_id(anonymous)
    assert express_app.session(anonymous) is None  # req.session.regenerate() dropped it
    logged_in = express_app.session(sid)
    assert logged_in is not None and logged_in.user == USER.username


def test_logout_destroys_the_session_and_the_old_cookie_is_anonymous(express_app: RunningApp) -> None:
    browser = express_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    response = browser.logout()
    assert response.headers["Location"] == "/login"
    assert any(c.startswith("connect.sid=;") for c in response.headers.get_list("set-cookie"))
    assert express_app.session(sid) is None
    replay = express_app.client(cookies={"connect.sid": sid})
    answer = replay.browse()
    assert matches(answer, express_app.profile.logged_out)
    assert answer.headers.get_list("set-cookie") == []  # saveUninitialized: false, no new session


def test_a_forged_signature_is_not_the_session(express_app: RunningApp) -> None:
    browser = express_app.client()
    browser.login()
    sid = store_id(browser.session_id() or "")
    forged = quote(f"s:{sid}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", safe="")
    assert not express_app.client(cookies={"connect.sid": forged}).is_logged_in()
    assert express_app.session(sid) is not None and browser.is_logged_in()
