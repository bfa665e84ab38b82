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
