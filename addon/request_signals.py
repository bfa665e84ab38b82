"""What a request tells about itself besides its attack score: is it a login (authentication), did another site make the browser send it (attribution)?

Pure functions of the Transaction and the policy. A login is how a session becomes authenticated:
an identifier the application issues in answer to one is authenticated (sessions/tracker.py); an
anonymous session (a pre-login PHPSESSID, a CSRF-only session) is not, and an attack on it is
denied, not logged out. A cross-site request (Fetch metadata, else Origin, else Referer, against the
application's own origins) carrying an attack is something another site made the victim's browser
send: by default it is denied without logging the victim out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from .engine.transaction import Transaction
from .policy import Policy

CROSS_SITE = "cross-site"


@lru_cache(maxsize=16)
def _password_fields(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def prepare(policy: Policy) -> None:
    """Compile the policy's patterns now (configure time), not on the first login."""
    if policy.authentication.password_fields:
        _password_fields(policy.authentication.password_fields)


def is_login(tx: Transaction, policy: Policy) -> bool:
    """The request is a login attempt: a form sent (not GET/HEAD: the login page itself issues
    anonymous sessions) to a policy login path or with a password field, or a request with Basic
    credentials; with `every_issued` every request counts (every ID issued is authenticated)."""
    auth = policy.authentication
    if auth.every_issued:
        return True
    if tx.method not in ("GET", "HEAD") and tx.path.split(";", 1)[0] in auth.login_paths:
        return True
    if auth.password_fields:
        fields = _password_fields(auth.password_fields)
        if any(fields.search(name) for name, _ in tx.body_args):
            return True
    return any(
        k.lower() == "authorization" and v.lstrip().lower().startswith("basic ") for k, v in tx.headers
    )


def is_logout(tx: Transaction, policy: Policy) -> bool:
    """The request is the application's own logout (as the policy names it)."""
    return tx.method == policy.logout.method and tx.path == policy.logout.path.split("?", 1)[0]


def _header(tx: Transaction, name: str) -> str | None:
    return next((v for k, v in tx.headers if k.lower() == name), None)


_ATTRIBUTION_HEADERS = frozenset({"sec-fetch-site", "origin", "referer"})


def _first_values(tx: Transaction, names: frozenset[str]) -> dict[str, str]:
    """The first value of each header of `names` (lower case) the request has, found in one pass
    (what `_header` gives for each of them)."""
    found: dict[str, str] = {}
    for key, value in tx.headers:
        name = key.lower()
        if name in names and name not in found:
            found[name] = value
    return found


@lru_cache(maxsize=1024)  # pure; a client sends the same few Origin and Referer values again and again
def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased, default ports left out ("" when not an http(s) URL)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default = 443 if parts.scheme == "https" else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@lru_cache(maxsize=1024)
def _authority(url_or_origin: str) -> str:
    return urlsplit(url_or_origin).netloc.lower()


@lru_cache(maxsize=16)
def _policy_authorities(origins: tuple[str, ...]) -> frozenset[str]:
    """The authorities of the policy's origins (worked out once per policy, not per request)."""
    return frozenset(_authority(o) for o in origins)


def own_authorities(tx: Transaction, policy: Policy, listening: Iterable[str] = ()) -> set[str]:
    """host[:port] the application answers under: the policy's origins, the address the client
    connected to (`listening`) and the request's Host (in reverse mode mitmproxy has already set it
    to the upstream's, so the name clients use must be among the policy's origins)."""
    own = set(_policy_authorities(policy.attribution.origins))
    for authority in (*listening, _header(tx, "host") or ""):
        authority = authority.strip().lower()
        if authority:
            own.add(authority)
            name, _, port = authority.rpartition(":")
            if port in ("80", "443") and name:
                own.add(name)
    return own


def is_cross_site(tx: Transaction, policy: Policy, listening: Iterable[str] = ()) -> bool:
    """Another site made the browser send this request: Sec-Fetch-Site says so, or (without Fetch
    metadata) its Origin, or else its Referer, is not one of the application's own."""
    headers = _first_values(tx, _ATTRIBUTION_HEADERS)
    fetch_site = (headers.get("sec-fetch-site") or "").strip().lower()
    if fetch_site:
        return fetch_site == CROSS_SITE or (
            fetch_site == "same-site" and not policy.attribution.same_site_is_own
        )
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value is None:
            continue
        if value.strip().lower() == "null":  # an opaque origin: a sandboxed frame, a data: page
            return True
        origin = _origin(value)
        if origin:
            return _authority(origin) not in own_authorities(tx, policy, listening)
    return False
