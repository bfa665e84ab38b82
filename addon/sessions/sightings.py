"""Session sightings written behind: `last_seen` of the sessions requests carried, noted in memory and
written in batches within a bounded delay, so that no request waits for a write.

A store notes a sighting (`note`) instead of writing it; a flush writes every pending sighting in
one batch (one SQLite transaction, a few Redis script calls) at most `delay` seconds after the
first one was noted, at once when `most` are pending, and at `flush()` (the store's close(), so
mitmproxy's `done` and a replaced store flush them). Reads merge the pending sightings in
(`last_seen_of`), so this worker sees its own sightings at once.

What is at stake: only `last_seen` (expiry after an idle `ttl`, the order of eviction). A kill -9
loses the sightings of the last `delay` seconds (plus a flush under way): a session then looks idle
up to that much longer than it was. Revocations, ended sessions and lockouts are never written
behind: the stores write them before returning. A flush that fails keeps its sightings for the
next one (at most `most` pending: beyond it the oldest are dropped, logged once per outage).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .store import StoreError

log = logging.getLogger("logoutguard")

FLUSH_DELAY_S = 1.0  # the bound: a sighting is written at most this long after it was noted (plus the write)
MAX_PENDING = 10_000  # sessions with a pending sighting; reaching it flushes at once

Writer = Callable[[dict[str, float]], Awaitable[None]]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Sightings:
    """Pending sightings (session hash -> latest time seen) and the flush that writes them."""

    def __init__(self, write: Writer, *, delay: float = FLUSH_DELAY_S, most: int = MAX_PENDING) -> None:
        self._write = write
        self.delay, self.most = delay, most
        self._pending: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._failing = False
        self.written = 0  # sightings written so far (for tests and benchmarks)
        self.batches = 0

    def __len__(self) -> int:
        return len(self._pending)

    def note(self, id_hash: str, now: float) -> None:
        """A request carried this session at `now`; written within `delay` seconds."""
        pending = self._pending
        if now > pending.get(id_hash, 0.0):
            pending[id_hash] = now
        if len(pending) >= self.most:
            self._schedule(0.0)
        elif (self._timer is None and self._flushing is None) or self._timer_loop is not _running_loop():
            self._schedule(self.delay)  # (a timer of a loop that has ended would never fire)

    def last_seen_of(self, id_hash: str, stored: float) -> float:
        """The later of a stored last_seen and this worker's pending sighting of the session."""
        return max(stored, self._pending.get(id_hash, stored))

    def take(self) -> dict[str, float]:
        """Every pending sighting, no longer pending (to write them synchronously at close)."""
        batch, self._pending = self._pending, {}
        self._cancel_timer()
        return batch

    def _schedule(self, delay: float) -> None:
        loop = _running_loop()
        if loop is None:  # no loop (synchronous use): written at flush() or close
            return
        self._cancel_timer()
        self._timer, self._timer_loop = loop.call_later(delay, self._start), loop

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self) -> None:
        self._timer = None
        if self._flushing is None and self._pending:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_pending())

    async def _flush_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    await self._write(batch)
                except asyncio.CancelledError:  # the loop is ending: close() writes them
                    self._pending = {**batch, **self._pending}
                    raise
                except StoreError as exc:
                    self._keep(batch, exc)
                    return
                except Exception as exc:  # never let a background flush die silently
                    log.exception("LogoutGuard: writing session sightings failed")
                    self._keep(batch, exc)
                    return
                self.written += len(batch)
                self.batches += 1
                self._failing = False
        finally:
            self._flushing = None
            if self._pending and self._timer is None:
                self._schedule(self.delay)

    def _keep(self, batch: dict[str, float], exc: Exception) -> None:
        """A failed batch goes back in front of what was noted since (bounded: the oldest go first)."""
        merged = dict(batch)
        for id_hash, at in self._pending.items():
            merged[id_hash] = max(at, merged.get(id_hash, at))
        dropped = max(0, len(merged) - self.most)
        if dropped:
            for id_hash in list(merged)[:dropped]:
                del merged[id_hash]
        self._pending = merged
        if not self._failing:
            extra = f"; {dropped} dropped to stay within {self.most}" if dropped else ""
            log.warning(
                f"LogoutGuard: writing {len(batch)} session sightings failed ({exc}); "
                f"kept for the next attempt{extra}"
            )
        self._failing = True

    async def flush(self) -> None:
        """Write every pending sighting now (waiting for a flush under way); StoreError when the write fails
        (the sightings are then kept)."""
        self._cancel_timer()
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self._write(batch)
            except Exception as exc:
                self._keep(batch, exc)
                raise
            self.written += len(batch)
            self.batches += 1
