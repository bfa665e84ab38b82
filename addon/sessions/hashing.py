"""Keyed hashing of session IDs (HMAC-SHA256), and the secret key file it needs.

Session IDs are secrets: the store and the logs only ever see `SessionHasher.hash(id)`. The key
comes from a file:

- `guard_session_key_file` (when set) names a file holding the key: its bytes, surrounding
  whitespace stripped, at least 16 bytes. Keep it readable by the proxy's user only (0600).
- Otherwise, for a SQLite store, the key lives next to the database as `<db file>.key`; it is
  created on first start (32 random bytes written as 64 hex characters, mode 0600) and reused
  after. Several proxies sharing one Redis store must share one key file.
- A memory store gets a fresh random key per process: nothing outlives the process anyway.

Losing or changing the key makes every stored hash meaningless (revocations included), so the
stores record a check value of the key and refuse to open with a different one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..engine.memo import Memo

HASH_LENGTH = 32  # hex characters (128 bits) kept of the HMAC-SHA256 digest
MIN_KEY_BYTES = 16
KNOWN_HASHES = 4096  # IDs whose hash a hasher remembers
_KEY_CHECK_MESSAGE = b"logoutguard session store key check v1"


class KeyFileError(ValueError):
    """A key file that cannot be read, created or used; the message names the path."""


class SessionHasher:
    """HMAC-SHA256 of session IDs under a secret key, as 32 lowercase hex characters."""

    __slots__ = ("_key", "_known")

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"session hash key too short: {len(key)} bytes, need at least {MIN_KEY_BYTES}")
        self._key = bytes(key)
        # Every request of a session hashes its ID again: the hashes of the IDs seen lately, in this
        # process's memory only (where the IDs pass anyway); emptied when full, so it stays bounded.
        self._known = Memo(KNOWN_HASHES)

    def hash(self, session_id: str) -> str:
        known = self._known.get(session_id)
        if known is not None:
            return known
        digest = hmac.new(self._key, id_bytes(session_id), hashlib.sha256).hexdigest()[:HASH_LENGTH]
        return self._known.put(session_id, digest)

    def __repr__(self) -> str:  # never show the key
        return "SessionHasher(key=<redacted>)"


def id_bytes(session_id: str) -> bytes:
    """The bytes of an ID as read from a header (str decoded with surrogateescape, as mitmproxy does)."""
    try:
        return session_id.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return session_id.encode("utf-8", "surrogatepass")


def looks_like_hash(text: str) -> bool:
    return len(text) == HASH_LENGTH and all(c in "0123456789abcdef" for c in text)


def key_check(key: bytes) -> str:
    """A value that identifies the key without revealing it (stored by the stores to detect a key change)."""
    return hmac.new(key, _KEY_CHECK_MESSAGE, hashlib.sha256).hexdigest()[:16]


def default_key_path(db_path: str | os.PathLike[str]) -> Path:
    """Where the key of a SQLite database lives when no key file is configured: `<db file>.key`."""
    db = Path(db_path)
    return db.with_name(db.name + ".key")


def read_key(path: str | os.PathLike[str]) -> bytes:
    """The key stored in a file; raises KeyFileError naming the path when it is missing or unusable."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(f"session key file {os.fspath(path)}: cannot read: {exc.strerror or exc}") from exc
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"session key file {os.fspath(path)}: {len(key)} bytes, need at least {MIN_KEY_BYTES}"
        )
    return key


def load_or_create_key(path: str | os.PathLike[str]) -> bytes:
    """Read the key file, creating it first (random, mode 0600) when it does not exist.

    The new key is written to a temporary file and linked into place, so a concurrent reader never
    sees a half-written key and two proxies starting together end up with the same one.
    """
    target = Path(path)
    if not target.exists():
        key = secrets.token_hex(32).encode("ascii") + b"\n"
        temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # created by another process meanwhile: use theirs
                os.link(temp, target)
        except OSError as exc:
            raise KeyFileError(f"session key file {target}: cannot create: {exc.strerror or exc}") from exc
        finally:
            temp.unlink(missing_ok=True)
    return read_key(target)
