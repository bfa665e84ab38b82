"""Session identifiers a request carries: session cookies, URL path parameters, remember-me cookies, bearer and Basic credentials.

An application can take a session from more than the Cookie header: servlet containers from the
path (`/account;jsessionid=ID`), persistent-login ("remember me") cookies log a user back in on
their own, and APIs carry `Authorization: Bearer` tokens or Basic credentials. Each is a
`SessionId` of its kind; all are secrets, so this module also redacts them from text LogoutGuard
writes (paths, excerpts). Pure: no I/O, nothing here raises on odd input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ..engine.memo import Memo
from .cookies import SessionCookieMatcher

COOKIE_KINDS = 1024  # cookie names whose kind an IdentifierRules remembers

# Remember-me cookie names of the common frameworks: Flask-Login `remember_token`, Devise
# `remember_user_token`, Laravel `remember_web_<hash>`, Spring Security `remember-me`, Apache Shiro
# `rememberMe`, and the like (`__Host-` / `__Secure-` prefixes allowed).
DEFAULT_REMEMBER_PATTERN = (
    r"^(?:__host-|__secure-)?(?:remember(?:[-_]?me|[-_][a-z0-9_]+)|spring_security_remember_me_cookie)$"
)
DEFAULT_PATH_PARAMETERS = {"jsessionid": "JSESSIONID"}  # path parameter -> the cookie it stands for
REDACTED = "[redacted]"
_PATH_PARAMETER = re.compile(r";([^;/?#=]*)=([^;/?#]*)")


class IdKind(StrEnum):
    COOKIE = "cookie"  # a session cookie
    PATH = "path"  # a URL path parameter: /account;jsessionid=ID
    REMEMBER = "remember"  # a persistent-login (remember-me) cookie
    BEARER = "bearer"  # Authorization: Bearer TOKEN
    BASIC = "basic"  # Authorization: Basic credentials

    @property
    def issued_by_set_cookie(self) -> bool:
        """The application issues and ends it with Set-Cookie (the tracker can know it)."""
        return self in (IdKind.COOKIE, IdKind.PATH, IdKind.REMEMBER)


@dataclass(frozen=True, slots=True)
class SessionId:
    kind: IdKind
    name: str  # the cookie name, the path parameter's name, or "authorization"
    value: str
    cookie: str = ""  # the cookie the application reads this ID from ("" for credentials)

    @property
    def is_cookie(self) -> bool:
        return self.kind in (IdKind.COOKIE, IdKind.REMEMBER)


@dataclass(frozen=True)
class IdentifierRules:
    """Which parts of a request are session identifiers (from the policy's `session` section)."""

    sessions: SessionCookieMatcher = field(default_factory=SessionCookieMatcher)
    remember: SessionCookieMatcher = field(
        default_factory=lambda: SessionCookieMatcher(DEFAULT_REMEMBER_PATTERN)
    )
    path_parameters: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PATH_PARAMETERS))
    bearer: bool = True
    basic: bool = True
    # cookie name -> its kind, for the names seen lately (each request asks for every cookie it carries)
    _kinds: Memo = field(default_factory=lambda: Memo(COOKIE_KINDS), init=False, repr=False, compare=False)

    def cookie_kind(self, name: str) -> IdKind | None:
        """COOKIE or REMEMBER for an identifier cookie's name, None for any other cookie."""
        kinds = self._kinds
        if name in kinds:
            return kinds[name]
        kind = None
        if self.remember.matches(name):
            kind = IdKind.REMEMBER
        elif self.sessions.matches(name):
            kind = IdKind.COOKIE
        return kinds.put(name, kind)  # names are the client's to choose: a bounded table

    def matches(self, name: str) -> bool:
        """A cookie the tracker follows (session or remember-me): what Set-Cookie events are learned for."""
        return self.cookie_kind(name) is not None

    def parameter_cookie(self, name: str) -> str | None:
        """The cookie a path parameter stands for (names compared case-insensitively), None if not one."""
        lowered = name.lower()
        return next((c for p, c in self.path_parameters.items() if p.lower() == lowered), None)


def path_parameters(path: str) -> list[tuple[str, str]]:
    """Every `;name=value` parameter of the path's segments (the query is not part of the path)."""
    return _PATH_PARAMETER.findall(path.split("?", 1)[0])


def request_identifiers(
    cookies: Iterable[tuple[str, str]], path: str, authorization: str | None, rules: IdentifierRules
) -> list[SessionId]:
    """The identifiers of one request, in a stable order: cookies (as the rules' REQUEST_COOKIES split
    them), path parameters, then the Authorization credential. Empty values and duplicates dropped."""
    found: list[SessionId] = []
    for name, value in cookies:
        if value:
            kind = rules.cookie_kind(name)
            if kind is not None:
                found.append(SessionId(kind, name, value, name))
    if ";" in path:  # (most paths have no parameter to look for)
        for name, value in path_parameters(path):
            cookie = rules.parameter_cookie(name)
            # (a saved flow's redacted path carries no ID)
            if cookie is not None and value and value != REDACTED:
                found.append(SessionId(IdKind.PATH, name, value, cookie))
    credential = credential_identifier(authorization, rules) if authorization else None
    if credential is not None:  # (never an empty value)
        found.append(credential)
    # Deduplicated, first ones kept in order (dict keys: a list was quadratic); one needs none.
    return list(dict.fromkeys(found)) if len(found) > 1 else found


def credential_identifier(authorization: str, rules: IdentifierRules) -> SessionId | None:
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and rules.bearer and token:
        return SessionId(IdKind.BEARER, "authorization", token)
    if scheme.lower() == "basic" and rules.basic and token:
        return SessionId(IdKind.BASIC, "authorization", token)
    return None


def without_path_parameters(path: str, refused: Iterable[SessionId]) -> str:
    """The path with the refused identifiers' `;name=value` parameters taken out (others kept)."""
    drop = {(sid.name, sid.value) for sid in refused if sid.kind is IdKind.PATH}
    if not drop:
        return path
    head, sep, query = path.partition("?")
    head = _PATH_PARAMETER.sub(lambda m: "" if (m.group(1), m.group(2)) in drop else m.group(0), head)
    return head + sep + query


def redact_path(path: str, rules: IdentifierRules) -> str:
    """The path with the value of every session path parameter replaced by [redacted]."""
    head, sep, query = path.partition("?")
    if ";" not in head:  # no path parameter (most paths): nothing to redact
        return path

    def hide(m: re.Match[str]) -> str:
        return f";{m.group(1)}={REDACTED}" if rules.parameter_cookie(m.group(1)) else m.group(0)

    return _PATH_PARAMETER.sub(hide, head) + sep + query


def redact_values(text: str, identifiers: Iterable[SessionId]) -> str:
    """`text` with every identifier value it contains (and any cut-off start of one at its end) redacted."""
    for sid in identifiers:
        if len(sid.value) >= 4 and sid.value in text:
            text = text.replace(sid.value, REDACTED)
    for sid in identifiers:  # an excerpt cut short may end with the first characters of an ID
        # The longest start of the ID, 4 characters at least and shorter than the ID, that the text
        # ends with: where the text's last `most` characters hold its first 4, the first such place
        # whose rest starts the ID (one search, instead of an endswith for every length).
        value = sid.value
        most = min(len(value) - 1, len(text))
        if most < 4:
            continue
        start = value[:4]
        at = text.find(start, len(text) - most)
        while at != -1:
            if value.startswith(text[at:]):
                text = text[:at] + REDACTED
                break
            at = text.find(start, at + 1)
    return text
