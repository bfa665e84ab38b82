"""StoreHealth: a session store outage is logged once when it begins and once when it ends, not per request."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from .store import StoreError

log = logging.getLogger("logoutguard")
T = TypeVar("T")


class StoreHealth:
    def __init__(self, fail_mode: str = "closed") -> None:
        self.fail_mode = fail_mode  # named in the outage message
        self.down = False

    def failed(self, exc: StoreError) -> str:
        """Note a failed store call (logged when an outage begins) and return the error text."""
        if not self.down:
            log.error(f"LogoutGuard: session store unavailable ({exc}); fail mode {self.fail_mode}")
        self.down = True
        return str(exc)

    def ok(self) -> None:
        """Note a store call that was answered (logged when an outage ends)."""
        if self.down:
            log.warning("LogoutGuard: session store reachable again")
        self.down = False

    async def attempt(self, call: Awaitable[T]) -> T | None:
        """Await a store call; a StoreError is noted and gives None."""
        try:
            result = await call
        except StoreError as exc:
            self.failed(exc)
            return None
        self.ok()
        return result
