"""Requests LogoutGuard itself sends to the application (logout steps, the logout, probes): where they go, sent bounded in time.

Every request goes to the configured upstream only (`Upstream`: from `guard_upstream` or the
`--mode reverse:` URL), never to a host taken from a request. `send` never raises and never blocks
the event loop (tornado's AsyncHTTPClient, a mitmproxy dependency); it gives back a `Delivery`:
status (None: no answer), headers, Set-Cookie values and a bounded body.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mitmproxy.proxy import mode_specs
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .deadline import MAX_EXTRA_S, LoopAwareDeadline

ANSWER_BODY_KEPT = 256 * 1024  # of an answer: kept for the client (the logout response) and for token taking
USER_AGENT = "LogoutGuard (forced logout)"


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


@dataclass
class Delivery:
    """What became of one request sent to the application."""

    status: int | None = None  # None: no answer (see error)
    error: str = ""
    elapsed_ms: float = 0.0
    set_cookies: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""  # bounded (ANSWER_BODY_KEPT)

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), "")


def wire(value: str) -> str:
    """A header value for tornado, which writes headers as latin-1: the request's original bytes as
    byte text (mitmproxy keeps a non-UTF-8 byte as a surrogate escape, which latin-1 cannot encode)."""
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


async def send(
    upstream: Upstream,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    timeout: float,
) -> Delivery:
    """Send one request to the application, answered within `timeout` seconds or given up; never raises.

    Only the given headers go out (no Accept-Encoding: the answer is not decompressed), redirects are
    not followed, the Host is the upstream's.
    """
    started = time.monotonic()
    delivery = Delivery()
    timeout = max(timeout, 0.001)
    out = {k: wire(v) for k, v in headers if k.lower() not in ("content-length", "host")}
    out["Host"] = upstream.authority
    kept = bytearray()

    def keep(chunk: bytes) -> None:  # the body in memory stays bounded, however much the app sends
        if len(kept) < ANSWER_BODY_KEPT:
            kept.extend(chunk[: ANSWER_BODY_KEPT - len(kept)])

    request = HTTPRequest(
        upstream.url(path),
        method=method,
        headers=out,
        body=body if method not in ("GET", "HEAD") or body else None,
        # tornado's own timers only back up the deadline below (they would count the loop's lateness)
        connect_timeout=timeout + MAX_EXTRA_S + 1,
        request_timeout=timeout + MAX_EXTRA_S + 1,
        follow_redirects=False,
        allow_nonstandard_methods=True,
        validate_cert=False,
        decompress_response=False,
        streaming_callback=keep,
    )
    try:
        # The application's time, not the proxy's: a busy loop that reads the answer late is no timeout.
        async with LoopAwareDeadline(timeout):
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        delivery.status = response.code
        delivery.set_cookies = response.headers.get_list("Set-Cookie")
        delivery.headers = list(response.headers.get_all())
        delivery.body = bytes(kept)
        if response.code == 599:
            delivery.error = str(response.error or "connection failed")
            delivery.status = None
    except (TimeoutError, HTTPClientError, OSError) as exc:
        delivery.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    delivery.elapsed_ms = (time.monotonic() - started) * 1000
    return delivery
