"""A deadline for a call to a peer (the session store, the application) that measures the peer, not
the event loop it runs on.

`asyncio.timeout` fires when its timer is due, even if the answer had arrived long before and only
the loop was too busy (other flows, a CPU-starved machine) to read it: the timer and the socket's
read then become ready in the same loop iteration, and the timer runs first. A busy proxy would
count its own lateness as an unreachable store and answer valid sessions 503 (fail mode closed), or
as an application whose logout did not answer.

`LoopAwareDeadline(seconds)` runs its timer on the same loop, but when it finds itself late (the loop
did not run it within LATE_S of when it was due), the loop, not the peer, was the slow one: it
lets the loop run for GRACE_S more, so that an answer waiting in the socket is read first, and only
times out when it fires on time with no answer. At most MAX_EXTRA_S is added in all, so a loop
that stays stalled cannot wait forever either.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

LATE_S = 0.02  # a timer this much after its time means the loop was busy
GRACE_S = 0.05  # how long an answer that may be waiting gets, once the loop runs again
MAX_EXTRA_S = 10.0


class LoopAwareDeadline:
    """`async with LoopAwareDeadline(2.5):` raises TimeoutError when the block outlives the peer's time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.extended = 0  # how often the loop was found late (for tests and logs)
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False

    async def __aenter__(self) -> LoopAwareDeadline:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        assert self._task is not None, "LoopAwareDeadline outside a task"
        self._cancelling = self._task.cancelling()
        self._last = loop.time() + MAX_EXTRA_S + self.seconds
        self._arm(loop, loop.time() + self.seconds)
        return self

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._due = when
        self._handle = loop.call_at(when, self._on_due, loop)

    def _on_due(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        if now - self._due > LATE_S and now < self._last:
            self.extended += 1
            self._arm(loop, now + GRACE_S)
            return
        self._expired = True
        assert self._task is not None
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._expired:
            assert self._task is not None
            # our own cancellation (not someone else's) is taken back and becomes a TimeoutError
            if (
                self._task.uncancel() <= self._cancelling
                and kind is not None
                and issubclass(kind, asyncio.CancelledError)
            ):
                raise TimeoutError(f"no answer within {self.seconds:g}s") from exc
