"""Responses: the small changes of a flow that carry out a decision (deny, redirect, drop, strip cookies, answer).

No network, no policy: each function takes plain values and changes the flow in place.
"""

from __future__ import annotations

from collections.abc import Iterable

from mitmproxy import http

DENY_PAGE = (
    "<!doctype html><html><head><title>{status}</title></head>"
    "<body><h1>Request refused</h1><p>The request was refused.</p></body></html>\n"
)
HOP_BY_HOP = (
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "upgrade",
)


def deny(flow: http.HTTPFlow, status: int = 403) -> None:
    """Answer with a small generic page that says nothing about why."""
    flow.response = http.Response.make(
        status,
        DENY_PAGE.format(status=status).encode(),
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


def redirect(flow: http.HTTPFlow, location: str, set_cookies: Iterable[str] = ()) -> None:
    response = http.Response.make(
        302, b"", {"Location": location, "Cache-Control": "no-store", "Content-Length": "0"}
    )
    for value in set_cookies:
        response.headers.add("Set-Cookie", value)
    flow.response = response


def drop(flow: http.HTTPFlow) -> None:
    """Close the connection without an answer."""
    if flow.killable:
        flow.kill()
    else:
        deny(flow)


def page(flow: http.HTTPFlow, status: int, html: str, set_cookies: Iterable[str] = ()) -> None:
    """Answer with a page of our own (UTF-8 HTML, not cached), keeping the given Set-Cookie values."""
    response = http.Response.make(
        status,
        html.encode("utf-8"),
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )
    for value in set_cookies:
        response.headers.add("Set-Cookie", value)
    flow.response = response


def relay(flow: http.HTTPFlow, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Answer with a response another request got (its hop-by-hop headers left out)."""
    response = http.Response.make(status, body)
    response.headers = http.Headers(
        [
            (k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
            for k, v in headers
            if k.lower() not in HOP_BY_HOP
        ]
    )
    response.headers["Content-Length"] = str(len(body))
    flow.response = response


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
