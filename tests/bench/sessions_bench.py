"""Session store benchmarks: operations per second and memory for many sessions, memory and SQLite.

The stores are driven through their async interface, one awaited call at a time, as the addon
does. The store is filled through issue() (its rate is reported), then get, touch, is_revoked and
revoke run on random known sessions. Memory: the process RSS growth while filling (and, for
SQLite, the database and WAL file sizes).

`request_path` is what one request with a valid session costs the store, on a working set of
WORKING_SET sessions in use: before issue 12 the tracker awaited get() and touch() (a read and a
write transaction, two round trips); now it awaits look_up() and notes seen() (written behind).
Both run in the same process, interleaved, on the same store: CPU time (all threads of the
process, so the SQLite executor thread counts) and wall time per request, and their ratio. The
Redis store gets the same on a private redis-server (its CPU is Redis's own, not counted).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.sqlite import COLUMNS, SqliteStore
from logoutguard.sessions.store import SessionStore


async def rate(fn: Callable[[int], Awaitable[object]], count: int) -> float:
    """Operations per second of `count` sequential awaited calls fn(0..count-1)."""
    start = time.perf_counter()
    for n in range(count):
        await fn(n)
    return round(count / (time.perf_counter() - start))


async def fill_through_api(store: SessionStore, hashes: list[str], now: float) -> float:
    async def issue(n: int) -> object:
        return await store.issue(
            hashes[n],
            cookie_name="JSESSIONID",
            now=now,
            client_network="203.0.113.0/24",
            ua_fingerprint="ua1",
        )

    return await rate(issue, len(hashes))


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return round(time.perf_counter() - start, 3)


def bulk_fill(path: Path, hashes: list[str], now: float) -> None:
    """Insert active sessions straight into a store's database file, in one transaction."""
    # authenticated (as at a login), no linked identifiers: one value per column of COLUMNS
    rows = [
        (h, "JSESSIONID", now, now, "203.0.113.0/24", "ua1", "active", "issued", now, 0, 0, 1, "")
        for h in hashes
    ]
    marks = ", ".join("?" * len(COLUMNS.split(",")))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO sessions ({COLUMNS}) VALUES ({marks})", rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


WORKING_SET = 1_000


async def request_path(store: SessionStore, hashes: list[str], ops: int, now: float) -> dict[str, object]:
    """CPU and wall time per request with a session: the old path (get + touch) against the new one
    (look_up + seen, then the batched flush counted in), in alternating rounds, best round of each."""
    working = hashes[:WORKING_SET]
    picks = [random.choice(working) for _ in range(ops)]

    async def old(n: int) -> None:
        await store.get(picks[n])
        await store.touch(picks[n], now + n)

    async def new(n: int) -> None:
        await store.look_up([picks[n]], [], now + n)
        store.seen(picks[n], now + n)

    async def measure(path: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(ops):
            await path(n)
        await store.flush()
        return (time.process_time() - cpu) / ops * 1e6, (time.perf_counter() - wall) / ops * 1e6

    best: dict[str, tuple[float, float]] = {}
    for _ in range(3):
        for name, path in (("get_touch", old), ("look_up_seen", new)):
            cpu, wall = await measure(path)
            if name not in best or cpu < best[name][0]:
                best[name] = (cpu, wall)
    out: dict[str, object] = {
        name: {"cpu_us": round(cpu, 1), "wall_us": round(wall, 1)} for name, (cpu, wall) in best.items()
    }
    out["cpu_ratio_new_to_old"] = round(best["look_up_seen"][0] / best["get_touch"][0], 3)
    out["working_set"], out["requests"] = len(working), ops
    return out


async def operations(store: SessionStore, hashes: list[str], ops: int, now: float) -> dict[str, object]:
    picks = [random.choice(hashes) for _ in range(ops)]

    async def request(n: int) -> object:
        """What a request with a session costs the store: one look_up, a sighting written behind."""
        view = await store.look_up([picks[n]], [], now + 1)
        store.seen(picks[n], now + 1)
        return view

    return {
        "count": await store.count(),
        "get_per_s": await rate(lambda n: store.get(picks[n]), ops),
        "request_per_s": await rate(request, ops),
        "flush_s": await timed(store.flush),
        "request_again_per_s": await rate(request, ops),
        "touch_per_s": await rate(lambda n: store.touch(picks[n], now + 1), ops),
        "is_revoked_per_s": await rate(lambda n: store.is_revoked(picks[n]), ops),
        "revoke_per_s": await rate(lambda n: store.revoke(picks[n], "bench", now + 2), max(100, ops // 20)),
        "ops_each": ops,
    }


async def memory_run(hashes: list[str], ops: int) -> dict[str, object]:
    """Filled twice: once timed, once under tracemalloc for the bytes the store holds."""
    now = time.time()
    traced = MemoryStore(max_sessions=len(hashes))
    tracemalloc.start()
    await fill_through_api(traced, hashes, now)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    store = MemoryStore(max_sessions=len(hashes))
    result: dict[str, object] = {"sessions": len(hashes)}
    result["issue_per_s"] = await fill_through_api(store, hashes, now)
    result["memory_mb"] = round(held / 2**20, 1)
    result["bytes_per_session"] = round(held / len(hashes))
    result.update(await operations(store, hashes, ops, now))
    result["request_path"] = await request_path(store, hashes, min(ops, 20_000), now + 10)
    return result


def redis_run(hashes: list[str], ops: int) -> dict[str, object]:
    """The request path on a Redis store (a private redis-server), WORKING_SET sessions issued."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/services.py imports by name
    from logoutguard.sessions.redis import RedisStore
    from services import start_redis

    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis(Path(tmp))
        try:

            async def run() -> dict[str, object]:
                store = RedisStore(server.url, key=secrets.token_bytes(32))
                try:
                    now = time.time()
                    await fill_through_api(store, hashes[:WORKING_SET], now)
                    return {"request_path": await request_path(store, hashes, ops, now + 10)}
                finally:
                    await store.close()

            return asyncio.run(run())
        finally:
            server.stop()


def sqlite_run(path: Path, hashes: list[str], ops: int, through_api: int) -> dict[str, object]:
    """The first `through_api` sessions go through issue() (its rate is measured), the rest are
    bulk-inserted into the file (issue() at a few thousand per second would take minutes)."""
    now = time.time()
    store = SqliteStore(path, max_sessions=len(hashes))
    try:
        issue_rate = asyncio.run(fill_through_api(store, hashes[:through_api], now))
        bulk_fill(path, hashes[through_api:], now)
        result: dict[str, object] = {"sessions": len(hashes), "issue_per_s": issue_rate}
        result["issued_through_api"] = through_api
        result.update(asyncio.run(operations(store, hashes, ops, now)))
        result["request_path"] = asyncio.run(request_path(store, hashes, min(ops, 20_000), now + 10))
    finally:
        asyncio.run(store.close())
    sizes = {p.name: p.stat().st_size for p in path.parent.iterdir()}
    result["db_file_mb"] = round(sizes.get(path.name, 0) / 2**20, 1)
    result["wal_file_mb"] = round(sizes.get(path.name + "-wal", 0) / 2**20, 1)
    return result


def sessions_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    count = 5_000 if smoke else 1_000_000
    ops = 2_000 if smoke else 100_000
    hasher = SessionHasher(secrets.token_bytes(32))
    ids = [secrets.token_urlsafe(24) for _ in range(count)]
    start = time.perf_counter()
    hashes = [hasher.hash(i) for i in ids]
    out: dict[str, object] = {"hash_per_s": round(count / (time.perf_counter() - start))}
    del ids
    random.seed(1)
    out["memory"] = asyncio.run(memory_run(hashes, ops))
    log(f"sessions memory: {out['memory']}")
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = sqlite_run(Path(tmp) / "sessions.sqlite", hashes, ops, min(count, 20_000))
    log(f"sessions sqlite: {out['sqlite']}")
    out["redis"] = redis_run(hashes, 2_000 if smoke else 10_000)
    log(f"sessions redis: {out['redis']}")
    out["note"] = (
        "request = look_up + seen (a request with a session: one read at most, its sighting written behind; "
        "the first pass over the random picks fills SQLite's local cache, request_again is answered from it; "
        "flush_s writes the pending sightings in one transaction); "
        "issue/touch/revoke on SQLite are one transaction each (WAL, synchronous=NORMAL; revoke fsyncs), "
        "run on the store's worker thread; the SQLite store gets its first sessions through issue() and "
        "the rest by a bulk insert; memory_mb is what tracemalloc counts for filling the memory store "
        "(records and index; the hash strings existed before)"
    )
    return out


if __name__ == "__main__":
    print(sessions_section(smoke=os.environ.get("SMOKE") == "1", log=print))
