"""In-memory session store: dicts in LRU order, bounded, with TTL expiry; lost when the process ends."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import replace

from .state import SessionState
from .store import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_REVOKED_TTL_S,
    DEFAULT_TTL_S,
    SessionRecord,
    SessionStore,
    check_limits,
    merged_links,
    purged,
)


class MemoryStore(SessionStore):
    """Non-revoked and revoked records in two LRU-ordered dicts, so eviction takes revoked ones last."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_S,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        revoked_ttl: float = DEFAULT_REVOKED_TTL_S,
    ) -> None:
        check_limits(ttl, max_sessions, revoked_ttl)
        self.ttl, self.max_sessions, self.revoked_ttl = ttl, max_sessions, revoked_ttl
        self.description = "memory"
        self._live: OrderedDict[str, SessionRecord] = OrderedDict()
        self._revoked: OrderedDict[str, SessionRecord] = OrderedDict()
        self._scored: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._lockouts: dict[str, float] = {}

    def _find(self, id_hash: str) -> SessionRecord | None:
        record = self._revoked.get(id_hash) or self._live.get(id_hash)
        if record is not None:
            self._put(record)  # a use refreshes the LRU position
        return record

    def _put(self, record: SessionRecord) -> None:
        """Store (or move to the most recent end) and evict the least recently used beyond the bound."""
        if record.state is SessionState.REVOKED:
            self._live.pop(record.id_hash, None)
            table = self._revoked
        else:
            table = self._live
        table[record.id_hash] = record
        table.move_to_end(record.id_hash)
        while len(self._live) + len(self._revoked) > self.max_sessions:
            oldest_live = next(iter(self._live), None)
            if oldest_live is not None and oldest_live != record.id_hash:  # never the one just stored
                del self._live[oldest_live]
                evicted = oldest_live
            else:
                evicted, _ = self._revoked.popitem(last=False)
            self._scored.pop(evicted, None)

    async def get(self, id_hash: str) -> SessionRecord | None:
        return self._find(id_hash)

    async def issue(
        self,
        id_hash: str,
        *,
        cookie_name: str,
        now: float,
        client_network: str,
        ua_fingerprint: str,
        reason: str = "issued",
        authenticated: bool = False,
        reinstate: bool = False,
    ) -> SessionRecord:
        record = self._find(id_hash)
        if record is None:
            record = SessionRecord(
                id_hash,
                cookie_name,
                now,
                now,
                client_network,
                ua_fingerprint,
                SessionState.ACTIVE,
                reason,
                now,
                authenticated=authenticated,
            )
        elif record.state is not SessionState.REVOKED or reinstate:
            if record.state is SessionState.REVOKED:  # issued again by the application at a fresh login
                self._revoked.pop(id_hash, None)
                record = replace(record, cookie_name=cookie_name or record.cookie_name)
            record = replace(
                record,
                last_seen=max(record.last_seen, now),
                state=SessionState.ACTIVE,
                state_reason=reason,
                state_changed_at=now,
                authenticated=record.authenticated or authenticated,
            )
        self._put(record)
        return record

    async def link(self, id_hash: str, others: Sequence[str]) -> None:
        record = self._find(id_hash)
        if record is not None:
            self._put(replace(record, linked=merged_links(record.linked, others, id_hash)))

    async def touch(self, id_hash: str, now: float, score_delta: int = 0) -> SessionRecord | None:
        record = self._find(id_hash)
        if record is None:
            return None
        record = replace(
            record,
            last_seen=max(record.last_seen, now),
            cumulative_score=record.cumulative_score + score_delta,
        )
        self._put(record)
        return record

    def seen(self, id_hash: str, now: float) -> None:
        """Nothing to write behind in memory: last_seen changes at once."""
        record = self._find(id_hash)
        if record is not None and now > record.last_seen:
            self._put(replace(record, last_seen=now))

    async def _write_state(self, id_hash: str, state: SessionState, reason: str, now: float) -> bool:
        record = self._find(id_hash)
        if record is None or record.state is SessionState.REVOKED:
            return False
        self._put(replace(record, state=state, state_reason=reason, state_changed_at=now))
        return True

    async def revoke(self, id_hash: str, reason: str, now: float) -> SessionRecord:
        record = self._find(id_hash) or SessionRecord(id_hash, "", now, now, "", "")
        if record.state is not SessionState.REVOKED:
            record = replace(record, state=SessionState.REVOKED, state_reason=reason, state_changed_at=now)
            self._put(record)
        return record

    async def is_revoked(self, id_hash: str) -> bool:
        return id_hash in self._revoked

    async def list(self, limit: int = 100) -> list[SessionRecord]:
        records = [*self._live.values(), *self._revoked.values()]
        records.sort(key=lambda r: r.last_seen, reverse=True)
        return records[: max(limit, 0)]

    async def record_scored_request(self, id_hash: str, now: float, score: int, window_s: float) -> int:
        entries = self._scored.pop(id_hash, None) or deque()
        self._scored[id_hash] = entries  # most recent at the end
        entries.append((now, score))
        while entries and entries[0][0] <= now - window_s:
            entries.popleft()
        while len(self._scored) > self.max_sessions:
            self._scored.popitem(last=False)
        record = self._find(id_hash)
        if record is not None:
            self._put(
                replace(
                    record,
                    last_seen=max(record.last_seen, now),
                    cumulative_score=record.cumulative_score + score,
                    scored_requests=record.scored_requests + 1,
                )
            )
        return len(entries)

    async def lockout(self, client_network: str, until: float) -> None:
        self._lockouts[client_network] = max(until, self._lockouts.get(client_network, until))

    async def is_locked_out(self, client_network: str, now: float) -> bool:
        return self._lockouts.get(client_network, 0.0) > now

    async def purge_expired(self, now: float) -> int:
        deleted = 0
        for table in (self._live, self._revoked):
            for id_hash, record in list(table.items()):
                kept = purged(record, now, self.ttl, self.revoked_ttl)
                if kept is None:
                    del table[id_hash]
                    self._scored.pop(id_hash, None)
                    deleted += 1
                elif kept is not record:
                    table[id_hash] = kept  # keeps its LRU position
        for id_hash, entries in list(self._scored.items()):
            while entries and entries[0][0] <= now - self.ttl:
                entries.popleft()
            if not entries:
                del self._scored[id_hash]
        self._lockouts = {net: until for net, until in self._lockouts.items() if until > now}
        return deleted

    async def count(self) -> int:
        return len(self._live) + len(self._revoked)

    async def close(self) -> None:
        return None
