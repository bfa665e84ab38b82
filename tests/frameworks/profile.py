"""What a policy writer needs to know about one framework application, as plain data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


# The one user every application knows (passed to each app at start-up, never stored in the repo's apps).
USER = Credentials("alice", "wonderland-7-rabbits")


class TokenStore(StrEnum):
    """Where the application keeps the CSRF secret its forms are checked against."""

    COOKIE = "cookie"  # a cookie of its own (Django default: csrftoken), echoed in a form field
    SERVER_SESSION = (
        "server_session"  # the server-side session; the token reaches the client only in the page
    )
    SIGNED_SESSION_COOKIE = "signed_session_cookie"  # the client-side signed session cookie (Flask-WTF)
    NONE = "none"  # the application checks no CSRF token


@dataclass(frozen=True)
class Csrf:
    store: TokenStore
    form_field: str | None = None  # hidden input of the login and logout forms
    cookie: str | None = None  # the cookie holding the secret, when store is COOKIE
    header: str | None = None  # header the app also accepts instead of the form field


@dataclass(frozen=True)
class LoginForm:
    page: str  # GET this (anonymous) to find the login form
    username_field: str
    password_field: str
    extra_fields: dict[str, str] = field(default_factory=dict)  # e.g. remember-me checkbox


@dataclass(frozen=True)
class Logout:
    method: str
    path: str  # exactly as the app routes it (Django: trailing slash; without it: 301, POST lost)
    form_page: str  # the page (with the session) whose form carries the logout's CSRF token


@dataclass(frozen=True)
class Check:
    """How a response to GET `path` looks in one state."""

    path: str
    status: int
    marker: str | None = None  # text in the body
    location: str | None = None  # prefix of the Location header (redirects)


@dataclass(frozen=True)
class AppProfile:
    name: str
    framework: str  # name and major version of what runs
    session_cookies: tuple[str, ...]
    remember_cookie: str | None
    csrf: Csrf
    login: LoginForm
    logout: Logout
    logged_in: Check
    logged_out: Check
    public_path: str  # an anonymous page (a baseline that needs no session)
    session_before_login: bool  # the app issues a session cookie to anonymous visitors (login page)
    session_id_changes_at_login: bool
    url_session_parameter: str | None  # e.g. "jsessionid" when `;jsessionid=ID` in the path is honoured
    store: str | None  # the app's own server-side session store; None: the session lives in the cookie
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-able (enums as their values)."""
        return dataclasses.asdict(self, dict_factory=lambda items: {k: _plain(v) for k, v in items})


def _plain(value: object) -> object:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value
