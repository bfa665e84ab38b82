"""Tests for sessions/wal_index.py on real SQLite files: the header moves with every commit, and only then."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from logoutguard.sessions.wal_index import HEADER, WalIndexHeader


def wal_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    conn.execute("INSERT INTO t VALUES ('a', 0)")
    return conn


def test_the_header_moves_with_every_commit_and_not_with_reads(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = wal_database(path)
    other = sqlite3.connect(path, isolation_level=None)  # another worker's connection to the file
    header = WalIndexHeader(path)
    assert header.available
    seen = [header.read()]
    assert seen[0] is not None and len(seen[0]) == HEADER
    for n in range(1, 6):  # by either connection; the file's size is the same after each, the header is not
        (conn if n % 2 else other).execute("UPDATE t SET v = ? WHERE k = 'a'", (n % 2,))
        now = header.read()
        assert now is not None and now not in seen
        seen.append(now)
    for _ in range(3):
        assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
        conn.execute("UPDATE t SET v = 1 WHERE k = 'a'")  # changes nothing: SQLite writes no page
        other.execute("BEGIN")
        other.execute("SELECT v FROM t").fetchall()
        other.execute("COMMIT")  # a read transaction commits nothing
        assert header.read() == seen[-1]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("UPDATE t SET v = 2 WHERE k = 'a'")  # written into a restarted WAL
    assert header.read() not in seen
    header.close()
    other.close()
    conn.close()


def test_without_a_wal_index_nothing_is_read(tmp_path: Path) -> None:
    path = tmp_path / "rollback.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)  # the default rollback journal: no -shm file
    conn.execute("CREATE TABLE t (k TEXT)")
    header = WalIndexHeader(path)
    assert not header.available and header.read() is None
    assert WalIndexHeader(tmp_path / "missing.sqlite").read() is None
    conn.close()


def test_a_closed_map_reads_nothing(tmp_path: Path) -> None:
    conn = wal_database(tmp_path / "db.sqlite")
    header = WalIndexHeader(tmp_path / "db.sqlite")
    assert header.read() is not None
    header.close()
    header.close()  # idempotent
    assert not header.available and header.read() is None
    conn.close()


def test_copies_that_differ_are_no_header(tmp_path: Path) -> None:
    """A writer between its two copies: the reader cannot tell which one holds, so it reads none."""
    (tmp_path / "db.sqlite-shm").write_bytes(b"\x01" * HEADER + b"\x02" * HEADER + b"\x00" * 4000)
    header = WalIndexHeader(tmp_path / "db.sqlite")
    assert header.available and header.read() is None
    header.close()
    (tmp_path / "db.sqlite-shm").write_bytes(b"\x03" * (2 * HEADER))
    header = WalIndexHeader(tmp_path / "db.sqlite")
    assert header.read() == b"\x03" * HEADER
    header.close()
