"""Fixtures for the session tests: stores of every backend on real files or a private Redis, closed after each test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from logoutguard.sessions import SessionStore, open_store
from services import RedisServer, start_redis

KEY = b"k" * 32
StoreFactory = Callable[..., SessionStore]


def store_spec(backend: str, tmp_path: Path) -> str:
    return "memory" if backend == "memory" else f"sqlite://{tmp_path / 'sessions.sqlite'}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port for the whole run (skipped, or failed under CI, when missing)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open a store of the parametrized backend (same file, or same emptied Redis, for every call of one test)."""
    opened: list[SessionStore] = []
    spec = store_spec(request.param, tmp_path)
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        spec = server.url

    def make(**options: object) -> SessionStore:
        store = open_store(spec, key=KEY, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        asyncio.run(store.close())
