"""Profiles of the framework apps as data (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

from frameworks.apps import NAMES, PROFILES, profile_table
from frameworks.profile import TokenStore


def test_every_profile_is_json_able_and_complete() -> None:
    assert set(PROFILES) == set(NAMES)
    for name, profile in PROFILES.items():
        data = json.loads(json.dumps(profile.as_dict()))
        assert data["name"] == name and data["session_cookies"]
        assert data["logout"]["path"].startswith("/") and data["logout"]["method"] in ("GET", "POST")
        assert data["logged_in"] != data["logged_out"]
        assert data["csrf"]["store"] in {t.value for t in TokenStore}
        if profile.csrf.store is TokenStore.COOKIE:
            assert profile.csrf.cookie
        if profile.csrf.store is not TokenStore.NONE:
            assert profile.csrf.form_field


def test_only_flask_has_no_server_store_and_only_flask_a_remember_cookie() -> None:
    assert [n for n, p in PROFILES.items() if p.store is None] == ["flask"]
    assert {n: p.remember_cookie for n, p in PROFILES.items() if p.remember_cookie} == {
        "flask": "remember_token"
    }


def test_the_readme_carries_the_current_profile_table() -> None:
    readme = (Path(__file__).parent / "README.md").read_text()
    assert profile_table() in readme, (
        "tests/frameworks/README.md: paste frameworks.apps.profile_table() again"
    )
