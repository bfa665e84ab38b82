"""Tests of the demo application's session store: create, get, delete, expiry."""

from __future__ import annotations

import pytest

from logoutguard.demo.store import SESSION_TTL_SECONDS, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_create_gives_fresh_ids_and_tokens() -> None:
    store = SessionStore()
    first_id, first = store.create("guest")
    second_id, second = store.create("guest")
    assert first_id != second_id
    assert first.csrf != second.csrf
    assert store.get(first_id) == first
    assert store.count() == 2


def test_delete_removes_only_that_session() -> None:
    store = SessionStore()
    kept_id, _ = store.create("guest")
    gone_id, _ = store.create("admin")
    assert store.delete(gone_id) is True
    assert store.delete(gone_id) is False
    assert store.get(gone_id) is None
    assert store.get(kept_id) is not None


@pytest.mark.parametrize(
    ("age", "alive"),
    [
        (0, True),
        (SESSION_TTL_SECONDS - 1, True),
        (SESSION_TTL_SECONDS, False),
        (SESSION_TTL_SECONDS * 2, False),
    ],
)
def test_sessions_expire_after_thirty_minutes(age: float, alive: bool) -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    session_id, _ = store.create("guest")
    clock.now += age
    assert (store.get(session_id) is not None) is alive
    assert store.count() == int(alive)


def test_unknown_id_is_no_session() -> None:
    assert SessionStore().get("not-an-id") is None
