"""SQLite session store (the default): one local file that survives restarts, used from one worker thread.

- Every sqlite3 call that may touch the disk runs in a dedicated single-thread executor, so the
  mitmproxy event loop never waits on disk; one thread also means no two writes ever interleave.
  Opening is synchronous (it happens at configure time and must fail there, not inside a hook).
  Deadlines are SQLite's own (the busy timeout), measured on that thread: a late event loop never
  makes a store call fail.
- A request costs at most one read, and usually none (`look_up`): the records are answered from a
  bounded local cache (record_cache.py) that is exact as of the store's generation, a counter every
  write that matters to an answer raises (issue, state change, revocation, lockout, purge). The
  generation is read on the event loop itself from a second, read-only connection (one row of a
  tiny table, busy timeout 0: when it cannot be read at once the request reads through the
  executor), so a revocation by any worker sharing the file is seen by the next request. It is
  read again only when a transaction has committed since it was last read (by any worker): the
  WAL-index header (wal_index.py), a memory read, tells.
- Sightings (last_seen) are written behind in batches (sightings.py), at most a second late, in
  transactions of SEEN_CHUNK rows (a read queued behind them waits for one chunk).
- WAL journal. Ordinary writes (sightings, issue) use synchronous=NORMAL: a committed write survives
  a crash or kill -9 of the proxy, only an OS crash or power loss may drop the last ones.
  Revocations and lockouts are committed with synchronous=FULL (the WAL is fsynced before revoke()
  returns), so not even a power loss undoes them.
- Schema created on open, with its version in the `meta` table, next to a check value of the hash
  key: a database opened with another key (every stored hash meaningless) is refused. Older files
  are upgraded in place on open (version 1 had no `authenticated` and `linked`, version 2 no
  generation); an older LogoutGuard then refuses the file, as it would not raise the generation.
- Bounded: beyond `max_sessions` rows the least recently seen non-revoked rows go first.
- Every failure is a StoreError naming the file and the reason; all SQL takes parameters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .hashing import key_check
from .record_cache import RecordCache
from .sightings import Sightings
from .state import SessionState
from .store import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_REVOKED_TTL_S,
    DEFAULT_TTL_S,
    EXPIRED_REASON,
    SessionRecord,
    SessionStore,
    StoreError,
    StoreView,
    check_limits,
    effective_state,
    merged_links,
    with_last_seen,
)
from .wal_index import WalIndexHeader

log = logging.getLogger("logoutguard")

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    cookie_name TEXT NOT NULL,
    issued_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    client_network TEXT NOT NULL,
    ua_fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT NOT NULL,
    state_changed_at REAL NOT NULL,
    cumulative_score INTEGER NOT NULL DEFAULT 0,
    scored_requests INTEGER NOT NULL DEFAULT 0,
    authenticated INTEGER NOT NULL DEFAULT 0,
    linked TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX sessions_by_eviction ON sessions ((state = 'revoked'), last_seen);
CREATE INDEX sessions_by_last_seen ON sessions (last_seen);
CREATE TABLE scored_requests (id_hash TEXT NOT NULL, at REAL NOT NULL, score INTEGER NOT NULL);
CREATE INDEX scored_requests_by_hash ON scored_requests (id_hash, at);
CREATE INDEX scored_requests_by_time ON scored_requests (at);
CREATE TABLE lockouts (network TEXT PRIMARY KEY, until REAL NOT NULL);
"""
COLUMNS = (
    "id_hash, cookie_name, issued_at, last_seen, client_network, ua_fingerprint, "
    "state, state_reason, state_changed_at, cumulative_score, scored_requests, authenticated, linked"
)
UPGRADES = {  # from version N to N + 1
    1: (
        "ALTER TABLE sessions ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE sessions ADD COLUMN linked TEXT NOT NULL DEFAULT ''",
    ),
    2: ("INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0')",),
}
GENERATION = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'"
SELECT_RECORD = f"SELECT {COLUMNS} FROM sessions WHERE id_hash = ?"
INSERT_RECORD = f"INSERT INTO sessions ({COLUMNS}) VALUES ({', '.join('?' * len(COLUMNS.split(', ')))})"
SEEN = "UPDATE sessions SET last_seen = max(last_seen, ?) WHERE id_hash = ?"
NO_RECORD = "warm-up"  # no record nor lockout has this key (hashes are hex, networks addresses)
BUMP = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation' RETURNING CAST(value AS INTEGER)"
SEEN_CHUNK = 500  # sightings per write transaction
# a write's result, and what it did to the generation: (new generation, keys written, anything else too)
Change = tuple[int, tuple[str, ...], bool]
_HINTS = {
    "SQLITE_READONLY": "the file or its directory is not writable by this process",
    "SQLITE_FULL": "free some disk space",
    "SQLITE_CANTOPEN": "its directory must exist and be writable",
    "SQLITE_NOTADB": "the file is not a SQLite database",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_BUSY": "another process holds a lock on it",
    "SQLITE_IOERR": "the disk reported an I/O error",
}


def store_error(path: Path, operation: str, exc: BaseException) -> StoreError:
    """A StoreError naming the file, what was being done and why (with a hint for the common causes)."""
    reason = str(exc) or type(exc).__name__
    code = getattr(exc, "sqlite_errorname", "") or ""
    hint = next((text for prefix, text in _HINTS.items() if code.startswith(prefix)), "")
    return StoreError(f"session store {path}: {operation} failed: {reason}" + (f" ({hint})" if hint else ""))


def row_record(row: tuple[Any, ...]) -> SessionRecord:
    return SessionRecord(
        id_hash=row[0],
        cookie_name=row[1],
        issued_at=row[2],
        last_seen=row[3],
        client_network=row[4],
        ua_fingerprint=row[5],
        state=SessionState(row[6]),
        state_reason=row[7],
        state_changed_at=row[8],
        cumulative_score=row[9],
        scored_requests=row[10],
        authenticated=bool(row[11]),
        linked=tuple(row[12].split()),
    )


@contextmanager
def transaction(conn: sqlite3.Connection, *, durable: bool = False) -> Iterator[None]:
    """BEGIN IMMEDIATE .. COMMIT (ROLLBACK on error); durable: fsync the WAL at commit."""
    if durable:
        conn.execute("PRAGMA synchronous=FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        if durable:
            conn.execute("PRAGMA synchronous=NORMAL")


def refuse_read_only_file(path: Path) -> None:
    """A database file without any write bit is refused even when running as root (who could write it)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"session store {path}: open failed: {exc.strerror or exc}") from exc
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise StoreError(
            f"session store {path}: open failed: the database file is read-only "
            f"(mode {stat.S_IMODE(mode):04o}); the store must be writable"
        )


class SqliteStore(SessionStore):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL_S,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        revoked_ttl: float = DEFAULT_REVOKED_TTL_S,
        key: bytes | None = None,
    ) -> None:
        """Open (creating when needed) the database; raises StoreError naming the path when it cannot."""
        check_limits(ttl, max_sessions, revoked_ttl)
        self.ttl, self.max_sessions, self.revoked_ttl = ttl, max_sessions, revoked_ttl
        self.path = Path(path)
        self.description = f"sqlite://{self.path}"
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None  # the event loop's, for the generation only
        self._wal_header: WalIndexHeader | None = None  # tells whether anything committed since ...
        self._generation_read: tuple[bytes, int] | None = None  # ... the generation was read (header, value)
        self._rows = 0
        self._closed = False
        self.cache = RecordCache()
        self.sightings = Sightings(self._write_sightings)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logoutguard-sqlite")
        try:
            self._executor.submit(self._guarded, "open", self._open, key).result()
            self._reader = self._guarded("open", self._open_reader)
            self._wal_header = WalIndexHeader(self._guarded("open", self._database_file))
        except BaseException:
            self._executor.submit(self._close_connection).result()
            self._executor.shutdown(wait=True)
            self._closed = True
            raise

    # --- running on the worker thread -------------------------------------------------------

    def _guarded(self, operation: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise store_error(self.path, operation, exc) from exc

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "sqlite store used before it was opened"
        return self._conn

    def _open(self, key: bytes | None) -> None:
        refuse_read_only_file(self.path)
        self._conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with transaction(self._db):
            tables = {
                row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not tables:
                for statement in filter(str.strip, SCHEMA.split(";")):
                    self._db.execute(statement)
                self._set_meta("schema_version", str(SCHEMA_VERSION))
                self._set_meta("generation", "0")
            elif "meta" not in tables:
                raise StoreError(
                    f"session store {self.path}: open failed: not a LogoutGuard session database "
                    f"(it has tables {', '.join(sorted(tables))})"
                )
            self._upgrade_schema()
            self._check_schema_version()
            if key is not None:
                self._check_key(key_check(key))
            self._set_meta("opened_at", repr(time.time()))  # a write now: a read-only file fails here
        self._rows = self._db.execute("SELECT count(*) FROM sessions").fetchone()[0]

    def _open_reader(self) -> sqlite3.Connection:
        """The read-only connection the event loop reads the generation with (never waits on a lock)."""
        reader = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only = 1")
        return reader

    def _database_file(self) -> str:
        """The database file as SQLite names it (its full path, symbolic links resolved): the WAL
        index is that name with "-shm" appended, wherever the path given pointed from."""
        assert self._reader is not None
        rows = self._reader.execute("PRAGMA database_list").fetchall()
        return next((str(row[2]) for row in rows if row[1] == "main"), "")

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _upgrade_schema(self) -> None:
        version = self._meta("schema_version")
        while version is not None and version.isdigit() and int(version) in UPGRADES:
            for statement in UPGRADES[int(version)]:
                self._db.execute(statement)
            version = str(int(version) + 1)
            self._set_meta("schema_version", version)

    def _check_schema_version(self) -> None:
        version = self._meta("schema_version")
        if version != str(SCHEMA_VERSION):
            raise StoreError(
                f"session store {self.path}: open failed: schema version {version!r}, "
                f"this LogoutGuard reads version {SCHEMA_VERSION} (upgrade LogoutGuard or start a new file)"
            )

    def _check_key(self, check: str) -> None:
        stored = self._meta("key_check")
        if stored is None:
            self._set_meta("key_check", check)
        elif stored != check:
            raise StoreError(
                f"session store {self.path}: open failed: the session hash key differs from the one this "
                "database was written with, so none of its hashes (revocations included) would match; "
                "restore the original key file or move the database away"
            )

    def _close_connection(self) -> None:
        header, self._wal_header = self._wal_header, None
        if header is not None:  # unmapped before the connections close (see wal_index.py)
            header.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _bump(self) -> int:
        """Raise the generation (inside the caller's write transaction); the new value."""
        return int(self._db.execute(BUMP).fetchall()[0][0])

    def _select(self, id_hash: str) -> SessionRecord | None:
        row = self._db.execute(SELECT_RECORD, (id_hash,)).fetchone()
        return None if row is None else row_record(row)

    def _insert(self, record: SessionRecord) -> bool:
        """Insert a new record (evicting beyond max_sessions); True when others were evicted."""
        self._db.execute(
            INSERT_RECORD,
            (
                record.id_hash,
                record.cookie_name,
                record.issued_at,
                record.last_seen,
                record.client_network,
                record.ua_fingerprint,
                str(record.state),
                record.state_reason,
                record.state_changed_at,
                record.cumulative_score,
                record.scored_requests,
                int(record.authenticated),
                " ".join(record.linked),
            ),
        )
        self._rows += 1
        if self._rows > self.max_sessions:
            cursor = self._db.execute(
                "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions "
                "WHERE id_hash != ? ORDER BY (state = 'revoked'), last_seen LIMIT ?)",
                (record.id_hash, self._rows - self.max_sessions),
            )
            self._rows -= cursor.rowcount
            return cursor.rowcount > 0
        return False

    def _issue(
        self,
        id_hash: str,
        cookie_name: str,
        now: float,
        network: str,
        ua: str,
        reason: str,
        authenticated: bool,
        reinstate: bool,
    ) -> tuple[SessionRecord, Change]:
        with transaction(self._db, durable=reinstate):
            generation = self._bump()
            record = self._select(id_hash)
            if record is None:
                new = SessionRecord(
                    id_hash,
                    cookie_name,
                    now,
                    now,
                    network,
                    ua,
                    SessionState.ACTIVE,
                    reason,
                    now,
                    authenticated=authenticated,
                )
                evicted = self._insert(new)
                return new, (generation, (id_hash,), evicted)
            if record.state is not SessionState.REVOKED or reinstate:
                self._db.execute(
                    "UPDATE sessions SET last_seen = max(last_seen, ?), state = ?, state_reason = ?, "
                    "state_changed_at = ?, authenticated = max(authenticated, ?), "
                    "cookie_name = CASE WHEN cookie_name = '' THEN ? ELSE cookie_name END WHERE id_hash = ?",
                    (now, str(SessionState.ACTIVE), reason, now, int(authenticated), cookie_name, id_hash),
                )
                record = self._select(id_hash)
            assert record is not None
            return record, (generation, (id_hash,), False)

    def _link(self, id_hash: str, others: list[str]) -> None:
        with transaction(self._db):
            record = self._select(id_hash)
            if record is not None:
                linked = merged_links(record.linked, others, id_hash)
                self._db.execute(
                    "UPDATE sessions SET linked = ? WHERE id_hash = ?", (" ".join(linked), id_hash)
                )

    def _touch(self, id_hash: str, now: float, score_delta: int) -> SessionRecord | None:
        with transaction(self._db):
            self._db.execute(
                "UPDATE sessions SET last_seen = max(last_seen, ?), cumulative_score = cumulative_score + ? "
                "WHERE id_hash = ?",
                (now, score_delta, id_hash),
            )
            return self._select(id_hash)

    def _set_state(self, id_hash: str, state: SessionState, reason: str, now: float) -> tuple[bool, Change]:
        with transaction(self._db):
            generation = self._bump()
            cursor = self._db.execute(
                "UPDATE sessions SET state = ?, state_reason = ?, state_changed_at = ? "
                "WHERE id_hash = ? AND state != 'revoked'",
                (str(state), reason, now, id_hash),
            )
            return cursor.rowcount > 0, (generation, (id_hash,), False)

    def _revoke(self, id_hash: str, reason: str, now: float) -> tuple[SessionRecord, Change]:
        evicted = False
        with transaction(self._db, durable=True):
            generation = self._bump()
            record = self._select(id_hash)
            if record is None:
                record = SessionRecord(id_hash, "", now, now, "", "", SessionState.REVOKED, reason, now)
                evicted = self._insert(record)
            elif record.state is not SessionState.REVOKED:
                self._db.execute(
                    "UPDATE sessions SET state = 'revoked', state_reason = ?, state_changed_at = ? "
                    "WHERE id_hash = ?",
                    (reason, now, id_hash),
                )
            record = self._select(id_hash)
            assert record is not None
            return record, (generation, (id_hash,), evicted)

    def _is_revoked(self, id_hash: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sessions WHERE id_hash = ? AND state = 'revoked'", (id_hash,)
        ).fetchone()
        return row is not None

    def _list(self, limit: int) -> list[SessionRecord]:
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM sessions ORDER BY last_seen DESC LIMIT ?", (max(limit, 0),)
        ).fetchall()
        return [row_record(row) for row in rows]

    def _record_scored(self, id_hash: str, now: float, score: int, window_s: float) -> int:
        with transaction(self._db):
            self._db.execute(
                "INSERT INTO scored_requests (id_hash, at, score) VALUES (?, ?, ?)", (id_hash, now, score)
            )
            self._db.execute(
                "DELETE FROM scored_requests WHERE id_hash = ? AND at <= ?", (id_hash, now - window_s)
            )
            self._db.execute(
                "UPDATE sessions SET last_seen = max(last_seen, ?), cumulative_score = cumulative_score + ?, "
                "scored_requests = scored_requests + 1 WHERE id_hash = ?",
                (now, score, id_hash),
            )
            row = self._db.execute("SELECT count(*) FROM scored_requests WHERE id_hash = ?", (id_hash,))
            return int(row.fetchone()[0])

    def _lockout(self, network: str, until: float) -> tuple[None, Change]:
        with transaction(self._db, durable=True):
            generation = self._bump()
            self._db.execute(
                "INSERT INTO lockouts (network, until) VALUES (?, ?) "
                "ON CONFLICT (network) DO UPDATE SET until = max(until, excluded.until)",
                (network, until),
            )
            return None, (generation, (network,), False)

    def _is_locked_out(self, network: str, now: float) -> bool:
        row = self._db.execute("SELECT 1 FROM lockouts WHERE network = ? AND until > ?", (network, now))
        return row.fetchone() is not None

    def _purge(self, now: float) -> tuple[int, Change]:
        ttl, keep_revoked = self.ttl, max(self.revoked_ttl, self.ttl)
        with transaction(self._db):
            generation = self._bump()
            self._db.execute(
                "UPDATE sessions SET state = 'expired', state_reason = ?, state_changed_at = last_seen + ? "
                "WHERE state = 'active' AND last_seen < ?",
                (EXPIRED_REASON, ttl, now - ttl),
            )
            deleted = self._db.execute(
                "DELETE FROM sessions WHERE (state = 'revoked' AND state_changed_at < ?) "
                "OR (state IN ('ended', 'expired') AND max(last_seen, state_changed_at) < ?)",
                (now - keep_revoked, now - ttl),
            ).rowcount
            self._db.execute("DELETE FROM scored_requests WHERE at <= ?", (now - ttl,))
            self._db.execute("DELETE FROM lockouts WHERE until <= ?", (now,))
            self._rows = self._db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        return deleted, (generation, (), True)

    def _read_many(
        self, hashes: list[str], keys: list[str]
    ) -> tuple[int, list[SessionRecord], dict[str, float]]:
        """One read transaction: the generation, the records of `hashes` that exist, and when the
        lockouts of `keys` end (0.0: none)."""
        self._db.execute("BEGIN")
        try:
            generation = int(self._db.execute(GENERATION).fetchone()[0])
            records: list[SessionRecord] = []
            if hashes:
                marks = ", ".join("?" * len(hashes))
                rows = self._db.execute(f"SELECT {COLUMNS} FROM sessions WHERE id_hash IN ({marks})", hashes)
                records = [row_record(row) for row in rows]
            lockouts = dict.fromkeys(keys, 0.0)
            if keys:
                marks = ", ".join("?" * len(keys))
                rows = self._db.execute(
                    f"SELECT network, until FROM lockouts WHERE network IN ({marks})", keys
                )
                lockouts.update({network: float(until) for network, until in rows})
        finally:
            self._db.execute("COMMIT")
        return generation, records, lockouts

    def _write_seen(self, sightings: list[tuple[float, str]]) -> None:
        with transaction(self._db):
            self._db.executemany(SEEN, sightings)

    def _warm(self) -> None:
        """look_up's read and issue's read of a record and a lockout that do not exist; the writes of issue
        (a session adopted or issued) and of the sightings compiled: executemany of no rows prepares a
        statement and never runs it."""
        self._read_many([NO_RECORD], [NO_RECORD])
        self._select(NO_RECORD)
        for statement in (BUMP, INSERT_RECORD, SEEN):
            self._db.executemany(statement, [])

    def _count(self) -> int:
        self._rows = self._db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        return self._rows

    # --- the async interface -----------------------------------------------------------------

    async def _call(self, operation: str, fn: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            raise StoreError(f"session store {self.path}: {operation} failed: the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, operation, fn, *args)

    async def _write(self, operation: str, fn: Callable[..., tuple[Any, Change]], *args: Any) -> Any:
        """A write that raises the generation; the cache learns what it changed."""
        result, (generation, keys, everything) = await self._call(operation, fn, *args)
        self.cache.written(generation, keys, everything)
        return result

    def _with_sightings(self, record: SessionRecord | None) -> SessionRecord | None:
        if record is None:
            return None
        last_seen = self.sightings.last_seen_of(record.id_hash, record.last_seen)
        return record if last_seen == record.last_seen else with_last_seen(record, last_seen)

    def _generation_now(self) -> int | None:
        """The store's generation, read on the event loop (None when it cannot be read at once): the
        value read last while the WAL-index header says nothing has committed since, else a query."""
        header = self._wal_header.read() if self._wal_header is not None else None
        read = self._generation_read
        if header is not None and read is not None and read[0] == header:
            return read[1]
        if self._reader is None:
            return None
        try:  # fetchall: the statement runs to its end, so no read snapshot is kept open
            rows = self._reader.execute(GENERATION).fetchall()
        except sqlite3.Error:
            return None
        generation = int(rows[0][0]) if rows else None
        # The header read before the query: a commit after it makes the next request query again.
        self._generation_read = (
            (header, generation) if header is not None and generation is not None else None
        )
        return generation

    def warm(self) -> None:
        """The generation read on the event loop and, on the store's thread, the reads and writes of a
        request's look_up, an adoption and the sightings (see _warm): compiled into each connection's
        statement cache, the pages read. Nothing is written, the record cache is left as it was."""
        if self._closed:
            raise StoreError(f"session store {self.path}: warm-up failed: the store is closed")
        self._generation_now()
        self._executor.submit(self._guarded, "warm-up read", self._warm).result()

    async def get(self, id_hash: str) -> SessionRecord | None:
        return self._with_sightings(await self._call("get", self._select, id_hash))

    async def look_up(self, id_hashes: Sequence[str], lockout_keys: Sequence[str], now: float) -> StoreView:
        """From the cache when it holds them (no executor round trip), else one read for what it lacks.
        An active record whose idle time says expired is read again (expiry is decided on the stored
        last_seen, which other workers' sightings may have moved)."""
        if self._closed:
            raise StoreError(f"session store {self.path}: look_up failed: the store is closed")
        cache = self.cache
        records: dict[str, SessionRecord | None] = {}
        locked: set[str] = set()
        wanted, keys = list(id_hashes), list(lockout_keys)
        if cache.validate(self._generation_now()):
            wanted = []
            for id_hash in id_hashes:
                record = cache.record(id_hash)
                if record is None or effective_state(record, now, self.ttl) is not record.state:
                    wanted.append(id_hash)
                else:
                    records[id_hash] = record
            keys = []
            for key in lockout_keys:
                until = cache.lockout_until(key)
                if until is None:
                    keys.append(key)
                elif until > now:
                    locked.add(key)
        if wanted or keys:
            generation, found, lockouts = await self._call("look_up", self._read_many, wanted, keys)
            cache.fill(generation, found, lockouts)
            records.update(dict.fromkeys(wanted))
            records.update((record.id_hash, record) for record in found)
            locked.update(key for key, until in lockouts.items() if until > now)
        return StoreView({h: self._with_sightings(records[h]) for h in id_hashes}, frozenset(locked))

    def seen(self, id_hash: str, now: float) -> None:
        self.sightings.note(id_hash, now)

    async def _write_sightings(self, batch: dict[str, float]) -> None:
        """In transactions of SEEN_CHUNK rows: a read queued meanwhile waits for one chunk, not all."""
        rows = [(at, h) for h, at in batch.items()]
        for start in range(0, len(rows), SEEN_CHUNK):
            await self._call("write sightings", self._write_seen, rows[start : start + SEEN_CHUNK])

    async def flush(self) -> None:
        await self.sightings.flush()

    async def issue(
        self,
        id_hash: str,
        *,
        cookie_name: str,
        now: float,
        client_network: str,
        ua_fingerprint: str,
        reason: str = "issued",
        authenticated: bool = False,
        reinstate: bool = False,
    ) -> SessionRecord:
        return await self._write(
            "issue",
            self._issue,
            id_hash,
            cookie_name,
            now,
            client_network,
            ua_fingerprint,
            reason,
            authenticated,
            reinstate,
        )

    async def link(self, id_hash: str, others: Sequence[str]) -> None:
        await self._call("link", self._link, id_hash, list(others))
        self.cache.forget([id_hash])

    async def touch(self, id_hash: str, now: float, score_delta: int = 0) -> SessionRecord | None:
        record = await self._call("touch", self._touch, id_hash, now, score_delta)
        self.cache.forget([id_hash])
        return self._with_sightings(record)

    async def _write_state(self, id_hash: str, state: SessionState, reason: str, now: float) -> bool:
        return await self._write("set_state", self._set_state, id_hash, state, reason, now)

    async def revoke(self, id_hash: str, reason: str, now: float) -> SessionRecord:
        return await self._write("revoke", self._revoke, id_hash, reason, now)

    async def is_revoked(self, id_hash: str) -> bool:
        return await self._call("is_revoked", self._is_revoked, id_hash)

    async def list(self, limit: int = 100) -> list[SessionRecord]:
        await self.flush()
        return await self._call("list", self._list, limit)

    async def record_scored_request(self, id_hash: str, now: float, score: int, window_s: float) -> int:
        count = await self._call("record_scored_request", self._record_scored, id_hash, now, score, window_s)
        self.cache.forget([id_hash])
        return count

    async def lockout(self, client_network: str, until: float) -> None:
        await self._write("lockout", self._lockout, client_network, until)

    async def is_locked_out(self, client_network: str, now: float) -> bool:
        return await self._call("is_locked_out", self._is_locked_out, client_network, now)

    async def purge_expired(self, now: float) -> int:
        await self.flush()  # no session is expired for want of its last sighting
        return await self._write("purge_expired", self._purge, now)

    async def count(self) -> int:
        return await self._call("count", self._count)

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self.flush()
        except StoreError as exc:
            log.error(f"LogoutGuard: the last session sightings are lost: {exc}")
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._guarded, "close", self._close_connection)
        finally:
            self._executor.shutdown(wait=False)

    def close_sync(self) -> None:
        """Close from synchronous code (mitmproxy `done`, tests without an event loop); idempotent."""
        if self._closed:
            return
        self._closed = True
        batch = [(at, h) for h, at in self.sightings.take().items()]
        try:
            if batch:
                self._executor.submit(self._guarded, "write sightings", self._write_seen, batch).result()
            self._executor.submit(self._guarded, "close", self._close_connection).result()
        finally:
            self._executor.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, ttl={self.ttl}, max_sessions={self.max_sessions})"
