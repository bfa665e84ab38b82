"""Tests for sessions/sqlite.py on real files: durability, schema, errors naming the path, the worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from logoutguard.sessions.sqlite import SCHEMA_VERSION, SqliteStore
from logoutguard.sessions.store import SessionState, StoreError

KEY = b"k" * 32
A, B = "a" * 32, "b" * 32


def open_db(path: Path, **options: object) -> SqliteStore:
    return SqliteStore(path, key=KEY, **options)  # type: ignore[arg-type]


def test_revocation_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"

    async def first() -> None:
        store = open_db(path)
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        await store.revoke(A, "forced logout", 2.0)
        await store.lockout("203.0.113.0/24", 1e12)
        await store.close()

    async def second() -> None:
        store = open_db(path)
        record = await store.get(A)
        assert record is not None and record.state is SessionState.REVOKED
        assert record.state_reason == "forced logout" and record.cookie_name == "sid"
        assert await store.is_revoked(A)
        assert await store.is_locked_out("203.0.113.0/24", 10.0)
        assert await store.count() == 1
        await store.close()

    asyncio.run(first())
    asyncio.run(second())


KILLED_WRITER = """
import asyncio, os, signal, sys
from logoutguard.sessions.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1], key=b"k" * 32)
    await store.issue("b" * 32, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
    await store.revoke("a" * 32, "forced logout", 2.0)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no atexit

asyncio.run(main())
"""


def test_revocation_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr.decode()

    async def check() -> None:
        store = open_db(path)
        assert await store.is_revoked(A)
        issued = await store.get(B)
        assert issued is not None and issued.state is SessionState.ACTIVE
        await store.close()

    asyncio.run(check())


def test_schema_wal_and_version(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    open_db(path).close_sync()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert "key_check" in meta and KEY.hex() not in meta["key_check"]


def test_calls_run_on_the_worker_thread(tmp_path: Path) -> None:
    store = open_db(tmp_path / "s.sqlite")

    async def scenario() -> tuple[str, str]:
        worker = await store._call("probe", lambda: threading.current_thread().name)
        return worker, threading.current_thread().name

    worker, loop_thread = asyncio.run(scenario())
    store.close_sync()
    assert worker.startswith("logoutguard-sqlite") and worker != loop_thread


def test_concurrent_writes_are_serialised(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = open_db(tmp_path / "s.sqlite", max_sessions=1000)
        await asyncio.gather(
            *(
                store.issue(
                    f"{i:032x}", cookie_name="sid", now=float(i), client_network="", ua_fingerprint=""
                )
                for i in range(200)
            )
        )
        counts = await asyncio.gather(*(store.record_scored_request(A, float(i), 1, 1e9) for i in range(50)))
        assert sorted(counts) == list(range(1, 51))
        assert await store.count() == 200
        await store.close()

    asyncio.run(scenario())


def test_read_only_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    open_db(path).close_sync()
    path.chmod(0o444)
    with pytest.raises(StoreError, match="read-only") as info:
        open_db(path)
    assert str(path) in str(info.value)


def test_immutable_file_gives_sqlite_readonly_error(tmp_path: Path) -> None:
    """A file the OS refuses to write even to root (chattr +i): SQLite's own error, wrapped."""
    path = tmp_path / "s.sqlite"
    open_db(path).close_sync()
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i not available here (needs root and a filesystem with attributes)")
    try:
        with pytest.raises(StoreError, match="readonly database") as info:
            open_db(path)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert str(path) in str(info.value) and "not writable" in str(info.value)


def test_full_database_names_path(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = open_db(path, max_sessions=10**9)

    async def fill() -> None:
        await store._call("limit size", lambda: store._db.execute("PRAGMA max_page_count = 20"))
        for i in range(100_000):
            await store.issue(
                f"{i:032x}", cookie_name="sid", now=float(i), client_network="", ua_fingerprint=""
            )

    with pytest.raises(StoreError, match="issue failed: database or disk is full") as info:
        asyncio.run(fill())
    assert str(path) in str(info.value)
    assert asyncio.run(store.count()) > 0  # the store stays usable after the failed write
    store.close_sync()


def write_garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a database" * 100)
    return path


def write_foreign_db(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    return path


def in_missing_dir(path: Path) -> Path:
    return path.parent / "missing" / path.name


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (write_garbage, "not a SQLite database"),
        (write_foreign_db, "not a LogoutGuard session database"),
        (in_missing_dir, "directory must exist"),
    ],
)
def test_unusable_file_names_path(tmp_path: Path, prepare: Callable[[Path], Path], message: str) -> None:
    path = prepare(tmp_path / "s.sqlite")
    threads_before = set(threading.enumerate())
    with pytest.raises(StoreError, match=message) as info:
        open_db(path)
    assert str(path) in str(info.value)
    assert set(threading.enumerate()) <= threads_before  # the failed open's worker thread is gone


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    open_db(path).close_sync()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=rf"schema version '99'.*reads version {SCHEMA_VERSION}"):
        open_db(path)


VERSION_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY, cookie_name TEXT NOT NULL, issued_at REAL NOT NULL, last_seen REAL NOT NULL,
    client_network TEXT NOT NULL, ua_fingerprint TEXT NOT NULL, state TEXT NOT NULL,
    state_reason TEXT NOT NULL, state_changed_at REAL NOT NULL,
    cumulative_score INTEGER NOT NULL DEFAULT 0, scored_requests INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE scored_requests (id_hash TEXT NOT NULL, at REAL NOT NULL, score INTEGER NOT NULL);
CREATE TABLE lockouts (network TEXT PRIMARY KEY, until REAL NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO sessions VALUES ('{h}', 'sid', 1.0, 2.0, '', '', 'revoked', 'attack', 2.0, 0, 0);
"""


def test_version_1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    """A store written before `authenticated` and `linked` opens, keeps its revocations, and is upgraded
    to the current version (with a generation)."""
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_1.format(h="a" * 32))
    store = open_db(path)
    try:
        record = asyncio.run(store.get("a" * 32))
        assert record is not None and record.state is SessionState.REVOKED
        assert (record.authenticated, record.linked) == (False, ())
    finally:
        store.close_sync()
    with sqlite3.connect(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION) == "3"
    assert int(meta["generation"]) >= 0


def test_other_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    open_db(path).close_sync()
    SqliteStore(path, key=KEY).close_sync()  # the same key opens
    SqliteStore(path, key=None).close_sync()  # no key: no check
    with pytest.raises(StoreError, match="key differs") as info:
        SqliteStore(path, key=b"z" * 32)
    assert str(path) in str(info.value)


def test_closed_store_raises(tmp_path: Path) -> None:
    store = open_db(tmp_path / "s.sqlite")
    store.close_sync()
    store.close_sync()
    with pytest.raises(StoreError, match="the store is closed"):
        asyncio.run(store.get(A))


def test_revocations_and_lockouts_commit_with_synchronous_full(tmp_path: Path) -> None:
    """kill -9 is covered above; against power loss the WAL must be fsynced at these commits."""
    store = open_db(tmp_path / "s.sqlite")
    statements: list[str] = []

    async def scenario() -> None:
        await store._call("trace", lambda: store._db.set_trace_callback(statements.append))
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        ordinary = list(statements)
        statements.clear()
        await store.revoke(A, "attack", 2.0)
        revoke = list(statements)
        statements.clear()
        await store.lockout("203.0.113.0/24", 10.0)
        assert "PRAGMA synchronous=FULL" not in ordinary
        for trace in (revoke, list(statements)):
            assert trace[0] == "PRAGMA synchronous=FULL" and trace[-2:] == [
                "COMMIT",
                "PRAGMA synchronous=NORMAL",
            ]

    asyncio.run(scenario())
    store.close_sync()


def counting_calls(store: SqliteStore) -> list[str]:
    """The operations that went to the store's executor thread (each one a round trip)."""
    calls: list[str] = []
    original = store._call

    async def counted(operation: str, fn: Callable[..., object], *args: object) -> object:
        calls.append(operation)
        return await original(operation, fn, *args)

    store._call = counted  # type: ignore[method-assign]
    return calls


def test_a_request_costs_at_most_one_read_and_no_write(tmp_path: Path) -> None:
    """The first look_up of a session reads it (one executor round trip); later ones are answered by
    the cache; sightings wait for one batched write."""
    store = open_db(tmp_path / "s.sqlite")
    statements: list[str] = []

    async def scenario() -> None:
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        await store._call("trace", lambda: store._db.set_trace_callback(statements.append))
        calls = counting_calls(store)
        first = await store.look_up([A], [], 2.0)
        store.seen(A, 2.0)
        assert calls == ["look_up"] and first.records[A] is not None
        for n in range(3, 50):
            view = await store.look_up([A], [], float(n))
            store.seen(A, float(n))
            assert view.records[A] is not None and view.records[A].last_seen == n - 1
        assert calls == ["look_up"]  # 47 requests later: no further round trip
        assert not any(s.startswith("UPDATE sessions") for s in statements)  # no write per request
        await store.flush()
        assert calls == ["look_up", "write sightings"]
        assert sum(s.startswith("UPDATE sessions SET last_seen") for s in statements) == 1
        record = await store.get(A)
        assert record is not None and record.last_seen == 49.0

    asyncio.run(scenario())
    store.close_sync()


def test_own_writes_keep_the_cache(tmp_path: Path) -> None:
    """This worker's own issue/revoke raise the generation by one: its cache stays, minus what changed."""
    store = open_db(tmp_path / "s.sqlite")

    async def scenario() -> None:
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        await store.look_up([A], [], 2.0)
        calls = counting_calls(store)
        await store.issue(B, cookie_name="sid", now=2.0, client_network="", ua_fingerprint="")
        await store.look_up([A], [], 3.0)
        assert calls == ["issue"]  # A still from the cache
        await store.revoke(A, "forced logout", 4.0)
        view = await store.look_up([A], [], 5.0)
        assert view.records[A] is not None and view.records[A].state is SessionState.REVOKED
        assert calls == ["issue", "revoke", "look_up"]  # the revoked record is read again, not guessed

    asyncio.run(scenario())
    store.close_sync()


KILLED_WITH_SIGHTINGS = """
import asyncio, os, signal, sys
from logoutguard.sessions.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1], key=b"k" * 32)
    await store.issue("b" * 32, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
    store.seen("b" * 32, 5.0)  # written behind: may be lost
    await store.revoke("a" * 32, "forced logout", 2.0)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_kill_9_with_pending_sightings_loses_no_revocation(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_WITH_SIGHTINGS, str(path)], capture_output=True, timeout=60
    )
    assert result.returncode == -9, result.stderr.decode()

    async def check() -> None:
        store = open_db(path)
        assert await store.is_revoked(A)
        issued = await store.get(B)
        assert issued is not None and issued.state is SessionState.ACTIVE and issued.last_seen in (1.0, 5.0)
        await store.close()

    asyncio.run(check())


def generation_queries(store: SqliteStore) -> list[str]:
    """The generation queries of the event loop's read-only connection, as they run."""
    statements: list[str] = []
    assert store._reader is not None
    store._reader.set_trace_callback(statements.append)  # it runs nothing but the generation query
    return statements


def test_the_generation_is_queried_again_only_after_a_commit(tmp_path: Path) -> None:
    """While no transaction has committed (the WAL-index header unchanged), a request's generation is
    the one read last: no query; any commit, by this worker or another one sharing the file, makes
    the next request query it (and a revocation there counts at once)."""
    path = tmp_path / "s.sqlite"
    store, other = open_db(path), open_db(path)
    queries = generation_queries(store)

    async def scenario() -> None:
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        await store.look_up([A], [], 2.0)
        queries.clear()
        for n in range(3, 20):
            view = await store.look_up([A], [], float(n))
            assert view.records[A] is not None and view.records[A].state is SessionState.ACTIVE
        assert queries == []
        other.seen(A, 20.0)
        await other.flush()  # a commit that raises no generation: queried once, the cache kept
        calls = counting_calls(store)
        await store.look_up([A], [], 21.0)
        await store.look_up([A], [], 22.0)
        assert len(queries) == 1 and calls == []
        await other.revoke(A, "forced logout", 23.0)
        view = await store.look_up([A], [], 24.0)
        assert view.records[A] is not None and view.records[A].state is SessionState.REVOKED
        assert len(queries) == 2 and calls == ["look_up"]

    asyncio.run(scenario())
    store.close_sync()
    other.close_sync()


async def issued_and_looked_up(store: SqliteStore, times: range) -> None:
    """Session A issued at 1.0, then looked up at each of `times`."""
    await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
    for n in times:
        await store.look_up([A], [], float(n))


async def assert_revoked_by(store: SqliteStore, other: SqliteStore, now: float) -> None:
    """`other` revokes A at `now`; `store`'s next look-up sees it revoked."""
    await other.revoke(A, "forced logout", now)
    view = await store.look_up([A], [], now + 1)
    assert view.records[A] is not None and view.records[A].state is SessionState.REVOKED


def test_without_the_wal_index_header_every_request_queries_the_generation(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store, other = open_db(path), open_db(path)
    assert store._wal_header is not None and store._wal_header.available
    store._wal_header.close()  # as where the -shm file cannot be mapped
    queries = generation_queries(store)

    async def scenario() -> None:
        await issued_and_looked_up(store, range(2, 6))
        assert len(queries) == 4
        await assert_revoked_by(store, other, 6.0)

    asyncio.run(scenario())
    store.close_sync()
    other.close_sync()


REVOKED_BY_ANOTHER_PROCESS = """
import asyncio, sys
from logoutguard.sessions.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1], key=b"k" * 32)
    await store.revoke("a" * 32, "forced logout by another worker", 3.0)
    await store.close()

asyncio.run(main())
"""


def test_a_revocation_by_another_process_is_seen_by_the_next_look_up(tmp_path: Path) -> None:
    """The header is the file's, mapped by every process: another worker process's commit counts."""
    path = tmp_path / "s.sqlite"
    store = open_db(path)
    queries = generation_queries(store)

    async def scenario() -> None:
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        for n in range(2, 5):
            view = await store.look_up([A], [], float(n))
            assert view.records[A] is not None and view.records[A].state is SessionState.ACTIVE
        assert len(queries) == 1
        result = subprocess.run(
            [sys.executable, "-c", REVOKED_BY_ANOTHER_PROCESS, str(path)], capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr.decode()
        view = await store.look_up([A], [], 5.0)
        assert view.records[A] is not None and view.records[A].state is SessionState.REVOKED

    asyncio.run(scenario())
    store.close_sync()


def test_a_database_reached_through_a_symbolic_link_maps_the_wal_index_beside_the_real_file(
    tmp_path: Path,
) -> None:
    """SQLite keeps the -shm file beside the file a link points to; a stale one beside the link (that
    never changes) must not stand for it, or another worker's revocation would go unseen."""
    real = tmp_path / "data" / "s.sqlite"
    real.parent.mkdir()
    link = tmp_path / "s.sqlite"
    link.symlink_to(real)
    (tmp_path / "s.sqlite-shm").write_bytes(bytes(32768))  # a leftover beside the link
    store, other = open_db(link), open_db(link)
    assert store._wal_header is not None and store._wal_header.path == real.with_name("s.sqlite-shm")

    async def scenario() -> None:
        await issued_and_looked_up(store, range(2, 5))
        await assert_revoked_by(store, other, 5.0)

    asyncio.run(scenario())
    store.close_sync()
    other.close_sync()


def test_warm_reads_as_a_request_does_and_writes_nothing(tmp_path: Path) -> None:
    """warm() at start-up: look_up's read transaction and issue's read run once (for keys no record
    has), the writes are only compiled; no row, generation, WAL byte or cache entry changes."""
    path = tmp_path / "s.sqlite"
    store = open_db(path)

    async def scenario() -> None:
        await store.issue(A, cookie_name="sid", now=1.0, client_network="", ua_fingerprint="")
        await store.look_up([A], ["10.0.0.0/24"], 2.0)  # cached, with the lockout's answer

    asyncio.run(scenario())
    cache = (dict(store.cache._records), dict(store.cache._lockouts), store.cache.generation)
    wal = path.with_name(path.name + "-wal").stat().st_size
    statements: list[str] = []
    store._executor.submit(store._db.set_trace_callback, statements.append).result()
    changes = store._executor.submit(lambda: store._db.total_changes).result()
    with contextlib.closing(sqlite3.connect(path)) as other:
        version = other.execute("PRAGMA data_version").fetchone()
        store.warm()
        assert other.execute("PRAGMA data_version").fetchone() == version  # nobody committed anything
    assert store._executor.submit(lambda: store._db.total_changes).result() == changes
    assert path.with_name(path.name + "-wal").stat().st_size == wal
    assert (dict(store.cache._records), dict(store.cache._lockouts), store.cache.generation) == cache
    assert [s.split(" WHERE")[0][:30] for s in statements] == [
        "BEGIN",
        "SELECT CAST(value AS INTEGER) ",
        "SELECT id_hash, cookie_name, i",
        "SELECT network, until FROM loc",
        "COMMIT",
        "SELECT id_hash, cookie_name, i",
    ]
    assert all("'warm-up'" in s for s in statements if " WHERE " in s and "meta" not in s)
    assert asyncio.run(store.look_up([A], [], 3.0)).records[A] is not None
    store.close_sync()
    with pytest.raises(StoreError, match="warm-up failed: the store is closed"):
        store.warm()
