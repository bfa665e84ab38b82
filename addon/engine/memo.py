"""Memo: bounded tables of pure per-text results kept from one transaction to the next.

Header names and values, cookie and argument names repeat from request to request, so the results of
pure functions of a short text (a prefilter scan, a chain of transformations, a libinjection call)
are kept and reused. Only texts up to MAX_TEXT characters are kept, and a full table is emptied, so
memory stays bounded whatever the traffic. A longer text (a token cookie, a body) is never kept: a small
result worked out from it may be, under the text's `digest`. Every table is registered, so benchmarks
and tests can take a snapshot of all of them and restore it.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

MAX_TEXT = 256  # longer texts are not memoised
_tables: weakref.WeakSet[Memo] = weakref.WeakSet()


class Memo(dict[Any, Any]):
    """A dict that empties itself when it reaches `limit` entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        _tables.add(self)

    def __hash__(self) -> int:  # kept in a WeakSet: identity, not contents
        return id(self)

    def put(self, key: Any, value: Any) -> Any:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


def snapshot() -> list[tuple[Memo, dict[Any, Any]]]:
    return [(table, dict(table)) for table in _tables]


def restore(saved: list[tuple[Memo, dict[Any, Any]]]) -> None:
    """Put every table back as it was at `snapshot()`; tables made since then are emptied."""
    kept = {id(table): contents for table, contents in saved}
    for table in list(_tables):
        table.clear()
        table.update(kept.get(id(table), {}))


def clear_all() -> None:
    for table in list(_tables):
        table.clear()


def digest(text: str) -> bytes:
    """The key of a long text's results: a 128-bit BLAKE2b digest (of its UTF-8 bytes, any code point)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
