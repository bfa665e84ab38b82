"""Progress bars for long command-line runs (tqdm), on stderr and only when stderr is a terminal.

One helper for every long loop (`report`, `rules test`, `crs report`, a future `learn`): piped or
redirected output, CI logs and tests see nothing of it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import IO

from tqdm import tqdm


def on_terminal(stream: IO[str] | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def progress[T](items: Iterable[T], what: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """`items`, with a bar on stderr while they are worked through (when stderr is a terminal)."""
    if not on_terminal():
        yield from items
        return
    yield from tqdm(
        items, desc=what, total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
    )


class ByteProgress:
    """A bar over the bytes of a file read as a stream (saved flows: their count is unknown up front)."""

    def __init__(self, what: str, total: int) -> None:
        self._bar = (
            tqdm(
                desc=what,
                total=total,
                unit="B",
                unit_scale=True,
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )
            if on_terminal()
            else None
        )
        self._at = 0

    def at(self, position: int) -> None:
        if self._bar is not None and position > self._at:
            self._bar.update(position - self._at)
            self._at = position

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ByteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
