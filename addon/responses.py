"""Responses: a decision plus the policy -> a change of the flow (logout, deny, redirect, drop, strip).

The logout request is built from the policy alone and goes to the configured upstream only: no
host, path or header of the malicious request can steer it. Only the session cookie(s), the CSRF
cookie and (when the policy keeps it) the Authorization header travel with it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from mitmproxy import http
from mitmproxy.proxy import mode_specs
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .policy import ClientResponse, Logout, Policy, TemplateValueError, render

DENY_PAGE = (
    "<!doctype html><html><head><title>{status}</title></head>"
    "<body><h1>Request refused</h1><p>The request was refused.</p></body></html>\n"
)
ORIGINAL_BODY_KEPT = 64 * 1024
SECRET_HEADERS = ("cookie", "authorization", "proxy-authorization")
LOGOUT_USER_AGENT = "LogoutGuard (forced logout)"


@dataclass(frozen=True)
class Upstream:
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


def deny(flow: http.HTTPFlow, status: int = 403) -> None:
    """Answer with a small generic page that says nothing about why."""
    flow.response = http.Response.make(
        status,
        DENY_PAGE.format(status=status).encode(),
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


def redirect(flow: http.HTTPFlow, location: str, set_cookies: list[str] | None = None) -> None:
    response = http.Response.make(
        302, b"", {"Location": location, "Cache-Control": "no-store", "Content-Length": "0"}
    )
    for value in set_cookies or []:
        response.headers.add("Set-Cookie", value)
    flow.response = response


def drop(flow: http.HTTPFlow) -> None:
    """Close the connection without an answer."""
    if flow.killable:
        flow.kill()
    else:
        deny(flow)


def strip_cookies(request: http.Request, names: set[str]) -> int:
    """Remove the named cookies from the request; returns how many were removed."""
    kept = [(k, v) for k, v in request.cookies.items(multi=True) if k not in names]
    removed = len(request.cookies.items(multi=True)) - len(kept)
    if removed:
        if kept:
            request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in kept)
        else:
            del request.headers["Cookie"]
    return removed


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
    session_header = "; ".join(f"{k}={v}" for k, v in session_cookies.items())

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


def original_request_record(request: http.Request) -> dict[str, object]:
    """What the malicious request was, for flow metadata: secrets redacted, body bounded."""
    body = request.raw_content or b""
    return {
        "method": request.method,
        "path": request.path,
        "http_version": request.http_version,
        "headers": [
            [k, "[redacted]" if k.lower() in SECRET_HEADERS else v]
            for k, v in request.headers.items(multi=True)
        ],
        "body": body[:ORIGINAL_BODY_KEPT].decode("utf-8", "replace"),
        "body_length": len(body),
    }


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


@dataclass
class LogoutOutcome:
    sent: bool = False
    status: int | None = None
    ok: bool = False
    error: str = ""
    confirmed: bool | None = None  # the app replaced or deleted the session cookie
    probe: str = "not run"  # dead | alive | failed: ... | not run
    elapsed_ms: float = 0.0
    set_cookies: list[str] = field(default_factory=list)
    body: bytes = b""  # the application's logout response body, bounded
    headers: list[tuple[str, str]] = field(default_factory=list)  # and its headers

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "status": self.status,
            "ok": self.ok,
            "error": self.error,
            "confirmed": self.confirmed,
            "probe": self.probe,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def status_ok(status: int, logout: Logout) -> bool:
    return status in logout.expect_status if logout.expect_status else status < 500


async def send_logout(logout: LogoutRequest, upstream: Upstream, timeout: float) -> LogoutOutcome:
    """Send the logout request out of band; never raises, never blocks the event loop."""
    started = time.monotonic()
    outcome = LogoutOutcome(sent=True)
    request = HTTPRequest(
        upstream.url(logout.path),
        method=logout.method,
        headers=dict(_merge(logout.headers)),
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
        outcome.status = response.code
        outcome.set_cookies = response.headers.get_list("Set-Cookie")
        outcome.headers = list(response.headers.get_all())
        outcome.body = (response.body or b"")[:ORIGINAL_BODY_KEPT]
        if response.code == 599:
            outcome.error = str(response.error or "connection failed")
            outcome.status = None
    except (TimeoutError, HTTPClientError, OSError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    outcome.elapsed_ms = (time.monotonic() - started) * 1000
    return outcome


def _wire(value: str) -> str:
    """A header value for tornado, which writes headers as latin-1: the request's original bytes as
    byte text (mitmproxy keeps a non-UTF-8 byte as a surrogate escape, which latin-1 cannot encode)."""
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def _merge(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(k, _wire(v)) for k, v in headers if k.lower() not in ("content-length",)]


async def probe_session(upstream: Upstream, policy: Policy, cookie_header: str) -> str:
    """Ask the application directly whether the old session still works: dead | alive | failed: why."""
    verify = policy.logout.verify
    if not verify.check_path:
        return "not run"
    request = HTTPRequest(
        upstream.url(verify.check_path),
        headers={"Cookie": _wire(cookie_header), "Host": upstream.authority},
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
        return f"failed: {type(exc).__name__}"
    if response.code == 599:
        return f"failed: {response.error}"
    alive = response.code in verify.alive_status
    if alive and verify.alive_body is not None:
        alive = verify.alive_body.encode() in (response.body or b"")
    return "alive" if alive else "dead"


def confirms_logout(set_cookie_values: list[str], session_cookies: dict[str, str]) -> bool:
    """Did the application's response replace or delete the session cookie(s) the request carried?"""
    from .sessions.cookies import parse_set_cookie

    for value in set_cookie_values:
        cookie = parse_set_cookie(value)
        if (
            cookie is not None
            and cookie.name in session_cookies
            and cookie.value != session_cookies[cookie.name]
        ):
            return True
    return False


HOP_BY_HOP = (
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "upgrade",
)


def answer_after_logout(flow: http.HTTPFlow, client: ClientResponse, outcome: LogoutOutcome) -> None:
    """Answer the client of a forced logout as the policy says: the application's own logout
    response (502 when it gave none), a redirect, or a page; the app's Set-Cookie headers are kept."""
    if client.type == "redirect":
        redirect(flow, client.location, outcome.set_cookies)
        return
    if client.type == "application":
        if outcome.status is None:
            deny(flow, 502)
            return
        response = http.Response.make(outcome.status, outcome.body)
        response.headers = http.Headers(
            [
                (k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
                for k, v in outcome.headers
                if k.lower() not in HOP_BY_HOP
            ]
        )
        response.headers["Content-Length"] = str(len(outcome.body))
    else:
        response = http.Response.make(
            client.status,
            client.body.encode("utf-8"),
            {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        )
        for value in outcome.set_cookies:
            response.headers.add("Set-Cookie", value)
    flow.response = response
