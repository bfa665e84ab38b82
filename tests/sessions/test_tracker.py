"""Tests for sessions/tracker.py over a real SQLite store: learning from responses and each request's SESSION facts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from logoutguard.sessions.cookies import CookieScope, SessionCookieMatcher
from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.identifiers import IdentifierRules, IdKind, SessionId
from logoutguard.sessions.sqlite import SqliteStore
from logoutguard.sessions.store import SessionState, StoreError
from logoutguard.sessions.tracker import SessionFacts, SessionTracker, client_network, ua_fingerprint

KEY = b"k" * 32
STARTED = 1000.0
GRACE = 60.0
AFTER_GRACE = STARTED + GRACE + 1.0
TTL = 3600.0
CLIENT, OTHER_NET, SAME_NET = "203.0.113.7", "198.51.100.9", "203.0.113.200"
FIREFOX, CURL = "Mozilla/5.0 Firefox/128.0", "curl/8.5"


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[SessionTracker]:
    store = SqliteStore(tmp_path / "sessions.sqlite", key=KEY, ttl=TTL)
    yield SessionTracker(store, SessionHasher(KEY), SessionCookieMatcher(), GRACE, STARTED)
    store.close_sync()


def run[T](coro: object) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def sids(*values: str, name: str = "sid", kind: IdKind = IdKind.COOKIE) -> list[SessionId]:
    return [SessionId(kind, name, v, name) for v in values]


async def login(
    tracker: SessionTracker,
    session_id: str,
    now: float = AFTER_GRACE,
    carried: list[SessionId] | None = None,
    login: bool = True,
) -> None:
    """The application issues `session_id` (by default in answer to a login)."""
    await tracker.learn_from_response(
        [f"sid={session_id}; Path=/; HttpOnly"], carried or [], CLIENT, FIREFOX, now, login=login
    )


async def check(
    tracker: SessionTracker,
    *ids: str,
    addr: str = CLIENT,
    ua: str | None = FIREFOX,
    now: float = AFTER_GRACE + 5,
) -> SessionFacts:
    return await tracker.check_request(sids(*ids), addr, ua, now)


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("::ffff:203.0.113.7", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("[2001:db8::1]", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),
        ("not-an-ip", ""),
    ],
)
def test_client_network(addr: str, expected: str) -> None:
    assert client_network(addr) == expected


def test_ua_fingerprint() -> None:
    assert ua_fingerprint(None) == ua_fingerprint("") == ""
    assert len(ua_fingerprint(FIREFOX)) == 16 and ua_fingerprint(FIREFOX) == ua_fingerprint(FIREFOX)
    assert ua_fingerprint(FIREFOX) != ua_fingerprint(CURL)


def test_facts_pairs() -> None:
    facts = SessionFacts("revoked", True, ua_changed=True, count=2, cookie="sid", id_hash="ab" * 16)
    assert facts.pairs() == (
        ("state", "revoked"),
        ("in_grace", "1"),
        ("ua_changed", "1"),
        ("network_changed", "0"),
        ("adopted", "0"),
        ("count", "2"),
        ("cookie", "sid"),
        ("hash", "ab" * 16),
        ("authenticated", "0"),
    )
    # every two flags differ in one of them at least
    other = SessionFacts("active", ua_changed=True, network_changed=True, count=1, authenticated=True)
    third = SessionFacts("expired", network_changed=True, adopted=True, count=3, cookie="c", id_hash="h")
    for f in (facts, other, third):  # the JSON (flow records) is the pairs, in their order, and reads back
        assert list(f.to_json().items()) == list(f.pairs()) and SessionFacts.from_json(f.to_json()) == f


def test_no_session(tracker: SessionTracker) -> None:
    assert run(tracker.check_request([], CLIENT, FIREFOX, STARTED + 1)) == SessionFacts("none", in_grace=True)
    assert run(tracker.check_request([], CLIENT, FIREFOX, AFTER_GRACE)) == SessionFacts(
        "none", in_grace=False
    )


def test_issued_session_is_active_and_touched(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        await login(tracker, "S1")
        facts = await check(tracker, "S1")
        assert (facts.state, facts.in_grace, facts.ua_changed, facts.network_changed) == (
            "active",
            False,
            False,
            False,
        )
        assert (facts.cookie, facts.id_hash, facts.count) == ("sid", tracker.hasher.hash("S1"), 1)
        assert facts.authenticated  # issued in answer to a login
        record = await tracker.store.get(facts.id_hash)
        assert record is not None and record.last_seen == AFTER_GRACE + 5
        assert record.client_network == "203.0.113.0/24" and record.ua_fingerprint == ua_fingerprint(FIREFOX)

    run(scenario())


def test_unknown_after_grace_is_reported_not_recorded(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        facts = await check(tracker, "NEVER-ISSUED")
        assert (facts.state, facts.in_grace, facts.adopted) == ("unknown", False, False)
        assert await tracker.store.count() == 0

    run(scenario())


def test_unknown_during_grace_is_adopted(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        facts = await check(tracker, "FROM-BEFORE-RESTART", now=STARTED + 10)
        assert (facts.state, facts.in_grace, facts.adopted) == ("active", True, True)
        later = await check(tracker, "FROM-BEFORE-RESTART", now=AFTER_GRACE)
        assert (later.state, later.in_grace, later.adopted) == ("active", False, False)
        record = await tracker.store.get(facts.id_hash)
        assert record is not None and record.state_reason == "adopted during the learning grace period"

    run(scenario())


def test_revoked(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        await login(tracker, "S1")
        id_hash = await tracker.revoke("S1", "forced logout: sqli", now=AFTER_GRACE + 1)
        assert id_hash == tracker.hasher.hash("S1")
        assert (await check(tracker, "S1")).state == "revoked"
        # a defective logout: the application hands the same ID out again; it stays revoked
        await login(tracker, "S1", now=AFTER_GRACE + 2, carried=sids("S1"), login=False)
        assert (await check(tracker, "S1")).state == "revoked"
        # revoked is also what a replay during the grace period of the next start sees
        assert (await check(tracker, "S1", now=STARTED + 1)).state == "revoked"

    run(scenario())


def test_revoke_by_hash(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        await login(tracker, "S1")
        await login(tracker, "S2")
        h1, h2 = tracker.hasher.hash("S1"), tracker.hasher.hash("S2")
        assert await tracker.revoke(h1, "by hash") == h1
        assert await tracker.revoke("hash:" + h2, "by explicit hash") == h2
        assert (await check(tracker, "S1")).state == (await check(tracker, "S2")).state == "revoked"
        # an ID that looks like a hash but was issued as an ID is taken as the ID
        hexlike = "0123456789abcdef" * 2
        await login(tracker, hexlike)
        assert await tracker.revoke(hexlike, "by id") == tracker.hasher.hash(hexlike)

    run(scenario())


@pytest.mark.parametrize(
    "deletion",
    ["sid=; Max-Age=0", "sid=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "sid=; Path=/"],
)
def test_ended_by_application(tracker: SessionTracker, deletion: str) -> None:
    async def scenario() -> None:
        await login(tracker, "S1")
        events = await tracker.learn_from_response([deletion], sids("S1"), CLIENT, FIREFOX, AFTER_GRACE + 1)
        assert [e.kind for e in events] == ["ended"]
        facts = await check(tracker, "S1")
        assert facts.state == "ended"
        record = await tracker.store.get(facts.id_hash)
        assert record is not None and record.state_reason.startswith("deleted by the application")
        assert await tracker.store.count() == 1  # "deleted" is no session ID: nothing recorded for it

    run(scenario())


def test_replaced_cookie_ends_the_old_id(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        await login(tracker, "PRE-LOGIN")
        await login(tracker, "POST-LOGIN", now=AFTER_GRACE + 1, carried=sids("PRE-LOGIN"))
        old, new = await check(tracker, "PRE-LOGIN"), await check(tracker, "POST-LOGIN")
        assert (old.state, new.state) == ("ended", "active")
        record = await tracker.store.get(old.id_hash)
        assert record is not None and record.state_reason == "replaced by the application with a new sid"
        # the same ID sent again (refreshed expiry) ends nothing
        await login(tracker, "POST-LOGIN", now=AFTER_GRACE + 2, carried=sids("POST-LOGIN"))
        assert (await check(tracker, "POST-LOGIN")).state == "active"

    run(scenario())


def test_rotation_in_one_response(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        await login(tracker, "OLD")
        headers = ["sid=; Max-Age=0", "lang=en", "sid=NEW; HttpOnly"]
        await tracker.learn_from_response(headers, sids("OLD"), CLIENT, FIREFOX, AFTER_GRACE + 1)
        assert (await check(tracker, "OLD")).state == "ended"
        assert (await check(tracker, "NEW")).state == "active"

    run(scenario())


@pytest.mark.parametrize(
    ("addr", "ua", "ua_changed", "network_changed"),
    [
        (CLIENT, FIREFOX, False, False),
        (SAME_NET, FIREFOX, False, False),  # same /24
        (CLIENT, CURL, True, False),
        (OTHER_NET, FIREFOX, False, True),
        (OTHER_NET, CURL, True, True),
        (CLIENT, None, False, False),  # no User-Agent: nothing to compare
        ("2001:db8::1", FIREFOX, False, True),
    ],
)
def test_fingerprint_changes(
    tracker: SessionTracker, addr: str, ua: str | None, ua_changed: bool, network_changed: bool
) -> None:
    async def scenario() -> SessionFacts:
        await login(tracker, "S1")
        return await check(tracker, "S1", addr=addr, ua=ua)

    facts = run(scenario())
    assert (facts.state, facts.ua_changed, facts.network_changed) == ("active", ua_changed, network_changed)


def test_expired_is_reported_and_persisted(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        await login(tracker, "S1")
        facts = await check(tracker, "S1", now=AFTER_GRACE + TTL + 1)
        assert facts.state == "expired"
        record = await tracker.store.get(facts.id_hash)
        assert record is not None and record.state is SessionState.EXPIRED
        assert (await check(tracker, "S1", now=AFTER_GRACE + TTL + 2)).state == "expired"

    run(scenario())


def test_worst_of_several_ids(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        await login(tracker, "GOOD")
        await login(tracker, "BAD")
        await tracker.revoke("BAD", "attack")
        facts = await check(tracker, "GOOD", "BAD", ua=CURL)
        assert (facts.state, facts.id_hash, facts.count, facts.ua_changed) == (
            "revoked",
            tracker.hasher.hash("BAD"),
            2,
            True,
        )
        assert (await check(tracker, "GOOD", "NEVER")).state == "unknown"

    run(scenario())


def test_cumulative_window(tracker: SessionTracker) -> None:
    async def scenario() -> list[int]:
        await login(tracker, "S1")
        h = tracker.hasher.hash("S1")
        counts = [await tracker.note_score(h, 5, AFTER_GRACE + t, 600.0) for t in (0, 200, 400, 650, 1300)]
        record = await tracker.store.get(h)
        assert record is not None and record.cumulative_score == 25 and record.scored_requests == 5
        return counts

    assert run(scenario()) == [1, 2, 3, 3, 1]


def test_lockout_by_network(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        assert await tracker.lockout(CLIENT, AFTER_GRACE + 100) == "203.0.113.0/24"
        assert await tracker.is_locked_out(SAME_NET, AFTER_GRACE)
        assert not await tracker.is_locked_out(OTHER_NET, AFTER_GRACE)
        assert not await tracker.is_locked_out(CLIENT, AFTER_GRACE + 100)
        assert await tracker.lockout("unix-socket", AFTER_GRACE) == ""

    run(scenario())


def test_raw_ids_never_reach_the_disk(tracker: SessionTracker, tmp_path: Path) -> None:
    secret_ids = [f"SECRET-SESSION-ID-{i}-7f3a9c" for i in range(5)]

    async def scenario() -> None:
        for i, session_id in enumerate(secret_ids):
            await login(tracker, session_id, now=AFTER_GRACE + i)
            await check(tracker, session_id)
            await tracker.note_score(tracker.hasher.hash(session_id), 5, AFTER_GRACE + i, 600.0)
        await check(tracker, "SECRET-SESSION-ID-unknown-7f3a9c", now=STARTED + 1)  # adopted
        await tracker.revoke(secret_ids[0], "attack")

    run(scenario())
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("sessions.sqlite"))
    assert b"SECRET-SESSION-ID" not in data
    assert tracker.hasher.hash(secret_ids[0]).encode() in data  # the hashes are there (the search works)


# -- issue 10: authenticated only when the application showed it; links; reinstatement; identifiers --
def test_an_id_issued_outside_a_login_is_anonymous(tracker: SessionTracker) -> None:
    """A pre-login session (PHP issues PHPSESSID on the login page) is not authenticated; the ID the
    login then issues is, and so is the ID an authenticated session is rotated to, but not the new
    anonymous ID the logout issues."""

    async def scenario() -> None:
        await login(tracker, "PRE", login=False)
        assert not (await check(tracker, "PRE")).authenticated
        await login(tracker, "IN", now=AFTER_GRACE + 1, carried=sids("PRE"))
        assert (await check(tracker, "IN")).authenticated and (await check(tracker, "PRE")).state == "ended"
        await tracker.learn_from_response(
            ["sid=ROTATED"], sids("IN"), CLIENT, FIREFOX, AFTER_GRACE + 2, carried_authenticated=True
        )
        assert (await check(tracker, "ROTATED")).authenticated
        await tracker.learn_from_response(
            ["sid=AFTER"],
            sids("ROTATED"),
            CLIENT,
            FIREFOX,
            AFTER_GRACE + 3,
            carried_authenticated=True,
            logout=True,
        )
        assert not (await check(tracker, "AFTER")).authenticated
        assert not (await check(tracker, "ADOPTED", now=STARTED + 1)).authenticated  # adopted: unknown login

    run(scenario())


def test_a_value_issued_again_at_a_fresh_login_is_accepted(tracker: SessionTracker) -> None:
    """Flask issues a byte-identical cookie when the same content is signed within one second; a value
    the application issues again at a login is reinstated, unless the login request carried it."""

    async def scenario() -> None:
        await login(tracker, "SAME")
        await tracker.revoke("SAME", "forced logout")
        await login(tracker, "SAME", now=AFTER_GRACE + 1, carried=sids("SAME"))  # the stolen copy
        assert (await check(tracker, "SAME")).state == "revoked"
        await login(tracker, "SAME", now=AFTER_GRACE + 2)  # a fresh login (the jar no longer had it)
        facts = await check(tracker, "SAME")
        assert (facts.state, facts.authenticated) == ("active", True)

    run(scenario())


def test_a_logins_identifiers_are_linked_and_revoked_together(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "links.sqlite", key=KEY, ttl=TTL)
    tracker = SessionTracker(store, SessionHasher(KEY), IdentifierRules(), GRACE, STARTED)

    async def scenario() -> None:
        await tracker.learn_from_response(
            ["session=S; Path=/", "remember_token=R; Path=/; Max-Age=3600"],
            [],
            CLIENT,
            FIREFOX,
            AFTER_GRACE,
            login=True,
        )
        remembered = sids("R", name="remember_token", kind=IdKind.REMEMBER)
        facts = await tracker.check_request(remembered, CLIENT, FIREFOX, AFTER_GRACE + 1)
        assert (facts.state, facts.authenticated, facts.cookie) == ("active", True, "remember_token")
        # the remember-me cookie alone logs in again: the new session is linked to it too
        await tracker.learn_from_response(
            ["session=S2"],
            remembered,
            CLIENT,
            FIREFOX,
            AFTER_GRACE + 2,
            login=False,
            carried_authenticated=True,
        )
        revoked = await tracker.revoke_with_links(["S2"], "forced logout", AFTER_GRACE + 3)
        h = tracker.hasher.hash
        assert revoked[0] == h("S2") and h("R") in revoked
        assert await store.is_revoked(h("R")) and not await store.is_revoked(h("S"))
        revoked = await tracker.revoke_with_links(["S"], "forced logout", AFTER_GRACE + 4)
        assert revoked == [h("S"), h("R")]  # the links, whether already revoked or not

    try:
        run(scenario())
    finally:
        store.close_sync()


def test_bearer_tokens_path_parameters_and_basic_credentials(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        bearer = [SessionId(IdKind.BEARER, "authorization", "TOKEN")]
        facts = await tracker.check_request(bearer, CLIENT, FIREFOX, AFTER_GRACE)
        assert (facts.state, facts.authenticated) == ("active", True)  # never "unknown"
        assert await tracker.store.count() == 0  # and never stored unless revoked
        await tracker.revoke("TOKEN", "forced logout")
        assert (await tracker.check_request(bearer, CLIENT, FIREFOX, AFTER_GRACE)).state == "revoked"
        await login(tracker, "S1")
        path = [SessionId(IdKind.PATH, "jsessionid", "S1", "sid")]
        assert (await tracker.check_request(path, CLIENT, FIREFOX, AFTER_GRACE + 1)).state == "active"
        basic = [SessionId(IdKind.BASIC, "authorization", "Z3Vlc3Q6Z3Vlc3Q=")]
        lookup = await tracker.lookup(basic, CLIENT, FIREFOX, AFTER_GRACE)
        assert lookup.facts.authenticated and not lookup.credentials_locked
        await tracker.lock_credentials(basic[0], AFTER_GRACE + 60)
        assert (await tracker.lookup(basic, CLIENT, FIREFOX, AFTER_GRACE + 59)).credentials_locked
        assert not (await tracker.lookup(basic, CLIENT, FIREFOX, AFTER_GRACE + 61)).credentials_locked

    run(scenario())


class BrokenStore:
    """A store that fails every call (a Redis that went away)."""

    ttl = TTL

    def __getattr__(self, name: str) -> object:
        async def fail(*args: object, **kwargs: object) -> None:
            raise StoreError("session store broken: gone")

        return fail


def test_without_the_store_this_worker_still_refuses_what_it_revoked(tracker: SessionTracker) -> None:
    """The store's open fail mode: a bounded local cache of what this worker saw and revoked."""

    async def scenario() -> None:
        await login(tracker, "GOOD")
        await login(tracker, "BAD")
        await check(tracker, "GOOD")
        await tracker.revoke("BAD", "forced logout")
        tracker.store = BrokenStore()  # type: ignore[assignment]
        lookup = tracker.lookup_without_store(sids("BAD"), AFTER_GRACE + 9)
        assert lookup.facts.state == "revoked" and lookup.refused == tuple(sids("BAD"))
        good = tracker.lookup_without_store(sids("GOOD"), AFTER_GRACE + 9).facts
        assert (good.state, good.authenticated) == ("active", True)
        never = tracker.lookup_without_store(sids("NEVER-SEEN"), AFTER_GRACE + 9).facts
        assert (never.state, never.authenticated) == (
            "active",
            False,
        )  # judged by the rules, never logged out
        with pytest.raises(StoreError):  # a revocation during the outage: refused here all the same
            await tracker.revoke("GOOD", "forced logout")
        assert tracker.lookup_without_store(sids("GOOD"), AFTER_GRACE + 9).facts.state == "revoked"

    run(scenario())


def test_cookie_scope_is_learned_for_deleting_the_cookie(tracker: SessionTracker) -> None:
    async def scenario() -> None:
        assert tracker.cookie_scope("sid") == CookieScope("/", "", False)
        assert tracker.cookie_scope("__Host-sid").secure
        await tracker.learn_from_response(
            ["sid=S1; Path=/app; Domain=.example.test; Secure; HttpOnly"], [], CLIENT, FIREFOX, AFTER_GRACE
        )
        assert tracker.cookie_scope("sid") == CookieScope("/app", "example.test", True)

    run(scenario())


def test_a_request_is_one_store_read_and_its_sighting_is_written_behind(tracker: SessionTracker) -> None:
    """Two session IDs, Basic credentials and the client's lockout: one look_up; the known session's
    sighting is noted, not written."""

    async def scenario() -> None:
        await login(tracker, "S1")
        await tracker.lockout(CLIENT, AFTER_GRACE + 100)
        store = tracker.store
        assert isinstance(store, SqliteStore)
        reads: list[tuple[object, ...]] = []
        original = store.look_up

        async def counted(*args: object) -> object:
            reads.append(args)
            return await original(*args)  # type: ignore[arg-type]

        store.look_up = counted  # type: ignore[method-assign]
        basic = SessionId(IdKind.BASIC, "Authorization", "dXNlcjpwYXNz", "Authorization")
        lookup = await tracker.lookup(
            [*sids("S1", "S2"), basic], CLIENT, FIREFOX, AFTER_GRACE + 5, lockout=True
        )
        assert len(reads) == 1
        assert [state for _, state in lookup.states] == [
            SessionState.ACTIVE,
            SessionState.UNKNOWN,
            SessionState.ACTIVE,
        ]
        assert lookup.client_locked and not lookup.credentials_locked
        assert len(store.sightings) == 1  # S1's, not yet written
        record = await store.get(tracker.hasher.hash("S1"))
        assert record is not None and record.last_seen == AFTER_GRACE + 5
        other = await tracker.lookup([], OTHER_NET, FIREFOX, AFTER_GRACE + 5, lockout=True)
        assert not other.client_locked and len(reads) == 2

    run(scenario())
