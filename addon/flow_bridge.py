"""mitmproxy request -> engine Transaction (the one place that reads mitmproxy's request objects)."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.net.http.http1 import read_request_head

from .engine.transaction import DEFAULT_BODY_LIMIT, Transaction, build_transaction, byte_text


def request_body(request: http.Request) -> bytes:
    """The body as the application will read it: content-encoding undone when possible, else raw."""
    if request.raw_content is None:
        return b""
    if "content-encoding" not in request.headers:
        return request.raw_content
    return request.get_content(strict=False) or b""


def from_request(
    request: http.Request, client_addr: str = "", body_limit: int = DEFAULT_BODY_LIMIT
) -> Transaction:
    return build_transaction(
        method=request.data.method,
        uri=request.data.path,
        protocol=request.data.http_version,
        headers=list(request.data.headers.fields),
        body=request_body(request),
        client_addr=client_addr,
        body_limit=body_limit,
    )


def with_response(
    tx: Transaction, response: http.Response, body_limit: int = DEFAULT_BODY_LIMIT
) -> Transaction:
    body = response.get_content(strict=False) or b""
    return tx.with_response(
        response.status_code,
        tuple((byte_text(k), byte_text(v)) for k, v in response.headers.fields),
        byte_text(body[:body_limit]),
    )


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
