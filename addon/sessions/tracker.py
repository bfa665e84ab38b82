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
    authenticated    "1" when the application showed the session authenticated (an ID issued or
                     rotated by the response to a login); bearer and Basic credentials count as
                     authenticated; an ID adopted during the grace period does not

With several session IDs in one request the facts describe the worst one (revoked > ended >
expired > unknown > active); the *_changed flags are set when any of them changed.

During the grace period (sessions issued before the proxy started are not known yet) an unknown ID
is adopted: recorded as active with the request's fingerprints, and reported active, not unknown.

Identifiers are more than session cookies (see identifiers.py): remember-me cookies and `;jsessionid=`
path parameters are tracked like session cookies; a bearer token is active unless revoked (the
application does not issue it with Set-Cookie, so it is never "unknown"); Basic credentials are
never stored, only refused for a while after an attack (`lock_credentials`).

The tracker keeps a bounded local cache of what the store told it (and what it revoked itself), so
that with the store unreachable and fail mode open it still refuses every ID this worker knows was
revoked or ended (`lookup_without_store`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from .cookies import CookieEvent, CookieScope, SessionCookieMatcher, session_cookie_events
from .hashing import SessionHasher, looks_like_hash
from .identifiers import IdentifierRules, IdKind, SessionId
from .state import SessionState
from .store import EXPIRED_REASON, SessionRecord, SessionStore, StoreView, effective_state

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
CREDENTIAL_PREFIX = "credentials:"  # lockout keys of Basic credentials (beside client networks)
LOCAL_CACHE = 50_000  # hashes whose state this worker remembers for the store's open fail mode
COOKIE_SCOPES = 64  # cookie names whose Path/Domain are remembered (to delete them in browsers)
REFUSED_STATES = frozenset({SessionState.REVOKED, SessionState.ENDED})
REISSUED_REASON = "issued again by the application at a fresh login"


@lru_cache(maxsize=4096)  # pure, and asked for every request: a client's next requests pay a dict read
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


@lru_cache(maxsize=1024)  # pure; clients send the same User-Agent on every request
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
    authenticated: bool = False

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
            ("authenticated", flag(self.authenticated)),
        )

    def to_json(self) -> dict[str, object]:
        """dict(self.pairs()), written out (every flow's record has one)."""
        return {
            "state": str(self.state),
            "in_grace": flag(self.in_grace),
            "ua_changed": flag(self.ua_changed),
            "network_changed": flag(self.network_changed),
            "adopted": flag(self.adopted),
            "count": str(self.count),
            "cookie": self.cookie,
            "hash": self.id_hash,
            "authenticated": flag(self.authenticated),
        }

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
            authenticated=text("authenticated") == "1",
        )


def worst(facts: Sequence[SessionFacts]) -> SessionFacts:
    """The facts of the most serious session, with the change flags of all of them; authenticated
    when an active one is (a request with an authenticated session and an anonymous one is authenticated)."""
    if len(facts) == 1:  # the usual request: one identifier whose facts are already what the lines below make
        f = facts[0]
        if f.count == 1 and (f.state is SessionState.ACTIVE or not f.authenticated):
            return f
    chosen = max(facts, key=lambda f: _SEVERITY[f.state])  # first of equals
    return replace(
        chosen,
        ua_changed=any(f.ua_changed for f in facts),
        network_changed=any(f.network_changed for f in facts),
        adopted=any(f.adopted for f in facts),
        count=len(facts),
        authenticated=chosen.state is SessionState.ACTIVE
        and any(f.authenticated for f in facts if f.state is SessionState.ACTIVE),
    )


@dataclass(frozen=True)
class SessionLookup:
    """What the tracker found for a request: the facts for the rules and the judge, and each identifier's state."""

    facts: SessionFacts = field(default_factory=SessionFacts)
    states: tuple[tuple[SessionId, SessionState], ...] = ()
    credentials_locked: bool = False  # Basic credentials refused after an attack (ASR-K)
    client_locked: bool = False  # the client's network is locked out (asked with lookup(lockout=True))

    @property
    def refused(self) -> tuple[SessionId, ...]:
        """The identifiers the proxy refuses: revoked or ended (never unknown ones: see `unknown`)."""
        return tuple(sid for sid, state in self.states if state in REFUSED_STATES)

    def in_states(self, states: Iterable[SessionState]) -> tuple[SessionId, ...]:
        wanted = frozenset(states)
        return tuple(sid for sid, state in self.states if state in wanted)


class SessionTracker:
    def __init__(
        self,
        store: SessionStore,
        hasher: SessionHasher,
        rules: IdentifierRules | SessionCookieMatcher,
        grace_period_s: float,
        started_at: float,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.rules = rules if isinstance(rules, IdentifierRules) else IdentifierRules(sessions=rules)
        self.grace_period_s = grace_period_s
        self.started_at = started_at
        self._adoptions: dict[str, int] = {}  # client network -> IDs adopted during the grace period
        self._known: OrderedDict[str, tuple[SessionState, bool]] = (
            OrderedDict()
        )  # hash -> (state, authenticated)
        self._scopes: OrderedDict[str, CookieScope] = OrderedDict()  # cookie name -> where browsers keep it

    def in_grace(self, now: float) -> bool:
        return now < self.started_at + self.grace_period_s

    # -- the local cache (fail mode open) ---------------------------------------------------------
    def _remember(self, id_hash: str, state: SessionState, authenticated: bool) -> None:
        self._known[id_hash] = (state, authenticated)
        self._known.move_to_end(id_hash)
        while len(self._known) > LOCAL_CACHE:
            self._known.popitem(last=False)

    def _remember_record(self, record: SessionRecord | None) -> None:
        if record is not None:
            self._remember(record.id_hash, record.state, record.authenticated)

    def cookie_scope(self, name: str) -> CookieScope:
        """Where browsers keep the cookie `name`, as the application last set it (default: Path=/, host-only)."""
        return self._scopes.get(name) or CookieScope(secure=name.lower().startswith(("__secure-", "__host-")))

    # -- responses --------------------------------------------------------------------------------
    async def learn_from_response(
        self,
        set_cookie_values: Iterable[str],
        request_ids: Sequence[SessionId],
        client_addr: str,
        user_agent: str | None,
        now: float,
        *,
        login: bool = False,
        logout: bool = False,
        carried_authenticated: bool = False,
    ) -> list[CookieEvent]:
        """Record what a response did to the identifier cookies; returns the events seen.

        issued -> recorded active with the requesting client's fingerprints (the ID the request
        carried under that cookie, if different, is ended: replaced by the application). It is
        authenticated when the response answered a login (`login`), or rotated an authenticated
        session (`carried_authenticated`) in anything but a logout. A login's identifiers are linked
        (a session and its remember-me cookie, and a remember-me cookie that logged a user back in),
        and a value the application issues again at a login is reinstated even if it was revoked,
        unless the login request itself carried it.
        ended -> the request's ID under that name (and the value sent, when known) is ended.
        """
        events = session_cookie_events(set_cookie_values, now, self.rules)
        network, ua = client_network(client_addr), ua_fingerprint(user_agent)
        carried_values = {sid.value for sid in request_ids}
        issued_here: set[str] = set()
        linked: list[str] = []
        for event in events:
            self._scopes[event.name] = event.scope
            self._scopes.move_to_end(event.name)
            while len(self._scopes) > COOKIE_SCOPES:
                self._scopes.popitem(last=False)
            carried = [sid.value for sid in request_ids if sid.cookie == event.name]
            if event.kind == "issued" and event.value is not None:
                issued_here.add(event.value)
                authenticated = login or (carried_authenticated and not logout)
                reinstate = login and event.value not in carried_values
                id_hash = self.hasher.hash(event.value)
                record = await self.store.issue(
                    id_hash,
                    cookie_name=event.name,
                    now=now,
                    client_network=network,
                    ua_fingerprint=ua,
                    reason=REISSUED_REASON if reinstate else "issued",
                    authenticated=authenticated,
                    reinstate=reinstate,
                )
                self._remember_record(record)
                if authenticated:
                    linked.append(id_hash)
                reason = f"replaced by the application with a new {event.name}"
                ended = [value for value in carried if value != event.value]
            else:
                reason = f"deleted by the application ({event.reason})"
                ended = carried + ([event.value] if event.value else [])
            for value in dict.fromkeys(ended):
                if value not in issued_here:
                    id_hash = self.hasher.hash(value)
                    if await self.store.set_state(id_hash, SessionState.ENDED, reason, now):
                        self._remember(id_hash, SessionState.ENDED, False)
        if linked:
            remembered = [self.hasher.hash(sid.value) for sid in request_ids if sid.kind is IdKind.REMEMBER]
            group = list(dict.fromkeys(linked + remembered))
            for id_hash in group if len(group) > 1 else ():  # a lone session has nothing to link
                await self.store.link(id_hash, group)
        return events

    # -- requests ---------------------------------------------------------------------------------
    async def _facts(
        self, sid: SessionId, id_hash: str, record: SessionRecord | None, network: str, ua: str, now: float
    ) -> SessionFacts:
        """The facts of one identifier from its record as read (count 1: see worst); the sighting is
        noted (written behind), what changes a state (adoption, expiry) is written before this returns."""
        in_grace = self.in_grace(now)
        if sid.kind is IdKind.BEARER and (record is None or record.state is not SessionState.REVOKED):
            # a presented credential: active unless revoked (never issued with Set-Cookie, never stored)
            return SessionFacts(
                SessionState.ACTIVE,
                in_grace,
                count=1,
                cookie="Authorization",
                id_hash=id_hash,
                authenticated=True,
            )
        if record is None:
            if not in_grace or self._adoptions.get(network, 0) >= ADOPTIONS_PER_NETWORK:
                return SessionFacts(
                    SessionState.UNKNOWN, in_grace, count=1, cookie=sid.cookie, id_hash=id_hash
                )
            self._adoptions[network] = self._adoptions.get(network, 0) + 1
            await self.store.issue(
                id_hash,
                cookie_name=sid.cookie,
                now=now,
                client_network=network,
                ua_fingerprint=ua,
                reason=ADOPTED_REASON,
            )
            self._remember(id_hash, SessionState.ACTIVE, False)
            return SessionFacts(
                SessionState.ACTIVE, in_grace, adopted=True, count=1, cookie=sid.cookie, id_hash=id_hash
            )
        state = effective_state(record, now, self.store.ttl)
        if self._known.get(id_hash, (state,))[0] is SessionState.REVOKED:
            state = SessionState.REVOKED  # this worker revoked it, though the store could not record it
        elif state is not record.state:  # active but idle too long: persist the expiry
            await self.store.set_state(id_hash, state, EXPIRED_REASON, record.last_seen + self.store.ttl)
        self.store.seen(id_hash, now)
        self._remember(id_hash, state, record.authenticated)
        return SessionFacts(
            state,
            in_grace,
            ua_changed=bool(record.ua_fingerprint and ua and record.ua_fingerprint != ua),
            network_changed=bool(record.client_network and network and record.client_network != network),
            count=1,
            cookie=sid.cookie or "Authorization",
            id_hash=id_hash,
            authenticated=record.authenticated or sid.kind is IdKind.BEARER,
        )

    def _credential_facts(self, sid: SessionId, now: float) -> SessionFacts:
        return SessionFacts(
            SessionState.ACTIVE,
            self.in_grace(now),
            cookie="Authorization",
            id_hash=self.hasher.hash(sid.value),
            authenticated=True,
        )

    async def lookup(
        self,
        ids: Sequence[SessionId],
        client_addr: str,
        user_agent: str | None,
        now: float,
        *,
        lockout: bool = False,
    ) -> SessionLookup:
        """The facts of a request carrying these identifiers (noting a sighting of known sessions), each
        one's state, whether its Basic credentials are locked out and (`lockout`) whether its client's
        network is. One read of the store (store.look_up); raises StoreError when the store fails."""
        network = client_network(client_addr)
        check_client = lockout and bool(network)
        if not ids and not check_client:
            return SessionLookup(SessionFacts(in_grace=self.in_grace(now)))
        hash_of = self.hasher.hash
        hashes = [hash_of(sid.value) for sid in ids]
        stored: list[str] = []  # the hashes of what the store keeps records of, in order
        credentials: list[str] = []  # the lockout keys of Basic credentials
        for sid, id_hash in zip(ids, hashes, strict=True):
            if sid.kind is IdKind.BASIC:
                credentials.append(CREDENTIAL_PREFIX + id_hash)
            else:
                stored.append(id_hash)
        view: StoreView = await self.store.look_up(
            stored, [*credentials, network] if check_client else credentials, now
        )
        client_locked = check_client and network in view.locked
        if not ids:
            return SessionLookup(SessionFacts(in_grace=self.in_grace(now)), client_locked=client_locked)
        ua = ua_fingerprint(user_agent)
        states: list[tuple[SessionId, SessionState]] = []
        facts: list[SessionFacts] = []
        for sid, id_hash in zip(ids, hashes, strict=True):
            if sid.kind is IdKind.BASIC:
                fact = self._credential_facts(sid, now)
            else:
                fact = await self._facts(sid, id_hash, view.records.get(id_hash), network, ua, now)
            facts.append(fact)
            states.append((sid, fact.state))
        locked = bool(credentials) and any(key in view.locked for key in credentials)
        return SessionLookup(worst(facts), tuple(states), locked, client_locked)

    def lookup_without_store(self, ids: Sequence[SessionId], now: float) -> SessionLookup:
        """The store is unreachable (fail mode open): what this worker's cache knows. A cached state
        counts (a revoked or ended ID stays refused); an ID it never saw is taken as an active,
        anonymous session (rules judge it; an attack is denied, not logged out)."""
        if not ids:
            return SessionLookup(SessionFacts(in_grace=self.in_grace(now)))
        states: list[tuple[SessionId, SessionState]] = []
        facts: list[SessionFacts] = []
        for sid in ids:
            id_hash = self.hasher.hash(sid.value)
            if sid.kind is IdKind.BASIC:
                fact = self._credential_facts(sid, now)
            else:
                state, authenticated = self._known.get(id_hash, (SessionState.ACTIVE, False))
                fact = SessionFacts(
                    state,
                    self.in_grace(now),
                    cookie=sid.cookie or "Authorization",
                    id_hash=id_hash,
                    authenticated=authenticated or sid.kind is IdKind.BEARER,
                )
            facts.append(fact)
            states.append((sid, fact.state))
        return SessionLookup(worst(facts), tuple(states))

    async def check_request(
        self, session_ids: Sequence[SessionId], client_addr: str, user_agent: str | None, now: float
    ) -> SessionFacts:
        """The SESSION facts of a request carrying these identifiers; touches known sessions."""
        return (await self.lookup(session_ids, client_addr, user_agent, now)).facts

    # -- revocation -------------------------------------------------------------------------------
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
        self._remember(id_hash, SessionState.REVOKED, False)  # before the store: refused even if it fails
        record = await self.store.revoke(id_hash, reason, time.time() if now is None else now)
        self._remember(id_hash, SessionState.REVOKED, record.authenticated)
        return id_hash

    async def revoke_with_links(self, values: Sequence[str], reason: str, now: float) -> list[str]:
        """Revoke each ID and the identifiers linked to it (issued with it at its login); the hashes,
        the given IDs' first. Every hash is in the local cache first, so this worker refuses them
        even when the store fails (StoreError is raised after the cache is updated)."""
        hashes = [self.hasher.hash(value) for value in dict.fromkeys(values)]
        for id_hash in hashes:
            self._remember(id_hash, SessionState.REVOKED, False)
        done: list[str] = []
        for id_hash in hashes:
            record = await self.store.revoke(id_hash, reason, now)
            done.append(id_hash)
            for other in record.linked:
                if other not in done and other not in hashes:
                    self._remember(other, SessionState.REVOKED, False)
                    await self.store.revoke(other, f"{reason} (linked to {id_hash})", now)
                    done.append(other)
        return done

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

    async def lock_credentials(self, sid: SessionId, until: float) -> str:
        """Refuse these Basic credentials until `until` (AppSensor ASR-K); returns their keyed hash."""
        id_hash = self.hasher.hash(sid.value)
        await self.store.lockout(CREDENTIAL_PREFIX + id_hash, until)
        return id_hash
