"""The `logoutguard audit-logout` check: does the application's logout really kill the session on the server?

Open the login page (keeping the cookies it sets: a pre-login session, a CSRF cookie), log in with
the login form's CSRF token, remember the session cookie, confirm it opens a protected page, log out
(with the logout form's token when the application asks for one), then replay the OLD cookie on that
page. Tokens are taken with the logout recipe's own extraction (logout_recipe.take_token): a form
field, a cookie the application set, a meta tag, a header, a JSON field or a regex. Only the standard
library's http.client speaks HTTP here, and redirects are never followed: a 302 to the login page is
the answer we are looking for.
Exit status: 0 the session was invalidated, 1 the old session still works, 2 the check could not run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import re
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

from .logout_recipe import CookieJar, parse_page, take_token
from .policy import PLACEHOLDER, SourceKind, TemplateValueError, TokenSource, render
from .sessions.cookies import SessionCookieMatcher, ending_reason, parse_set_cookie
from .upstream_http import Delivery

INVALIDATED, STILL_VALID, ERROR = "invalidated", "still-valid", "error"
EXIT_STATUS = {INVALIDATED: 0, STILL_VALID: 1, ERROR: 2}
FORM_PLACEHOLDERS = ("cookie", "session_cookie", "authorization")
USER_AGENT = "logoutguard-audit-logout/1"
BODY_KEPT = 64 * 1024
TOKEN_FIELD = re.compile(r"(?i)csrf|xsrf|token|nonce|authenticity")  # hidden fields sent back unasked


@dataclass(frozen=True)
class FormToken:
    """A form field whose value is a token the application issued: FIELD, or FIELD=KIND:NAME."""

    field: str
    source: TokenSource | None = None  # None: the input FIELD of the page's form


def parse_token(option: str, text: str) -> FormToken:
    """`csrf` or `csrf=meta:csrf-token` (KIND: cookie, form_field, meta, header, json, regex)."""
    name, sep, spec = text.partition("=")
    if not name or any(c in name for c in "&= \r\n"):
        raise LogoutCheckError(f"{option} {text!r}: expected FIELD or FIELD=KIND:NAME")
    if not sep:
        return FormToken(name)
    kind, colon, source = spec.partition(":")
    kinds = [k.value for k in SourceKind]
    if not colon or kind not in kinds or not source:
        raise LogoutCheckError(
            f"{option} {text!r}: expected FIELD=KIND:NAME with KIND one of {', '.join(kinds)}"
        )
    if kind == "regex":
        try:
            if re.compile(source).groups < 1:
                raise LogoutCheckError(
                    f"{option} {text!r}: the regex needs a group (the token is its first group)"
                )
        except re.error as exc:
            raise LogoutCheckError(f"{option} {text!r}: bad regex: {exc}") from None
    return FormToken(name, TokenSource(SourceKind(kind), source))


class LogoutCheckError(Exception):
    """The check could not be completed (bad arguments, login failed, network error)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    base_path: str  # "" or "/app" (no trailing slash): prefixed to every path

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def path(self, path: str) -> str:
        return self.base_path + path


@dataclass(frozen=True)
class Config:
    target: Target
    username: str | None = None
    password: str | None = None
    basic: tuple[str, str] | None = None
    username_field: str = "username"
    password_field: str = "password"
    login_path: str = "/login"
    login_page: str | None = None  # the page with the login form, fetched first (None: login_path)
    login_tokens: tuple[FormToken, ...] = ()  # empty: the login form's fields named like a token
    logout_method: str = "GET"
    logout_path: str = "/logout"
    logout_form: str | None = None
    logout_page: str | None = None  # the page with the logout form (None: check_path)
    logout_tokens: tuple[FormToken, ...] = ()  # empty: the logout form's fields named like a token
    check_path: str = "/account"
    cookie_name: str | None = None
    alive_status: tuple[int, ...] = (200,)
    alive_text: str | None = None
    timeout: float = 10.0
    insecure: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def delivery(self) -> Delivery:
        """As the logout recipe sees an answer (for its token extraction)."""
        return Delivery(
            self.status, set_cookies=self.set_cookies(), headers=list(self.headers), body=self.body
        )


@dataclass
class Step:
    name: str
    method: str
    path: str
    status: int | None = None
    location: str | None = None
    note: str = ""

    def line(self, number: int) -> str:
        answer = "no answer" if self.status is None else str(self.status)
        if self.location:
            answer += f" -> {self.location}"
        return f"  {number}. {self.name:<9} {self.method} {self.path}: {answer}" + (
            f"  ({self.note})" if self.note else ""
        )


@dataclass
class Result:
    url: str
    verdict: str = ERROR
    message: str = ""
    session_cookie: str | None = None
    session_id_sha256: str | None = None  # a fingerprint: the ID itself is a secret
    logout_replaced_cookie: bool | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "exit_status": self.exit_status}


# -- pure helpers ---------------------------------------------------------------------------------
def parse_target(url: str) -> Target:
    """`http://127.0.0.1:8080/app` -> Target; LogoutCheckError for anything but an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise LogoutCheckError(f"URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LogoutCheckError(f"URL {url!r}: expected http://HOST[:PORT][/PATH] or https://...")
    if parts.query or parts.fragment:
        raise LogoutCheckError(f"URL {url!r}: give the application's base URL, without ?query or #fragment")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, parts.path.rstrip("/"))


def parse_basic(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise LogoutCheckError(f"--basic {text!r}: expected USER:PASSWORD")
    return user, password


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def check_form_template(template: str) -> None:
    """Only {cookie:NAME}, {session_cookie} and {authorization} make sense in a logout form."""
    for m in PLACEHOLDER.finditer(template):
        if m.group(1) not in FORM_PLACEHOLDERS or (m.group(1) == "cookie") != (m.group(2) is not None):
            raise LogoutCheckError(
                f"--logout-form: placeholder {m.group(0)!r} is not supported; use {{cookie:NAME}}, "
                "{session_cookie} or {authorization}"
            )


def missing_cookies(template: str, jar: dict[str, str]) -> list[str]:
    return [
        m.group(2) for m in PLACEHOLDER.finditer(template) if m.group(1) == "cookie" and m.group(2) not in jar
    ]


def update_jar(jar: dict[str, str], set_cookie_values: list[str], now: float = 0.0) -> None:
    """Apply a response's Set-Cookie headers to a name -> value jar (deletions remove the cookie)."""
    for value in set_cookie_values:
        cookie = parse_set_cookie(value)
        if cookie is None or not cookie.name:
            continue
        if ending_reason(cookie, now or time.time()) is not None:
            jar.pop(cookie.name, None)
        else:
            jar[cookie.name] = cookie.value


def find_session_cookie(set_cookie_values: list[str], name: str | None) -> str | None:
    """The session cookie a response issues: the one named, or the first the default pattern matches."""
    matcher = SessionCookieMatcher(None if name is None else "", [name] if name else [])
    for value in set_cookie_values:
        cookie = parse_set_cookie(value)
        if cookie is not None and cookie.name and cookie.value and matcher.matches(cookie.name):
            return cookie.name
    return None


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def fingerprint(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("latin-1", "replace")).hexdigest()[:16]


def is_alive(reply: Reply, config: Config) -> bool:
    """Does this answer of the check path show a logged-in page?"""
    if reply.status not in config.alive_status:
        return False
    return config.alive_text is None or config.alive_text.encode("utf-8") in reply.body


def describe(reply: Reply, config: Config) -> str:
    if is_alive(reply, config):
        return "looks logged in"
    if reply.status in config.alive_status:
        return f"the page lacks {config.alive_text!r}: not logged in"
    return "not logged in"


def _form_action(page_path: str, action: str) -> str:
    return urlsplit(urljoin(page_path, action)).path


def take_tokens(
    reply: Reply, page_path: str, wanted: tuple[FormToken, ...], form: Callable[[str, dict[str, str]], bool]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (field, token) pairs to send from the application's answer `reply` to GET `page_path`, and the
    fields not found. `wanted` empty: every field named like a token (csrf, xsrf, token, ...) of the first
    form `form(action path, fields)` accepts. Every token is taken with the recipe's extraction."""
    jar = CookieJar({})
    jar.update(reply.set_cookies())
    answer = reply.delivery()
    if not wanted:
        for action, fields in parse_page(reply.body).forms:
            if form(_form_action(page_path, action), fields):
                wanted = tuple(
                    FormToken(name, TokenSource(SourceKind.FORM_FIELD, name, urlsplit(action).path or None))
                    for name in fields
                    if TOKEN_FIELD.search(name)
                )
                break
    found, missing = [], []
    for token in wanted:
        source = token.source or TokenSource(SourceKind.FORM_FIELD, token.field)
        value = take_token(source, answer, jar)
        if value is None:
            missing.append(token.field)
        else:
            found.append((token.field, value))
    return found, missing


# -- HTTP ---------------------------------------------------------------------------------------
def send(
    config: Config, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> Reply:
    """One request, no redirects followed; LogoutCheckError names the address on network problems."""
    target = config.target
    all_headers = {"Host": target.authority, "User-Agent": USER_AGENT, "Accept": "text/html,*/*"}
    all_headers.update(headers or {})
    if body is not None:
        all_headers["Content-Length"] = str(len(body))
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        context = ssl._create_unverified_context() if config.insecure else ssl.create_default_context()
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=config.timeout, context=context)
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=config.timeout)
    try:
        conn.request(method, target.path(path), body=body, headers=all_headers)
        response = conn.getresponse()
        return Reply(response.status, tuple(response.getheaders()), response.read(BODY_KEPT))
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise LogoutCheckError(
            f"{method} {target.scheme}://{target.authority}{target.path(path)} failed: {reason}"
        ) from None
    finally:
        conn.close()


# -- the check ------------------------------------------------------------------------------------
def record(result: Result, name: str, method: str, path: str, reply: Reply, note: str) -> Step:
    step = Step(name, method, path, reply.status, reply.header("Location"), note)
    result.steps.append(step)
    return step


def log_in(config: Config, result: Result, jar: dict[str, str]) -> str:
    """Log in (form POST or HTTP Basic), fill the jar; returns the session cookie's name."""
    if config.basic is not None:
        auth = {"Authorization": basic_header(*config.basic)}
        reply = send(config, "GET", config.check_path, auth)
        update_jar(jar, reply.set_cookies())
        name = find_session_cookie(reply.set_cookies(), config.cookie_name)
        record(result, "login", "GET", config.check_path, reply, f"HTTP Basic as {config.basic[0]}")
        if reply.status in (401, 403):
            raise LogoutCheckError(f"login failed: HTTP Basic as {config.basic[0]!r} answered {reply.status}")
        return _remember(result, jar, name)
    page_path = config.login_page or config.login_path
    page = send(config, "GET", page_path)
    update_jar(jar, page.set_cookies())

    def login_form(action: str, fields: dict[str, str]) -> bool:
        return config.password_field in fields or action == config.login_path

    tokens, missing = take_tokens(page, page_path, config.login_tokens, login_form)
    note = f"kept cookie(s) {', '.join(jar)}" if jar else "no cookie"
    note += f"; token(s) {', '.join(f for f, _ in tokens)}" if tokens else "; no token in its login form"
    record(result, "page", "GET", page_path, page, note)
    if missing:
        raise LogoutCheckError(
            f"login: the token field(s) {', '.join(missing)} are not in GET {page_path} ({page.status}); "
            "name the page with the login form with --login-page, or the source with --login-token FIELD=KIND:NAME"
        )
    form = urlencode(
        [
            *tokens,
            (config.username_field, config.username or ""),
            (config.password_field, config.password or ""),
        ]
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if jar:
        headers["Cookie"] = cookie_header(jar)
    reply = send(config, "POST", config.login_path, headers, form.encode("utf-8"))
    before = dict(jar)
    update_jar(jar, reply.set_cookies())
    name = find_session_cookie(reply.set_cookies(), config.cookie_name)
    fixed = None
    if name is None and reply.status < 400:  # not rotated at the login: the one the login page issued
        fixed = find_session_cookie([f"{k}={v}" for k, v in before.items()], config.cookie_name)
    record(
        result,
        "login",
        "POST",
        config.login_path,
        reply,
        f"{config.username_field}={config.username}"
        + (f" with {', '.join(f for f, _ in tokens)}" if tokens else ""),
    )
    if fixed is not None:
        result.steps[-1].note += f"; the login kept the {fixed} cookie of the login page (not rotated)"
        name = fixed
    return _remember(result, jar, name)


def _remember(result: Result, jar: dict[str, str], name: str | None) -> str:
    if name is None:
        wanted = (
            "a cookie named like a session cookie"
            if result.session_cookie is None
            else f"the cookie {result.session_cookie!r}"
        )
        raise LogoutCheckError(
            f"login failed: the login response set no session cookie (looked for {wanted}; "
            "wrong credentials, or name the cookie with --cookie-name)"
        )
    result.session_cookie = name
    result.session_id_sha256 = fingerprint(jar[name])
    result.steps[-1].note += f"; session cookie {name} (sha256 {result.session_id_sha256})"
    return name


def run_check(config: Config) -> Result:
    """The whole check; never raises: problems become the `error` verdict with a message."""
    result = Result(f"{config.target.scheme}://{config.target.authority}{config.target.base_path}")
    result.session_cookie = config.cookie_name
    try:
        _check(config, result)
    except LogoutCheckError as exc:
        result.verdict, result.message = ERROR, str(exc)
    return result


def _check(config: Config, result: Result) -> None:
    if config.logout_form is not None:
        check_form_template(config.logout_form)
    anonymous = send(config, "GET", config.check_path)
    record(result, "anonymous", "GET", config.check_path, anonymous, describe(anonymous, config))
    if is_alive(anonymous, config):
        raise LogoutCheckError(
            f"{config.check_path} answers {anonymous.status} without any session too: give a protected "
            "page with --check-path, or a text only logged-in users see with --alive-text"
        )
    jar: dict[str, str] = {}
    name = log_in(config, result, jar)
    page = confirm_session(config, result, jar, name)
    old_id = jar[name]  # after the confirm step, in case the application rotated the ID
    logout = send_logout(config, result, jar, name, page)
    replay = send(config, "GET", config.check_path, {"Cookie": f"{name}={old_id}"})
    record(
        result,
        "replay",
        "GET",
        config.check_path,
        replay,
        f"with the OLD {name} only: {describe(replay, config)}",
    )
    conclude(config, result, name, logout, replay)


def confirm_session(config: Config, result: Result, jar: dict[str, str], name: str) -> Reply:
    """The new session must open the check path, or there is nothing to audit; returns its answer."""
    confirm = send(config, "GET", config.check_path, {"Cookie": cookie_header(jar)})
    update_jar(jar, confirm.set_cookies())
    record(
        result, "confirm", "GET", config.check_path, confirm, f"with the session: {describe(confirm, config)}"
    )
    if not is_alive(confirm, config):
        raise LogoutCheckError(
            f"login failed: {config.check_path} with the new session answered {confirm.status}"
            + (f" -> {confirm.header('Location')}" if confirm.header("Location") else "")
            + " (wrong credentials, or a check path/alive status that does not fit this application)"
        )
    if name not in jar:
        raise LogoutCheckError(f"{config.check_path} deleted the {name} cookie right after the login")
    return confirm


def conclude(config: Config, result: Result, name: str, logout: Reply, replay: Reply) -> None:
    """The verdict from the replay of the old session cookie."""
    cookie_note = (
        f"the logout response {'replaced or deleted' if result.logout_replaced_cookie else 'did not change'}"
        f" the {name} cookie in the client"
    )
    if is_alive(replay, config):
        result.verdict = STILL_VALID
        result.message = (
            f"the old session still works after the logout (which answered {logout.status}): "
            f"{config.check_path} with the old "
            f"{name} answered {replay.status}. The logout does not invalidate the session on the server; "
            f"{cookie_note}."
        )
    else:
        result.verdict = INVALIDATED
        result.message = (
            f"the logout invalidated the session on the server: {config.check_path} with the old {name} "
            f"answered {replay.status}"
            + (f" -> {replay.header('Location')}" if replay.header("Location") else "")
            + f"; {cookie_note}."
        )


def logout_tokens(
    config: Config, result: Result, jar: dict[str, str], page: Reply | None
) -> list[tuple[str, str]]:
    """The logout form's tokens, from the logout page fetched with the session (`page`: the check page's
    answer, when the logout page is the check page). Explicit --logout-token fields must be found."""
    path = config.logout_page or config.check_path
    if page is None or config.logout_page not in (None, config.check_path):
        page = send(config, "GET", path, {"Cookie": cookie_header(jar)})
        update_jar(jar, page.set_cookies())
        record(result, "page", "GET", path, page, "with the session: the logout form")

    def logout_form(action: str, fields: dict[str, str]) -> bool:
        return action == config.logout_path

    tokens, missing = take_tokens(page, path, config.logout_tokens, logout_form)
    if missing:
        raise LogoutCheckError(
            f"logout: the token field(s) {', '.join(missing)} are not in GET {path} ({page.status}); name the "
            "page with the logout form with --logout-page, or the source with --logout-token FIELD=KIND:NAME"
        )
    return tokens


def send_logout(
    config: Config, result: Result, jar: dict[str, str], name: str, page: Reply | None = None
) -> Reply:
    """Send the logout (GET, or a method with a form rendered from the jar and the logout form's tokens)
    with the session; `page`: the check page's answer with the session (where the logout form may be)."""
    headers = {"Cookie": cookie_header(jar)}
    if config.basic is not None:
        headers["Authorization"] = basic_header(*config.basic)
    body = None
    note = ""
    if config.logout_form is not None:
        missing = missing_cookies(config.logout_form, jar)
        if missing:
            raise LogoutCheckError(
                f"--logout-form needs the cookie(s) {', '.join(missing)}, which the application did not set"
                f" (it set: {', '.join(jar) or 'none'})"
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            body = render(config.logout_form, jar, lowered, f"{name}={jar[name]}").encode("utf-8")
        except TemplateValueError as exc:
            raise LogoutCheckError(f"--logout-form: {exc}") from None
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        note = f"form {config.logout_form!r}; "
    # The logout form's tokens: asked for (--logout-token), or found in the form unless --logout-form
    # says what the body is.
    if config.logout_method not in ("GET", "HEAD") and (config.logout_form is None or config.logout_tokens):
        tokens = logout_tokens(config, result, jar, page)
        if tokens:
            extra = urlencode(tokens).encode("utf-8")
            body = body + b"&" + extra if body else extra
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            note += f"token(s) {', '.join(f for f, _ in tokens)}; "
    old_id = jar[name]
    reply = send(config, config.logout_method, config.logout_path, headers, body)
    update_jar(jar, reply.set_cookies())
    result.logout_replaced_cookie = jar.get(name) != old_id
    change = "replaced" if jar.get(name) else "deleted"
    note += (
        f"{change} the {name} cookie"
        if result.logout_replaced_cookie
        else f"left the {name} cookie as it was"
    )
    record(result, "logout", config.logout_method, config.logout_path, reply, note)
    if reply.status >= 400:
        raise LogoutCheckError(
            f"the logout request was refused: {config.logout_method} {config.logout_path} answered "
            f"{reply.status} (check --logout-method, --logout-path and --logout-form)"
        )
    return reply


# -- command line ---------------------------------------------------------------------------------
def _path(option: str, value: str) -> str:
    if not value.startswith("/") or any(c in value for c in "\r\n\x00 "):
        raise LogoutCheckError(f"{option} {value!r}: expected a path starting with '/' (no spaces)")
    return value


def config_from_args(args: argparse.Namespace) -> Config:
    """Command-line arguments -> Config; LogoutCheckError says which argument is wrong and why."""
    target = parse_target(args.url)
    basic = parse_basic(args.basic) if args.basic is not None else None
    if basic is not None and (args.username is not None or args.password is not None):
        raise LogoutCheckError(
            "give either --username/--password (form login) or --basic USER:PASSWORD, not both"
        )
    if basic is None and (args.username is None or args.password is None):
        raise LogoutCheckError("give --username and --password (form login) or --basic USER:PASSWORD")
    method = args.logout_method.upper()
    if not method.isascii() or not method.isalpha():
        raise LogoutCheckError(
            f"--logout-method {args.logout_method!r}: expected an HTTP method such as GET or POST"
        )
    try:
        alive = tuple(int(s) for s in args.alive_status.split(",") if s.strip())
    except ValueError:
        raise LogoutCheckError(
            f"--alive-status {args.alive_status!r}: expected status codes such as 200,204"
        ) from None
    if not alive:
        raise LogoutCheckError("--alive-status: give at least one status code")
    if args.timeout <= 0:
        raise LogoutCheckError(f"--timeout {args.timeout}: must be more than 0 seconds")
    if args.logout_form is not None and method in ("GET", "HEAD"):
        raise LogoutCheckError("--logout-form needs a --logout-method that sends a body, such as POST")
    return Config(
        target=target,
        username=args.username,
        password=args.password,
        basic=basic,
        username_field=args.username_field,
        password_field=args.password_field,
        login_path=_path("--login-path", args.login_path),
        login_page=_path("--login-page", args.login_page) if args.login_page else None,
        login_tokens=tuple(parse_token("--login-token", t) for t in args.login_token or ()),
        logout_method=method,
        logout_path=_path("--logout-path", args.logout_path),
        logout_form=args.logout_form,
        logout_page=_path("--logout-page", args.logout_page) if args.logout_page else None,
        logout_tokens=tuple(parse_token("--logout-token", t) for t in args.logout_token or ()),
        check_path=_path("--check-path", args.check_path),
        cookie_name=args.cookie_name,
        alive_status=alive,
        alive_text=args.alive_text,
        timeout=args.timeout,
        insecure=args.insecure,
    )


def format_result(result: Result) -> str:
    lines = [f"audit-logout {result.url}: does the logout invalidate the session on the server?"]
    lines += [step.line(n) for n, step in enumerate(result.steps, 1)]
    label = {INVALIDATED: "PASS (session invalidated)", STILL_VALID: "FAIL (old session still works)"}
    if result.verdict in label:
        lines.append(f"verdict: {label[result.verdict]}: {result.message}")
    return "\n".join(lines)


def cmd_audit_logout(args: argparse.Namespace) -> int:
    try:
        result = run_check(config_from_args(args))
    except LogoutCheckError as exc:
        result = Result(args.url, ERROR, str(exc))
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(format_result(result), flush=True)
        if result.verdict == ERROR:
            print(f"verdict: ERROR (could not complete the check): {result.message}", file=sys.stderr)
    return result.exit_status


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "audit-logout",
        help="check that an application's logout kills the session on the server "
        "(exit 0 invalidated, 1 old session still works, 2 check not completed)",
        description="Log in, confirm the session opens --check-path, log out, replay the OLD session "
        "cookie on --check-path. Exit 0: the server invalidated the session; 1: the old session still "
        "works (the defect); 2: the check could not be completed.",
    )
    p.add_argument("url", help="the application's base URL, e.g. http://127.0.0.1:8080")
    login = p.add_argument_group("login (form POST, or HTTP Basic)")
    login.add_argument("--username", help="user name for the login form")
    login.add_argument("--password", help="password for the login form")
    login.add_argument("--basic", metavar="USER:PASSWORD", help="log in with HTTP Basic instead of a form")
    login.add_argument("--login-path", default="/login", help="where the login form posts (default: /login)")
    login.add_argument(
        "--login-page",
        metavar="PATH",
        help="the page with the login form, fetched first: its cookies are kept (a pre-login session, a CSRF "
        "cookie) and its token sent with the login (default: --login-path)",
    )
    login.add_argument(
        "--login-token",
        action="append",
        metavar="FIELD[=KIND:NAME]",
        help="send FIELD with the token the login page issues: its form field FIELD, or KIND:NAME with KIND "
        "cookie, form_field, meta, header, json or regex (repeatable; default: the login form's fields named "
        "like a token: csrf, xsrf, token, ...)",
    )
    login.add_argument("--username-field", default="username", help="form field of the user name")
    login.add_argument("--password-field", default="password", help="form field of the password")
    login.add_argument(
        "--cookie-name",
        help="the session cookie's name (default: detected in the login response with the default "
        "session-cookie pattern: JSESSIONID, PHPSESSID, sessionid, ...)",
    )
    logout = p.add_argument_group("logout")
    logout.add_argument(
        "--logout-path", default="/logout", help="path and query of the logout (default: /logout)"
    )
    logout.add_argument("--logout-method", default="GET", help="HTTP method of the logout (default: GET)")
    logout.add_argument(
        "--logout-page",
        metavar="PATH",
        help="the page (fetched with the session) whose logout form carries the token (default: --check-path)",
    )
    logout.add_argument(
        "--logout-token",
        action="append",
        metavar="FIELD[=KIND:NAME]",
        help="send FIELD with the token the logout page issues, as --login-token (repeatable; default, "
        "without --logout-form: the fields named like a token of the form whose action is --logout-path)",
    )
    logout.add_argument(
        "--logout-form",
        metavar="TEMPLATE",
        help="urlencoded logout body; may use {cookie:NAME} (e.g. csrf={cookie:csrftoken}), "
        "{session_cookie}, {authorization}",
    )
    check = p.add_argument_group("the check")
    check.add_argument(
        "--check-path", default="/account", help="a page only logged-in users get (default: /account)"
    )
    check.add_argument(
        "--alive-status",
        default="200",
        metavar="CODES",
        help="comma-separated statuses of --check-path that mean logged in (default: 200)",
    )
    check.add_argument("--alive-text", help="a text the logged-in --check-path page contains")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default: 10)")
    p.add_argument("--insecure", action="store_true", help="https: do not verify the certificate")
    p.add_argument("--json", action="store_true", help="print one JSON object (verdict, steps, message)")
    p.set_defaults(func=cmd_audit_logout)
