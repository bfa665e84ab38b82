"""Session cookies: which names are session cookies, what a response's Set-Cookie does to them, what a request carries.

Set-Cookie values are parsed with the algorithm browsers follow (RFC 6265 section 5.2), written
out here rather than taken from `mitmproxy.net.http.cookies.parse_set_cookie_header`: that parser
strips the quotes around a value, keeps the spaces around names and values, and splits a single
header at commas, while a browser keeps `"abc"` with its quotes and sends it back verbatim. The ID
learned from a response must be byte for byte the one the browser will send, or every later
request would look like an unknown session. Request cookies arrive here as (name, value) pairs:
the flow bridge splits the Cookie headers with the parser that builds REQUEST_COOKIES, so the
tracker and the rules see the same pairs.

Nothing here raises on bad input: garbage yields no event rather than an exception.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Literal, Protocol

# Session cookie names of the common platforms (after the list in OWASP CRS rule 943 and the
# framework defaults): Java, PHP, classic ASP (ASPSESSIONIDxxxxxxxx), ASP.NET, ColdFusion,
# WebLogic, Express (connect.sid), Rails/Laravel/CodeIgniter style `<app>_session`, and generic
# session/sid names. `__Host-` and `__Secure-` prefixes are allowed in front of each.
DEFAULT_SESSION_COOKIE_PATTERN = (
    r"^(?:__host-|__secure-)?(?:"
    r"jsessionid|phpsessid|phpsession|aspsessionid[a-z]*|asp\.net_sessionid|\.aspnetcore\.session"
    r"|cfid|cftoken|cfsid|jservsession|jwsession|weblogicsession"
    r"|session|sessionid|session[_-]id|sessid|sid|connect\.sid"
    r"|[a-z0-9_.-]*_session|[a-z0-9_.-]*_sessid"
    r")$"
)

EventKind = Literal["issued", "ended"]


class SessionCookieMatcher:
    """Decides which cookie names are session cookies: a case-insensitive regex plus exact names."""

    __slots__ = ("_names", "_regex", "pattern")

    def __init__(self, pattern: str | None = None, names: Iterable[str] = ()) -> None:
        """`pattern` None: the default pattern; "": no pattern (only `names`); `names` match exactly, case included."""
        self.pattern = DEFAULT_SESSION_COOKIE_PATTERN if pattern is None else pattern
        try:
            self._regex = re.compile(self.pattern, re.IGNORECASE) if self.pattern else None
        except re.error as exc:
            raise ValueError(f"session cookie pattern {pattern!r}: {exc}") from exc
        self._names = frozenset(names)

    def matches(self, name: str) -> bool:
        if name in self._names:
            return True
        return self._regex is not None and self._regex.search(name) is not None

    def __repr__(self) -> str:
        return f"SessionCookieMatcher(pattern={self.pattern!r}, names={sorted(self._names)!r})"


@dataclass(frozen=True, slots=True)
class SetCookie:
    """One parsed Set-Cookie header: name, value (quotes kept) and attributes (names lower-cased)."""

    name: str
    value: str
    attributes: tuple[tuple[str, str], ...] = ()

    def attribute(self, name: str) -> str | None:
        """The last value of an attribute (RFC 6265: the last one wins), None when absent."""
        found = None
        for key, value in self.attributes:
            if key == name:
                found = value
        return found


@dataclass(frozen=True, slots=True)
class CookieScope:
    """Where a browser keeps a cookie: what a Set-Cookie that deletes it must repeat."""

    path: str = "/"
    domain: str = ""  # "" : host-only
    secure: bool = False

    @classmethod
    def of(cls, cookie: SetCookie) -> CookieScope:
        path = cookie.attribute("path") or ""
        domain = (cookie.attribute("domain") or "").lstrip(".")
        secure = cookie.attribute("secure") is not None or cookie.name.lower().startswith(
            ("__secure-", "__host-")
        )
        return cls(path if path.startswith("/") else "/", domain, secure)


@dataclass(frozen=True, slots=True)
class CookieEvent:
    """What one Set-Cookie does to a session cookie: issues an ID, or ends the cookie."""

    kind: EventKind
    name: str
    value: str | None  # the ID for "issued"; for "ended" the value sent, None when empty
    reason: str
    scope: CookieScope = CookieScope()


def parse_set_cookie(header_value: str) -> SetCookie | None:
    """One Set-Cookie header value as a browser reads it (RFC 6265 5.2); None when it sets nothing."""
    pair, _, attrs_text = header_value.partition(";")
    if "=" in pair:
        name, _, value = pair.partition("=")
    else:  # RFC 6265bis: a pair without '=' is a value with an empty name
        name, value = "", pair
    name, value = name.strip(" \t"), value.strip(" \t")
    if not name and not value:
        return None
    attributes = []
    for piece in attrs_text.split(";"):
        key, _, attr_value = piece.partition("=")
        key = key.strip(" \t").lower()
        if key:
            attributes.append((key, attr_value.strip(" \t")))
    return SetCookie(name, value, tuple(attributes))


def parse_max_age(text: str) -> int | None:
    """Max-Age delta seconds, None when malformed (RFC 6265 5.2.2: then the attribute is ignored)."""
    digits = text[1:] if text.startswith("-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return int(text)


def parse_http_date(text: str) -> float | None:
    """An Expires date as a UNIX timestamp (dates without a zone taken as UTC), None when unparseable."""
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


def ending_reason(cookie: SetCookie, now: float) -> str | None:
    """Why this Set-Cookie deletes the cookie (Max-Age <= 0, Expires in the past, empty value), else None."""
    max_age_text = cookie.attribute("max-age")
    max_age = parse_max_age(max_age_text) if max_age_text is not None else None
    if max_age is not None:  # Max-Age wins over Expires
        if max_age <= 0:
            return f"max-age={max_age}"
    else:
        expires_text = cookie.attribute("expires")
        expires = parse_http_date(expires_text) if expires_text is not None else None
        if expires is not None and expires <= now:
            return "expires in the past"
    if cookie.value in ("", '""'):
        return "empty value"
    return None


def cookie_event(cookie: SetCookie, now: float) -> CookieEvent:
    reason = ending_reason(cookie, now)
    if reason is not None:
        value = cookie.value if cookie.value not in ("", '""') else None
        return CookieEvent("ended", cookie.name, value, reason, CookieScope.of(cookie))
    return CookieEvent("issued", cookie.name, cookie.value, "issued", CookieScope.of(cookie))


def expiring_set_cookie(name: str, scope: CookieScope) -> str:
    """A Set-Cookie value that deletes the cookie `name` kept with this scope."""
    text = f"{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path={scope.path}"
    if scope.domain:
        text += f"; Domain={scope.domain}"
    return text + ("; Secure" if scope.secure else "")


class NameMatcher(Protocol):
    def matches(self, name: str) -> bool: ...


def session_cookie_events(
    set_cookie_values: Iterable[str], now: float, matcher: NameMatcher
) -> list[CookieEvent]:
    """The session cookie events of one response, in header order (other cookies are ignored)."""
    events = []
    for header_value in set_cookie_values:
        cookie = parse_set_cookie(header_value)
        if cookie is not None and cookie.name and matcher.matches(cookie.name):
            events.append(cookie_event(cookie, now))
    return events


def request_session_ids(
    cookies: Iterable[tuple[str, str]], matcher: SessionCookieMatcher
) -> list[tuple[str, str]]:
    """The (cookie name, ID) pairs of session cookies among a request's cookies, duplicates dropped.

    Every value is kept, also several for one name (cookie tossing sends two), so that none can hide
    behind another; empty values are no session.
    """
    found: list[tuple[str, str]] = []
    for name, value in cookies:
        if value and matcher.matches(name) and (name, value) not in found:
            found.append((name, value))
    return found
