"""Tests for sessions/factory.py: store specs, opening each backend, the key that goes with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from logoutguard.sessions.factory import StoreSpec, open_store, parse_store_spec, resolve_key
from logoutguard.sessions.hashing import read_key
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.redis import RedisStore
from logoutguard.sessions.sqlite import SqliteStore
from logoutguard.sessions.store import StoreError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("memory", StoreSpec("memory", "")),
        (" memory ", StoreSpec("memory", "")),
        ("sqlite:///var/lib/lg/s.sqlite", StoreSpec("sqlite", "/var/lib/lg/s.sqlite")),
        ("sqlite://state/s.sqlite", StoreSpec("sqlite", "state/s.sqlite")),
        ("/tmp/s.sqlite", StoreSpec("sqlite", "/tmp/s.sqlite")),
        ("s.sqlite", StoreSpec("sqlite", "s.sqlite")),
        ("C:/data/s.sqlite", StoreSpec("sqlite", "C:/data/s.sqlite")),
        ("redis://127.0.0.1:6379/0", StoreSpec("redis", "redis://127.0.0.1:6379/0")),
        ("rediss://cache:6380/1", StoreSpec("redis", "rediss://cache:6380/1")),
        ("redis/s.sqlite", StoreSpec("sqlite", "redis/s.sqlite")),  # a folder named redis
        ("sqlite.db", StoreSpec("sqlite", "sqlite.db")),
    ],
)
def test_parse_store_spec(spec: str, expected: StoreSpec) -> None:
    assert parse_store_spec(spec) == expected


def test_home_is_expanded() -> None:
    assert not parse_store_spec("~/s.sqlite").location.startswith("~")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("sqlite://", "no file path"),
        ("postgres://db/x", "unknown scheme 'postgres'"),
        ("redis//127.0.0.1:6379/0", "a redis:// URL without its '://'"),
        ("redis:127.0.0.1:6379", "a redis:// URL without its '://'"),
        ("sqlite:/var/lib/lg/s.sqlite", "a sqlite:// URL without its '://'"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_store_spec(spec)


def test_open_each_backend(tmp_path: Path) -> None:
    memory = open_store("memory", ttl=60, max_sessions=10)
    assert isinstance(memory, MemoryStore) and (memory.ttl, memory.max_sessions) == (60, 10)
    for spec in (f"sqlite://{tmp_path}/a.sqlite", str(tmp_path / "b.sqlite")):
        store = open_store(spec, ttl=60, max_sessions=10, key=b"k" * 32)
        assert isinstance(store, SqliteStore) and store.max_sessions == 10
        asyncio.run(store.close())
    assert {p.name for p in tmp_path.glob("*.sqlite")} == {"a.sqlite", "b.sqlite"}


def test_redis_opens_without_connecting() -> None:
    """A Redis store is opened lazily: nothing listens on port 9 (discard), yet opening succeeds."""
    store = open_store("redis://127.0.0.1:9/0?prefix=lg-test", ttl=60, max_sessions=10, key=b"k" * 32)
    assert isinstance(store, RedisStore) and (store.prefix, store.max_sessions) == ("lg-test:", 10)
    with pytest.raises(StoreError, match=r"redis://127\.0\.0\.1:9/0: get failed: cannot reach Redis"):
        asyncio.run(store.get("a" * 32))
    asyncio.run(store.close())


@pytest.mark.parametrize(
    ("spec", "message"),
    [("redis://127.0.0.1:99999/0", "bad port"), ("redis://h/0?socket_timeout=soon", "socket_timeout")],
)
def test_bad_redis_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(spec)


def test_resolve_key(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    key = resolve_key(str(db))
    assert key == read_key(tmp_path / "s.sqlite.key") == resolve_key(f"sqlite://{db}")
    explicit = tmp_path / "shared.key"
    assert resolve_key("redis://127.0.0.1/0", str(explicit)) == read_key(explicit) != key
    assert resolve_key("memory") != resolve_key("memory")  # fresh per process start
    with pytest.raises(ValueError, match="needs a key file"):
        resolve_key("redis://127.0.0.1/0")
