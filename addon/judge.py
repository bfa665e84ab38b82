"""The judge: a request's verdict, what is known of its session, and the policy -> one Judgement (pure).

No I/O and no mitmproxy: the pipeline asks the session store and the rule engine first and hands
the judge their answers. Everything that turns those answers into a decision lives here, in one
place: which situation the request is in (store unavailable, locked-out client or credentials,
revoked or unknown session, over the inbound threshold on an authenticated session, an anonymous
one or none, sent cross-site by another site, the cumulative threshold of a session), which
threshold applies (the Verdict compares scores with them), what counts toward a session's
cumulative window, and the single action the policy names.

Only a session the application showed authenticated (facts.authenticated) is ever logged out; an
attack on an anonymous session is the anonymous situation (denied by default). A request another
site made the browser send (cross-site) is not turned into a logout by default: any page on the
internet could otherwise log any user out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .engine.verdict import Verdict
from .policy import Action, Policy
from .sessions.identifiers import SessionId
from .sessions.state import SessionState
from .sessions.tracker import SessionFacts, SessionLookup

# Rules tagged so inspect the SESSION state itself (945100 unknown ID, 945110 revoked, ...): a
# request whose session cookie is stripped is judged without them, as the anonymous request it becomes.
SESSION_STATE_TAG = "session-state"
ENDED_STATES = frozenset({SessionState.REVOKED, SessionState.ENDED})
UNKNOWN_STATES = frozenset({SessionState.UNKNOWN, SessionState.EXPIRED})


class Situation(StrEnum):
    CLEAN = "clean"
    STORE_UNAVAILABLE = "store_unavailable"  # a request with a session ID, store down, fail mode closed
    LOCKED_OUT = "locked_out"  # the client's network (or its Basic credentials) locked out after an attack
    REVOKED_SESSION = "revoked_session"  # revoked by LogoutGuard or ended by the application
    UNKNOWN_SESSION = "unknown_session"  # never issued by the application, or expired
    AUTHENTICATED_OVER_THRESHOLD = "authenticated_over_threshold"
    CROSS_SITE_OVER_THRESHOLD = (
        "cross_site_over_threshold"  # an attack on an authenticated session sent by another site
    )
    ANONYMOUS_OVER_THRESHOLD = "anonymous_over_threshold"  # no session, or one never shown authenticated
    CUMULATIVE_THRESHOLD = "cumulative_threshold"  # N scored requests of one session within a window
    BODY_OVER_LIMIT = "body_over_limit"  # a body longer than the inspection limit, refused (413)
    ERROR = "error"  # judging failed (not the judge's answer: the pipeline's, when something raised)


@dataclass(frozen=True)
class SessionCheck:
    """What the session side found out about a request: the judge's input besides the verdict."""

    facts: SessionFacts = field(default_factory=SessionFacts)
    carries_session: bool = False  # the request carries at least one session identifier
    locked_out: bool = False  # its client's network is locked out (asked only when lockout is on)
    scored_in_window: int = 0  # its session's scored requests within the cumulative window, this one included
    store_error: str = ""  # the session store failed while being asked ("" when it answered)
    credentials_locked: bool = False  # its Basic credentials are refused after an attack (ASR-K)
    states: tuple[tuple[SessionId, SessionState], ...] = ()  # each identifier's state

    @classmethod
    def of(cls, lookup: SessionLookup, **values: object) -> SessionCheck:
        return cls(
            lookup.facts,
            carries_session=bool(lookup.states),
            credentials_locked=lookup.credentials_locked,
            states=lookup.states,
            **values,  # type: ignore[arg-type]
        )

    def in_states(self, states: frozenset[SessionState]) -> tuple[SessionId, ...]:
        return tuple(sid for sid, state in self.states if state in states)


@dataclass(frozen=True)
class RequestSignals:
    """What the request says about itself (request_signals.py), for the judge."""

    cross_site: bool = False  # another site made the browser send it
    asks_redirect_target: bool = False  # it asks for the page `redirect` sends to (redirecting would loop)
    body_over_limit: bool = False  # its body is longer than the inspection limit and such bodies are refused


@dataclass(frozen=True)
class Judgement:
    """The single decision for a request: the situation it is in, the action, and why."""

    situation: Situation
    action: Action  # NONE, LOG, LOGOUT, DENY, REDIRECT or DROP (never STRIP: see strip_session)
    strip_session: bool = False  # remove the refused identifiers first, whatever the action
    reasons: tuple[str, ...] = ()  # the verdict's reason, then the judge's own
    refused: tuple[SessionId, ...] = ()  # identifiers refused (stripped or expired in the browser)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def acts(self) -> bool:
        """The action changes the flow (LOG and NONE do not)."""
        return self.action not in (Action.NONE, Action.LOG)


def authenticated(facts: SessionFacts) -> bool:
    """An active session the application showed authenticated."""
    return facts.state is SessionState.ACTIVE and facts.authenticated


def counts_toward_window(facts: SessionFacts, verdict: Verdict, policy: Policy) -> bool:
    """Whether this request is a scored request of an authenticated session for the cumulative window."""
    return bool(policy.cumulative.scored_requests and authenticated(facts) and verdict.inbound_score > 0)


def cumulative_reached(check: SessionCheck, policy: Policy) -> bool:
    needed = policy.cumulative.scored_requests
    return bool(needed) and check.scored_in_window >= needed


def judge(
    verdict: Verdict,
    check: SessionCheck,
    policy: Policy,
    *,
    fail_closed: bool,
    signals: RequestSignals = RequestSignals(),
) -> Judgement:
    """The one place that picks the action, from the verdict, the session situation and the request's signals.

    fail_closed: a request carrying a session ID while the store could not be asked is refused
    (unless this worker's own cache already knows an ID of it as revoked or ended: refused as such).
    """
    actions = policy.actions

    def judgement(
        situation: Situation,
        action: Action,
        strip: bool = False,
        reason: str = "",
        refused: tuple[SessionId, ...] = (),
    ) -> Judgement:
        return Judgement(situation, action, strip, tuple([r for r in (verdict.reason, reason) if r]), refused)

    state = check.facts.state
    if check.store_error and check.carries_session and fail_closed and state not in ENDED_STATES:
        return judgement(
            Situation.STORE_UNAVAILABLE, Action.DENY, reason="session store unavailable (fail closed)"
        )
    if check.locked_out and policy.lockout.enabled:
        return judgement(
            Situation.LOCKED_OUT, actions.locked_out, reason="client locked out after a forced logout"
        )
    over_threshold, strip, refused = verdict.inbound_blocked, False, ()
    for states, situation, choice in (
        (ENDED_STATES, Situation.REVOKED_SESSION, actions.revoked_session),
        (UNKNOWN_STATES, Situation.UNKNOWN_SESSION, actions.unknown_session),
    ):
        if state not in states:
            continue
        ids = check.in_states(ENDED_STATES | UNKNOWN_STATES)
        if choice is Action.REDIRECT and signals.asks_redirect_target:
            choice = Action.STRIP  # redirecting to the page asked for would loop: let it through anonymous
        if choice in (Action.DENY, Action.REDIRECT):
            return judgement(situation, choice, reason=f"session {state}", refused=ids)
        if choice is Action.STRIP:  # pass on as anonymous: judged without the session's own rules
            strip, over_threshold = True, verdict.inbound_blocked_without(SESSION_STATE_TAG)
            refused = ids
    if check.credentials_locked:
        return judgement(
            Situation.LOCKED_OUT,
            actions.locked_out,
            strip,
            "Basic credentials refused after an attack",
            refused,
        )
    if over_threshold:
        if authenticated(check.facts) and not strip:
            if signals.cross_site:
                return judgement(
                    Situation.CROSS_SITE_OVER_THRESHOLD,
                    actions.cross_site,
                    reason="inbound score over threshold on an authenticated session, sent by another site",
                )
            return judgement(
                Situation.AUTHENTICATED_OVER_THRESHOLD,
                actions.authenticated_over_threshold,
                reason="inbound score over threshold on an authenticated session",
            )
        return judgement(
            Situation.ANONYMOUS_OVER_THRESHOLD,
            actions.anonymous_over_threshold,
            strip,
            "inbound score over threshold"
            + ("" if not check.carries_session or strip else " on an anonymous session"),
            refused,
        )
    if authenticated(check.facts) and not strip and cumulative_reached(check, policy):
        return judgement(
            Situation.CUMULATIVE_THRESHOLD,
            policy.cumulative.action,
            reason=f"{policy.cumulative.scored_requests} scored requests within {policy.cumulative.window:g}s",
        )
    if signals.body_over_limit:  # what the part kept asks for came first; else nothing unread passes
        return judgement(
            Situation.BODY_OVER_LIMIT,
            Action.DENY,
            strip,
            "request body over the inspection limit (guard_body_limit): refused",
            refused,
        )
    if strip:
        return judgement(Situation.UNKNOWN_SESSION, Action.NONE, True, "session stripped", refused)
    return judgement(Situation.CLEAN, Action.NONE)
