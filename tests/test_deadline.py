"""Tests for deadline.py: a late event loop is no timeout of the peer (a store, the application); a silent peer still is."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from logoutguard.deadline import LoopAwareDeadline


async def answer_during_a_stall(deadline: type[LoopAwareDeadline] | None) -> bytes:
    """The store's answer reaches the socket while the loop is busy past the deadline (a blocking
    callback), so the socket and the timer become ready in the same loop iteration."""
    loop = asyncio.get_running_loop()
    ours, store = socket.socketpair()
    ours.setblocking(False)

    def busy() -> None:
        store.send(b"answer")
        time.sleep(0.3)

    loop.call_later(0.05, busy)
    try:
        if deadline is None:
            async with asyncio.timeout(0.1):
                return await loop.sock_recv(ours, 64)
        async with deadline(0.1) as d:
            data = await loop.sock_recv(ours, 64)
        assert d.extended >= 1  # it noticed the loop was late
        return data
    finally:
        ours.close()
        store.close()


def test_asyncio_timeout_counts_the_late_loop_as_a_slow_store() -> None:
    """The problem: the answer was there, asyncio.timeout fires anyway."""
    with pytest.raises(TimeoutError):
        asyncio.run(answer_during_a_stall(None))


def test_store_deadline_reads_the_answer_that_arrived_in_time() -> None:
    assert asyncio.run(answer_during_a_stall(LoopAwareDeadline)) == b"answer"


def test_a_silent_store_still_times_out() -> None:
    async def scenario() -> None:
        never = asyncio.get_running_loop().create_future()
        async with LoopAwareDeadline(0.05):
            await never

    with pytest.raises(TimeoutError, match=r"no answer within 0\.05s"):
        asyncio.run(scenario())


def test_someone_elses_cancellation_stays_a_cancellation() -> None:
    async def scenario() -> None:
        async def call() -> None:
            async with LoopAwareDeadline(60):
                await asyncio.sleep(60)

        task = asyncio.create_task(call())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
