"""Tests for sessions/store.py: the retention rules, and the SessionStore contract run against every backend."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from logoutguard.sessions.factory import open_store
from logoutguard.sessions.store import (
    EXPIRED_REASON,
    MAX_LINKS,
    SessionRecord,
    SessionState,
    SessionStore,
    effective_state,
    merged_links,
    purged,
)

from .conftest import KEY, StoreFactory, store_spec

A, B, C, D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
TTL = 100.0
ACTIVE = SessionRecord(A, "sid", 0.0, 1000.0, "203.0.113.0/24", "ua", SessionState.ACTIVE, "issued", 0.0)


def run[T](coro: asyncio.Future[T] | object) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def issue(
    store: SessionStore, id_hash: str, now: float, network: str = "", ua: str = ""
) -> SessionRecord:
    return await store.issue(id_hash, cookie_name="sid", now=now, client_network=network, ua_fingerprint=ua)


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        (SessionState.ACTIVE, 1100.0, SessionState.ACTIVE),  # idle exactly ttl: still active
        (SessionState.ACTIVE, 1100.5, SessionState.EXPIRED),
        (SessionState.ENDED, 5000.0, SessionState.ENDED),
        (SessionState.REVOKED, 5000.0, SessionState.REVOKED),
    ],
)
def test_effective_state(state: SessionState, now: float, expected: SessionState) -> None:
    assert effective_state(replace(ACTIVE, state=state), now, TTL) is expected


@pytest.mark.parametrize(
    ("state", "changed_at", "now", "expected"),
    [
        (SessionState.ACTIVE, 0.0, 1100.0, "keep"),
        (SessionState.ACTIVE, 0.0, 1150.0, "expire"),  # expired as of 1100, kept until 1200
        (SessionState.ACTIVE, 0.0, 1201.0, "delete"),
        (SessionState.ENDED, 1050.0, 1150.0, "keep"),  # ttl counts from the later of seen / changed
        (SessionState.ENDED, 1050.0, 1151.0, "delete"),
        (SessionState.EXPIRED, 0.0, 1101.0, "delete"),
        (SessionState.REVOKED, 1000.0, 1000.0 + 500.0, "keep"),
        (SessionState.REVOKED, 1000.0, 1000.0 + 1001.0, "delete"),  # revoked_ttl 1000 below
    ],
)
def test_purged(state: SessionState, changed_at: float, now: float, expected: str) -> None:
    record = replace(ACTIVE, state=state, state_changed_at=changed_at)
    result = purged(record, now, TTL, revoked_ttl=1000.0)
    outcome = "delete" if result is None else "keep" if result == record else "expire"
    assert outcome == expected
    if outcome == "expire":
        assert result is not None and result.state is SessionState.EXPIRED
        assert result.state_changed_at == 1100.0 and result.state_reason == EXPIRED_REASON


def test_revoked_kept_at_least_ttl() -> None:
    record = replace(ACTIVE, state=SessionState.REVOKED, state_changed_at=1000.0)
    assert purged(record, 1090.0, TTL, revoked_ttl=10.0) == record


def test_to_json_is_plain() -> None:
    data = ACTIVE.to_json()
    assert data["state"] == "active" and type(data["state"]) is str and data["id_hash"] == A


# --- the contract, for every backend ---------------------------------------------------------


def test_issue_get_touch(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store(ttl=TTL)
        assert await store.get(A) is None
        record = await issue(store, A, 10.0, "203.0.113.0/24", "f1")
        assert record == SessionRecord(
            A, "sid", 10.0, 10.0, "203.0.113.0/24", "f1", SessionState.ACTIVE, "issued", 10.0
        )
        assert await store.get(A) == record
        touched = await store.touch(A, 20.0, score_delta=5)
        assert touched is not None and touched.last_seen == 20.0 and touched.cumulative_score == 5
        assert (await store.touch(A, 15.0)).last_seen == 20.0  # type: ignore[union-attr]  # never backwards
        assert await store.touch(B, 20.0) is None
        assert await store.count() == 1

    run(scenario())


def test_reissue_keeps_history(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await issue(store, A, 10.0, "203.0.113.0/24", "f1")
        await store.set_state(A, SessionState.ENDED, "logout", 20.0)
        again = await issue(store, A, 30.0, "198.51.100.0/24", "f2")
        assert again.state is SessionState.ACTIVE and again.issued_at == 10.0 and again.last_seen == 30.0
        assert (again.client_network, again.ua_fingerprint) == ("203.0.113.0/24", "f1")

    run(scenario())


def test_set_state(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await issue(store, A, 10.0)
        assert await store.set_state(A, SessionState.ENDED, "logout", 11.0) is True
        record = await store.get(A)
        assert record is not None and (record.state, record.state_reason, record.state_changed_at) == (
            SessionState.ENDED,
            "logout",
            11.0,
        )
        assert await store.set_state(B, SessionState.ENDED, "logout", 11.0) is False
        with pytest.raises(ValueError, match="use revoke"):
            await store.set_state(A, SessionState.REVOKED, "no")

    run(scenario())


def test_revoked_is_terminal(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await issue(store, A, 10.0)
        revoked = await store.revoke(A, "attack", 20.0)
        assert revoked.state is SessionState.REVOKED and revoked.state_reason == "attack"
        assert revoked.issued_at == 10.0
        assert await store.is_revoked(A) and not await store.is_revoked(B)
        assert await store.set_state(A, SessionState.ENDED, "logout", 30.0) is False
        assert (await issue(store, A, 40.0)).state is SessionState.REVOKED
        again = await store.revoke(A, "second", 50.0)
        assert (again.state_reason, again.state_changed_at) == ("attack", 20.0)  # first revocation kept
        unknown = await store.revoke(B, "pre-emptive", 60.0)  # a hash never seen can be revoked too
        assert unknown.state is SessionState.REVOKED and await store.is_revoked(B)

    run(scenario())


def test_authenticated_is_kept_once_shown(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        assert (await issue(store, A, 10.0)).authenticated is False
        login = await store.issue(
            A, cookie_name="sid", now=20.0, client_network="", ua_fingerprint="", authenticated=True
        )
        assert login.authenticated is True
        assert (await issue(store, A, 30.0)).authenticated is True  # a later ordinary issue keeps it
        assert (await store.get(A)).authenticated is True  # type: ignore[union-attr]

    run(scenario())


def test_reinstate_only_when_asked(make_store: StoreFactory) -> None:
    """A revoked value stays revoked, except when the application issues it again at a fresh login."""

    async def scenario() -> None:
        store = make_store()
        await issue(store, A, 10.0)
        await store.revoke(A, "attack", 20.0)
        assert (await issue(store, A, 30.0)).state is SessionState.REVOKED
        again = await store.issue(
            A,
            cookie_name="sid",
            now=40.0,
            client_network="",
            ua_fingerprint="",
            reason="issued again at a login",
            authenticated=True,
            reinstate=True,
        )
        assert (again.state, again.state_reason, again.authenticated) == (
            SessionState.ACTIVE,
            "issued again at a login",
            True,
        )
        assert not await store.is_revoked(A)
        assert [r.id_hash for r in await store.list()] == [A]
        await store.revoke(A, "attack again", 50.0)
        assert await store.is_revoked(A)
        # a revoked hash never issued (revoked pre-emptively) can be reinstated too, and gets its cookie name
        await store.revoke(B, "pre-emptive", 60.0)
        b = await store.issue(
            B, cookie_name="sid", now=70.0, client_network="", ua_fingerprint="", reinstate=True
        )
        assert b.state is SessionState.ACTIVE and b.cookie_name == "sid"

    run(scenario())


def test_links_are_merged_bounded_and_kept_through_revocation(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await issue(store, A, 10.0)
        await store.link(A, [B, A, B])
        assert (await store.get(A)).linked == (B,)  # type: ignore[union-attr]
        await store.link(A, [C])
        await store.link(A, [B])  # moved to the most recent end
        assert (await store.get(A)).linked == (C, B)  # type: ignore[union-attr]
        await store.link(D, [A])  # unknown: nothing stored
        assert await store.get(D) is None
        await store.link(A, [f"{i:032x}" for i in range(20)])
        linked = (await store.get(A)).linked  # type: ignore[union-attr]
        assert len(linked) == MAX_LINKS and linked[-1] == f"{19:032x}"
        assert (await store.revoke(A, "attack", 20.0)).linked == linked

    run(scenario())


def test_merged_links() -> None:
    assert merged_links((A, B), [B, C, A], A) == (B, C)
    assert merged_links((), [A], A) == ()


def test_list_most_recent_first(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        for i, id_hash in enumerate((A, B, C)):
            await issue(store, id_hash, 10.0 + i)
        await store.touch(A, 20.0)
        assert [r.id_hash for r in await store.list()] == [A, C, B]
        assert [r.id_hash for r in await store.list(limit=1)] == [A]
        assert await store.list(limit=0) == []

    run(scenario())


def test_scored_requests_window(make_store: StoreFactory) -> None:
    """Three scored requests within 600 s cross a cumulative threshold of 3; older ones fall out."""

    async def scenario() -> None:
        store = make_store()
        await issue(store, A, 0.0)
        counts = [
            await store.record_scored_request(A, t, 5, window_s=600.0)
            for t in (0.0, 100.0, 500.0, 700.0, 1300.0)
        ]
        assert counts == [1, 2, 3, 2, 1]  # at 700 those at 0 and 100 (600 s ago) left; at 1300 only itself
        assert await store.record_scored_request(B, 1300.0, 5, window_s=600.0) == 1  # counted per session
        record = await store.get(A)
        assert record is not None and (record.scored_requests, record.cumulative_score) == (5, 25)
        assert record.last_seen == 1300.0

    run(scenario())


def test_lockout(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        net = "203.0.113.0/24"
        assert not await store.is_locked_out(net, 0.0)
        await store.lockout(net, 100.0)
        await store.lockout(net, 50.0)  # a shorter lockout does not shorten the longer one
        assert await store.is_locked_out(net, 99.0)
        assert not await store.is_locked_out(net, 100.0)
        assert not await store.is_locked_out("198.51.100.0/24", 10.0)

    run(scenario())


def test_ttl_expiry_and_purge(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store(ttl=TTL, revoked_ttl=1000.0)
        await issue(store, A, 0.0)  # idle: expired at 100, deleted after 200
        await issue(store, B, 0.0)
        await store.set_state(B, SessionState.ENDED, "logout", 0.0)  # deleted after 100
        await store.revoke(C, "attack", 0.0)  # deleted after 1000
        await issue(store, D, 140.0)  # fresh
        assert await store.purge_expired(150.0) == 1  # B
        expired = await store.get(A)
        assert (
            expired is not None
            and expired.state is SessionState.EXPIRED
            and expired.state_changed_at == 100.0
        )
        assert await store.get(B) is None
        assert await store.purge_expired(250.0) == 1  # A
        assert await store.purge_expired(999.0) == 1  # D (expired at 240, gone after 340)
        assert [r.id_hash for r in await store.list()] == [C]
        assert await store.purge_expired(1001.0) == 1 and await store.count() == 0

    run(scenario())


def test_purge_drops_old_lockouts_and_scores(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store(ttl=TTL)
        await store.lockout("203.0.113.0/24", 10.0)
        await store.record_scored_request(A, 0.0, 5, window_s=10_000.0)
        await store.purge_expired(200.0)
        assert await store.record_scored_request(A, 200.0, 5, window_s=10_000.0) == 1  # the old one purged
        assert not await store.is_locked_out("203.0.113.0/24", 5.0)  # purged (past at 200)

    run(scenario())


def test_size_bound_evicts_least_recent_and_revoked_last(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store(max_sessions=3)
        await store.revoke(A, "attack", 0.0)  # oldest of all, but revoked
        await issue(store, B, 1.0)
        await issue(store, C, 2.0)
        await store.touch(B, 3.0)  # B now more recent than C
        await issue(store, D, 4.0)  # over the bound: C goes (least recently seen, not revoked)
        assert await store.count() == 3
        assert {r.id_hash for r in await store.list()} == {A, B, D}
        for i in range(5):
            await issue(store, f"{i:032x}", 10.0 + i)
        assert await store.count() == 3 and await store.is_revoked(A)  # revoked outlives the others
        await store.revoke(B, "x", 20.0)  # B was evicted: revoking creates it again
        await store.revoke(C, "x", 21.0)
        await store.revoke(D, "x", 22.0)
        assert {r.id_hash for r in await store.list()} == {B, C, D}  # all revoked: oldest revoked (A) went

    run(scenario())


def test_close_is_idempotent(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.close()
        await store.close()

    run(scenario())


def test_look_up_reads_records_and_lockouts_together(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store(ttl=TTL)
        await issue(store, A, 1.0)
        await store.lockout("203.0.113.0/24", 50.0)
        view = await store.look_up([A, B], ["203.0.113.0/24", "198.51.100.0/24"], 10.0)
        assert view.records[A] is not None and view.records[A].state is SessionState.ACTIVE
        assert view.records[B] is None
        assert view.locked == frozenset({"203.0.113.0/24"})
        assert (await store.look_up([], ["203.0.113.0/24"], 60.0)).locked == frozenset()  # it ended
        assert (await store.look_up([], [], 1.0)).records == {}
        await store.close()

    run(scenario())


def test_sightings_are_seen_at_once_and_written_by_close(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store(ttl=TTL)
        await issue(store, A, 1.0)
        store.seen(A, 7.0)
        store.seen(B, 7.0)  # unknown: nothing to write
        record = await store.get(A)
        assert record is not None and record.last_seen == 7.0
        view = await store.look_up([A], [], 8.0)
        assert view.records[A] is not None and view.records[A].last_seen == 7.0
        await store.close()
        again = make_store(ttl=TTL)
        record = await again.get(A)
        if again.description != "memory":  # a memory store starts empty
            assert record is not None and record.last_seen == 7.0
        assert await again.get(B) is None
        await again.close()

    run(scenario())


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_revocation_by_another_worker_is_seen_by_the_next_look_up(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two workers on one store (the same SQLite file, the same Redis): whatever one of them caches,
    a revocation, an end or a lockout written by the other counts on the very next request."""
    spec = store_spec(backend, tmp_path)
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        spec = server.url

    async def scenario() -> None:
        one, other = open_store(spec, key=KEY, ttl=TTL), open_store(spec, key=KEY, ttl=TTL)
        await issue(one, A, 1.0)
        await issue(one, B, 1.0)
        for _ in range(3):  # read and read again: from the cache where the backend keeps one
            view = await one.look_up([A, B], ["203.0.113.0/24"], 2.0)
            assert view.records[A].state is SessionState.ACTIVE and not view.locked  # type: ignore[union-attr]
        await other.revoke(A, "forced logout", 3.0)
        await other.set_state(B, SessionState.ENDED, "logout", 3.0)
        await other.lockout("203.0.113.0/24", 100.0)
        view = await one.look_up([A, B], ["203.0.113.0/24"], 4.0)
        assert view.records[A].state is SessionState.REVOKED  # type: ignore[union-attr]
        assert view.records[B].state is SessionState.ENDED  # type: ignore[union-attr]
        assert view.locked == frozenset({"203.0.113.0/24"})
        await one.close()
        await other.close()

    run(scenario())
