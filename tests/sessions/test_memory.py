"""Tests for sessions/memory.py beyond the shared store contract: LRU order and its bounds."""

from __future__ import annotations

import asyncio

import pytest

from logoutguard.sessions.memory import MemoryStore

A, B, C = "a" * 32, "b" * 32, "c" * 32


def test_get_refreshes_lru_position() -> None:
    async def scenario() -> set[str]:
        store = MemoryStore(max_sessions=2)
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        await store.issue(B, cookie_name="sid", now=2.0, client_network="", ua_fingerprint="")
        await store.get(A)  # A used last: B is now the least recently used
        await store.issue(C, cookie_name="sid", now=3.0, client_network="", ua_fingerprint="")
        return {r.id_hash for r in await store.list()}

    assert asyncio.run(scenario()) == {A, C}


def test_bound_of_one_keeps_the_new_record_over_a_revoked_one() -> None:
    async def scenario() -> list[str]:
        store = MemoryStore(max_sessions=1)
        await store.revoke(A, "attack", 1.0)
        await store.issue(B, cookie_name="sid", now=2.0, client_network="", ua_fingerprint="")
        return [r.id_hash for r in await store.list()]

    assert asyncio.run(scenario()) == [B]


def test_scored_entries_are_bounded() -> None:
    async def scenario() -> int:
        store = MemoryStore(max_sessions=3)
        for i in range(10):
            await store.record_scored_request(f"{i:032x}", float(i), 1, 1000.0)
        return len(store._scored)

    assert asyncio.run(scenario()) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": 0}, "ttl must be > 0"),
        ({"max_sessions": 0}, "max sessions must be >= 1"),
        ({"revoked_ttl": -1}, "revoked session ttl"),
    ],
)
def test_bad_limits(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryStore(**options)  # type: ignore[arg-type]
