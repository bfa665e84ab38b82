"""Fixtures for the session tests: stores of every backend on real files, closed after each test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from logoutguard.sessions import SessionStore, open_store

KEY = b"k" * 32
StoreFactory = Callable[..., SessionStore]


def store_spec(backend: str, tmp_path: Path) -> str:
    return "memory" if backend == "memory" else f"sqlite://{tmp_path / 'sessions.sqlite'}"


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open a store of the parametrized backend (same file for every call of one test)."""
    opened: list[SessionStore] = []

    def make(**options: object) -> SessionStore:
        store = open_store(store_spec(request.param, tmp_path), key=KEY, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        asyncio.run(store.close())
