"""The judge (pure): verdict + session check + policy -> Judgement, table-driven over situations and policies."""

from __future__ import annotations

from dataclasses import replace

import pytest

from logoutguard.engine.verdict import Match, Verdict
from logoutguard.judge import (
    SESSION_STATE_TAG,
    Judgement,
    RequestSignals,
    SessionCheck,
    Situation,
    counts_toward_window,
    judge,
)
from logoutguard.policy import Action, parse_policy
from logoutguard.sessions.identifiers import IdKind, SessionId
from logoutguard.sessions.state import SessionState
from logoutguard.sessions.tracker import SessionFacts

S = SessionState
DEFAULTS = parse_policy({})  # logout / deny / deny / strip / deny, cumulative off, lockout off
STRICT = parse_policy(
    {
        "actions": {
            "authenticated_over_threshold": "redirect",
            "anonymous_over_threshold": "drop",
            "revoked_session": "redirect",
            "unknown_session": "deny",
            "locked_out": "redirect",
        },
        "cumulative": {"scored_requests": 3, "window": 60, "action": "deny"},
        "lockout": {"enabled": True},
    }
)
LENIENT = parse_policy({"actions": {"revoked_session": "strip", "unknown_session": "log"}})
REDIRECTING = parse_policy({"actions": {"revoked_session": "redirect", "cross_site": "logout"}})
CROSS = RequestSignals(cross_site=True)
AT_LOGIN = RequestSignals(asks_redirect_target=True)
OVER_LIMIT = RequestSignals(body_over_limit=True)
SID = SessionId(IdKind.COOKIE, "sid", "v", "sid")


def match(rule_id: int, score: int, *tags: str, phase: int = 2, disruptive: str = "pass") -> Match:
    return Match(rule_id, "m", phase, "sqli", "critical", score, 1, "ARGS:q", "x", True, disruptive, tags)


def verdict(*matches: Match, threshold: int = 5) -> Verdict:
    """A verdict scored as the engine scores it: request-phase totals against the threshold."""
    inbound = sum(m.score for m in matches if m.phase <= 2)
    blocked = inbound >= threshold or any(m.disruptive == "deny" and m.phase <= 2 for m in matches)
    reason = f"inbound score {inbound} >= threshold {threshold}" if inbound >= threshold else ""
    return Verdict(
        inbound_score=inbound,
        matches=list(matches),
        inbound_threshold=threshold,
        inbound_blocked=blocked,
        reason=reason,
    )


CLEAN = verdict()
ATTACK = verdict(match(942100, 5))
SCORED = verdict(match(942100, 3))
REVOKED_RULE = verdict(match(945110, 5, SESSION_STATE_TAG))  # the session rule alone crosses
REVOKED_AND_ATTACK = verdict(match(945110, 5, SESSION_STATE_TAG), match(942100, 5))


def check(state: SessionState = S.NONE, authenticated: bool = True, **kw: object) -> SessionCheck:
    """A session check; an active session is authenticated unless said otherwise."""
    some = state is not S.NONE
    facts = SessionFacts(
        state, cookie="sid" if some else "", id_hash="h" if some else "", authenticated=authenticated and some
    )
    states = ((SID, state),) if some else ()
    return SessionCheck(facts, carries_session=some, states=states, **kw)  # type: ignore[arg-type]


ANONYMOUS_SESSION = check(S.ACTIVE, authenticated=False)

CASES = [
    # (name, verdict, check, policy, fail_closed, situation, action, strip[, signals])
    ("clean anonymous", CLEAN, check(), DEFAULTS, True, Situation.CLEAN, Action.NONE, False),
    ("clean session", CLEAN, check(S.ACTIVE), DEFAULTS, True, Situation.CLEAN, Action.NONE, False),
    (
        "attack anonymous",
        ATTACK,
        check(),
        DEFAULTS,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DENY,
        False,
    ),
    (
        "attack on a session",
        ATTACK,
        check(S.ACTIVE),
        DEFAULTS,
        True,
        Situation.AUTHENTICATED_OVER_THRESHOLD,
        Action.LOGOUT,
        False,
    ),
    (
        "attack on a session, strict",
        ATTACK,
        check(S.ACTIVE),
        STRICT,
        True,
        Situation.AUTHENTICATED_OVER_THRESHOLD,
        Action.REDIRECT,
        False,
    ),
    (
        "attack anonymous, strict",
        ATTACK,
        check(),
        STRICT,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DROP,
        False,
    ),
    (
        "revoked",
        REVOKED_RULE,
        check(S.REVOKED),
        DEFAULTS,
        True,
        Situation.REVOKED_SESSION,
        Action.DENY,
        False,
    ),
    (
        "ended by the app",
        CLEAN,
        check(S.ENDED),
        STRICT,
        True,
        Situation.REVOKED_SESSION,
        Action.REDIRECT,
        False,
    ),
    (
        "unknown: stripped, passes",
        verdict(match(945100, 5, SESSION_STATE_TAG)),
        check(S.UNKNOWN),
        DEFAULTS,
        True,
        Situation.UNKNOWN_SESSION,
        Action.NONE,
        True,
    ),
    (
        "expired counts as unknown",
        CLEAN,
        check(S.EXPIRED),
        STRICT,
        True,
        Situation.UNKNOWN_SESSION,
        Action.DENY,
        False,
    ),
    (
        "unknown + attack: stripped, then as anonymous",
        verdict(match(945100, 5, SESSION_STATE_TAG), match(942100, 5)),
        check(S.UNKNOWN),
        DEFAULTS,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DENY,
        True,
    ),
    (
        "revoked stripped: its own rule does not count",
        REVOKED_RULE,
        check(S.REVOKED),
        LENIENT,
        True,
        Situation.UNKNOWN_SESSION,
        Action.NONE,
        True,
    ),
    (
        "revoked stripped + attack",
        REVOKED_AND_ATTACK,
        check(S.REVOKED),
        LENIENT,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DENY,
        True,
    ),
    (
        "unknown, log: judged as is",
        ATTACK,
        check(S.UNKNOWN),
        LENIENT,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DENY,
        False,
    ),
    ("unknown, log, clean", CLEAN, check(S.UNKNOWN), LENIENT, True, Situation.CLEAN, Action.NONE, False),
    (
        "store down, fail closed",
        ATTACK,
        check(S.ACTIVE, store_error="down"),
        DEFAULTS,
        True,
        Situation.STORE_UNAVAILABLE,
        Action.DENY,
        False,
    ),
    (
        "store down, fail open",
        ATTACK,
        check(S.ACTIVE, store_error="down"),
        DEFAULTS,
        False,
        Situation.AUTHENTICATED_OVER_THRESHOLD,
        Action.LOGOUT,
        False,
    ),
    (
        "store down, no session: rules alone",
        ATTACK,
        check(store_error="down"),
        DEFAULTS,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DENY,
        False,
    ),
    ("locked out", CLEAN, check(locked_out=True), STRICT, True, Situation.LOCKED_OUT, Action.REDIRECT, False),
    (
        "locked out but lockout off",
        CLEAN,
        check(locked_out=True),
        DEFAULTS,
        True,
        Situation.CLEAN,
        Action.NONE,
        False,
    ),
    (
        "cumulative reached",
        SCORED,
        check(S.ACTIVE, scored_in_window=3),
        STRICT,
        True,
        Situation.CUMULATIVE_THRESHOLD,
        Action.DENY,
        False,
    ),
    (
        "cumulative not yet",
        SCORED,
        check(S.ACTIVE, scored_in_window=2),
        STRICT,
        True,
        Situation.CLEAN,
        Action.NONE,
        False,
    ),
    (
        "cumulative off",
        SCORED,
        check(S.ACTIVE, scored_in_window=99),
        DEFAULTS,
        True,
        Situation.CLEAN,
        Action.NONE,
        False,
    ),
    (
        "cumulative needs a session",
        SCORED,
        check(scored_in_window=3),
        STRICT,
        True,
        Situation.CLEAN,
        Action.NONE,
        False,
    ),
    (
        "threshold before cumulative",
        ATTACK,
        check(S.ACTIVE, scored_in_window=3),
        STRICT,
        True,
        Situation.AUTHENTICATED_OVER_THRESHOLD,
        Action.REDIRECT,
        False,
    ),
    (
        "attack on an anonymous session (pre-login ID): denied, not logged out",
        ATTACK,
        ANONYMOUS_SESSION,
        DEFAULTS,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DENY,
        False,
    ),
    (
        "cumulative needs an authenticated session",
        SCORED,
        check(S.ACTIVE, authenticated=False, scored_in_window=3),
        STRICT,
        True,
        Situation.CLEAN,
        Action.NONE,
        False,
    ),
    (
        "cross-site attack on a session: denied, not logged out",
        ATTACK,
        check(S.ACTIVE),
        DEFAULTS,
        True,
        Situation.CROSS_SITE_OVER_THRESHOLD,
        Action.DENY,
        False,
        CROSS,
    ),
    (
        "cross-site attack, the policy chooses logout",
        ATTACK,
        check(S.ACTIVE),
        REDIRECTING,
        True,
        Situation.CROSS_SITE_OVER_THRESHOLD,
        Action.LOGOUT,
        False,
        CROSS,
    ),
    (
        "cross-site attack without a session: anonymous",
        ATTACK,
        check(),
        DEFAULTS,
        True,
        Situation.ANONYMOUS_OVER_THRESHOLD,
        Action.DENY,
        False,
        CROSS,
    ),
    ("cross-site, clean", CLEAN, check(S.ACTIVE), DEFAULTS, True, Situation.CLEAN, Action.NONE, False, CROSS),
    (
        "revoked, redirect",
        CLEAN,
        check(S.REVOKED),
        REDIRECTING,
        True,
        Situation.REVOKED_SESSION,
        Action.REDIRECT,
        False,
    ),
    (
        "revoked, redirect to the very page asked for: stripped instead (no loop)",
        CLEAN,
        check(S.REVOKED),
        REDIRECTING,
        True,
        Situation.UNKNOWN_SESSION,
        Action.NONE,
        True,
        AT_LOGIN,
    ),
    (
        "store down, fail closed, but this worker knows it revoked",
        CLEAN,
        check(S.REVOKED, store_error="down"),
        DEFAULTS,
        True,
        Situation.REVOKED_SESSION,
        Action.DENY,
        False,
    ),
    (
        "store down, fail open, known revoked",
        ATTACK,
        check(S.REVOKED, store_error="down"),
        DEFAULTS,
        False,
        Situation.REVOKED_SESSION,
        Action.DENY,
        False,
    ),
    (
        "Basic credentials locked out",
        CLEAN,
        check(S.ACTIVE, credentials_locked=True),
        DEFAULTS,
        True,
        Situation.LOCKED_OUT,
        Action.DENY,
        False,
    ),
    (
        "a body over the inspection limit is refused when nothing else is asked",
        SCORED,
        check(S.ACTIVE),
        DEFAULTS,
        True,
        Situation.BODY_OVER_LIMIT,
        Action.DENY,
        False,
        OVER_LIMIT,
    ),
    (
        "an attack in the part kept of an over-limit body logs its session out",
        ATTACK,
        check(S.ACTIVE),
        DEFAULTS,
        True,
        Situation.AUTHENTICATED_OVER_THRESHOLD,
        Action.LOGOUT,
        False,
        OVER_LIMIT,
    ),
    (
        "a denying rule counts as over",
        verdict(match(1, 0, disruptive="deny")),
        check(S.ACTIVE),
        DEFAULTS,
        True,
        Situation.AUTHENTICATED_OVER_THRESHOLD,
        Action.LOGOUT,
        False,
    ),
]


@pytest.mark.parametrize(
    ("v", "c", "policy", "fail_closed", "situation", "action", "strip", "signals"),
    [case[1:] if len(case) == 9 else (*case[1:], RequestSignals()) for case in CASES],
    ids=[str(case[0]) for case in CASES],
)
def test_judge(
    v: Verdict,
    c: SessionCheck,
    policy: object,
    fail_closed: bool,
    situation: Situation,
    action: Action,
    strip: bool,
    signals: RequestSignals,
) -> None:
    judgement = judge(v, c, policy, fail_closed=fail_closed, signals=signals)  # type: ignore[arg-type]
    assert (judgement.situation, judgement.action, judgement.strip_session) == (situation, action, strip)
    assert judgement.action is not Action.STRIP
    assert judgement.acts == (action not in (Action.NONE, Action.LOG))


@pytest.mark.parametrize("case", CASES, ids=[str(case[0]) for case in CASES])
def test_cross_site_matters_only_over_the_inbound_threshold(case: tuple[object, ...]) -> None:
    """The pipeline works out whether another site sent a request only when it is over the inbound
    threshold (Pipeline._signals): for any other the judgement must not depend on it."""
    v, c, policy, fail_closed = case[1:5]
    assert isinstance(v, Verdict)
    if v.inbound_blocked:
        return
    signals = case[8] if len(case) == 9 else RequestSignals()
    assert isinstance(signals, RequestSignals)
    judged = [
        judge(v, c, policy, fail_closed=fail_closed, signals=replace(signals, cross_site=cross))  # type: ignore[arg-type]
        for cross in (False, True)
    ]
    assert judged[0] == judged[1]


def test_reasons_start_with_the_verdicts_and_name_the_situation() -> None:
    j = judge(ATTACK, check(S.ACTIVE), DEFAULTS, fail_closed=True)
    assert j.reasons == (
        "inbound score 5 >= threshold 5",
        "inbound score over threshold on an authenticated session",
    )
    assert j.reason == "; ".join(j.reasons)
    assert judge(CLEAN, check(S.REVOKED), DEFAULTS, fail_closed=True).reasons == ("session revoked",)
    assert judge(CLEAN, check(), DEFAULTS, fail_closed=True).reasons == ()
    cumulative = judge(SCORED, check(S.ACTIVE, scored_in_window=3), STRICT, fail_closed=True)
    assert cumulative.reason == "3 scored requests within 60s"
    stripped = judge(CLEAN, check(S.UNKNOWN), DEFAULTS, fail_closed=True)
    assert stripped.reason == "session stripped"


def test_the_judgement_is_a_value() -> None:
    one = judge(ATTACK, check(S.ACTIVE), DEFAULTS, fail_closed=True)
    assert one == judge(ATTACK, check(S.ACTIVE), DEFAULTS, fail_closed=True)
    assert isinstance(one, Judgement)
    with pytest.raises(AttributeError):
        one.action = Action.NONE  # type: ignore[misc]


@pytest.mark.parametrize(
    ("facts", "v", "policy", "counts"),
    [
        (SessionFacts(S.ACTIVE, authenticated=True), SCORED, STRICT, True),
        (SessionFacts(S.ACTIVE, authenticated=True), CLEAN, STRICT, False),  # only scored requests
        (SessionFacts(S.ACTIVE), SCORED, STRICT, False),  # only authenticated sessions
        (SessionFacts(S.UNKNOWN), SCORED, STRICT, False),
        (SessionFacts(S.NONE), SCORED, STRICT, False),
        (SessionFacts(S.ACTIVE, authenticated=True), SCORED, DEFAULTS, False),  # cumulative off
    ],
)
def test_counts_toward_window(facts: SessionFacts, v: Verdict, policy: object, counts: bool) -> None:
    assert counts_toward_window(facts, v, policy) is counts  # type: ignore[arg-type]


def test_refused_identifiers_are_named_for_the_actions() -> None:
    """Only the refused identifiers are stripped or expired: a fresh one beside them stays."""
    fresh = SessionId(IdKind.COOKIE, "sid", "fresh", "sid")
    both = SessionCheck(
        SessionFacts(S.REVOKED, cookie="sid", id_hash="h"),
        carries_session=True,
        states=((SID, S.REVOKED), (fresh, S.ACTIVE)),
    )
    assert judge(CLEAN, both, DEFAULTS, fail_closed=True).refused == (SID,)
    assert judge(CLEAN, both, LENIENT, fail_closed=True).refused == (SID,)
    assert judge(ATTACK, check(S.ACTIVE), DEFAULTS, fail_closed=True).refused == ()


def test_an_anonymous_session_attack_says_so() -> None:
    j = judge(ATTACK, ANONYMOUS_SESSION, DEFAULTS, fail_closed=True)
    assert j.reasons[-1] == "inbound score over threshold on an anonymous session"
    cross = judge(ATTACK, check(S.ACTIVE), DEFAULTS, fail_closed=True, signals=CROSS)
    assert cross.reasons[-1].endswith("sent by another site")


def test_threshold_comes_from_the_verdict() -> None:
    """The judge compares no score itself: a higher threshold in the verdict passes the same match."""
    lenient = verdict(match(942100, 5), threshold=10)
    assert not lenient.inbound_blocked
    assert judge(lenient, check(S.ACTIVE), DEFAULTS, fail_closed=True).situation is Situation.CLEAN
