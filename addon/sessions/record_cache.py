"""A bounded local cache of session records and lockouts, exact as of a store *generation*.

The SQLite store keeps a counter, the generation, that every write that matters to another
worker's answer (issue, a state change, a revocation, a lockout, a purge) raises by one in the same
transaction. Sightings, scores and links do not raise it: they change no answer a cached record
gives (last_seen is merged from this worker's own sightings, and an expiry is never decided from
the cache: see SqliteStore.look_up).

- Before answering from the cache, the store reads the current generation; when it differs from the
  cache's, the cache is emptied first, so a revocation written by any worker sharing the file is
  seen by the next request (the bound is zero requests, not a delay).
- A read fills the cache only with the generation it read in the same transaction: an answer older
  than the cache is not kept, a newer one empties the cache first.
- This worker's own writes come back with the generation they set: exactly one above the cache's
  means nobody else wrote in between, so the cache is kept (minus the records written); otherwise
  it is emptied.
- Only known records are cached (never "unknown": a flood of invented IDs cannot fill it), at most
  `size` of them, least recently used first out; lockouts the same (the time they end, 0 for none).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from .store import SessionRecord

CACHE_SIZE = 10_000


class RecordCache:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.generation: int | None = None  # the generation the cached entries are exact for
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._lockouts: OrderedDict[str, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._records) + len(self._lockouts)

    def clear(self) -> None:
        self._records.clear()
        self._lockouts.clear()

    def validate(self, current: int | None) -> bool:
        """Make the cache exact for the store's `current` generation (emptied when it moved on); False
        when the generation could not be read (then nothing may be answered from the cache)."""
        if current is None:
            return False
        if current != self.generation:
            self.clear()
            self.generation = current
        return True

    def record(self, id_hash: str) -> SessionRecord | None:
        """The cached record, None when not cached (call validate() first)."""
        record = self._records.get(id_hash)
        if record is None:
            self.misses += 1
        else:
            self.hits += 1
            self._records.move_to_end(id_hash)
        return record

    def lockout_until(self, key: str) -> float | None:
        """When the cached lockout of `key` ends (0.0: none), None when not cached."""
        return self._lockouts.get(key)

    def fill(self, generation: int, records: Iterable[SessionRecord], lockouts: dict[str, float]) -> None:
        """Keep what a read at `generation` found (not when the cache has moved past it)."""
        if self.generation is not None and generation < self.generation:
            return
        if generation != self.generation:
            self.clear()
            self.generation = generation
        for record in records:
            self._records[record.id_hash] = record
            self._records.move_to_end(record.id_hash)
        for key, until in lockouts.items():
            self._lockouts[key] = until
            self._lockouts.move_to_end(key)
        for table in (self._records, self._lockouts):
            while len(table) > self.size:
                table.popitem(last=False)

    def forget(self, keys: Iterable[str]) -> None:
        """This worker wrote these records (or lockouts) without raising the generation (scores, links,
        touch), or its write that raised it changed them."""
        for key in keys:
            self._records.pop(key, None)
            self._lockouts.pop(key, None)

    def written(self, generation: int, keys: Iterable[str] = (), everything: bool = False) -> None:
        """This worker's own write raised the generation to `generation`, changing the records (or
        lockouts) of `keys` (or, `everything`, any record: eviction, purge)."""
        if everything or self.generation is None or generation > self.generation + 1:
            self.clear()  # someone else wrote too (or we cannot tell what changed)
            self.generation = max(generation, self.generation or 0)
            return
        self.forget(keys)
        if generation == self.generation + 1:
            self.generation = generation
        # generation <= self.generation: the cache was emptied and refilled after this write committed
