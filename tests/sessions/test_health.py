"""StoreHealth: an outage logged once when it begins and once when it ends; attempt() turns failures into None."""

from __future__ import annotations

import pytest

from logoutguard.sessions.health import StoreHealth
from logoutguard.sessions.store import StoreError


async def fails() -> int:
    raise StoreError("session store x: get failed: down")


async def answers() -> int:
    return 7


async def test_an_outage_is_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    health = StoreHealth("open")
    assert await health.attempt(fails()) is None and await health.attempt(fails()) is None
    assert health.down
    assert await health.attempt(answers()) == 7 and not health.down
    health.ok()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "LogoutGuard: session store unavailable (session store x: get failed: down); fail mode open",
        "LogoutGuard: session store reachable again",
    ]


def test_failed_returns_the_error_text() -> None:
    assert StoreHealth().failed(StoreError("why")) == "why"
