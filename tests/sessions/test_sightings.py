"""Tests for sessions/sightings.py: batched, bounded delay, merged into reads, kept when a write fails."""

from __future__ import annotations

import asyncio

import pytest

from logoutguard.sessions.sightings import Sightings
from logoutguard.sessions.store import StoreError


class Recorder:
    def __init__(self) -> None:
        self.batches: list[dict[str, float]] = []
        self.fail = False
        self.written = asyncio.Event()

    async def write(self, batch: dict[str, float]) -> None:
        if self.fail:
            raise StoreError("session store test: write sightings failed: disk full")
        self.batches.append(dict(batch))
        self.written.set()


def test_sightings_are_written_in_one_batch_after_the_delay() -> None:
    async def scenario() -> None:
        out = Recorder()
        sightings = Sightings(out.write, delay=0.01)
        for i in range(100):
            sightings.note(f"{i % 10:032x}", float(i))
        assert out.batches == [] and len(sightings) == 10  # nothing written while the request runs
        await asyncio.wait_for(out.written.wait(), 10)
        assert len(out.batches) == 1 and out.batches[0][f"{9:032x}"] == 99.0
        assert len(sightings) == 0 and sightings.written == 10

    asyncio.run(scenario())


def test_reads_see_pending_sightings_and_never_go_back() -> None:
    sightings = Sightings(Recorder().write)
    sightings.note("a" * 32, 50.0)
    sightings.note("a" * 32, 40.0)  # an older request finishing late
    assert sightings.last_seen_of("a" * 32, 10.0) == 50.0
    assert sightings.last_seen_of("a" * 32, 60.0) == 60.0
    assert sightings.last_seen_of("b" * 32, 10.0) == 10.0


def test_reaching_the_bound_flushes_at_once() -> None:
    async def scenario() -> None:
        out = Recorder()
        sightings = Sightings(out.write, delay=3600.0, most=5)
        for i in range(5):
            sightings.note(f"{i:032x}", 1.0)
        await asyncio.wait_for(out.written.wait(), 10)  # not an hour
        assert len(out.batches[0]) == 5

    asyncio.run(scenario())


def test_a_failed_write_keeps_them_for_flush(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        out = Recorder()
        out.fail = True
        sightings = Sightings(out.write, delay=3600.0)
        sightings.note("a" * 32, 1.0)
        with pytest.raises(StoreError):
            await sightings.flush()
        assert len(sightings) == 1 and "kept for the next attempt" in caplog.text
        out.fail = False
        await sightings.flush()
        assert out.batches == [{"a" * 32: 1.0}] and len(sightings) == 0

    asyncio.run(scenario())


def test_without_a_loop_they_wait_for_take() -> None:
    sightings = Sightings(Recorder().write)
    sightings.note("a" * 32, 1.0)
    assert sightings.take() == {"a" * 32: 1.0} and len(sightings) == 0
