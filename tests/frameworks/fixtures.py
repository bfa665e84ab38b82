"""pytest glue for the framework apps: a pool that starts each app once per session, on first use.

A missing component skips the test, or fails it under CI=true. Other test folders can use the pool with
`from frameworks.fixtures import framework_apps` (one pool per importing module).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from frameworks.apps import start_app
from frameworks.process import MissingComponent
from frameworks.running import RunningApp


def start_or_skip(name: str, folder: Path) -> RunningApp:
    """start_app, or skip the test with the reason (fail it under CI=true) when a component is missing."""
    try:
        return start_app(name, folder)
    except MissingComponent as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {name}: {exc}", pytrace=False)
        pytest.skip(f"{name}: {exc}")


class AppPool:
    """Apps by name, started when first asked for, stopped together at the end of the session."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.running: dict[str, RunningApp] = {}

    def get(self, name: str) -> RunningApp:
        app = self.running.get(name)
        if app is not None and not app.process.running():
            raise RuntimeError(f"{name} exited with {app.process.proc.returncode}:\n{app.log()[-3000:]}")
        if app is None:
            app = self.running[name] = start_or_skip(name, self.factory.mktemp(name))
        return app

    def stop(self) -> None:
        for app in self.running.values():
            app.stop()


@pytest.fixture(scope="session")
def framework_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppPool]:
    pool = AppPool(tmp_path_factory)
    yield pool
    pool.stop()
