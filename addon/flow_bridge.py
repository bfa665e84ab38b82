"""The flow bridge: mitmproxy requests and responses -> engine Transactions, and the session IDs a request carries.

The one place that reads mitmproxy's request objects for judging. A live flow is judged on its
request as it arrived; a saved flow that LogoutGuard rewrote into a logout request is judged on its
original request, which the rewrite kept (secrets redacted) in the flow's metadata.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from mitmproxy import http
from mitmproxy.net.http.http1 import read_request_head

from .engine.transaction import (
    DEFAULT_BODY_LIMIT,
    DEFAULT_LIMITS,
    Limits,
    Transaction,
    build_transaction,
    byte_text,
    parse_cookie_header,
)
from .sessions.cookies import SessionCookieMatcher, request_session_ids
from .sessions.identifiers import IdentifierRules, SessionId, redact_path, request_identifiers

META_KEY = "logoutguard"  # flow.metadata[META_KEY]: LogoutGuard's record of the flow (see flow_record.py)
ORIGINAL_BODY_KEPT = 64 * 1024
SECRET_HEADERS = ("cookie", "authorization", "proxy-authorization")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class SeenRequest:
    """A request as the pipeline judges it: its Transaction and what the session side needs."""

    tx: Transaction
    session_ids: tuple[SessionId, ...]  # every session identifier the request carries
    user_agent: str | None
    at: float  # when: the wall clock for a live flow, the recorded time for a saved one
    live: bool

    @property
    def client(self) -> str:
        return self.tx.client_addr


def read_request(
    flow: http.HTTPFlow, rules: IdentifierRules, body_limit: int, limits: Limits = DEFAULT_LIMITS
) -> SeenRequest:
    """The request of a flow as the pipeline judges it (see request_to_judge). Its session IDs are
    read from the cookies the Transaction kept (at most limits.cookies of them)."""
    request = request_to_judge(flow)
    fields = request.data.headers.fields
    named = headers_named(fields, _READ_HEADERS)
    tx = build_transaction(
        method=request.data.method,
        uri=request.data.path,
        protocol=request.data.http_version,
        headers=fields,
        body=request_body(request, b"content-encoding" in named),
        client_addr=client_address(flow),
        body_limit=body_limit,
        limits=limits,
    )
    live = flow.live
    return SeenRequest(
        tx=tx,  # its uri: the request's path as sent (latin-1), what the path parameters are read from
        session_ids=tuple(request_identifiers(tx.cookies, tx.uri, named.get(b"authorization"), rules)),
        user_agent=named.get(b"user-agent"),
        at=time.time() if live else flow.request.timestamp_start,
        live=live,
    )


_READ_HEADERS = frozenset({b"user-agent", b"authorization", b"content-encoding"})


def headers_named(fields: tuple[tuple[bytes, bytes], ...], names: frozenset[bytes]) -> dict[bytes, str]:
    """The headers of `names` (lower case) as mitmproxy's `Headers.get` gives them (several folded
    with ", ", decoded as it decodes them), all found in one pass (each Headers.get is a pass)."""
    found: dict[bytes, str] = {}
    for key, value in fields:
        lower = key.lower()
        if lower in names:  # (a header sent twice is rare: its values folded as they come)
            text = value.decode("utf-8", "surrogateescape")
            found[lower] = f"{found[lower]}, {text}" if lower in found else text
    return found


def client_address(flow: http.HTTPFlow) -> str:
    peer = flow.client_conn.peername
    return peer[0] if peer else ""


def carried_session_ids(
    cookie_headers: Iterable[str], matcher: SessionCookieMatcher
) -> list[tuple[str, str]]:
    """The session IDs in a request's Cookie headers, split as the rules' REQUEST_COOKIES are."""
    return request_session_ids(
        (pair for value in cookie_headers for pair in parse_cookie_header(value)), matcher
    )


def carried_identifiers(
    request: http.Request, rules: IdentifierRules, cookies: Iterable[tuple[str, str]] | None = None
) -> list[SessionId]:
    """Every session identifier of a request: identifier cookies (split as the rules' REQUEST_COOKIES
    are, or the given pairs), session path parameters (`;jsessionid=`), and the Authorization credential."""
    pairs = (
        [pair for value in request.headers.get_all("cookie") for pair in parse_cookie_header(value)]
        if cookies is None
        else cookies
    )
    authorization = request.headers.get("authorization")
    return request_identifiers(pairs, request.data.path.decode("latin-1"), authorization, rules)


def request_body(request: http.Request, encoded: bool | None = None) -> bytes:
    """The body as the application will read it: content-encoding undone when possible, else raw.
    `encoded`: whether the request has a Content-Encoding header, when the caller knows already."""
    if request.raw_content is None:
        return b""
    if not (("content-encoding" in request.headers) if encoded is None else encoded):
        return request.raw_content
    return request.get_content(strict=False) or b""


def from_request(
    request: http.Request,
    client_addr: str = "",
    body_limit: int = DEFAULT_BODY_LIMIT,
    limits: Limits = DEFAULT_LIMITS,
) -> Transaction:
    return build_transaction(
        method=request.data.method,
        uri=request.data.path,
        protocol=request.data.http_version,
        headers=list(request.data.headers.fields),
        body=request_body(request),
        client_addr=client_addr,
        body_limit=body_limit,
        limits=limits,
    )


WEBSOCKET_HEADERS = ("host", "user-agent", "accept", "origin")  # the handshake's, kept with each message


def from_websocket_message(
    handshake: http.Request,
    content: bytes,
    client_addr: str = "",
    body_limit: int = DEFAULT_BODY_LIMIT,
    limits: Limits = DEFAULT_LIMITS,
) -> Transaction:
    """A client's WebSocket message as a request the rules judge: the handshake's path (its query was
    judged with the handshake) and identifying headers, the message as the body. A JSON or form-shaped
    message is parsed into ARGS as a body of that shape would be; any other is both REQUEST_BODY and
    the argument `websocket_message` (a chat line is free text, like a form field)."""
    headers = [
        (k, v) for k, v in handshake.data.headers.fields if k.decode("latin-1").lower() in WEBSOCKET_HEADERS
    ]
    tx = build_transaction(
        method="POST",
        uri=handshake.data.path.split(b"?", 1)[0],
        protocol=handshake.data.http_version,
        headers=headers,
        body=content,
        client_addr=client_addr,
        body_limit=body_limit,
        limits=limits,
    )
    if tx.body_args or not tx.body:
        return tx
    return replace(tx, body_args=(("websocket_message", tx.body),))


def with_response(
    tx: Transaction, response: http.Response, body_limit: int = DEFAULT_BODY_LIMIT
) -> Transaction:
    # mitmproxy's header fields are bytes: decoded as byte_text does (one character per byte)
    headers = tuple([(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.data.headers.fields])
    if any(k.lower() == "content-encoding" for k, _ in headers):
        body = response.get_content(strict=False) or b""
    else:  # what get_content gives then, without its Headers lookup
        body = response.raw_content or b""
    return tx.with_response(response.status_code, headers, byte_text(body[:body_limit]))


def set_cookie_values(response: http.Response) -> list[str]:
    """The response's Set-Cookie values, as `response.headers.get_all("set-cookie")` gives them."""
    return [
        v.decode("utf-8", "surrogateescape")
        for k, v in response.data.headers.fields
        if k.lower() == b"set-cookie"
    ]


def parse_raw_request(data: bytes, body_limit: int = DEFAULT_BODY_LIMIT) -> Transaction:
    """A raw HTTP/1 request (head, blank line, body) as found in a file -> Transaction.

    Bare LF line ends are accepted. Raises ValueError for a malformed request line or header.
    """
    data = data.lstrip(b"\r\n")
    if b"\r\n\r\n" in data:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
    else:
        head, _, body = data.partition(b"\n\n")
        lines = head.split(b"\n")
    request = read_request_head([line + b"\r\n" for line in lines])
    request.data.content = body
    return from_request(request, "", body_limit)


def original_request_record(request: http.Request, rules: IdentifierRules | None = None) -> dict[str, object]:
    """What a request was before it was rewritten, for flow metadata: secrets (session path
    parameters included) redacted, body bounded."""
    body = request.raw_content or b""
    return {
        "method": request.method,
        "path": redact_path(request.path, rules or IdentifierRules()),
        "http_version": request.http_version,
        "headers": [
            [k, REDACTED if k.lower() in SECRET_HEADERS else v] for k, v in request.headers.items(multi=True)
        ],
        "body": body[:ORIGINAL_BODY_KEPT].decode("utf-8", "replace"),
        "body_length": len(body),
    }


def request_to_judge(flow: http.HTTPFlow) -> http.Request:
    """The request to judge: a saved flow that was rewritten into a logout is judged on its original
    request (kept in its metadata; its secret headers were redacted and stay out)."""
    original = (flow.metadata.get(META_KEY) or {}).get("original_request") if not flow.live else None
    if not original:
        return flow.request
    request = flow.request.copy()
    request.method = original["method"]
    request.path = original["path"]
    # The secret headers were redacted in the record; the rewritten request carries exactly the
    # original's session cookies and credentials, so the session is judged as it was.
    secrets = [(k, v) for k, v in flow.request.headers.fields if k.lower() in (b"cookie", b"authorization")]
    request.headers = http.Headers(
        [(k.encode(), v.encode()) for k, v in original["headers"] if v != REDACTED] + secrets
    )
    request.content = original["body"].encode("utf-8")
    return request
