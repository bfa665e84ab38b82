"""Responses: the small changes of a flow that carry out a decision (deny, redirect, drop, strip identifiers, expire cookies, answer).

No network, no policy: each function takes plain values and changes the flow in place. Refusing a
revoked or ended session must not lock its owner out: `signed_out` answers with a page that leads
to the login page, and `expire_cookies` deletes the refused cookies in the browser (same name, path
and domain as the application set them), so the next request goes through without them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from mitmproxy import http

from .engine.transaction import parse_cookie_header
from .sessions.identifiers import SessionId, without_path_parameters

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


SIGNED_OUT_PAGE = (
    "<!doctype html><html><head><title>Signed out</title></head><body><h1>Your session has ended</h1>"
    '<p>Please <a href="{login}">sign in again</a>.</p></body></html>\n'
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


def signed_out(
    flow: http.HTTPFlow, status: int, login_location: str, set_cookies: Iterable[str] = ()
) -> None:
    """Refuse an ended session: a page that says so and links to the login page (not cached)."""
    page(flow, status, SIGNED_OUT_PAGE.format(login=html.escape(login_location, quote=True)), set_cookies)


def add_set_cookies(response: http.Response, set_cookies: Iterable[str]) -> None:
    """Add Set-Cookie headers, except for cookies the response already sets (the application's own wins)."""
    present = {
        value.split("=", 1)[0].strip() for value in response.headers.get_all("set-cookie") if "=" in value
    }
    for value in set_cookies:
        if value.split("=", 1)[0].strip() not in present:
            response.headers.add("Set-Cookie", value)


def strip_cookies(request: http.Request, names: set[str]) -> int:
    """Remove the named cookies from the request; returns how many were removed."""
    return strip_identifiers(request, [], names)


def strip_identifiers(request: http.Request, refused: Iterable[SessionId], names: Iterable[str] = ()) -> int:
    """Remove exactly the refused identifiers (cookie name and value, path parameters), and every
    cookie of `names`; other cookies, a fresh session cookie among them, stay. Returns how many went."""
    refused = list(refused)
    drop_pairs = {(sid.name, sid.value) for sid in refused if sid.is_cookie}
    drop_names = set(names)
    removed = 0
    headers = request.headers.get_all("cookie")
    kept: list[str] = []
    for header in headers:
        for name, value in parse_cookie_header(header):
            if name in drop_names or (name, value) in drop_pairs:
                removed += 1
            else:
                kept.append(f"{name}={value}")
    if removed:
        if kept:
            request.headers["Cookie"] = "; ".join(kept)
        else:
            del request.headers["Cookie"]
    path = without_path_parameters(request.path, refused)
    if path != request.path:
        removed += 1
        request.path = path
    return removed
