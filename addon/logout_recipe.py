"""The logout recipe: the steps before the application's logout (pages fetched with the session, tokens taken from its answers) and the logout request, bounded in time.

The attacker never decides whether the logout works: the recipe's cookie jar starts with the
session's own identifier cookies only (never another cookie of the attacking request), follows
the application's Set-Cookie answers as a browser would, and every token comes from an answer of
the application to a request sent with the session: a cookie it set, an HTML form field or meta tag,
a header, a JSON field, or a regex group. The pure parts (jar, token taking, the logout request)
are tested on their own; `run_steps` sends through upstream_http within one deadline.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

from mitmproxy import http

from .policy import Policy, SourceKind, Step, TemplateValueError, TokenSource, render
from .sessions.cookies import ending_reason, parse_set_cookie
from .upstream_http import USER_AGENT, Delivery, Upstream, send

# RFC 6265 cookie-octets (and bytes above ASCII, kept as the request had them), quotes allowed only
# around the whole value: anything else could change how the Cookie header parses (a `;`, `"` or
# `,` makes a second cookie appear to some parsers).
_OCTETS = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e\x80-\xff\udc80-\udcff]*"
_COOKIE_VALUE = re.compile(f'(?:{_OCTETS}|"{_OCTETS}")')
_COOKIE_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def safe_cookie_pair(name: str, value: str) -> bool:
    """Whether `name=value` can go into a Cookie header without changing how it parses."""
    return bool(_COOKIE_NAME.fullmatch(name)) and bool(_COOKIE_VALUE.fullmatch(value))


class CookieJar:
    """The recipe's cookies: the session's identifier cookies, then what the application sets."""

    def __init__(self, initial: Mapping[str, str]) -> None:
        self.cookies: dict[str, str] = dict(initial)
        self.set_by_app: set[str] = set()

    def update(self, set_cookies: Iterable[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for text in set_cookies:
            cookie = parse_set_cookie(text)
            if cookie is None or not cookie.name:
                continue
            if ending_reason(cookie, now) is not None:
                self.cookies.pop(cookie.name, None)
            else:
                self.cookies[cookie.name] = cookie.value
                self.set_by_app.add(cookie.name)

    def header(self) -> str:
        """The Cookie header: every pair that cannot change how the header parses (others left out)."""
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items() if safe_cookie_pair(k, v))

    def refused(self) -> list[str]:
        """Names of cookies left out of the header for their value."""
        return [k for k, v in self.cookies.items() if not safe_cookie_pair(k, v)]


# -- taking tokens from an answer -------------------------------------------------------------------
class _PageParser(HTMLParser):
    """Forms (action, named inputs) and meta tags of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.loose: dict[str, str] = {}  # inputs outside any form
        self.meta: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((a.get("action", ""), {}))
            self._in_form = True
        elif tag in ("input", "button", "textarea") and a.get("name"):
            fields = self.forms[-1][1] if self._in_form and self.forms else self.loose
            fields.setdefault(a["name"], a.get("value", ""))
        elif tag == "meta" and a.get("name"):
            self.meta.setdefault(a["name"].lower(), a.get("content", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def parse_page(body: bytes) -> _PageParser:
    """The forms (action, named inputs), inputs outside any form and meta tags of an HTML page."""
    parser = _PageParser()
    try:
        parser.feed(body.decode("utf-8", "replace"))
        parser.close()
    except (AssertionError, ValueError):  # a malformed page: what was read so far
        pass
    return parser


def form_field(body: bytes, name: str, form_action: str | None = None) -> str | None:
    """The value of the input `name` in the page's forms (the first form whose action has the path
    `form_action`, when given), else of an input outside any form; None when there is none."""
    parsed = parse_page(body)
    for action, fields in parsed.forms:
        if form_action is not None and urlsplit(action).path.split(";", 1)[0] != form_action:
            continue
        if name in fields:
            return fields[name]
    return parsed.loose.get(name) if form_action is None else None


def meta_content(body: bytes, name: str) -> str | None:
    return parse_page(body).meta.get(name.lower())


def json_field(body: bytes, path: str) -> str | None:
    """A field of a JSON body by dotted path (`data.token`, `items.0.id`); None when absent or not a scalar."""
    try:
        node: object = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    if isinstance(node, bool) or node is None or isinstance(node, dict | list):
        return None
    return str(node)


def take_token(source: TokenSource, answer: Delivery, jar: CookieJar) -> str | None:
    """The token `source` names in the application's answer (cookies: also in the jar); None: not found."""
    match source.kind:
        case SourceKind.COOKIE:
            return jar.cookies.get(source.name) if source.name in jar.set_by_app else None
        case SourceKind.FORM_FIELD:
            return form_field(answer.body, source.name, source.form_action)
        case SourceKind.META:
            return meta_content(answer.body, source.name)
        case SourceKind.HEADER:
            return answer.header(source.name) or None
        case SourceKind.JSON:
            return json_field(answer.body, source.name)
        case SourceKind.REGEX:
            m = re.search(source.name, answer.body.decode("utf-8", "replace"))
            return m.group(1) if m and m.group(1) is not None else None
    return None


# -- the steps --------------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """One step as it went: for the outcome (names of the tokens only, never their values)."""

    method: str
    path: str
    status: int | None = None
    error: str = ""
    took: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"method": self.method, "path": self.path, "status": self.status}
        for key in ("error", "took", "missing"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data

    def problem(self, step: Step) -> str:
        """What went wrong with this step ("" when nothing)."""
        if self.status is None:
            return f"{self.method} {self.path}: no answer ({self.error})"
        parts = []
        if not step.accepts(self.status):
            parts.append(f"answered {self.status}")
        if self.missing:
            parts.append(f"token {', '.join(self.missing)} not found")
        return f"{self.method} {self.path}: {'; '.join(parts)}" if parts else ""


@dataclass
class RecipeRun:
    """The steps' results: tokens taken, the jar as the application left it, what went wrong."""

    jar: CookieJar
    tokens: dict[str, str] = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def identity_headers(jar: CookieJar, authorization: str | None) -> list[tuple[str, str]]:
    """What identifies the session in a request of the recipe: the jar's Cookie header, the credential."""
    headers = [("User-Agent", USER_AGENT)]
    cookie = jar.header()
    if cookie:
        headers.append(("Cookie", cookie))
    if authorization:
        headers.append(("Authorization", authorization))
    return headers


async def run_steps(
    steps: Iterable[Step], upstream: Upstream, jar: CookieJar, authorization: str | None, deadline: float
) -> RecipeRun:
    """Send each step with the session (jar and credential), follow its Set-Cookie, take its tokens;
    all within `deadline` (time.monotonic()). A step that fails is recorded, the next ones still run."""
    run = RecipeRun(jar)
    for step in steps:
        record = StepRecord(step.method, step.path)
        run.steps.append(record)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            record.error = "no time left (logout.timeout)"
            run.problems.append(f"{step.method} {step.path}: not sent, no time left (logout.timeout)")
            continue
        answer = await send(
            upstream, step.method, step.path, identity_headers(jar, authorization), b"", remaining
        )
        record.status, record.error = answer.status, answer.error
        jar.update(answer.set_cookies)
        if answer.status is not None:
            for name, source in step.take:
                token = take_token(source, answer, jar)
                if token is None:
                    record.missing.append(name)
                else:
                    run.tokens[name] = token
                    record.took.append(name)
        else:
            record.missing = [name for name, _ in step.take]
        problem = record.problem(step)
        if problem:
            run.problems.append(problem)
    return run


# -- the logout request -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LogoutRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def build_logout_request(
    policy: Policy,
    request: http.Request,
    jar: Mapping[str, str] | CookieJar,
    upstream: Upstream,
    tokens: Mapping[str, str] | None = None,
) -> LogoutRequest:
    """The application's own logout request for this session, from the policy's templates.

    Cookies: the jar's only (the session's own identifier cookies and what the application set
    during the steps), never another cookie of the attacking request; a value that would change how
    the header parses is left out. Raises TemplateValueError when a value would inject (CR, LF, NUL).
    """
    logout = policy.logout
    jar = jar if isinstance(jar, CookieJar) else CookieJar(jar)
    headers = {k.lower(): v for k, v in request.headers.items(multi=True)}
    session_header = jar.header()

    def fill(template: str) -> str:
        return render(template, jar.cookies, headers, session_header, policy.csrf_cookie, tokens)

    # Our own User-Agent, never the request's (it may carry the attack); a policy header may set one.
    out: list[tuple[str, str]] = [("Host", upstream.authority), ("User-Agent", USER_AGENT)]
    authorization = headers.get("authorization", "") if logout.keep_authorization else ""
    for value in (session_header, authorization):
        if any(c in value for c in "\r\n\x00"):
            raise TemplateValueError("a session cookie or credential carries CR, LF or NUL")
    if session_header:
        out.append(("Cookie", session_header))
    if authorization:
        out.append(("Authorization", authorization))
    for name, template in logout.headers:
        out = [(k, v) for k, v in out if k.lower() != name.lower()]
        value = fill(template)
        if value:
            out.append((name, value))
    # mitmproxy decodes header bytes as UTF-8 with surrogateescape: encode back to the exact bytes.
    body = fill(logout.body).encode("utf-8", "surrogateescape") if logout.body else b""
    if body:
        out.append(("Content-Type", logout.content_type))
    out.append(("Content-Length", str(len(body))))
    return LogoutRequest(logout.method, fill(logout.path), tuple(out), body)


def rewrite_to_logout(flow: http.HTTPFlow, logout: LogoutRequest, upstream: Upstream) -> None:
    """Turn the flow's request itself into the logout request to the configured upstream."""
    request = flow.request
    request.scheme = upstream.scheme
    request.host = upstream.host
    request.port = upstream.port
    request.method = logout.method
    request.path = logout.path
    request.headers = http.Headers(
        [
            (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
            for k, v in logout.headers
        ]
    )
    request.content = logout.body
    request.trailers = None
