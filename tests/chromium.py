"""A real browser for tests: Debian's Chromium, headless, driven by Playwright; screenshots kept as artefacts.

Playwright (PyPI) drives the Chromium that Debian's `chromium` package installs (`executable_path`);
Playwright's own browser download is never used. Each launch gets a fresh user-data-dir and the
flags below (no sandbox for root in CI, no GPU, no QUIC, no background traffic to Google).
Without Chromium or Playwright a test skips, and fails under CI=true (.ci/run installs both).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTEFACTS_ENV = "LOGOUTGUARD_ARTEFACTS"  # folder for screenshots; default: the test's tmp dir


def expect(locator: Any) -> Any:
    """Playwright's auto-retrying assertions (imported here so a missing Playwright skips, not errors)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing(what: str) -> None:
    """Skip, or fail under CI=true (where a missing component is a failure)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI installs it: bash .ci/run)")
    pytest.skip(what)


@contextmanager
def browser_page(viewport: tuple[int, int] = (1400, 900)) -> Iterator[Any]:
    """A Playwright page in a fresh headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        missing("Chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="lg-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            context.close()


def artefact_dir(tmp_path: Path, name: str) -> Path:
    """Where a test's screenshots go: $LOGOUTGUARD_ARTEFACTS/<name>, else <tmp_path>/<name>."""
    base = Path(os.environ[ARTEFACTS_ENV]) if os.environ.get(ARTEFACTS_ENV) else tmp_path
    folder = base / re.sub(r"[^\w.-]+", "_", name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
