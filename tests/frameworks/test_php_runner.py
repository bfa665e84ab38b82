"""PHP native-session test app: PHPSESSID before login, session_regenerate_id(true) at login,
session_destroy() at logout, the session files in the test's own save_path."""

from __future__ import annotations

import pytest

from frameworks.client import matches
from frameworks.profile import USER
from frameworks.running import RunningApp

pytestmark = pytest.mark.e2e


def test_phpsessid_exists_before_login_and_changes_at_login(php_app: RunningApp) -> None:
    browser = php_app.client()
    browser.form("/login.php")
    anonymous = browser.session_id()
    assert anonymous is not None
    before = php_app.session(anonymous)
    assert before is not None and before.user is None and before.data.startswith("csrf|")
    assert php_app.session_file(anonymous).exists()  # type: ignore[attr-defined]
    browser.login()
    sid = browser.session_id()
    assert sid is not None and sid != anonymous
    assert php_app.session(anonymous) is None  # session_regenerate_id(true) deleted the old file
    after = php_app.session(sid)
    assert after is not None and after.user == USER.username


def test_logout_deletes_the_file_and_expires_the_cookie(php_app: RunningApp) -> None:
    browser = php_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    path = php_app.session_file(sid)  # type: ignore[attr-defined]
    assert path.parent == php_app.save_path and path.exists()  # type: ignore[attr-defined]
    response = browser.logout()
    assert response.headers["Location"] == "/login.php"
    assert any(c.startswith("PHPSESSID=deleted;") for c in response.headers.get_list("set-cookie"))
    assert not path.exists()
    assert browser.session_id() is None


def test_the_destroyed_id_gets_a_fresh_anonymous_one(php_app: RunningApp) -> None:
    browser = php_app.client()
    browser.login()
    sid = browser.session_id()
    assert sid is not None
    browser.logout()
    replay = php_app.client(cookies={"PHPSESSID": sid})
    answer = replay.browse()
    assert matches(answer, php_app.profile.logged_out)
    fresh = replay.session_id()
    assert fresh is not None and fresh != sid  # use_strict_mode: an unknown ID is never adopted
    assert php_app.session(sid) is None
    stored = php_app.session(fresh)
    assert stored is not None and stored.user is None


def test_logout_is_post_only(php_app: RunningApp) -> None:
    browser = php_app.client()
    browser.login()
    assert browser.get("/logout.php").status_code == 405
    assert browser.is_logged_in()


def test_session_file_refuses_what_is_not_an_id(php_app: RunningApp) -> None:
    assert php_app.session("../../etc/passwd") is None
    assert php_app.session_file("a/b") is None  # type: ignore[attr-defined]
