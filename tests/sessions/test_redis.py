"""Tests for sessions/redis.py against a real, private redis-server: sharing, atomicity, TTLs, faults.

The SessionStore contract itself runs against Redis in test_store.py (the `redis` backend of the
make_store fixture); here is what only Redis has: several stores (proxies) on one server,
concurrent writers, Redis TTLs, key checks, and the server going away and coming back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from logoutguard.sessions.cookies import SessionCookieMatcher
from logoutguard.sessions.factory import open_store
from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.identifiers import IdKind, SessionId
from logoutguard.sessions.redis import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_SOCKET_TIMEOUT_S,
    PURGE_BATCH,
    RETRY_AFTER_S,
    RedisStore,
    parse_url,
)
from logoutguard.sessions.store import SessionState, StoreError
from logoutguard.sessions.tracker import SessionTracker
from procs import free_port
from services import RedisServer, start_redis

from .conftest import KEY

A = "a" * 32
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The run's private Redis, emptied; restarted afterwards if a test stopped it."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    yield redis_server
    if redis_server.proc is None:
        redis_server.start()


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


async def issue(store: RedisStore, id_hash: str, now: float) -> None:
    await store.issue(
        id_hash, cookie_name="sid", now=now, client_network="203.0.113.0/24", ua_fingerprint="f"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis://127.0.0.1:6390/2",
            ("redis://127.0.0.1:6390/2", "logoutguard:", "redis://127.0.0.1:6390/2"),
        ),
        ("redis://cache", ("redis://cache", "logoutguard:", "redis://cache:6379/0")),
        (
            "rediss://user:secret@cache:6380/1?prefix=shop&socket_timeout=2",
            ("rediss://user:secret@cache:6380/1?socket_timeout=2", "shop:", "rediss://cache:6380/1"),
        ),
        (
            "unix:///run/redis.sock?db=3",
            ("unix:///run/redis.sock?db=3", "logoutguard:", "unix:///run/redis.sock"),
        ),
    ],
)
def test_parse_url(url: str, expected: tuple[str, str, str]) -> None:
    assert parse_url(url) == expected
    assert "secret" not in parse_url(url)[2]  # the description goes into messages: no password


@pytest.mark.parametrize(
    ("url", "message"),
    [("memcache://h", "not a redis"), ("unix://", "no socket path"), ("redis://h/0?prefix=", "prefix")],
)
def test_parse_url_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_two_proxies_share_everything(server: RedisServer) -> None:
    async def scenario() -> None:
        one, two = RedisStore(server.url, key=KEY), RedisStore(server.url, key=KEY)
        await issue(one, A, 10.0)
        seen = await two.get(A)
        assert (
            seen is not None and seen.state is SessionState.ACTIVE and seen.client_network == "203.0.113.0/24"
        )
        assert await one.record_scored_request(A, 11.0, 5, 600.0) == 1
        assert await two.record_scored_request(A, 12.0, 5, 600.0) == 2  # one window for both proxies
        await two.lockout("198.51.100.0/24", 500.0)
        assert await one.is_locked_out("198.51.100.0/24", 20.0)
        await one.revoke(A, "forced logout", 30.0)
        assert await two.is_revoked(A)
        assert (
            await two.issue(A, cookie_name="sid", now=40.0, client_network="", ua_fingerprint="")
        ).state == (SessionState.REVOKED)
        record = await two.get(A)
        assert record is not None and (record.scored_requests, record.cumulative_score) == (2, 10)
        for store in (one, two):
            await store.close()

    asyncio.run(scenario())


def test_another_key_is_refused(server: RedisServer) -> None:
    async def scenario() -> None:
        first = RedisStore(server.url, key=KEY)
        await issue(first, A, 1.0)
        other = RedisStore(server.url, key=b"x" * 32)
        with pytest.raises(StoreError, match=r"session hash key differs.*same guard_session_key file"):
            await other.get(A)
        elsewhere = RedisStore(server.url + "?prefix=other-app", key=b"x" * 32)  # another prefix is fine
        assert await elsewhere.get(A) is None
        for store in (first, other, elsewhere):
            await store.close()

    asyncio.run(scenario())


def test_only_keyed_hashes_are_stored(server: RedisServer) -> None:
    secret = "s3cr3t-session-id-0123456789"

    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY)
        tracker = SessionTracker(store, SessionHasher(KEY), SessionCookieMatcher(), 0.0, 0.0)
        await tracker.learn_from_response([f"JSESSIONID={secret}; Path=/"], [], "203.0.113.9", "UA", 1.0)
        facts = await tracker.check_request([SessionId(IdKind.COOKIE, "JSESSIONID", secret, "JSESSIONID")], "203.0.113.9", "UA", 2.0)
        assert facts.state == "active"
        await tracker.revoke(secret, "attack", 3.0)
        await store.record_scored_request(facts.id_hash, 4.0, 5, 600.0)
        await store.close()

    asyncio.run(scenario())
    dump = everything(raw(server))
    assert SessionHasher(KEY).hash(secret).encode() in dump and secret.encode() not in dump


def everything(client: redis.Redis) -> bytes:
    """Every key, field, member and value in the database, concatenated."""
    parts: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        parts.append(key)
        if kind == b"hash":
            parts += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"string":
            parts.append(client.get(key) or b"")
    return b"\n".join(parts)


def test_expiry_uses_redis_ttls(server: RedisServer) -> None:
    day = 24 * 3600.0

    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY, ttl=day, revoked_ttl=30 * day)
        now = time.time()
        await issue(store, A, now)
        await store.record_scored_request(A, now, 5, 600.0)
        await store.revoke("b" * 32, "attack", now)
        await issue(store, "c" * 32, now)
        await store.set_state("c" * 32, SessionState.ENDED, "logout", now)
        await store.close()

    asyncio.run(scenario())
    client = raw(server)
    ttls = {
        name: client.ttl(f"logoutguard:{key}")
        for name, key in (("active", f"s:{A}"), ("revoked", f"s:{'b' * 32}"), ("ended", f"s:{'c' * 32}"))
    }
    ttls["window"] = client.ttl(f"logoutguard:w:{A}")
    assert abs(ttls["active"] - 2 * day) < 10 and abs(ttls["ended"] - day) < 10
    assert abs(ttls["revoked"] - 30 * day) < 10 and abs(ttls["window"] - 600) < 10
    assert client.memory_usage(f"logoutguard:s:{A}") < 512  # a small hash per session (about 300 bytes)


def test_redis_drops_idle_sessions_by_itself(server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY, ttl=0.5)
        await issue(store, A, time.time())  # deadline 2 x ttl = 1 s (the shortest TTL set)
        assert await store.get(A) is not None
        await asyncio.sleep(1.3)
        assert await store.get(A) is None  # gone without any purge
        assert await store.count() == 1  # ... its index entry until the next purge
        assert await store.purge_expired(time.time()) == 1 and await store.count() == 0
        await store.close()

    asyncio.run(scenario())


def test_purge_works_in_batches(server: RedisServer) -> None:
    n = PURGE_BATCH * 2 + 7

    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY, ttl=100.0, max_sessions=10 * n)
        for i in range(n):
            await issue(store, f"{i:032x}", 0.0)
        assert await store.purge_expired(150.0) == 0  # all turned expired, none deleted yet
        records = await store.list(limit=n)
        assert len(records) == n and {r.state for r in records} == {SessionState.EXPIRED}
        assert await store.purge_expired(250.0) == n and await store.count() == 0
        await store.close()

    asyncio.run(scenario())


def test_concurrent_tasks_lose_nothing(server: RedisServer) -> None:
    """200 concurrent tasks issue, touch, score and revoke one session: every increment counts, the revocation stays."""

    async def scenario() -> None:
        # four "proxies"; a long socket timeout: 200 tasks on one event loop on a busy machine may
        # read a prompt reply late, and this test is about atomicity, not timeouts
        stores = [
            RedisStore(server.url + "?socket_timeout=10&socket_connect_timeout=10", key=KEY) for _ in range(4)
        ]
        await issue(stores[0], A, 1.0)

        async def worker(i: int) -> None:
            store = stores[i % 4]
            await store.touch(A, 2.0 + i, score_delta=1)
            await store.record_scored_request(A, 2.0 + i, 2, 10_000.0)
            if i == 100:
                await store.revoke(A, "attack", 50.0)
            await store.issue(A, cookie_name="sid", now=3.0 + i, client_network="", ua_fingerprint="")
            await store.set_state(A, SessionState.ENDED, "logout", 4.0 + i)

        await asyncio.gather(*(worker(i) for i in range(200)))
        record = await stores[1].get(A)
        assert record is not None and record.state is SessionState.REVOKED
        assert (record.state_reason, record.state_changed_at) == ("attack", 50.0)
        assert (record.scored_requests, record.cumulative_score) == (200, 200 * 1 + 200 * 2)
        assert record.last_seen >= 2.0 + 199
        for store in stores:
            await store.close()

    asyncio.run(scenario())


WORKER = """
import asyncio, sys
from logoutguard.sessions.redis import RedisStore
url, n, revoke = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
async def main():
    store = RedisStore(url, key=b"k" * 32)
    for i in range(n):
        await store.record_scored_request("a" * 32, 1.0 + i, 3, 1e9)
        await store.issue("a" * 32, cookie_name="sid", now=1.0 + i, client_network="", ua_fingerprint="")
        if revoke and i == n // 2:
            await store.revoke("a" * 32, "process", 5.0)
    await store.close()
asyncio.run(main())
"""


def test_concurrent_processes_lose_nothing(server: RedisServer) -> None:
    processes, per_process = 4, 150

    async def create() -> None:
        store = RedisStore(server.url, key=KEY)
        await issue(store, A, 0.5)
        await store.close()

    asyncio.run(create())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, server.url, str(per_process), "1" if i == 2 else "0"], cwd=REPO
        )
        for i in range(processes)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * processes
    client = raw(server)
    fields = {k.decode(): v.decode() for k, v in client.hgetall(f"logoutguard:s:{A}").items()}
    assert fields["st"] == "revoked" and fields["r"] == "process"
    total = processes * per_process
    assert (int(fields["sr"]), int(fields["cs"])) == (total, 3 * total)
    assert client.zcard(f"logoutguard:w:{A}") == total


def test_unreachable_at_start_then_recovers(tmp_path: Path) -> None:
    """Opening needs no Redis; calls fail fast with a clear error; the same store works once Redis is up."""

    async def scenario() -> None:
        port = free_port()
        store = open_store(f"redis://127.0.0.1:{port}/0", key=KEY)
        started = time.monotonic()
        with pytest.raises(
            StoreError, match=rf"redis://127\.0\.0\.1:{port}/0: get failed: cannot reach Redis"
        ):
            await store.get(A)
        with pytest.raises(StoreError, match="next attempt in under"):  # fails at once for a moment
            await store.revoke(A, "attack", 1.0)
        assert time.monotonic() - started < 1.0
        late = start_redis(tmp_path, port=port)
        try:
            await asyncio.sleep(RETRY_AFTER_S + 0.1)
            await store.revoke(A, "attack", 1.0)
            assert await store.is_revoked(A)
        finally:
            await store.close()
            late.stop()

    asyncio.run(scenario())


def test_killed_mid_traffic_then_restarted(server: RedisServer) -> None:
    """kill -9 of Redis: every call ends within a bound with StoreError; after the restart the same store recovers."""

    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY)
        await issue(store, A, 1.0)
        server.kill()
        latencies, errors = [], []
        for i in range(20):
            started = time.monotonic()
            try:
                await store.touch(A, 2.0 + i)
            except StoreError as exc:
                errors.append(str(exc))
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
        assert len(errors) == 20 and max(latencies) < 1.0
        assert "touch failed: cannot reach Redis" in errors[0]
        server.start()  # same port, empty (no persistence in the tests)
        deadline = time.monotonic() + 5
        while True:
            try:
                await store.revoke(A, "after restart", 3.0)
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not recover after Redis came back"
                await asyncio.sleep(0.1)
        assert await store.is_revoked(A)
        await store.close()

    asyncio.run(scenario())


def test_unresponsive_redis_times_out(server: RedisServer) -> None:
    """A Redis that accepts but never answers (SIGSTOP): the call's deadline (connect + 2 x socket timeout)
    ends it, then recovery."""

    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY)
        await issue(store, A, 1.0)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        deadline = DEFAULT_CONNECT_TIMEOUT_S + 2 * DEFAULT_SOCKET_TIMEOUT_S
        try:
            with pytest.raises(StoreError, match=f"get failed: no answer within {deadline:g}s"):
                await store.get(A)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        await asyncio.sleep(RETRY_AFTER_S + 0.1)
        record = await store.get(A)
        assert record is not None and record.state is SessionState.ACTIVE
        await store.close()

    asyncio.run(scenario())


def test_closed_store_says_so(server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY)
        await store.close()
        with pytest.raises(StoreError, match="get failed: the store is closed"):
            await store.get(A)

    asyncio.run(scenario())


def test_a_request_is_one_round_trip_and_no_write(server: RedisServer) -> None:
    """look_up pipelines the records and the lockout; sightings wait for one batched script call."""

    async def scenario() -> None:
        store = RedisStore(server.url, key=KEY)
        await issue(store, A, 1.0)
        calls: list[str] = []
        original = store._run

        async def counted(operation: str, call: object) -> object:
            calls.append(operation)
            return await original(operation, call)  # type: ignore[arg-type]

        store._run = counted  # type: ignore[method-assign]
        for n in range(2, 20):
            view = await store.look_up([A, "b" * 32], ["203.0.113.0/24"], float(n))
            store.seen(A, float(n))
            assert view.records[A] is not None and view.records["b" * 32] is None and not view.locked
        assert calls == ["look_up"] * 18
        assert float(raw(server).hget(f"logoutguard:s:{A}", "l")) == 1.0  # nothing written yet
        await store.flush()
        assert calls[18:] == ["write sightings"]
        assert float(raw(server).hget(f"logoutguard:s:{A}", "l")) == 19.0
        assert raw(server).zscore("logoutguard:live", A) == 19.0
        await store.close()

    asyncio.run(scenario())


def test_a_busy_event_loop_is_no_redis_timeout(server: RedisServer) -> None:
    """Redis answers at once, but the loop is blocked well past the call's deadline again and again
    (a busy proxy): no call may fail. The deadline (0.15 s here) counts Redis, not the loop."""

    async def scenario() -> None:
        store = RedisStore(server.url + "?socket_timeout=0.05&socket_connect_timeout=0.05", key=KEY)
        await issue(store, A, 1.0)
        loop = asyncio.get_running_loop()
        stalls = [0]

        def stall() -> None:
            time.sleep(0.4)
            stalls[0] += 1
            if stalls[0] < 15:
                loop.call_later(0.001, stall)

        loop.call_soon(stall)
        results = await asyncio.gather(
            *(store.look_up([A], [], 2.0) for _ in range(200)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [] and stalls[0] > 1
        await store.close()

    asyncio.run(scenario())
