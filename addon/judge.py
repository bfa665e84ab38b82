"""The judge: a request's verdict, what is known of its session, and the policy -> one Judgement (pure).

No I/O and no mitmproxy: the pipeline asks the session store and the rule engine first and hands
the judge their answers. Everything that turns those answers into a decision lives here, in one
place: which situation the request is in (store unavailable, locked-out client, revoked or
unknown session, over the inbound threshold with or without an authenticated session, the
cumulative threshold of a session), which threshold applies (the Verdict compares scores with
them), what counts toward a session's cumulative window, and the single action the policy names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .engine.verdict import Verdict
from .policy import Action, Policy
from .sessions.state import SessionState
from .sessions.tracker import SessionFacts

# Rules tagged so inspect the SESSION state itself (945100 unknown ID, 945110 revoked, ...): a
# request whose session cookie is stripped is judged without them, as the anonymous request it becomes.
SESSION_STATE_TAG = "session-state"
ENDED_STATES = frozenset({SessionState.REVOKED, SessionState.ENDED})
UNKNOWN_STATES = frozenset({SessionState.UNKNOWN, SessionState.EXPIRED})


class Situation(StrEnum):
    CLEAN = "clean"
    STORE_UNAVAILABLE = "store_unavailable"  # a request with a session ID, store down, fail mode closed
    LOCKED_OUT = "locked_out"  # the client's network is locked out after a forced logout
    REVOKED_SESSION = "revoked_session"  # revoked by LogoutGuard or ended by the application
    UNKNOWN_SESSION = "unknown_session"  # never issued by the application, or expired
    AUTHENTICATED_OVER_THRESHOLD = "authenticated_over_threshold"
    ANONYMOUS_OVER_THRESHOLD = "anonymous_over_threshold"
    CUMULATIVE_THRESHOLD = "cumulative_threshold"  # N scored requests of one session within a window
    ERROR = "error"  # judging failed (not the judge's answer: the pipeline's, when something raised)


@dataclass(frozen=True)
class SessionCheck:
    """What the session side found out about a request: the judge's input besides the verdict."""

    facts: SessionFacts = field(default_factory=SessionFacts)
    carries_session: bool = False  # the request carries at least one session ID
    locked_out: bool = False  # its client's network is locked out (asked only when lockout is on)
    scored_in_window: int = 0  # its session's scored requests within the cumulative window, this one included
    store_error: str = ""  # the session store failed while being asked ("" when it answered)


@dataclass(frozen=True)
class Judgement:
    """The single decision for a request: the situation it is in, the action, and why."""

    situation: Situation
    action: Action  # NONE, LOG, LOGOUT, DENY, REDIRECT or DROP (never STRIP: see strip_session)
    strip_session: bool = False  # remove the session cookie(s) first, whatever the action
    reasons: tuple[str, ...] = ()  # the verdict's reason, then the judge's own

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def acts(self) -> bool:
        """The action changes the flow (LOG and NONE do not)."""
        return self.action not in (Action.NONE, Action.LOG)


def assumed_facts(session_ids: Sequence[tuple[str, str]], hash_id: Callable[[str], str]) -> SessionFacts:
    """Facts for a request whose sessions could not be looked up (store down, fail open): a request
    with a session cookie is taken as authenticated, so an attack still forces the app's logout."""
    if not session_ids:
        return SessionFacts()
    name, value = session_ids[0]
    return SessionFacts(SessionState.ACTIVE, cookie=name, id_hash=hash_id(value), count=len(session_ids))


def counts_toward_window(facts: SessionFacts, verdict: Verdict, policy: Policy) -> bool:
    """Whether this request is a scored request of an authenticated session for the cumulative window."""
    return bool(
        policy.cumulative.scored_requests and facts.state is SessionState.ACTIVE and verdict.inbound_score > 0
    )


def cumulative_reached(check: SessionCheck, policy: Policy) -> bool:
    needed = policy.cumulative.scored_requests
    return bool(needed) and check.scored_in_window >= needed


def judge(verdict: Verdict, check: SessionCheck, policy: Policy, *, fail_closed: bool) -> Judgement:
    """The one place that picks the action, from the verdict and the session situation.

    fail_closed: a request carrying a session ID while the store could not be asked is refused.
    """
    actions = policy.actions

    def judgement(situation: Situation, action: Action, strip: bool = False, reason: str = "") -> Judgement:
        return Judgement(situation, action, strip, tuple(r for r in (verdict.reason, reason) if r))

    if check.store_error and check.carries_session and fail_closed:
        return judgement(
            Situation.STORE_UNAVAILABLE, Action.DENY, reason="session store unavailable (fail closed)"
        )
    if check.locked_out and policy.lockout.enabled:
        return judgement(
            Situation.LOCKED_OUT, actions.locked_out, reason="client locked out after a forced logout"
        )
    state = check.facts.state
    over_threshold, strip = verdict.inbound_blocked, False
    for states, situation, choice in (
        (ENDED_STATES, Situation.REVOKED_SESSION, actions.revoked_session),
        (UNKNOWN_STATES, Situation.UNKNOWN_SESSION, actions.unknown_session),
    ):
        if state not in states:
            continue
        if choice in (Action.DENY, Action.REDIRECT):
            return judgement(situation, choice, reason=f"session {state}")
        if choice is Action.STRIP:  # pass on as anonymous: judged without the session's own rules
            strip, over_threshold = True, verdict.inbound_blocked_without(SESSION_STATE_TAG)
    authenticated = state is SessionState.ACTIVE
    if over_threshold:
        if authenticated:
            return judgement(
                Situation.AUTHENTICATED_OVER_THRESHOLD,
                actions.authenticated_over_threshold,
                strip,
                "inbound score over threshold on an authenticated session",
            )
        return judgement(
            Situation.ANONYMOUS_OVER_THRESHOLD,
            actions.anonymous_over_threshold,
            strip,
            "inbound score over threshold",
        )
    if authenticated and cumulative_reached(check, policy):
        return judgement(
            Situation.CUMULATIVE_THRESHOLD,
            policy.cumulative.action,
            strip,
            f"{policy.cumulative.scored_requests} scored requests within {policy.cumulative.window:g}s",
        )
    if strip:
        return judgement(Situation.UNKNOWN_SESSION, Action.NONE, True, "session stripped")
    return judgement(Situation.CLEAN, Action.NONE)
