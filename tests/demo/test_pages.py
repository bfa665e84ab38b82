"""The demo application's pages: pure functions from data to markup, every value escaped."""

from __future__ import annotations

import pytest

from logoutguard.demo.pages import (
    LESSONS,
    account_page,
    home_page,
    layout,
    lessons_page,
    logged_out_page,
    login_page,
    message_page,
    search_page,
)

EVIL = '<script>alert("x")</script>'


@pytest.mark.parametrize(
    "page",
    [
        lambda: search_page(EVIL, EVIL, EVIL),
        lambda: account_page(EVIL, EVIL, 0.0),
        lambda: login_page(EVIL, EVIL, EVIL),
        lambda: message_page(EVIL, EVIL, EVIL, EVIL),
        lambda: layout(EVIL, "", EVIL, EVIL),
    ],
)
def test_values_are_escaped(page) -> None:  # type: ignore[no-untyped-def]
    html = page()
    assert EVIL not in html and "&lt;script&gt;" in html


def test_logged_in_pages_carry_the_logout_form_with_the_csrf_token() -> None:
    html = home_page("guest", "T1")
    assert (
        'action="/logout"' in html
        and 'name="csrf" value="T1"' in html
        and "Signed in as <b>guest</b>" in html
    )
    assert 'href="/login">Log in</a>' in home_page(None, None)


def test_search_finds_lessons_case_insensitively() -> None:
    assert "Cross-Site Scripting" in search_page("scripting", "guest", "T")
    assert "No lessons found." in search_page("zzz", "guest", "T")
    assert "Results for" not in search_page("", "guest", "T")


def test_lessons_and_the_logged_out_page() -> None:
    assert all(lesson.title in lessons_page("guest", "T").replace("&amp;", "&") for lesson in LESSONS)
    assert LESSONS[0].summary in lessons_page("guest", "T", LESSONS[0].screen)
    assert "You have been logged out." in logged_out_page()
    assert "administrator" in account_page("admin", "T", 0.0) and "1970-01-01 00:00:00 UTC" in account_page(
        "a", "T", 0.0
    )
