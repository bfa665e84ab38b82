"""The session store interface: SessionRecord, the async SessionStore contract every backend fulfils, StoreError.

Records are keyed by the keyed hash of the session ID (see hashing.py); a store never sees an ID.

Life of a record (`state`):
- active: issued by the application (learned from Set-Cookie) or adopted during the grace period.
- ended: the application deleted or replaced the cookie (logout, login rotation).
- expired: not seen for `ttl` seconds (an active record turns expired when read or purged).
- revoked: revoked by LogoutGuard, written durably before revoke() returns. Nothing turns a revoked
  record back (not touch(), not set_state(), not an ordinary issue()), with one exception: the
  application itself issuing that very value again in answer to a fresh login (issue(...,
  reinstate=True)); the tracker asks for it only then, and never for a value the login request carried.

Besides its state a record says whether the application showed the session authenticated (issued or
rotated by a login response: `authenticated`) and which other identifiers belong to the same login
(`linked`: the keyed hashes of e.g. the remember-me cookie issued with the session), so that they
are revoked together.

Per request (see tracker.py) a store answers one read, `look_up`: the records of the request's
identifiers and the lockouts that concern it, together; the sighting is noted with `seen()` and
written behind (sightings.py), never awaited by the request. Revocations, state changes and
lockouts are written before their call returns.

Retention (purge_expired): ended and expired records are deleted `ttl` seconds after they were
last seen or changed state (so a replayed old ID is reported as ended/expired for a while, then as
unknown); revoked records are kept `revoked_ttl` seconds after the revocation (default 30 days,
and never less than `ttl`), because the application may still accept a revoked ID. The size bound
(`max_sessions`) evicts the least recently seen records first and revoked records last.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .state import SessionState


class StoreError(Exception):
    """A store that cannot be opened, read or written; the message names the store (path) and the reason."""


DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_REVOKED_TTL_S = 30 * 24 * 3600.0
DEFAULT_MAX_SESSIONS = 100_000
MAX_LINKS = 8  # linked identifiers kept per record (a login issues a session and a remember-me cookie)
EXPIRED_REASON = "idle for longer than the session ttl"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    cookie_name: str
    issued_at: float
    last_seen: float
    client_network: str  # e.g. "203.0.113.0/24", "2001:db8::/64"; "" when unknown
    ua_fingerprint: str  # short hash of the User-Agent; "" when there was none
    state: SessionState = SessionState.ACTIVE
    state_reason: str = ""
    state_changed_at: float = 0.0
    cumulative_score: int = 0
    scored_requests: int = 0
    authenticated: bool = False  # the application showed it authenticated (a login response issued it)
    linked: tuple[str, ...] = ()  # hashes of identifiers issued with it (revoked with it)

    def to_json(self) -> dict[str, object]:
        """Plain JSON-able data (for `guard.sessions`, audit records and flow metadata)."""
        return {
            "id_hash": self.id_hash,
            "cookie_name": self.cookie_name,
            "issued_at": self.issued_at,
            "last_seen": self.last_seen,
            "client_network": self.client_network,
            "ua_fingerprint": self.ua_fingerprint,
            "state": str(self.state),
            "state_reason": self.state_reason,
            "state_changed_at": self.state_changed_at,
            "cumulative_score": self.cumulative_score,
            "scored_requests": self.scored_requests,
            "authenticated": self.authenticated,
            "linked": list(self.linked),
        }


@dataclass(frozen=True, slots=True)
class StoreView:
    """What one `look_up` read: each hash's record (None when unknown) and the lockout keys in force."""

    records: dict[str, SessionRecord | None]
    locked: frozenset[str] = frozenset()


def merged_links(current: tuple[str, ...], others: Sequence[str], own: str) -> tuple[str, ...]:
    """`current` plus `others` (never `own`, no duplicates), the most recent MAX_LINKS kept."""
    links = [h for h in current if h not in others] + [h for h in dict.fromkeys(others) if h != own]
    return tuple(links[-MAX_LINKS:])


def check_limits(ttl: float, max_sessions: int, revoked_ttl: float) -> None:
    """Validate the common store options; ValueError naming the bad one."""
    if not ttl > 0:
        raise ValueError(f"session ttl must be > 0 seconds, got {ttl!r}")
    if max_sessions < 1:
        raise ValueError(f"max sessions must be >= 1, got {max_sessions!r}")
    if not revoked_ttl > 0:
        raise ValueError(f"revoked session ttl must be > 0 seconds, got {revoked_ttl!r}")


class SessionStore(abc.ABC):
    """Async session store. Every backend (memory, SQLite, Redis) implements exactly this."""

    ttl: float  # idle seconds after which an active record counts as expired
    revoked_ttl: float  # seconds a revocation is kept
    max_sessions: int
    description: str  # e.g. "sqlite:///var/lib/logoutguard/sessions.sqlite", for messages

    @abc.abstractmethod
    async def get(self, id_hash: str) -> SessionRecord | None:
        """The record as stored (no expiry applied: see `effective_state`), None when unknown."""

    @abc.abstractmethod
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
        """Record an issued (or adopted) ID as active.

        A known non-revoked record becomes active again and keeps its issued_at, fingerprints,
        counters and links; it stays authenticated once it was. A revoked record stays revoked
        (returned unchanged) unless `reinstate`: the application issued this very value again at a
        fresh login, so it becomes active (authenticated as given). May evict to stay bounded.
        """

    @abc.abstractmethod
    async def link(self, id_hash: str, others: Sequence[str]) -> None:
        """Add `others` to the record's linked hashes (see merged_links); nothing when it is unknown."""

    @abc.abstractmethod
    async def touch(self, id_hash: str, now: float, score_delta: int = 0) -> SessionRecord | None:
        """Note a request on this session: last_seen = now, cumulative_score += score_delta (written now)."""

    @abc.abstractmethod
    def seen(self, id_hash: str, now: float) -> None:
        """Note a request on this session (last_seen = now), written behind: within the store's flush delay,
        at flush() and at close(); reads of this store see it at once. Never waits, never raises."""

    async def flush(self) -> None:
        """Write what is written behind (sightings) now; StoreError when that fails."""
        return None

    def warm(self) -> None:
        """Pay now, at start-up, what a request's first read would (statements to compile, pages to read),
        with nothing written and nothing cached; StoreError when the store cannot be read. Stores that
        have nothing of the kind (or must not be asked at start-up, as Redis) do nothing."""
        return None

    async def look_up(self, id_hashes: Sequence[str], lockout_keys: Sequence[str], now: float) -> StoreView:
        """One read for a request: the records of `id_hashes` (as get() gives them) and which of
        `lockout_keys` (client networks, credential keys) are locked out at `now`. Backends answer it
        in one round trip (or from a cache they keep exact); this default asks one by one."""
        records = {h: await self.get(h) for h in id_hashes}
        locked = frozenset([k for k in lockout_keys if await self.is_locked_out(k, now)])
        return StoreView(records, locked)

    async def set_state(
        self, id_hash: str, state: SessionState, reason: str, now: float | None = None
    ) -> bool:
        """Change the state of a known, non-revoked record; False when unknown or revoked.

        Revoking goes through revoke() (ValueError here), because it must be durable; NONE and
        UNKNOWN describe requests, not records (ValueError too). `now` None: the wall clock.
        """
        state = SessionState(state)
        if state is SessionState.REVOKED:
            raise ValueError("use revoke() to revoke a session: it must be durable")
        if not state.stored:
            raise ValueError(f"a session record cannot be in state {state!s}")
        return await self._write_state(id_hash, state, reason, time.time() if now is None else now)

    @abc.abstractmethod
    async def _write_state(self, id_hash: str, state: SessionState, reason: str, now: float) -> bool:
        """set_state() after its checks: the backend's own update."""

    @abc.abstractmethod
    async def revoke(self, id_hash: str, reason: str, now: float) -> SessionRecord:
        """Mark revoked, creating the record when unknown; durable (fsynced) when this returns."""

    @abc.abstractmethod
    async def is_revoked(self, id_hash: str) -> bool: ...

    @abc.abstractmethod
    async def list(self, limit: int = 100) -> list[SessionRecord]:
        """Up to `limit` records, the most recently seen first."""

    @abc.abstractmethod
    async def record_scored_request(self, id_hash: str, now: float, score: int, window_s: float) -> int:
        """Note one scored request on a session and return how many fell within the last `window_s` seconds.

        Also adds `score` to the record's cumulative_score and 1 to scored_requests (when the record
        exists). Entries older than the window are dropped.
        """

    @abc.abstractmethod
    async def lockout(self, client_network: str, until: float) -> None:
        """Lock a client network out until `until` (a later existing lockout is kept); durable."""

    @abc.abstractmethod
    async def is_locked_out(self, client_network: str, now: float) -> bool: ...

    @abc.abstractmethod
    async def purge_expired(self, now: float) -> int:
        """Apply the retention rules (see the module docstring); return how many records were deleted."""

    @abc.abstractmethod
    async def count(self) -> int:
        """How many records are stored (all states)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store; idempotent."""


def with_last_seen(record: SessionRecord, last_seen: float) -> SessionRecord:
    """The record seen later (dataclasses.replace, at half its cost: every request of a session asks)."""
    r = record
    return SessionRecord(
        r.id_hash,
        r.cookie_name,
        r.issued_at,
        last_seen,
        r.client_network,
        r.ua_fingerprint,
        r.state,
        r.state_reason,
        r.state_changed_at,
        r.cumulative_score,
        r.scored_requests,
        r.authenticated,
        r.linked,
    )


def effective_state(record: SessionRecord, now: float, ttl: float) -> SessionState:
    """The state a record has at `now`: an active record idle for longer than `ttl` counts as expired."""
    if record.state is SessionState.ACTIVE and now - record.last_seen > ttl:
        return SessionState.EXPIRED
    return record.state


def purged(record: SessionRecord, now: float, ttl: float, revoked_ttl: float) -> SessionRecord | None:
    """A record after the retention rules at `now`: unchanged, turned expired, or None (delete).

    An active record idle for more than `ttl` turns expired as of last_seen + ttl; ended and expired
    records go `ttl` after their last sighting or state change; revoked ones `revoked_ttl` (at least
    `ttl`) after the revocation. Backends that purge in their own query language follow this.
    """
    if record.state is SessionState.REVOKED:
        return None if now - record.state_changed_at > max(revoked_ttl, ttl) else record
    if record.state is SessionState.ACTIVE:
        if now - record.last_seen <= ttl:
            return record
        record = replace(
            record,
            state=SessionState.EXPIRED,
            state_reason=EXPIRED_REASON,
            state_changed_at=record.last_seen + ttl,
        )
    return None if now - max(record.last_seen, record.state_changed_at) > ttl else record
