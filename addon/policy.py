"""Policy: the per-application file that says which identifiers carry the session, how the application logs out, what to do when.

Loaded and validated once against `policy-schema.json` (the documented schema: every field, with its
meaning; a learner writes the same data), then checked further here; every problem names the
file, the field and the reason. The hooks only read the frozen Policy.

The logout is a recipe (`logout.steps`, then the logout request): steps fetch pages with the
session and take the tokens the application issues; templates (`{token:NAME}`, `{csrf}`,
`{cookie:NAME}`, `{session_cookie}`, `{authorization}`, `{header:NAME}`) are checked at load time and
filled per logout by `render`, which refuses CR, LF and NUL. Tokens never come from the attacking
request: `{csrf}` and `{token:NAME}` need a step that can take them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .sessions.identifiers import DEFAULT_PATH_PARAMETERS


class Action(StrEnum):
    """What to do with a request: the choices a policy names, and NONE (nothing to do)."""

    NONE = "none"
    LOG = "log"
    LOGOUT = "logout"
    DENY = "deny"
    REDIRECT = "redirect"
    DROP = "drop"
    STRIP = "strip"  # remove the refused identifiers and go on as an anonymous request


class LogoutMode(StrEnum):
    """How the malicious request relates to the logout (the logout is sent by LogoutGuard in both, and
    shown as a flow of its own; forced_logout.answer_client)."""

    REWRITE = "rewrite"  # the request is answered as the logout it became (client_response)
    OUT_OF_BAND = "out_of_band"  # the request is refused (redirect/status, else the signed-out page)


class ClientAnswer(StrEnum):
    """What the client of a forced logout gets."""

    APPLICATION = "application"  # the application's own logout response
    REDIRECT = "redirect"
    STATUS = "status"


class KeptIn(StrEnum):
    """Where the application keeps a session."""

    SERVER = "server"  # a server-side store: the ID in the cookie names it; the logout can end it
    COOKIE = "cookie"  # the (signed) cookie is the session: the logout cannot end a copy of it


class SourceKind(StrEnum):
    """Where in an answer the application issues a token."""

    COOKIE = "cookie"
    FORM_FIELD = "form_field"
    META = "meta"
    HEADER = "header"
    JSON = "json"
    REGEX = "regex"


ACTIONS = (Action.LOGOUT, Action.DENY, Action.REDIRECT, Action.DROP, Action.LOG)  # over a threshold
SESSION_ACTIONS = (Action.DENY, Action.REDIRECT, Action.STRIP, Action.LOG)  # revoked, unknown session
LOCKED_OUT_ACTIONS = (Action.DENY, Action.REDIRECT, Action.DROP)
SUCCESS_STATUSES = (200, 201, 202, 204, 302, 303)  # a logout answered with one of these succeeded
DEFAULT_PASSWORD_FIELDS = r"(?i)^(?:j_)?(?:pass(?:word|wd)?|pwd)$|password"

SCHEMA: dict[str, Any] = json.loads(resources.files(__package__).joinpath("policy-schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^{}]+))?\}")
PLACEHOLDER_KINDS = {  # kind -> takes a name
    "cookie": True,
    "header": True,
    "token": True,
    "authorization": False,
    "csrf": False,
    "session_cookie": False,
}
FORBIDDEN_IN_VALUES = re.compile(r"[\r\n\x00]")
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


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
class PageCheck:
    """How an answer looks in one state (logged in, logged out): every given part must hold."""

    status: tuple[int, ...] = ()  # empty: any
    marker: str | None = None  # text in the body
    location: str | None = None  # what the Location header starts with

    def matches(self, status: int, location: str, body: bytes) -> bool:
        if self.status and status not in self.status:
            return False
        if self.marker is not None and self.marker.encode("utf-8") not in body:
            return False
        return self.location is None or location.startswith(self.location)


@dataclass(frozen=True)
class Verify:
    """After the logout, the check page is fetched with the old session and compared (see logout_probe.py)."""

    enabled: bool = True
    check_path: str = "/"
    logged_in: PageCheck | None = None  # None: compared with the page before the logout and an anonymous one
    logged_out: PageCheck | None = None
    timeout: float = 3.0


@dataclass(frozen=True)
class TokenSource:
    kind: SourceKind
    name: str  # cookie, field, meta or header name; JSON path; regex
    form_action: str | None = None  # form_field: the form whose action has this path


@dataclass(frozen=True)
class Step:
    """One request of the logout recipe before the logout itself: sent with the session, tokens taken."""

    path: str
    method: str = "GET"
    expect_status: tuple[int, ...] = ()  # empty: any 2xx
    take: tuple[tuple[str, TokenSource], ...] = ()

    def accepts(self, status: int) -> bool:
        return status in self.expect_status if self.expect_status else 200 <= status < 300


@dataclass(frozen=True)
class RevocationEndpoint:
    """RFC 7009 token revocation: POST token=...&token_type_hint=... (the logout of a bearer token)."""

    path: str
    headers: tuple[tuple[str, str], ...] = ()
    token_type_hint: str = "access_token"


@dataclass(frozen=True)
class Logout:
    mode: LogoutMode = LogoutMode.REWRITE
    steps: tuple[Step, ...] = ()
    method: str = "GET"
    path: str = "/logout"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    content_type: str = "application/x-www-form-urlencoded"
    keep_authorization: bool = True
    timeout: float = 5.0  # the steps and the logout request together
    expect_status: tuple[int, ...] = SUCCESS_STATUSES
    revocation_endpoint: RevocationEndpoint | None = None
    client_response: ClientResponse = field(default_factory=ClientResponse)
    verify: Verify = field(default_factory=Verify)
    from_policy: bool = False  # the policy names the logout (False: the built-in GET /logout guess)

    def accepts(self, status: int) -> bool:
        return status in self.expect_status


@dataclass(frozen=True)
class Authentication:
    """When the application showed a session authenticated: the ID was issued in answer to a login."""

    login_paths: tuple[str, ...] = ()
    password_fields: str | None = DEFAULT_PASSWORD_FIELDS  # None: not used
    every_issued: bool = False


@dataclass(frozen=True)
class Actions:
    authenticated_over_threshold: Action = Action.LOGOUT
    anonymous_over_threshold: Action = Action.DENY
    cross_site: Action = Action.DENY
    revoked_session: Action = Action.DENY
    unknown_session: Action = Action.STRIP
    locked_out: Action = Action.DENY
    redirect_location: str = "/login"
    deny_status: int = 403


@dataclass(frozen=True)
class Attribution:
    origins: tuple[str, ...] = ()  # besides the request's own Host
    same_site_is_own: bool = True


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
    credentials: float = 900.0  # seconds Basic credentials used in an attack are refused; 0: off


@dataclass(frozen=True)
class Policy:
    source: str = "(built-in defaults)"
    application: str = ""
    session_cookies: tuple[str, ...] = ()
    cookie_pattern: str | None = None  # None: the default pattern
    remember_cookies: tuple[str, ...] = ()
    remember_pattern: str | None = None  # None: the default pattern
    path_parameters: tuple[tuple[str, str], ...] = tuple(DEFAULT_PATH_PARAMETERS.items())
    kept_in: KeptIn = KeptIn.SERVER
    bearer: bool = True
    basic: bool = True
    grace_period: float = 60.0
    csrf_cookie: str | None = None
    authentication: Authentication = field(default_factory=Authentication)
    logout: Logout = field(default_factory=Logout)
    actions: Actions = field(default_factory=Actions)
    attribution: Attribution = field(default_factory=Attribution)
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
    problems.extend(_regex_problems(data))
    problems.extend(_step_problems(logout_data.get("steps", [])))
    problems.extend(_template_problems(logout_data, session))
    if problems:
        raise PolicyError(file, problems)
    auth = session.get("authenticated", {})
    attribution = data.get("attribution", {})
    return Policy(
        source=file,
        application=data.get("application", ""),
        session_cookies=tuple(session.get("cookies", ())),
        cookie_pattern=session.get("cookie_pattern"),
        remember_cookies=tuple(session.get("remember_cookies", ())),
        remember_pattern=session.get("remember_pattern"),
        path_parameters=tuple(session.get("path_parameters", DEFAULT_PATH_PARAMETERS).items()),
        kept_in=KeptIn(session.get("kept_in", KeptIn.SERVER)),
        bearer=session.get("bearer", True),
        basic=session.get("basic", True),
        grace_period=session.get("grace_period", 60.0),
        csrf_cookie=session.get("csrf_cookie"),
        authentication=Authentication(
            login_paths=tuple(auth.get("login_paths", ())),
            password_fields=auth.get("password_fields", DEFAULT_PASSWORD_FIELDS),
            every_issued=auth.get("every_issued", False),
        ),
        logout=_logout(logout_data),
        actions=Actions(
            **{
                k: v if k in ("redirect_location", "deny_status") else Action(v)
                for k, v in data.get("actions", {}).items()
            }
        ),
        attribution=Attribution(
            origins=tuple(o.lower() for o in attribution.get("origins", ())),
            same_site_is_own=attribution.get("same_site", "own") == "own",
        ),
        cumulative=_cumulative(data.get("cumulative", {})),
        lockout=Lockout(**data.get("lockout", {})),
    )


def _statuses(value: Any) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


def _page_check(data: dict[str, Any] | None) -> PageCheck | None:
    if data is None:
        return None
    return PageCheck(_statuses(data.get("status", ())), data.get("marker"), data.get("location"))


def _verify(data: dict[str, Any]) -> Verify:
    logged_in = _page_check(data.get("logged_in"))
    if logged_in is None and ("alive_status" in data or "alive_body" in data):  # the old spelling
        logged_in = PageCheck(tuple(data.get("alive_status", (200,))), data.get("alive_body"))
    return Verify(
        enabled=data.get("enabled", True),
        check_path=data.get("check_path", "/"),
        logged_in=logged_in,
        logged_out=_page_check(data.get("logged_out")),
        timeout=data.get("timeout", 3.0),
    )


def _source(data: dict[str, Any]) -> TokenSource:
    kind = next(k for k in SourceKind if k.value in data)
    return TokenSource(kind, data[kind.value], data.get("form_action"))


def _logout(data: dict[str, Any]) -> Logout:
    client_data = dict(data.get("client_response", {}))
    if "type" in client_data:
        client_data["type"] = ClientAnswer(client_data["type"])
    steps = tuple(
        Step(
            path=step["path"],
            method=step.get("method", "GET"),
            expect_status=tuple(step.get("expect_status", ())),
            take=tuple((name, _source(source)) for name, source in step.get("take", {}).items()),
        )
        for step in data.get("steps", ())
    )
    revocation = data.get("revocation_endpoint")
    fields = {
        k: v
        for k, v in data.items()
        if k not in ("client_response", "verify", "steps", "revocation_endpoint")
    }
    fields["headers"] = tuple(fields.get("headers", {}).items())
    if "expect_status" in fields:
        fields["expect_status"] = tuple(fields["expect_status"])
    if "mode" in fields:
        fields["mode"] = LogoutMode(fields["mode"])
    return Logout(
        **fields,
        steps=steps,
        revocation_endpoint=RevocationEndpoint(
            revocation["path"],
            tuple(revocation.get("headers", {}).items()),
            revocation.get("token_type_hint", "access_token"),
        )
        if revocation
        else None,
        client_response=ClientResponse(**client_data),
        verify=_verify(data.get("verify", {})),
        from_policy="path" in data,
    )


def _cumulative(data: dict[str, Any]) -> Cumulative:
    values = dict(data)
    if "action" in values:
        values["action"] = Action(values["action"])
    return Cumulative(**values)


def _regex_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    session = data.get("session", {})
    found = [
        ("session.cookie_pattern", session.get("cookie_pattern")),
        ("session.remember_pattern", session.get("remember_pattern")),
        ("session.authenticated.password_fields", session.get("authenticated", {}).get("password_fields")),
    ]
    for i, step in enumerate(data.get("logout", {}).get("steps", ())):
        for name, source in step.get("take", {}).items():
            found.append((f"logout.steps.{i}.take.{name}.regex", source.get("regex")))
    problems = []
    for name, pattern in found:
        if not pattern:
            continue
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            problems.append((name, f"bad regex: {exc}"))
            continue
        if name.endswith(".regex") and compiled.groups < 1:
            problems.append((name, "needs a group: the token is what its first group matches"))
    return problems


def _step_problems(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    problems = []
    for i, step in enumerate(steps):
        for name, source in step.get("take", {}).items():
            where = f"logout.steps.{i}.take.{name}"
            kinds = [k.value for k in SourceKind if k.value in source]
            if len(kinds) != 1:
                problems.append(
                    (
                        where,
                        f"names {len(kinds)} sources ({', '.join(kinds) or 'none'}); exactly one of "
                        + ", ".join(k.value for k in SourceKind)
                        + " is needed",
                    )
                )
            elif "form_action" in source and kinds != ["form_field"]:
                problems.append((where, "form_action goes with form_field only"))
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                problems.append((where, f"{name!r} is not a token name (letters, digits, _ . -)"))
    return problems


def _tokens_taken(logout: dict[str, Any], session: dict[str, Any]) -> set[str]:
    taken = {name for step in logout.get("steps", ()) for name in step.get("take", {})}
    if session.get("csrf_cookie") and logout.get("steps"):
        taken.add("csrf")  # the cookie the application sets during the steps
    return taken


def _template_problems(logout: dict[str, Any], session: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    templates = [(f"logout.headers.{k}", v) for k, v in logout.get("headers", {}).items()]
    header_count = len(templates)
    templates.append(("logout.body", logout.get("body", "")))
    templates.append(("logout.path", logout.get("path", "/")))
    revocation = logout.get("revocation_endpoint") or {}
    templates.extend(
        (f"logout.revocation_endpoint.headers.{k}", v) for k, v in revocation.get("headers", {}).items()
    )
    for name, _ in templates[:header_count] + templates[header_count + 2 :]:
        header = name.rsplit(".", 1)[1]
        if not HEADER_NAME.fullmatch(header):
            problems.append((name, f"{header!r} is not a valid header name"))
    taken = _tokens_taken(logout, session)
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
            elif kind in ("csrf", "token") and (arg or "csrf") not in taken:
                token = arg or "csrf"
                how = (
                    "a step that takes it (logout.steps[].take) or session.csrf_cookie with a step"
                    if kind == "csrf"
                    else "a step that takes it (logout.steps[].take)"
                )
                problems.append(
                    (
                        name,
                        f"{m.group(0)} needs {how}: the token {token!r} is taken from the application's "
                        "answer to a request sent with the session, never from the attacking request",
                    )
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
    cookies: Mapping[str, str],
    headers: Mapping[str, str],
    session_cookie: str = "",
    csrf_cookie: str | None = None,
    tokens: Mapping[str, str] | None = None,
) -> str:
    """Fill a template: `cookies` (the recipe's jar), `headers` (lower-cased names), the session cookie
    text and the tokens the steps took; `{csrf}` is the token "csrf", else the cookie `csrf_cookie`
    of the jar. Values carrying CR, LF or NUL are refused (TemplateValueError)."""
    tokens = tokens or {}

    def value(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "cookie":
            text = cookies.get(arg or "", "")
        elif kind == "header":
            text = headers.get((arg or "").lower(), "")
        elif kind == "authorization":
            text = headers.get("authorization", "")
        elif kind == "token":
            text = tokens.get(arg or "", "")
        elif kind == "csrf":
            text = tokens.get("csrf", cookies.get(csrf_cookie or "", ""))
        else:
            text = session_cookie
        if FORBIDDEN_IN_VALUES.search(text):
            raise TemplateValueError(f"the value for {m.group(0)} contains CR, LF or NUL")
        return text

    return PLACEHOLDER.sub(value, template)
