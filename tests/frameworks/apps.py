"""The framework apps by name: start one as a real process (context manager), list their profiles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from frameworks import django_runner, express_runner, flask_runner, php_runner, servlet_runner
from frameworks.profile import AppProfile
from frameworks.running import RunningApp

STARTERS: dict[str, Callable[[Path], RunningApp]] = {
    "django": django_runner.start,
    "django-csrf-sessions": lambda folder: django_runner.start(folder, csrf_use_sessions=True),
    "flask": flask_runner.start,
    "express": express_runner.start,
    "php": php_runner.start,
    "servlet": servlet_runner.start,
}

PROFILES: dict[str, AppProfile] = {
    "django": django_runner.PROFILE,
    "django-csrf-sessions": django_runner.PROFILE_CSRF_IN_SESSION,
    "flask": flask_runner.PROFILE,
    "express": express_runner.PROFILE,
    "php": php_runner.PROFILE,
    "servlet": servlet_runner.PROFILE,
}

NAMES = tuple(STARTERS)


def start_app(name: str, folder: Path) -> RunningApp:
    """Start the app `name` on a free loopback port; its log and files go to `folder`. Use it with `with`
    (stops the process on leaving). Raises MissingComponent when a program or install step is missing."""
    if name not in STARTERS:
        raise ValueError(f"unknown framework app {name!r} (known: {', '.join(NAMES)})")
    folder.mkdir(parents=True, exist_ok=True)
    return STARTERS[name](folder)


def profile_table() -> str:
    """The profiles as a Markdown table (README.md in this folder carries it; a test keeps them equal)."""
    csrf_text = {
        "cookie": "`{cookie}` cookie, echoed in field `{form_field}`",
        "server_session": "server-side session only; field `{form_field}` in the page",
        "signed_session_cookie": "signed session cookie; field `{form_field}` in the page",
        "none": "no CSRF check",
    }
    rows = [
        "| app | session cookie | remember-me | CSRF token | logout | logged in | logged out | session before login |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in PROFILES.items():
        csrf = csrf_text[p.csrf.store.value].format(cookie=p.csrf.cookie, form_field=p.csrf.form_field)
        logged_in = f"`{p.logged_in.path}` {p.logged_in.status} “{p.logged_in.marker}”"
        logged_out = f"`{p.logged_out.path}` {p.logged_out.status} " + (
            f"→ `{p.logged_out.location}`" if p.logged_out.location else f"“{p.logged_out.marker}”"
        )
        remember = f"`{p.remember_cookie}`" if p.remember_cookie else "—"
        rows.append(
            f"| {name} | `{', '.join(p.session_cookies)}` | {remember} | {csrf} | {p.logout.method} "
            f"`{p.logout.path}` | {logged_in} | {logged_out} | {'yes' if p.session_before_login else 'no'} |"
        )
    return "\n".join(rows)
