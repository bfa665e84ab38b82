"""Fixtures of the framework-app tests: the session's app pool and one shortcut per app."""

from __future__ import annotations

import pytest

from frameworks.fixtures import AppPool, framework_apps
from frameworks.running import RunningApp

__all__ = ["framework_apps"]


@pytest.fixture
def django_app(framework_apps: AppPool) -> RunningApp:
    return framework_apps.get("django")


@pytest.fixture
def django_csrf_sessions_app(framework_apps: AppPool) -> RunningApp:
    return framework_apps.get("django-csrf-sessions")


@pytest.fixture
def flask_app(framework_apps: AppPool) -> RunningApp:
    return framework_apps.get("flask")


@pytest.fixture
def express_app(framework_apps: AppPool) -> RunningApp:
    return framework_apps.get("express")


@pytest.fixture
def php_app(framework_apps: AppPool) -> RunningApp:
    return framework_apps.get("php")


@pytest.fixture
def servlet_app(framework_apps: AppPool) -> RunningApp:
    return framework_apps.get("servlet")
