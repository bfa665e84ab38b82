"""Store specs -> open session stores (memory, SQLite, Redis), and the hash key that goes with each.

A spec is one string (the `guard_session_store` option):
- "memory": in-process, lost on exit;
- "sqlite:///var/lib/logoutguard/sessions.sqlite": everything after "sqlite://" is the path, so
  three slashes give an absolute path and "sqlite://state/sessions.sqlite" a relative one;
- a plain path ("sessions.sqlite", "~/lg/sessions.sqlite"): SQLite, the default backend;
- "redis://host:port/db" (also rediss://, unix://): Redis, shared by several proxies (see redis.py).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Literal

from .hashing import default_key_path, load_or_create_key
from .memory import MemoryStore
from .sqlite import SqliteStore
from .store import DEFAULT_MAX_SESSIONS, DEFAULT_REVOKED_TTL_S, DEFAULT_TTL_S, SessionStore

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class StoreSpec:
    backend: Literal["memory", "sqlite", "redis"]
    location: str  # the file path for sqlite, the URL for redis, "" for memory


def parse_store_spec(spec: str) -> StoreSpec:
    """Parse a store spec; ValueError saying what is wrong with it."""
    text = spec.strip()
    if not text:
        raise ValueError("session store spec is empty (use 'memory', a file path or sqlite:///path)")
    if text == "memory":
        return StoreSpec("memory", "")
    if text.startswith(REDIS_SCHEMES):
        return StoreSpec("redis", text)
    if text.startswith("sqlite://"):
        path = text.removeprefix("sqlite://")
        if not path:
            raise ValueError(f"session store spec {spec!r}: no file path after sqlite://")
        return StoreSpec("sqlite", os.path.expanduser(path))
    scheme, sep, _ = text.partition("://")
    if sep and scheme.isalnum():
        raise ValueError(
            f"session store spec {spec!r}: unknown scheme {scheme!r} (use memory, sqlite:// or a path)"
        )
    known = next((s for s in ("rediss", "redis", "unix", "sqlite") if text.lower().startswith(s)), None)
    if known is not None and text[len(known) :].startswith((":", "//")):  # redis//host, sqlite:/x, unix:x
        raise ValueError(f"session store spec {spec!r}: a {known}:// URL without its '://'? (or give ./{text})")
    return StoreSpec("sqlite", os.path.expanduser(text))


def resolve_key(spec: str, key_file: str | None = None) -> bytes:
    """The hash key for a store: from `key_file` (created when missing), else `<db file>.key` for SQLite,
    else (memory) a fresh random key. Redis needs an explicit key file shared by all proxies."""
    if key_file:
        return load_or_create_key(os.path.expanduser(key_file))
    parsed = parse_store_spec(spec)
    if parsed.backend == "sqlite":
        return load_or_create_key(default_key_path(parsed.location))
    if parsed.backend == "redis":
        raise ValueError(f"session store {spec!r}: a Redis store needs a key file shared by every proxy")
    return secrets.token_bytes(32)


def open_store(
    spec: str,
    *,
    ttl: float = DEFAULT_TTL_S,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    key: bytes | None = None,
    revoked_ttl: float = DEFAULT_REVOKED_TTL_S,
) -> SessionStore:
    """Open the store a spec names. ValueError for a bad spec or option, StoreError when it cannot be opened.

    `key` is the session hash key; persistent stores keep a check value of it and refuse another.
    """
    parsed = parse_store_spec(spec)
    if parsed.backend == "memory":
        return MemoryStore(ttl=ttl, max_sessions=max_sessions, revoked_ttl=revoked_ttl)
    if parsed.backend == "redis":
        from .redis import RedisStore  # imported here: the redis package is an optional extra

        # connects lazily: a proxy starts while Redis is down and applies its fail mode
        return RedisStore(
            parsed.location, ttl=ttl, max_sessions=max_sessions, revoked_ttl=revoked_ttl, key=key
        )
    return SqliteStore(parsed.location, ttl=ttl, max_sessions=max_sessions, revoked_ttl=revoked_ttl, key=key)
