"""Every framework app, really started: its profile is true, its own logout ends the session in its own store,
and a logout without the application's CSRF token is refused while the session stays alive."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from frameworks.apps import NAMES, PROFILES, start_app
from frameworks.client import matches
from frameworks.fixtures import AppPool, start_or_skip
from frameworks.process import group_members
from frameworks.profile import USER, TokenStore
from frameworks.running import RunningApp

pytestmark = pytest.mark.e2e

WITH_STORE = [name for name in NAMES if PROFILES[name].store is not None]
WITH_CSRF = [name for name in NAMES if PROFILES[name].csrf.store is not TokenStore.NONE]


def logged_in_directly(app: RunningApp, cookies: dict[str, str]) -> bool:
    """A fresh browser holding only `cookies` sees the login-only page."""
    return app.client(cookies=cookies).is_logged_in()


@pytest.mark.parametrize("name", NAMES)
def test_profile_checks_tell_logged_in_from_logged_out(framework_apps: AppPool, name: str) -> None:
    app = framework_apps.get(name)
    profile = app.profile
    browser = app.client()
    assert browser.get(profile.public_path).status_code == 200
    anonymous = browser.browse()
    assert matches(anonymous, profile.logged_out), (
        anonymous.status_code,
        anonymous.headers,
        anonymous.text[:300],
    )
    assert not matches(anonymous, profile.logged_in)
    browser.login()
    signed_in = browser.browse()
    assert matches(signed_in, profile.logged_in) and not matches(signed_in, profile.logged_out)
    assert signed_in.text.count(f"Signed in as {USER.username}") == 1


@pytest.mark.parametrize("name", NAMES)
def test_profile_names_the_cookies_the_app_sets(framework_apps: AppPool, name: str) -> None:
    app = framework_apps.get(name)
    profile = app.profile
    browser = app.client()
    browser.form(profile.login.page)
    before = browser.session_id()
    assert (before is not None) == profile.session_before_login, browser.cookies()
    if profile.csrf.cookie:
        assert browser.cookie(profile.csrf.cookie), browser.cookies()
    else:
        assert not any("csrf" in n.lower() for n in browser.cookies()), browser.cookies()
    browser.login()
    after = browser.session_id()
    assert after is not None and set(profile.session_cookies) & set(browser.cookies())
    if profile.session_id_changes_at_login and before is not None:
        assert after != before
    if profile.remember_cookie:
        assert browser.cookie(profile.remember_cookie), browser.cookies()
    else:
        assert not any("remember" in n.lower() for n in browser.cookies())


@pytest.mark.parametrize("name", WITH_STORE)
def test_login_browse_logout_ends_the_session_in_the_apps_own_store(
    framework_apps: AppPool, name: str
) -> None:
    app = framework_apps.get(name)
    profile = app.profile
    browser = app.client()
    browser.login()
    old = browser.session_id()
    assert old is not None
    assert browser.browse().status_code == profile.logged_in.status
    stored = app.session(old)
    assert stored is not None, f"{name}: the store does not have the logged-in session {old}"
    if name != "servlet":  # Tomcat's Manager does not say whose session it is
        assert stored.user == USER.username, stored
    assert stored.id in app.sessions()  # the store's key (Express: the sid inside the signed cookie)

    response = browser.logout()
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    assert app.session(old) is None, f"{name}: session {old} still in the store after logout"
    assert stored.id not in app.sessions()
    assert matches(browser.browse(), profile.logged_out)
    # the old cookie, sent directly to the app by another browser, no longer opens the page
    assert not logged_in_directly(app, {profile.session_cookies[0]: old})
    assert app.session(old) is None


@pytest.mark.parametrize("name", WITH_CSRF)
@pytest.mark.parametrize("token", ["omitted", "wrong"])
def test_logout_without_the_apps_csrf_token_is_refused_and_the_session_lives(
    framework_apps: AppPool, name: str, token: str
) -> None:
    """What an attacker holding only the session cookie gets when it asks for the logout itself."""
    app = framework_apps.get(name)
    profile = app.profile
    victim = app.client()
    victim.login()
    sid = victim.session_id()
    assert sid is not None
    field = profile.csrf.form_field
    assert field is not None
    real = victim.logout_token()[field]
    attacker = app.client(cookies={n: sid for n in profile.session_cookies if victim.cookie(n) == sid})
    if token == "wrong":
        if profile.csrf.cookie:  # a cookie/field pair that does not match
            attacker.set_cookie(profile.csrf.cookie, "x" * 32)
        fields = {field: real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")}
    else:
        fields = {}
    response = attacker.send_logout(fields)
    assert response.status_code in (400, 403), (response.status_code, response.text[:300])
    assert victim.is_logged_in(), f"{name}: the refused logout ended the session"
    assert attacker.is_logged_in()
    if profile.store is not None:
        stored = app.session(sid)
        assert stored is not None and stored.user == USER.username
    # the real logout (token from the page) still works afterwards
    assert victim.logout().status_code in (302, 303)
    assert not victim.is_logged_in()


def test_start_app_refuses_an_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown framework app 'rails'.*django"):
        start_app("rails", tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_leaving_with_stops_the_app_and_everything_it_started(tmp_path: Path, name: str) -> None:
    app = start_or_skip(name, tmp_path)
    with app:
        assert httpx.get(app.url + app.profile.public_path, timeout=10).status_code == 200
        group = app.process.proc.pid
    assert not app.process.running()
    assert group_members(group) == []  # nothing of its process group is left (php -S workers, the JVM)
    with pytest.raises(httpx.ConnectError):
        httpx.get(app.url + "/", timeout=2)
