"""Tests for sessions/hashing.py: keyed hashes of session IDs and the key file."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from logoutguard.sessions import hashing
from logoutguard.sessions.hashing import (
    HASH_LENGTH,
    KeyFileError,
    SessionHasher,
    default_key_path,
    key_check,
    load_or_create_key,
    looks_like_hash,
    read_key,
)

KEY = b"0123456789abcdef0123456789abcdef"


def test_hash_is_truncated_hmac_sha256() -> None:
    expected = hmac.new(KEY, b"abc123", hashlib.sha256).hexdigest()[:HASH_LENGTH]
    assert SessionHasher(KEY).hash("abc123") == expected
    assert looks_like_hash(expected)


@pytest.mark.parametrize("session_id", ["abc123", "", "x" * 5000, "ünï\udcff", "\ud800"])
def test_hash_properties(session_id: str) -> None:
    digest = SessionHasher(KEY).hash(session_id)
    assert len(digest) == HASH_LENGTH and looks_like_hash(digest)
    assert digest == SessionHasher(KEY).hash(session_id)  # stable
    assert digest != SessionHasher(KEY[::-1]).hash(session_id)  # keyed
    assert session_id not in digest or session_id == ""


def test_short_key_refused() -> None:
    with pytest.raises(ValueError, match="too short: 8 bytes"):
        SessionHasher(b"12345678")


def test_repr_hides_key() -> None:
    assert KEY.decode() not in repr(SessionHasher(KEY))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0" * 32, True), ("a1" * 16, True), ("A1" * 16, False), ("0" * 31, False), ("g" * 32, False)],
)
def test_looks_like_hash(text: str, expected: bool) -> None:
    assert looks_like_hash(text) is expected


def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    path = default_key_path(tmp_path / "sessions.sqlite")
    assert path == tmp_path / "sessions.sqlite.key"
    key = load_or_create_key(path)
    assert len(key) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert read_key(path) == key
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_key_file_given_by_user(tmp_path: Path) -> None:
    path = tmp_path / "my.key"
    path.write_bytes(b"  a-secret-of-enough-length \n")
    assert load_or_create_key(path) == b"a-secret-of-enough-length"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), (b"short\n", "5 bytes, need at least 16")],
)
def test_bad_key_file_names_path(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.key"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message) as info:
        read_key(path)
    assert str(path) in str(info.value)


def test_key_file_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create") as info:
        load_or_create_key(tmp_path / "missing" / "k.key")
    assert str(tmp_path / "missing" / "k.key") in str(info.value)


def test_key_check_identifies_key_without_revealing_it() -> None:
    assert key_check(KEY) == key_check(KEY) != key_check(KEY[::-1])
    assert KEY.hex() not in key_check(KEY) and len(key_check(KEY)) == 16


def test_remembered_hashes_are_the_hmac_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "KNOWN_HASHES", 3)
    hasher = SessionHasher(KEY)
    values = [f"id-{n}" for n in range(7)] + ["id-0", "caf\xe9", "\udcff"]
    for value in values * 2:
        expected = hmac.new(KEY, value.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
        assert hasher.hash(value) == expected[:HASH_LENGTH]
        assert len(hasher._known) <= 3
    assert SessionHasher(b"another key, 16+ bytes").hash("id-0") != hasher.hash("id-0")
