"""The forced logout: revoke the session, send the application's own logout request (bounded), verify, outcome.

The logout request is built from the policy alone and goes to the configured upstream only: no
host, path or header of the malicious request can steer it. Only the session cookie(s), the CSRF
cookie and (when the policy keeps it) the Authorization header travel with it. The session is
revoked in the store first, durably, so it stays refused whatever the application does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import mode_specs
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .exchange import Exchange
from .policy import ClientAnswer, ClientResponse, Logout, LogoutMode, Policy, TemplateValueError, render
from .responses import deny, page, redirect, relay
from .sessions.cookies import parse_set_cookie
from .sessions.health import StoreHealth
from .sessions.store import StoreError
from .sessions.tracker import SessionTracker

log = logging.getLogger("logoutguard")

LOGOUT_USER_AGENT = "LogoutGuard (forced logout)"
ANSWER_BODY_KEPT = 64 * 1024  # of the application's logout response, passed on to the client


@dataclass(frozen=True)
class Upstream:
    """The protected application: where logout requests and verification probes go."""

    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.authority}{path}"


def parse_upstream(spec: str) -> Upstream | None:
    """`reverse:http://127.0.0.1:8080` -> Upstream; None for other modes."""
    try:
        mode = mode_specs.ProxyMode.parse(spec)
    except ValueError:
        return None
    if isinstance(mode, mode_specs.ReverseMode):
        return Upstream(mode.scheme if mode.scheme in ("http", "https") else "http", *mode.address)
    return None


def configured_upstream(base_url: str, modes: Sequence[str]) -> Upstream | None:
    """The application: `base_url` (guard_upstream) when set, else the first reverse mode. Never a request's host."""
    if base_url:
        return parse_upstream(f"reverse:{base_url}")
    for spec in modes:
        upstream = parse_upstream(spec)
        if upstream is not None:
            return upstream
    return None


@dataclass(frozen=True)
class LogoutRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def build_logout_request(
    policy: Policy, request: http.Request, session_cookies: dict[str, str], upstream: Upstream
) -> LogoutRequest:
    """The application's own logout request for this session, from the policy's templates.

    Raises TemplateValueError when a request value would inject (CR, LF, NUL).
    """
    logout: Logout = policy.logout
    cookies = {k: v for k, v in request.cookies.items(multi=True)}
    headers = {k.lower(): v for k, v in request.headers.items(multi=True)}
    cookie_names = set(session_cookies)
    if policy.csrf_cookie and policy.csrf_cookie in cookies:
        cookie_names.add(policy.csrf_cookie)
    session_header = cookie_header(session_cookies)

    def fill(template: str) -> str:
        return render(template, cookies, headers, session_header, policy.csrf_cookie)

    # Our own User-Agent, never the request's (it may carry the attack); a policy header may set one.
    out: list[tuple[str, str]] = [("Host", upstream.authority), ("User-Agent", LOGOUT_USER_AGENT)]
    cookie_value = "; ".join(f"{k}={cookies[k]}" for k in cookies if k in cookie_names)
    for value in (cookie_value, headers.get("authorization", "")):
        if any(c in value for c in "\r\n\x00"):
            raise TemplateValueError("a session cookie or credential carries CR, LF or NUL")
    if cookie_value:
        out.append(("Cookie", cookie_value))
    if logout.keep_authorization and "authorization" in headers:
        out.append(("Authorization", headers["authorization"]))
    for name, template in logout.headers:
        out = [(k, v) for k, v in out if k.lower() != name.lower()]
        value = fill(template)
        if value:
            out.append((name, value))
    # mitmproxy decodes header bytes as UTF-8 with surrogateescape: encode back to the exact bytes.
    body = fill(logout.body).encode("utf-8", "surrogateescape") if logout.body else b""
    if body:
        out.append(("Content-Type", logout.content_type))
    out.append(("Content-Length", str(len(body))))
    return LogoutRequest(logout.method, fill(logout.path), tuple(out), body)


def rewrite_to_logout(flow: http.HTTPFlow, logout: LogoutRequest, upstream: Upstream) -> None:
    """Turn the flow's request itself into the logout request to the configured upstream."""
    request = flow.request
    request.scheme = upstream.scheme
    request.host = upstream.host
    request.port = upstream.port
    request.method = logout.method
    request.path = logout.path
    request.headers = http.Headers(
        [
            (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
            for k, v in logout.headers
        ]
    )
    request.content = logout.body
    request.trailers = None


class Probe(StrEnum):
    """What asking the application with the old session cookie showed."""

    NOT_RUN = "not run"  # the policy names no check path, or the logout got no answer
    DEAD = "dead"
    ALIVE = "alive"  # the application's logout left the session alive
    FAILED = "failed"  # the probe itself got no usable answer


@dataclass
class Delivery:
    """What became of one logout request sent to the application."""

    status: int | None = None  # None: no answer (see error)
    error: str = ""
    elapsed_ms: float = 0.0
    set_cookies: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""  # bounded (ANSWER_BODY_KEPT)


@dataclass
class LogoutOutcome:
    """What a forced logout did: revoked, (maybe) sent and how it went, verified. Recorded as JSON."""

    mode: LogoutMode
    revoked: list[str]  # keyed hashes of the revoked session IDs
    locked_out: str | None = None  # the client network locked out (None: lockout off)
    method: str = ""  # of the logout request; "" when it could not be built (nothing sent)
    path: str = ""  # without the query
    delivery: Delivery | None = None  # None: not sent
    ok: bool = False  # the application answered with a status the policy expects
    error: str = ""
    confirmed: bool | None = None  # the application replaced or deleted the session cookie
    probe: Probe = Probe.NOT_RUN
    probe_error: str = ""
    original_request: dict[str, Any] | None = None  # of flows saved by older versions (they rewrote the flow)
    request: LogoutRequest | None = field(default=None, repr=False)  # as sent; never recorded (session cookie)

    @property
    def sent(self) -> bool:
        return self.delivery is not None

    @property
    def status(self) -> int | None:
        return self.delivery.status if self.delivery else None

    @property
    def session_dead(self) -> bool | None:
        """Whether probing showed the old session dead at the application (None: not known)."""
        return {Probe.DEAD: True, Probe.ALIVE: False}.get(self.probe)

    @property
    def defective_app_logout(self) -> bool:
        """The application answered its logout but kept the session alive."""
        return self.probe is Probe.ALIVE

    def probe_text(self) -> str:
        return f"failed: {self.probe_error}" if self.probe is Probe.FAILED else str(self.probe)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"mode": str(self.mode), "revoked": list(self.revoked)}
        if self.locked_out is not None:
            data["locked_out"] = self.locked_out
        if not self.method:
            return {**data, "ok": self.ok, "error": self.error}
        return {
            **data,
            "method": self.method,
            "path": self.path,
            "sent": self.sent,
            "status": self.status,
            "ok": self.ok,
            "error": self.error,
            "confirmed": self.confirmed,
            "probe": self.probe_text(),
            "elapsed_ms": round(self.delivery.elapsed_ms, 1) if self.delivery else 0.0,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogoutOutcome:
        """Back from `to_json` (flow metadata, maybe written by another version): tolerant of gaps."""
        try:
            mode = LogoutMode(data.get("mode", LogoutMode.REWRITE))
        except ValueError:
            mode = LogoutMode.REWRITE
        probe_text = str(data.get("probe", Probe.NOT_RUN))
        probe, _, why = probe_text.partition(": ")
        outcome = cls(
            mode,
            list(data.get("revoked") or []),
            locked_out=data.get("locked_out"),
            method=str(data.get("method", "")),
            path=str(data.get("path", "")),
            ok=bool(data.get("ok", False)),
            error=str(data.get("error", "")),
            confirmed=data.get("confirmed"),
            probe=Probe(probe) if probe in Probe._value2member_map_ else Probe.NOT_RUN,
            probe_error=why,
        )
        if data.get("sent"):
            outcome.delivery = Delivery(
                data.get("status"), str(data.get("error", "")), data.get("elapsed_ms", 0.0)
            )
        return outcome


def status_ok(status: int, logout: Logout) -> bool:
    return status in logout.expect_status if logout.expect_status else status < 500


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _wire(value: str) -> str:
    """A header value for tornado, which writes headers as latin-1: the request's original bytes as
    byte text (mitmproxy keeps a non-UTF-8 byte as a surrogate escape, which latin-1 cannot encode)."""
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


async def send_logout(logout: LogoutRequest, upstream: Upstream, timeout: float) -> Delivery:
    """Send the logout request out of band; never raises, never blocks the event loop."""
    started = time.monotonic()
    delivery = Delivery()
    request = HTTPRequest(
        upstream.url(logout.path),
        method=logout.method,
        headers={k: _wire(v) for k, v in logout.headers if k.lower() != "content-length"},
        body=logout.body if logout.method not in ("GET", "HEAD") or logout.body else None,
        connect_timeout=timeout,
        request_timeout=timeout,
        follow_redirects=False,
        allow_nonstandard_methods=True,
        validate_cert=False,
        decompress_response=False,  # sends no Accept-Encoding: only the policy's headers go out
    )
    try:
        response = await asyncio.wait_for(AsyncHTTPClient().fetch(request, raise_error=False), timeout + 1)
        delivery.status = response.code
        delivery.set_cookies = response.headers.get_list("Set-Cookie")
        delivery.headers = list(response.headers.get_all())
        delivery.body = (response.body or b"")[:ANSWER_BODY_KEPT]
        if response.code == 599:
            delivery.error = str(response.error or "connection failed")
            delivery.status = None
    except (TimeoutError, HTTPClientError, OSError) as exc:
        delivery.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    delivery.elapsed_ms = (time.monotonic() - started) * 1000
    return delivery


async def probe_session(upstream: Upstream, policy: Policy, session_cookie: str) -> tuple[Probe, str]:
    """Ask the application directly whether the old session still works: (DEAD | ALIVE | NOT_RUN | FAILED, why)."""
    verify = policy.logout.verify
    if not verify.check_path:
        return Probe.NOT_RUN, ""
    request = HTTPRequest(
        upstream.url(verify.check_path),
        headers={"Cookie": _wire(session_cookie), "Host": upstream.authority},
        connect_timeout=verify.timeout,
        request_timeout=verify.timeout,
        follow_redirects=False,
        validate_cert=False,
    )
    try:
        response = await asyncio.wait_for(
            AsyncHTTPClient().fetch(request, raise_error=False), verify.timeout + 1
        )
    except (TimeoutError, HTTPClientError, OSError) as exc:
        return Probe.FAILED, type(exc).__name__
    if response.code == 599:
        return Probe.FAILED, str(response.error)
    alive = response.code in verify.alive_status
    if alive and verify.alive_body is not None:
        alive = verify.alive_body.encode() in (response.body or b"")
    return (Probe.ALIVE if alive else Probe.DEAD), ""


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


def answer_client(flow: http.HTTPFlow, client: ClientResponse, delivery: Delivery) -> None:
    """Answer the client of a forced logout as the policy says: the application's own logout
    response (502 when it gave none), a redirect, or a page; the app's Set-Cookie headers are kept."""
    if client.type is ClientAnswer.REDIRECT:
        redirect(flow, client.location, delivery.set_cookies)
    elif client.type is ClientAnswer.APPLICATION:
        if delivery.status is None:
            deny(flow, 502)
        else:
            relay(flow, delivery.status, delivery.headers, delivery.body)
    else:
        page(flow, client.status, client.body, delivery.set_cookies)


async def revoke_sessions(
    tracker: SessionTracker,
    session_ids: Sequence[tuple[str, str]],
    reason: str,
    now: float,
    health: StoreHealth,
) -> list[str]:
    """Revoke every session ID; a store failure is logged and the hashes are still returned."""
    try:
        hashes = [await tracker.revoke(value, reason, now) for _, value in session_ids]
    except StoreError as exc:
        health.failed(exc)
        log.error(
            "LogoutGuard: could not record the revocation (store unavailable); the logout still goes on"
        )
        return [tracker.hasher.hash(value) for _, value in session_ids]
    health.ok()
    return hashes


async def force_logout(
    exchange: Exchange, policy: Policy, upstream: Upstream | None, health: StoreHealth
) -> LogoutOutcome:
    """Revoke first (durably), then the application's own logout request, verified; the flow is
    answered as the policy says (and denied if the logout cannot be sent). The flow's request stays
    as the client sent it; `outcome.request` is the logout as sent (shown by logout_flow.py)."""
    flow, seen, tracker = exchange.flow, exchange.seen, exchange.tracker
    logout = policy.logout
    revoked = await revoke_sessions(
        tracker, seen.session_ids, f"forced logout: {exchange.judgement.situation}", seen.at, health
    )
    outcome = LogoutOutcome(logout.mode, revoked)
    if policy.lockout.enabled:
        outcome.locked_out = await tracker.lockout(seen.client, seen.at + policy.lockout.duration)
    cookies = dict(seen.session_ids)
    try:
        if upstream is None:
            raise ValueError("no reverse-proxy upstream is configured (guard_upstream or --mode reverse:URL)")
        request = build_logout_request(policy, flow.request, cookies, upstream)
    except ValueError as exc:  # TemplateValueError among them
        outcome.error = f"logout request not sent: {exc}"
        log.warning(f"LogoutGuard: forced logout: {outcome.error}; the session stays revoked")
        deny(flow, policy.actions.deny_status)
        return outcome
    outcome.method, outcome.path = request.method, request.path.split("?", 1)[0]
    # The flow keeps the attacker's request as sent; the logout is shown as a flow of its own (logout_flow.py).
    outcome.request = request
    # Sent by the addon, bounded by the policy's timeout (mitmproxy has no upstream read timeout).
    delivery = outcome.delivery = await send_logout(request, upstream, logout.timeout)
    outcome.error = delivery.error
    outcome.ok = delivery.status is not None and status_ok(delivery.status, logout)
    if delivery.status is not None:
        outcome.confirmed = confirms_logout(delivery.set_cookies, cookies)
        if delivery.set_cookies:  # what the application's answer did to the sessions
            await health.attempt(
                tracker.learn_from_response(
                    delivery.set_cookies, seen.session_ids, seen.client, seen.user_agent, time.time()
                )
            )
        outcome.probe, outcome.probe_error = await probe_session(upstream, policy, cookie_header(cookies))
    if not outcome.ok:
        reason = delivery.error or f"unexpected status {delivery.status}"
        log.warning(f"LogoutGuard: forced logout request failed ({reason}); the session stays revoked")
    answer_client(flow, logout.client_response, delivery)
    return outcome
