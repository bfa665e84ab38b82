"""Tests for sessions/record_cache.py: exact as of a generation, bounded, own writes vs others'."""

from __future__ import annotations

from logoutguard.sessions.record_cache import RecordCache
from logoutguard.sessions.state import SessionState
from logoutguard.sessions.store import SessionRecord

A, B = "a" * 32, "b" * 32


def record(id_hash: str, state: SessionState = SessionState.ACTIVE) -> SessionRecord:
    return SessionRecord(id_hash, "sid", 1.0, 2.0, "", "", state)


def test_a_new_generation_empties_the_cache() -> None:
    cache = RecordCache()
    assert cache.validate(5)
    cache.fill(5, [record(A)], {"203.0.113.0/24": 0.0})
    assert cache.record(A) == record(A) and cache.lockout_until("203.0.113.0/24") == 0.0
    assert cache.validate(5) and cache.record(A) is not None  # nobody wrote: still exact
    assert cache.validate(6)  # another worker wrote (a revocation, say)
    assert cache.record(A) is None and cache.lockout_until("203.0.113.0/24") is None


def test_an_unreadable_generation_answers_nothing() -> None:
    cache = RecordCache()
    cache.validate(1)
    cache.fill(1, [record(A)], {})
    assert not cache.validate(None)


def test_a_read_older_than_the_cache_is_not_kept_a_newer_one_replaces_it() -> None:
    cache = RecordCache()
    cache.validate(3)
    cache.fill(3, [record(A)], {})
    cache.fill(2, [record(B)], {})  # read before the cache moved on
    assert cache.record(B) is None and cache.record(A) is not None
    cache.fill(4, [record(B)], {})
    assert cache.generation == 4 and cache.record(A) is None and cache.record(B) is not None


def test_own_write_keeps_the_rest_others_write_in_between_empties_it() -> None:
    cache = RecordCache()
    cache.validate(10)
    cache.fill(10, [record(A), record(B)], {})
    cache.written(11, [A])  # exactly one above: only this worker wrote
    assert cache.generation == 11 and cache.record(A) is None and cache.record(B) is not None
    cache.written(13, [A])  # someone else wrote generation 12
    assert cache.generation == 13 and cache.record(B) is None


def test_write_that_touched_other_records_empties_it() -> None:
    cache = RecordCache()
    cache.validate(1)
    cache.fill(1, [record(A), record(B)], {})
    cache.written(2, [A], everything=True)  # eviction or purge
    assert cache.generation == 2 and len(cache) == 0


def test_forget_and_bound() -> None:
    cache = RecordCache(size=2)
    cache.validate(1)
    cache.fill(1, [record(f"{i:032x}") for i in range(3)], {})
    assert len(cache) == 2 and cache.record(f"{0:032x}") is None  # least recently used went first
    cache.forget([f"{2:032x}"])
    assert cache.record(f"{2:032x}") is None and cache.record(f"{1:032x}") is not None
