"""The forced logout: revoke the identifiers, run the application's own logout recipe (bounded), verify, and say truthfully what happened.

Revocation comes first and is durable (the session, the identifiers issued with it at its login such
as a remember-me cookie, a bearer token; Basic credentials are locked out for a while), so the old
identifiers stay refused at the proxy whatever the application does. Then the policy's recipe runs
(logout_recipe.py: steps that take the tokens the application issues, then the logout request) and
the old session is probed (logout_probe.py). The typed `LogoutOutcome` says which of these it was:

    ended         the application ended the session (probed dead)
    failed        the application's logout failed: no answer, or a status that is not a success
    defective     the logout answered with success, but the session is still alive at the application
    unverifiable  the logout answered with success; whether the session ended cannot be told (why)
    proxy_only    nothing the application can end: a session kept in a signed cookie, a bearer token
                  without a revocation endpoint, Basic credentials; the proxy's refusal is the defence

`failed` and `defective` are warnings: in mitmdump's log, the audit line and the flow's record.
The logout request is built from the policy alone and goes to the configured upstream only: no
host, path or header of the malicious request can steer it. The malicious request itself is never
rewritten: it is answered as `logout.mode` says (`answer_client`), and the logout as sent is
`outcome.request`, shown as a flow of its own (logout_flow.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from mitmproxy import http

from .exchange import Exchange
from .logout_probe import Probe, baseline, classify, snapshot
from .logout_recipe import (
    CookieJar,
    LogoutRequest,
    StepRecord,
    build_logout_request,
    rewrite_to_logout,
    run_steps,
)
from .policy import ClientAnswer, KeptIn, LogoutMode, Policy, RevocationEndpoint
from .responses import deny, page, redirect, relay, signed_out
from .sessions.cookies import parse_set_cookie
from .sessions.health import StoreHealth
from .sessions.identifiers import IdKind, SessionId
from .sessions.store import StoreError
from .sessions.tracker import SessionTracker
from .upstream_http import (
    USER_AGENT,
    Delivery,
    Upstream,
    configured_upstream,
    parse_upstream,
    send,
)

__all__ = [
    "Delivery",
    "LogoutOutcome",
    "LogoutRequest",
    "LogoutResult",
    "Probe",
    "Upstream",
    "build_logout_request",
    "configured_upstream",
    "force_logout",
    "parse_upstream",
    "revoke_sessions",
    "rewrite_to_logout",
]

log = logging.getLogger("logoutguard")


class LogoutResult(StrEnum):
    """What a forced logout achieved at the application (see the module docstring)."""

    ENDED = "ended"
    FAILED = "failed"
    DEFECTIVE = "defective"
    UNVERIFIABLE = "unverifiable"
    PROXY_ONLY = "proxy_only"

    @property
    def warning(self) -> bool:
        return self in (LogoutResult.FAILED, LogoutResult.DEFECTIVE)


_LOG_TEXT = {
    LogoutResult.ENDED: "forced logout: session ended at the application",
    LogoutResult.FAILED: "forced logout request failed",
    LogoutResult.DEFECTIVE: "application logout defective",
    LogoutResult.UNVERIFIABLE: "forced logout not verifiable",
    LogoutResult.PROXY_ONLY: "forced logout: refused at the proxy only",
}


@dataclass
class LogoutOutcome:
    """What a forced logout did: revoked, (maybe) sent and how it went, verified, and the result. Recorded as JSON."""

    mode: LogoutMode
    revoked: list[str]  # keyed hashes of the revoked identifiers (linked ones included)
    locked_out: str | None = None  # the client network locked out (None: lockout off)
    credentials_locked: str | None = None  # keyed hash of Basic credentials refused for a while
    result: LogoutResult = LogoutResult.FAILED
    reason: str = ""
    method: str = ""  # of the logout request; "" when it was not built (nothing sent)
    path: str = ""  # without the query
    delivery: Delivery | None = None  # None: not sent
    accepted: bool = False  # the application answered with a status that means success
    error: str = ""
    cookie_replaced: bool | None = None  # the application's answer replaced or deleted the session cookie
    probe: Probe = Probe.NOT_RUN
    probe_reason: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    builtin: bool = False  # the logout was the built-in guess (the policy names none)
    # The logout as sent and when it left (wall clock): shown as a flow of its own, never recorded
    # (it carries the session cookie).
    request: LogoutRequest | None = field(default=None, repr=False)
    sent_at: float = field(default=0.0, repr=False)

    @property
    def sent(self) -> bool:
        return self.delivery is not None

    @property
    def status(self) -> int | None:
        return self.delivery.status if self.delivery else None

    @property
    def ok(self) -> bool:
        """The session is ended, or refused at the proxy as the policy expects: nothing to fix."""
        return self.result in (LogoutResult.ENDED, LogoutResult.PROXY_ONLY)

    @property
    def warning(self) -> bool:
        return self.result.warning

    @property
    def session_dead(self) -> bool | None:
        """Whether probing showed the old session dead at the application (None: not known)."""
        return {Probe.DEAD: True, Probe.ALIVE: False}.get(self.probe)

    @property
    def defective_app_logout(self) -> bool:
        return self.result is LogoutResult.DEFECTIVE

    def summary(self) -> str:
        """One line: the result and why (log lines, flow comments)."""
        return f"{_LOG_TEXT[self.result]}: {self.reason}" if self.reason else _LOG_TEXT[self.result]

    def probe_text(self) -> str:
        if self.probe in (Probe.FAILED, Probe.UNCLEAR) and self.probe_reason:
            return f"{self.probe}: {self.probe_reason}"
        return str(self.probe)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"mode": str(self.mode), "revoked": list(self.revoked)}
        if self.locked_out is not None:
            data["locked_out"] = self.locked_out
        if self.credentials_locked is not None:
            data["credentials_locked"] = self.credentials_locked
        data.update(result=str(self.result), reason=self.reason, warning=self.warning, ok=self.ok)
        if self.builtin:
            data["builtin"] = True
        if not self.method:
            return {**data, "error": self.error}
        return {
            **data,
            "method": self.method,
            "path": self.path,
            "sent": self.sent,
            "status": self.status,
            "accepted": self.accepted,
            "error": self.error,
            "cookie_replaced": self.cookie_replaced,
            "probe": self.probe_text(),
            "steps": [s.to_json() for s in self.steps],
            "elapsed_ms": round(self.delivery.elapsed_ms, 1) if self.delivery else 0.0,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogoutOutcome:
        """Back from `to_json` (flow metadata, maybe written by another version): tolerant of gaps."""

        def enum(kind: Any, value: object, default: Any) -> Any:
            try:
                return kind(value)
            except ValueError:
                return default

        probe, _, why = str(data.get("probe", Probe.NOT_RUN)).partition(": ")
        outcome = cls(
            enum(LogoutMode, data.get("mode", LogoutMode.REWRITE), LogoutMode.REWRITE),
            list(data.get("revoked") or []),
            locked_out=data.get("locked_out"),
            credentials_locked=data.get("credentials_locked"),
            result=enum(LogoutResult, data.get("result"), LogoutResult.FAILED),
            reason=str(data.get("reason", "")),
            method=str(data.get("method", "")),
            path=str(data.get("path", "")),
            accepted=bool(data.get("accepted", data.get("ok", False))),
            error=str(data.get("error", "")),
            cookie_replaced=data.get("cookie_replaced"),
            probe=enum(Probe, probe, Probe.NOT_RUN),
            probe_reason=why,
            steps=[
                StepRecord(
                    str(s.get("method", "")),
                    str(s.get("path", "")),
                    s.get("status"),
                    str(s.get("error", "")),
                    list(s.get("took", [])),
                    list(s.get("missing", [])),
                )
                for s in data.get("steps") or []
                if isinstance(s, dict)
            ],
            builtin=bool(data.get("builtin")),
        )
        if data.get("sent"):
            outcome.delivery = Delivery(
                data.get("status"), str(data.get("error", "")), data.get("elapsed_ms", 0.0)
            )
        return outcome


def conclude(
    outcome: LogoutOutcome, policy: Policy, problems: Sequence[str] = ()
) -> tuple[LogoutResult, str]:
    """The result of a forced logout, and why, from what was sent, answered and probed (pure)."""
    logout = policy.logout
    notes = "".join(f"; {p}" for p in problems)
    if outcome.builtin:
        notes += (
            "; the built-in logout (GET /logout) is only a guess: name the application's own "
            "(logout.method, logout.path, logout.steps) in the policy"
        )
    request = f"{outcome.method} {outcome.path}".strip()
    if not outcome.sent:
        return LogoutResult.FAILED, (outcome.error or "the logout request was not sent") + notes
    status = outcome.status
    if status is None:
        return LogoutResult.FAILED, f"{request}: no answer from the application ({outcome.error})" + notes
    if not outcome.accepted:
        expected = ", ".join(str(s) for s in logout.expect_status)
        return LogoutResult.FAILED, (
            f"{request} answered {status}, not a status that means success ({expected}): the "
            "session may still be alive at the application" + notes
        )
    why = outcome.probe_reason
    match outcome.probe:
        case Probe.DEAD:
            return LogoutResult.ENDED, f"{request} answered {status}; {why}"
        case Probe.ALIVE if policy.kept_in is KeptIn.COOKIE:
            return LogoutResult.PROXY_ONLY, (
                f"{request} answered {status}, but the application keeps the session in its cookie "
                f"(session.kept_in: cookie), so a copy of the old cookie still works there ({why}); "
                "the proxy refuses it"
            )
        case Probe.ALIVE:
            return LogoutResult.DEFECTIVE, (
                f"{request} answered {status}, but the session is still alive at the application ({why}); "
                "the proxy refuses it" + notes
            )
        case Probe.NOT_RUN:
            return (
                LogoutResult.UNVERIFIABLE,
                f"{request} answered {status}; verification is off (logout.verify)",
            )
    return (
        LogoutResult.UNVERIFIABLE,
        f"{request} answered {status}, but it cannot be told whether the session ended: {why}" + notes,
    )


def confirms_logout(set_cookie_values: list[str], session_cookies: dict[str, str]) -> bool:
    """Did the application's response replace or delete the session cookie(s) the request carried?"""
    for value in set_cookie_values:
        cookie = parse_set_cookie(value)
        if (
            cookie is not None
            and cookie.name in session_cookies
            and cookie.value != session_cookies[cookie.name]
        ):
            return True
    return False


def answer_client(flow: http.HTTPFlow, policy: Policy, delivery: Delivery) -> None:
    """Answer the client of a forced logout (its request never reaches the application), as the mode says.

    rewrite      the request is answered as the logout it was turned into: the policy's client_response
                 (`application`: the application's own answer to the logout, 502 when it gave none).
    out_of_band  the request is refused and the logout went beside it: `redirect` or `status` as the
                 policy says; the application's answer belongs to that other request, so `application`
                 becomes the signed-out page (actions.deny_status, a link to actions.redirect_location).

    The application's Set-Cookie headers go along either way (the browser drops the ended session)."""
    client, actions = policy.logout.client_response, policy.actions
    if client.type is ClientAnswer.REDIRECT:
        redirect(flow, client.location, delivery.set_cookies)
    elif client.type is ClientAnswer.STATUS:
        page(flow, client.status, client.body, delivery.set_cookies)
    elif policy.logout.mode is LogoutMode.OUT_OF_BAND:
        signed_out(flow, actions.deny_status, actions.redirect_location, delivery.set_cookies)
    elif delivery.status is None:
        deny(flow, 502)
    else:
        relay(flow, delivery.status, delivery.headers, delivery.body)


async def revoke_sessions(
    tracker: SessionTracker,
    session_ids: Sequence[SessionId],
    reason: str,
    now: float,
    health: StoreHealth,
) -> list[str]:
    """Revoke every identifier (and those linked to it) but Basic credentials; a store failure is
    logged, the hashes are still returned and this worker still refuses them (its local cache)."""
    values = [sid.value for sid in session_ids if sid.kind is not IdKind.BASIC]
    try:
        hashes = await tracker.revoke_with_links(values, reason, now)
    except StoreError as exc:
        health.failed(exc)
        log.error(
            "LogoutGuard: could not record the revocation (store unavailable); the logout still goes on"
        )
        return [tracker.hasher.hash(value) for value in dict.fromkeys(values)]
    if values:
        health.ok()
    return hashes


def session_jar(ids: Sequence[SessionId]) -> dict[str, str]:
    """The recipe's first cookies: the session's identifier cookies (a path parameter as the cookie it
    stands for); a cookie wins over a path parameter for the same cookie name."""
    jar: dict[str, str] = {}
    for sid in sorted(ids, key=lambda s: s.kind is IdKind.PATH):
        if sid.kind.issued_by_set_cookie:
            jar.setdefault(sid.cookie, sid.value)
    return jar


def probe_identity(ids: Sequence[SessionId]) -> list[tuple[str, str]]:
    """What the verification sends as the old session: its session cookies (without a remember-me
    cookie, which would log in anew), or, when the request carried only a remember-me cookie, that
    cookie (it is the session then); and its bearer token."""
    sessions = [sid for sid in ids if sid.kind in (IdKind.COOKIE, IdKind.PATH)]
    cookies = session_jar(sessions or [sid for sid in ids if sid.kind is IdKind.REMEMBER])
    headers = [("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))] if cookies else []
    bearer = next((sid for sid in ids if sid.kind is IdKind.BEARER), None)
    if bearer is not None:
        headers.append(("Authorization", f"Bearer {bearer.value}"))
    return headers


async def _lockouts(exchange: Exchange, policy: Policy, outcome: LogoutOutcome, health: StoreHealth) -> None:
    seen, tracker = exchange.seen, exchange.tracker
    try:
        if policy.lockout.enabled:
            outcome.locked_out = await tracker.lockout(seen.client, seen.at + policy.lockout.duration)
        basic = next((sid for sid in seen.session_ids if sid.kind is IdKind.BASIC), None)
        if basic is not None and policy.lockout.credentials:
            outcome.credentials_locked = await tracker.lock_credentials(
                basic, seen.at + policy.lockout.credentials
            )
    except StoreError as exc:
        health.failed(exc)


def revocation_request(endpoint: RevocationEndpoint, token: str) -> LogoutRequest:
    body = urlencode({"token": token, "token_type_hint": endpoint.token_type_hint}).encode()
    headers = (
        ("User-Agent", USER_AGENT),
        ("Content-Type", "application/x-www-form-urlencoded"),
        *endpoint.headers,
        ("Content-Length", str(len(body))),
    )
    return LogoutRequest("POST", endpoint.path, headers, body)


async def force_logout(
    exchange: Exchange, policy: Policy, upstream: Upstream | None, health: StoreHealth
) -> LogoutOutcome:
    """Revoke first (durably), then the application's own logout recipe, verified; the client is
    answered as the mode and the policy say (`answer_client`; denied when no logout could be sent).
    The flow's request stays as the client sent it; `outcome.request` is the logout as sent (its own
    flow: logout_flow.py)."""
    flow, seen, tracker = exchange.flow, exchange.seen, exchange.tracker
    logout = policy.logout
    ids = seen.session_ids
    outcome = LogoutOutcome(logout.mode, [], builtin=not logout.from_policy)
    outcome.revoked = await revoke_sessions(
        tracker, ids, f"forced logout: {exchange.judgement.situation}", seen.at, health
    )
    await _lockouts(exchange, policy, outcome, health)
    jar = CookieJar(session_jar(ids))
    bearer = next((sid for sid in ids if sid.kind is IdKind.BEARER), None)
    if not jar.cookies and (bearer is None or logout.revocation_endpoint is None):
        return _proxy_only(flow, policy, outcome, bearer)
    if upstream is None:
        outcome.error = "logout request not sent: no reverse-proxy upstream is configured (guard_upstream or --mode reverse:URL)"
        return _not_sent(flow, policy, outcome)
    verify = logout.verify
    identity = probe_identity(ids)
    before, anonymous = await baseline(upstream, verify, identity) if verify.enabled else (None, None)
    deadline = time.monotonic() + logout.timeout
    cookie_session = bool(jar.cookies)
    problems: list[str] = []
    if cookie_session:
        built = await _recipe(exchange, policy, upstream, jar, deadline, outcome, health)
        if built is None:
            return _not_sent(flow, policy, outcome)
        request, problems = built
    else:
        assert bearer is not None and logout.revocation_endpoint is not None
        request = revocation_request(logout.revocation_endpoint, bearer.value)
    outcome.method, outcome.path = request.method, request.path.split("?", 1)[0]
    # The flow keeps the attacker's request as sent; the logout is shown as a flow of its own (logout_flow.py).
    outcome.request = request
    delivery = await _deliver(exchange, policy, request, upstream, deadline, outcome, health)
    if cookie_session and bearer is not None and logout.revocation_endpoint is not None:
        outcome.steps.append(await _revoke_token(upstream, logout.revocation_endpoint, bearer, deadline))
    if outcome.accepted and verify.enabled:
        after = await snapshot(upstream, verify.check_path, identity, verify.timeout)
        outcome.probe, outcome.probe_reason = classify(verify, after, before, anonymous)
    outcome.result, outcome.reason = conclude(outcome, policy, problems)
    _log(outcome)
    answer_client(flow, policy, delivery)
    return outcome


async def _recipe(
    exchange: Exchange,
    policy: Policy,
    upstream: Upstream,
    jar: CookieJar,
    deadline: float,
    outcome: LogoutOutcome,
    health: StoreHealth,
) -> tuple[LogoutRequest, list[str]] | None:
    """The steps, then the logout request built from their tokens and the jar (None: a value would
    inject, nothing is sent; the outcome says why); with the steps' problems."""
    flow, seen = exchange.flow, exchange.seen
    authorization = flow.request.headers.get("authorization") if policy.logout.keep_authorization else None
    run = await run_steps(policy.logout.steps, upstream, jar, authorization, deadline)
    outcome.steps = run.steps
    await _revoke_issued_during_steps(exchange.tracker, jar, seen.session_ids, seen.at, health, outcome)
    try:
        request = build_logout_request(policy, flow.request, jar, upstream, run.tokens)
    except ValueError as exc:  # TemplateValueError: a value would inject
        outcome.error = f"logout request not sent: {exc}"
        return None
    refused = [f"cookie {name} left out of the logout (its value)" for name in jar.refused()]
    return request, run.problems + refused


async def _deliver(
    exchange: Exchange,
    policy: Policy,
    request: LogoutRequest,
    upstream: Upstream,
    deadline: float,
    outcome: LogoutOutcome,
    health: StoreHealth,
) -> Delivery:
    """Send the logout, bounded by what is left of the policy's timeout (mitmproxy has no upstream read
    timeout): whether the application accepted it, and what its answer did to the sessions."""
    seen, tracker = exchange.seen, exchange.tracker
    remaining = max(deadline - time.monotonic(), 0.001)
    outcome.sent_at = time.time()
    delivery = outcome.delivery = await send(
        upstream, request.method, request.path, request.headers, request.body, remaining
    )
    outcome.error = delivery.error
    outcome.accepted = delivery.status is not None and policy.logout.accepts(delivery.status)
    if delivery.status is not None:
        outcome.cookie_replaced = confirms_logout(delivery.set_cookies, session_jar(seen.session_ids))
        if delivery.set_cookies:
            await health.attempt(
                tracker.learn_from_response(
                    delivery.set_cookies,
                    seen.session_ids,
                    seen.client,
                    seen.user_agent,
                    time.time(),
                    logout=True,
                )
            )
    return delivery


async def _revoke_token(
    upstream: Upstream, endpoint: RevocationEndpoint, bearer: SessionId, deadline: float
) -> StepRecord:
    request = revocation_request(endpoint, bearer.value)
    answer = await send(
        upstream,
        request.method,
        request.path,
        request.headers,
        request.body,
        max(deadline - time.monotonic(), 0.001),
    )
    return StepRecord(request.method, request.path, answer.status, answer.error)


async def _revoke_issued_during_steps(
    tracker: SessionTracker,
    jar: CookieJar,
    carried: Sequence[SessionId],
    now: float,
    health: StoreHealth,
    outcome: LogoutOutcome,
) -> None:
    """An identifier the application issued to the attacker's session during the steps (a rotated
    session cookie) belongs to that session: revoked with it."""
    values = {sid.value for sid in carried}
    issued = [
        SessionId(kind, name, jar.cookies[name], name)
        for name in jar.set_by_app
        if name in jar.cookies
        and jar.cookies[name] not in values
        and (kind := tracker.rules.cookie_kind(name))
    ]
    if issued:
        reason = "forced logout: issued to the session during the logout steps"
        outcome.revoked.extend(await revoke_sessions(tracker, issued, reason, now, health))


def _proxy_only(
    flow: http.HTTPFlow, policy: Policy, outcome: LogoutOutcome, bearer: SessionId | None
) -> LogoutOutcome:
    """Nothing the application can log out: a bearer token without a revocation endpoint, Basic credentials."""
    outcome.result = LogoutResult.PROXY_ONLY
    parts = []
    if bearer is not None:
        parts.append(
            "the bearer token is revoked at the proxy (the policy names no logout.revocation_endpoint)"
        )
    if outcome.credentials_locked is not None:
        parts.append(
            f"the Basic credentials are refused at the proxy for {policy.lockout.credentials:g}s (lockout.credentials)"
        )
    if not parts:
        parts.append(
            "the request's credentials have no application logout; lockout.credentials is 0, so nothing is refused after this request"
        )
    outcome.reason = "; ".join(parts)
    _log(outcome)
    deny(flow, policy.actions.deny_status)
    return outcome


def _not_sent(flow: http.HTTPFlow, policy: Policy, outcome: LogoutOutcome) -> LogoutOutcome:
    outcome.result, outcome.reason = conclude(outcome, policy)
    _log(outcome)
    deny(flow, policy.actions.deny_status)
    return outcome


def _log(outcome: LogoutOutcome) -> None:
    sessions = ", ".join(outcome.revoked) or "none"
    text = f"LogoutGuard: {outcome.summary()} [revoked: {sessions}]"
    if outcome.warning:
        log.warning(text)
    else:
        log.info(text)
