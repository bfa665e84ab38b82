"""Policy: the per-application file that says which session cookies, how to log out, what to do when.

Loaded and validated once (errors name the file, the field and the reason); the hooks only read
the frozen Policy. Templates (`{cookie:NAME}`, `{header:NAME}`, `{authorization}`, `{csrf}`) are
checked at load time and filled per request by `render`, which refuses CR, LF and NUL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class Action(StrEnum):
    """What to do with a request: the choices a policy names, and NONE (nothing to do)."""

    NONE = "none"
    LOG = "log"
    LOGOUT = "logout"
    DENY = "deny"
    REDIRECT = "redirect"
    DROP = "drop"
    STRIP = "strip"  # remove the session cookie(s) and go on as an anonymous request


class LogoutMode(StrEnum):
    REWRITE = "rewrite"  # the malicious request itself becomes the logout request
    OUT_OF_BAND = "out_of_band"  # a separate logout request while the client gets the policy's answer


class ClientAnswer(StrEnum):
    """What the client of a forced logout gets."""

    APPLICATION = "application"  # the application's own logout response
    REDIRECT = "redirect"
    STATUS = "status"


ACTIONS = (Action.LOGOUT, Action.DENY, Action.REDIRECT, Action.DROP, Action.LOG)  # over a threshold
SESSION_ACTIONS = (Action.DENY, Action.REDIRECT, Action.STRIP, Action.LOG)  # revoked, unknown session
LOCKED_OUT_ACTIONS = (Action.DENY, Action.REDIRECT, Action.DROP)

_ACTION = {"enum": [str(a) for a in ACTIONS]}
_SESSION_ACTION = {"enum": [str(a) for a in SESSION_ACTIONS]}
_TEMPLATE = {"type": "string"}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "application": {"type": "string"},
        "description": {"type": "string"},
        "session": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cookies": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "cookie_pattern": {"type": ["string", "null"]},
                "grace_period": {"type": "number", "minimum": 0},
                "csrf_cookie": {"type": "string", "minLength": 1},
            },
        },
        "logout": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": [str(m) for m in LogoutMode]},
                "method": {"type": "string", "pattern": "^[A-Z]+$"},
                "path": {"type": "string", "pattern": "^/"},
                "headers": {"type": "object", "additionalProperties": _TEMPLATE},
                "body": _TEMPLATE,
                "content_type": {"type": "string"},
                "keep_authorization": {"type": "boolean"},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
                "expect_status": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 100, "maximum": 599},
                },
                "client_response": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": [str(a) for a in ClientAnswer]},
                        "location": {"type": "string", "minLength": 1},
                        "status": {"type": "integer", "minimum": 200, "maximum": 599},
                        "body": {"type": "string"},
                    },
                },
                "verify": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "check_path": {"type": "string", "pattern": "^/"},
                        "alive_status": {"type": "array", "items": {"type": "integer"}},
                        "alive_body": {"type": "string"},
                        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                    },
                },
            },
        },
        "actions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "authenticated_over_threshold": _ACTION,
                "anonymous_over_threshold": _ACTION,
                "revoked_session": _SESSION_ACTION,
                "unknown_session": _SESSION_ACTION,
                "locked_out": {"enum": [str(a) for a in LOCKED_OUT_ACTIONS]},
                "redirect_location": {"type": "string", "minLength": 1},
                "deny_status": {"type": "integer", "minimum": 400, "maximum": 599},
            },
        },
        "cumulative": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "scored_requests": {"type": "integer", "minimum": 1},
                "window": {"type": "number", "exclusiveMinimum": 0},
                "action": _ACTION,
            },
        },
        "lockout": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "duration": {"type": "number", "exclusiveMinimum": 0},
                "scope": {"enum": ["address", "network"]},
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^{}]+))?\}")
PLACEHOLDER_KINDS = {
    "cookie": True,
    "header": True,
    "authorization": False,
    "csrf": False,
    "session_cookie": False,
}
FORBIDDEN_IN_VALUES = re.compile(r"[\r\n\x00]")


class PolicyError(ValueError):
    def __init__(self, file: str, problems: list[tuple[str, str]]):
        self.file = file
        self.problems = problems
        text = "\n".join(
            f"{file} field '{f}': {reason}" if f else f"{file}: {reason}" for f, reason in problems
        )
        super().__init__(text)


@dataclass(frozen=True)
class ClientResponse:
    type: ClientAnswer = ClientAnswer.APPLICATION  # the application's own logout response passes through
    location: str = "/"
    status: int = 403
    body: str = "<!doctype html><title>Signed out</title><h1>You have been signed out.</h1>\n"


@dataclass(frozen=True)
class Verify:
    check_path: str | None = None
    alive_status: tuple[int, ...] = (200,)
    alive_body: str | None = None
    timeout: float = 3.0


@dataclass(frozen=True)
class Logout:
    mode: LogoutMode = LogoutMode.REWRITE
    method: str = "GET"
    path: str = "/logout"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    content_type: str = "application/x-www-form-urlencoded"
    keep_authorization: bool = True
    timeout: float = 5.0
    expect_status: tuple[int, ...] = ()  # empty: any status below 500 counts as done
    client_response: ClientResponse = field(default_factory=ClientResponse)
    verify: Verify = field(default_factory=Verify)


@dataclass(frozen=True)
class Actions:
    authenticated_over_threshold: Action = Action.LOGOUT
    anonymous_over_threshold: Action = Action.DENY
    revoked_session: Action = Action.DENY
    unknown_session: Action = Action.STRIP
    locked_out: Action = Action.DENY
    redirect_location: str = "/login"
    deny_status: int = 403


@dataclass(frozen=True)
class Cumulative:
    scored_requests: int = 0  # 0: off
    window: float = 600.0
    action: Action = Action.LOGOUT


@dataclass(frozen=True)
class Lockout:
    enabled: bool = False
    duration: float = 900.0
    scope: str = "address"


@dataclass(frozen=True)
class Policy:
    source: str = "(built-in defaults)"
    application: str = ""
    session_cookies: tuple[str, ...] = ()
    cookie_pattern: str | None = None  # None: the default pattern
    grace_period: float = 60.0
    csrf_cookie: str | None = None
    logout: Logout = field(default_factory=Logout)
    actions: Actions = field(default_factory=Actions)
    cumulative: Cumulative = field(default_factory=Cumulative)
    lockout: Lockout = field(default_factory=Lockout)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; PolicyError lists every problem with field and reason."""
    file = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(file, [("", f"cannot read: {exc.strerror or exc}")]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(file, [("", f"not valid YAML: {exc}".replace("\n", " "))]) from None
    return parse_policy(data if data is not None else {}, file)


def parse_policy(data: Any, file: str = "(policy)") -> Policy:
    if not isinstance(data, dict):
        raise PolicyError(file, [("", "a policy file is a mapping")])
    problems = [(".".join(str(p) for p in e.absolute_path), e.message) for e in _VALIDATOR.iter_errors(data)]
    if problems:
        raise PolicyError(file, problems)
    session = data.get("session", {})
    logout_data = data.get("logout", {})
    problems.extend(_template_problems(logout_data, session))
    if session.get("cookie_pattern"):
        try:
            re.compile(session["cookie_pattern"])
        except re.error as exc:
            problems.append(("session.cookie_pattern", f"bad regex: {exc}"))
    if problems:
        raise PolicyError(file, problems)
    client_data = dict(logout_data.get("client_response", {}))
    if "type" in client_data:
        client_data["type"] = ClientAnswer(client_data["type"])
    client = ClientResponse(**client_data)
    verify_data = dict(logout_data.get("verify", {}))
    if "alive_status" in verify_data:
        verify_data["alive_status"] = tuple(verify_data["alive_status"])
    logout_fields = {k: v for k, v in logout_data.items() if k not in ("client_response", "verify")}
    logout_fields["headers"] = tuple(logout_fields.get("headers", {}).items())
    if "expect_status" in logout_fields:
        logout_fields["expect_status"] = tuple(logout_fields["expect_status"])
    if "mode" in logout_fields:
        logout_fields["mode"] = LogoutMode(logout_fields["mode"])
    actions = {
        k: v if k in ("redirect_location", "deny_status") else Action(v)
        for k, v in data.get("actions", {}).items()
    }
    cumulative = dict(data.get("cumulative", {}))
    if "action" in cumulative:
        cumulative["action"] = Action(cumulative["action"])
    return Policy(
        source=file,
        application=data.get("application", ""),
        session_cookies=tuple(session.get("cookies", ())),
        cookie_pattern=session.get("cookie_pattern"),
        grace_period=session.get("grace_period", 60.0),
        csrf_cookie=session.get("csrf_cookie"),
        logout=Logout(**logout_fields, client_response=client, verify=Verify(**verify_data)),
        actions=Actions(**actions),
        cumulative=Cumulative(**cumulative),
        lockout=Lockout(**data.get("lockout", {})),
    )


def _template_problems(logout: dict[str, Any], session: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    templates = [(f"logout.headers.{k}", v) for k, v in logout.get("headers", {}).items()]
    templates.append(("logout.body", logout.get("body", "")))
    templates.append(("logout.path", logout.get("path", "/")))
    for name, _ in templates[:-2]:
        header = name.rsplit(".", 1)[1]
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", header):
            problems.append((name, f"{header!r} is not a valid header name"))
    for name, template in templates:
        for m in PLACEHOLDER.finditer(template):
            kind, arg = m.group(1), m.group(2)
            if kind not in PLACEHOLDER_KINDS:
                problems.append((name, f"unknown placeholder {m.group(0)!r}; use one of {_kinds()}"))
            elif PLACEHOLDER_KINDS[kind] != (arg is not None):
                problems.append(
                    (
                        name,
                        f"placeholder {m.group(0)!r}: {kind} "
                        + ("needs a name" if arg is None else "takes no name"),
                    )
                )
            elif kind == "csrf" and not session.get("csrf_cookie"):
                problems.append(
                    (name, "{csrf} needs session.csrf_cookie (the cookie that carries the token)")
                )
        if FORBIDDEN_IN_VALUES.search(template):
            problems.append((name, "CR, LF and NUL are not allowed in templates"))
    return problems


def _kinds() -> str:
    return ", ".join("{" + k + (":NAME}" if named else "}") for k, named in PLACEHOLDER_KINDS.items())


class TemplateValueError(ValueError):
    """A request value that would inject a header or request line (CR, LF, NUL) or a missing value."""


def render(
    template: str,
    cookies: dict[str, str],
    headers: dict[str, str],
    session_cookie: str = "",
    csrf_cookie: str | None = None,
) -> str:
    """Fill a template from the request; values carrying CR, LF or NUL are refused."""

    def value(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "cookie":
            text = cookies.get(arg or "", "")
        elif kind == "header":
            text = headers.get((arg or "").lower(), "")
        elif kind == "authorization":
            text = headers.get("authorization", "")
        elif kind == "csrf":
            text = cookies.get(csrf_cookie or "", "")
        else:
            text = session_cookie
        if FORBIDDEN_IN_VALUES.search(text):
            raise TemplateValueError(f"the value for {m.group(0)} contains CR, LF or NUL")
        return text

    return PLACEHOLDER.sub(value, template)
