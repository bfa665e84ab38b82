"""The WAL-index header of a SQLite database in WAL mode: a change marker that costs a memory read.

A database in WAL mode has a `-shm` file beside it, the wal-index, which every connection to it maps
into memory (https://www.sqlite.org/walformat.html). It begins with a 48-byte header, stored twice
(the copies are written one after the other, so a reader can tell a header being written). The
header changes with every committed transaction (its iChange counter, the last valid frame, the
checksums), and a reader's snapshot is taken from it: while it reads the same as it did, no
transaction has committed since, and a value read from the database then is still what a query
would return.

The SQLite store asks this before it reads its generation on the event loop (sqlite.py): a request
then costs a 96-byte read instead of a query, and any commit, by this worker or another one
sharing the file, makes the next request read the generation again.

When the header cannot be read (no `-shm` file: another VFS or locking mode, a file too short, a
closed map, two copies that differ because a writer is writing one) `read` gives None and the
caller queries the database, as it would without this.

The file is mapped read-only while the store's own connections keep the database open: SQLite
truncates or deletes the `-shm` file only when no connection has it open, so the map never outlives
the data behind it (the store closes it before its connections).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

HEADER = 48  # bytes of one copy of the header


class WalIndexHeader:
    """A read-only view of the first 96 bytes of a database's `-shm` file."""

    def __init__(self, database: str | os.PathLike[str]) -> None:
        """`database`: the file as SQLite names it (`PRAGMA database_list`: symbolic links resolved),
        since the `-shm` file is beside that one; "" (an in-memory database): no header."""
        self.path = Path(f"{os.fspath(database)}-shm")
        self._map: mmap.mmap | None = None
        if not os.fspath(database):
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size >= 2 * HEADER:
                self._map = mmap.mmap(fd, 2 * HEADER, access=mmap.ACCESS_READ)  # shared, read-only
        except (OSError, ValueError):
            self._map = None
        finally:
            os.close(fd)  # the map keeps its own reference to the file

    @property
    def available(self) -> bool:
        return self._map is not None

    def read(self) -> bytes | None:
        """The header as it is now; None when it cannot be read whole (no map, or a writer between
        its two copies)."""
        if self._map is None:
            return None
        try:
            both = self._map[: 2 * HEADER]
        except ValueError:  # closed meanwhile (by the store's close on its worker thread)
            return None
        first = both[:HEADER]
        return first if first == both[HEADER:] else None

    def close(self) -> None:
        mapped, self._map = self._map, None
        if mapped is not None:
            with contextlib.suppress(BufferError, ValueError):
                mapped.close()
