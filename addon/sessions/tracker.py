"""Session tracking: learn sessions from responses and give each request its SESSION facts for the rules.

The pipeline calls `learn_from_response` for every response and `check_request` before the rule
engine; `SessionFacts.pairs()` is what rules inspect as the SESSION collection:

    state            none (no session cookie) | unknown (never issued by the application)
                     | active | ended | expired | revoked
    in_grace         "1" during the learning grace period after start-up, else "0"
    ua_changed       "1" when the User-Agent differs from the one the session was issued to
    network_changed  "1" when the client network (/24, /64) differs from the issuing one
    adopted          "1" when this request's unknown ID was just adopted (grace period)
    count            how many session IDs the request carried
    cookie, hash     the session cookie's name and the keyed hash of its ID

With several session IDs in one request the facts describe the worst one (revoked > ended >
expired > unknown > active); the *_changed flags are set when any of them changed.

During the grace period (sessions issued before the proxy started are not known yet) an unknown ID
is adopted: recorded as active with the request's fingerprints, and reported active, not unknown.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from .cookies import CookieEvent, SessionCookieMatcher, session_cookie_events
from .hashing import SessionHasher, looks_like_hash
from .state import SessionState
from .store import EXPIRED_REASON, SessionStore, effective_state

# The order in which the states of several IDs in one request count: the worst one describes it.
_SEVERITY = {
    SessionState.NONE: 0,
    SessionState.ACTIVE: 1,
    SessionState.UNKNOWN: 2,
    SessionState.EXPIRED: 3,
    SessionState.ENDED: 4,
    SessionState.REVOKED: 5,
}
ADOPTED_REASON = "adopted during the learning grace period"
# At most this many unknown IDs are adopted per client network during the grace period: a flood of
# invented IDs must not fill the store and evict the sessions the application really issued.
ADOPTIONS_PER_NETWORK = 100
HASH_PREFIX = "hash:"


def client_network(addr: str) -> str:
    """The client's network: /24 for IPv4 (IPv4-mapped IPv6 included), /64 for IPv6; "" when not an IP."""
    text = addr.strip().removeprefix("[").split("]")[0]
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def ua_fingerprint(user_agent: str | None) -> str:
    """A short hash of the User-Agent (16 hex characters); "" when there is none."""
    if not user_agent:
        return ""
    return hashlib.sha256(user_agent.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def flag(value: bool) -> str:
    return "1" if value else "0"


@dataclass(frozen=True, slots=True)
class SessionFacts:
    state: SessionState = SessionState.NONE
    in_grace: bool = False
    ua_changed: bool = False
    network_changed: bool = False
    adopted: bool = False
    count: int = 0
    cookie: str = ""
    id_hash: str = ""

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The SESSION collection as (name, value) pairs."""
        return (
            ("state", str(self.state)),
            ("in_grace", flag(self.in_grace)),
            ("ua_changed", flag(self.ua_changed)),
            ("network_changed", flag(self.network_changed)),
            ("adopted", flag(self.adopted)),
            ("count", str(self.count)),
            ("cookie", self.cookie),
            ("hash", self.id_hash),
        )

    def to_json(self) -> dict[str, object]:
        return dict(self.pairs())

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SessionFacts:
        """The facts back from `to_json` (as kept in flow metadata); missing or odd values: defaults."""

        def text(key: str) -> str:
            return str(data.get(key, ""))

        try:
            state = SessionState(text("state") or SessionState.NONE)
        except ValueError:
            state = SessionState.NONE
        return cls(
            state,
            in_grace=text("in_grace") == "1",
            ua_changed=text("ua_changed") == "1",
            network_changed=text("network_changed") == "1",
            adopted=text("adopted") == "1",
            count=int(text("count")) if text("count").isdigit() else 0,
            cookie=text("cookie"),
            id_hash=text("hash"),
        )


def worst(facts: Sequence[SessionFacts]) -> SessionFacts:
    """The facts of the most serious session, with the change flags of all of them."""
    chosen = max(facts, key=lambda f: _SEVERITY[f.state])  # first of equals
    return replace(
        chosen,
        ua_changed=any(f.ua_changed for f in facts),
        network_changed=any(f.network_changed for f in facts),
        adopted=any(f.adopted for f in facts),
        count=len(facts),
    )


class SessionTracker:
    def __init__(
        self,
        store: SessionStore,
        hasher: SessionHasher,
        matcher: SessionCookieMatcher,
        grace_period_s: float,
        started_at: float,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.matcher = matcher
        self.grace_period_s = grace_period_s
        self.started_at = started_at
        self._adoptions: dict[str, int] = {}  # client network -> IDs adopted during the grace period

    def in_grace(self, now: float) -> bool:
        return now < self.started_at + self.grace_period_s

    async def learn_from_response(
        self,
        set_cookie_values: Iterable[str],
        request_session_ids: Sequence[tuple[str, str]],
        client_addr: str,
        user_agent: str | None,
        now: float,
    ) -> list[CookieEvent]:
        """Record what a response did to the session cookies; returns the session cookie events seen.

        issued -> the ID is recorded active with the requesting client's fingerprints (and the ID the
        request carried under that name, if different, is ended: replaced by the application);
        ended -> the request's ID under that name (and the value sent, when known) is ended.
        """
        events = session_cookie_events(set_cookie_values, now, self.matcher)
        network, ua = client_network(client_addr), ua_fingerprint(user_agent)
        issued_here: set[str] = set()
        for event in events:
            carried = [value for name, value in request_session_ids if name == event.name]
            if event.kind == "issued" and event.value is not None:
                issued_here.add(event.value)
                await self.store.issue(
                    self.hasher.hash(event.value),
                    cookie_name=event.name,
                    now=now,
                    client_network=network,
                    ua_fingerprint=ua,
                )
                reason = f"replaced by the application with a new {event.name}"
                ended = [value for value in carried if value != event.value]
            else:
                reason = f"deleted by the application ({event.reason})"
                ended = carried + ([event.value] if event.value else [])
            for value in dict.fromkeys(ended):
                if value not in issued_here:
                    await self.store.set_state(self.hasher.hash(value), SessionState.ENDED, reason, now)
        return events

    async def _facts(self, name: str, value: str, network: str, ua: str, now: float) -> SessionFacts:
        id_hash = self.hasher.hash(value)
        in_grace = self.in_grace(now)
        record = await self.store.get(id_hash)
        if record is None:
            if not in_grace or self._adoptions.get(network, 0) >= ADOPTIONS_PER_NETWORK:
                return SessionFacts(SessionState.UNKNOWN, in_grace, cookie=name, id_hash=id_hash)
            self._adoptions[network] = self._adoptions.get(network, 0) + 1
            await self.store.issue(
                id_hash,
                cookie_name=name,
                now=now,
                client_network=network,
                ua_fingerprint=ua,
                reason=ADOPTED_REASON,
            )
            return SessionFacts(SessionState.ACTIVE, in_grace, adopted=True, cookie=name, id_hash=id_hash)
        state = effective_state(record, now, self.store.ttl)
        if state is not record.state:  # active but idle too long: persist the expiry
            await self.store.set_state(id_hash, state, EXPIRED_REASON, record.last_seen + self.store.ttl)
        await self.store.touch(id_hash, now)
        return SessionFacts(
            state,
            in_grace,
            ua_changed=bool(record.ua_fingerprint and ua and record.ua_fingerprint != ua),
            network_changed=bool(record.client_network and network and record.client_network != network),
            cookie=name,
            id_hash=id_hash,
        )

    async def check_request(
        self, session_ids: Sequence[tuple[str, str]], client_addr: str, user_agent: str | None, now: float
    ) -> SessionFacts:
        """The SESSION facts of a request carrying these (cookie name, ID) pairs; touches known sessions."""
        if not session_ids:
            return SessionFacts(in_grace=self.in_grace(now))
        network, ua = client_network(client_addr), ua_fingerprint(user_agent)
        facts = [await self._facts(name, value, network, ua, now) for name, value in session_ids]
        return worst(facts)

    async def resolve_hash(self, session_id_or_hash: str) -> str:
        """The hash of an ID, or the argument itself when it is a known hash (or written "hash:<hex>").

        An ID is tried first: a 32-hex-character session ID whose hash is known stays an ID.
        """
        if session_id_or_hash.startswith(HASH_PREFIX):
            return session_id_or_hash.removeprefix(HASH_PREFIX)
        hashed = self.hasher.hash(session_id_or_hash)
        if (
            looks_like_hash(session_id_or_hash)
            and await self.store.get(hashed) is None
            and await self.store.get(session_id_or_hash) is not None
        ):
            return session_id_or_hash
        return hashed

    async def revoke(self, session_id_or_hash: str, reason: str, now: float | None = None) -> str:
        """Revoke a session (durably) given its ID or its hash; returns the hash."""
        id_hash = await self.resolve_hash(session_id_or_hash)
        await self.store.revoke(id_hash, reason, time.time() if now is None else now)
        return id_hash

    async def note_score(self, id_hash: str, score: int, now: float, window_s: float) -> int:
        """Record a scored request on a session; returns how many it had within the last `window_s` seconds."""
        return await self.store.record_scored_request(id_hash, now, score, window_s)

    async def lockout(self, client_addr: str, until: float) -> str:
        """Lock the client's network out until `until`; returns the network ("" when not an IP: nothing done)."""
        network = client_network(client_addr)
        if network:
            await self.store.lockout(network, until)
        return network

    async def is_locked_out(self, client_addr: str, now: float) -> bool:
        network = client_network(client_addr)
        return bool(network) and await self.store.is_locked_out(network, now)
