"""Learn a policy from a recorded session (log in, browse, log out): what `logoutguard learn` writes.

Pure: `learn` takes the recorded exchanges (plain data, in order) and returns the policy as the data
of a policy file (the same the loader reads) with the evidence for each part. What it finds:

- the login: a request that sends a form or JSON with a password field and is not refused;
- the logout: the first request after the login whose answer deletes a cookie the login issued;
  else a request to a logout-like path (logout, logoff, signout) after the login;
- the session cookies: those the logout request carried and its answer deleted or replaced (else
  those the login issued that look like session cookies); remember-me cookies among them by the
  default pattern or by a lifetime of more than 30 days; `kept_in: cookie` when the session cookie's
  value is data (a signed JSON payload: Flask/itsdangerous, a JWT) rather than an identifier;
- the logout recipe: every value of the logout request (form or JSON field, query, header) that the
  application issued earlier is a token, and a step fetches the page that issued it; the source (a
  cookie it set, a form field, a meta tag, a header, a JSON field, a regex) is checked by taking the
  token from that recorded answer with the recipe's own extraction (logout_recipe.take_token);
- the check page: a GET answered both while logged in and after the logout, told apart by the
  status (and redirect target) or by a body marker, checked against every recorded answer.

Values that stay literal are named in the notes; a token the recording cannot explain is an error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from mitmproxy import http

from .logout_recipe import CookieJar, parse_page, take_token
from .policy import DEFAULT_PASSWORD_FIELDS, SourceKind, TokenSource
from .sessions.cookies import (
    DEFAULT_SESSION_COOKIE_PATTERN,
    ending_reason,
    parse_http_date,
    parse_max_age,
    parse_set_cookie,
)
from .sessions.identifiers import DEFAULT_REMEMBER_PATTERN
from .upstream_http import Delivery

LOGOUT_PATH = re.compile(r"(?i)log[-_]?out|log[-_]?off|sign[-_]?out|sign[-_]?off|end[-_]?session")
USER_FIELD = re.compile(r"(?i)user|login|email|account|j_username")
PASSWORD_FIELD = re.compile(DEFAULT_PASSWORD_FIELDS)
REMEMBER = re.compile(DEFAULT_REMEMBER_PATTERN, re.IGNORECASE)
SESSION_NAME = re.compile(DEFAULT_SESSION_COOKIE_PATTERN, re.IGNORECASE)
CSRF_NAME = re.compile(r"(?i)csrf|xsrf|token")
REMEMBER_LIFETIME = 30 * 24 * 3600.0  # a cookie kept longer than this is a persistent login
MIN_TOKEN_LENGTH = 8  # shorter values (flags, "1", "on") are never taken for tokens
SKIPPED_HEADERS = {
    "host", "cookie", "content-length", "content-type", "user-agent", "accept", "accept-encoding",
    "accept-language", "connection", "origin", "referer", "cache-control", "pragma", "te",
    "upgrade-insecure-requests", "priority", "dnt",
}  # fmt: skip
MARKER_MAX = 60
MULTIPART_FIELD = re.compile(r'Content-Disposition: form-data; name="([^"]+)"\r?\n\r?\n([^\r\n]*)', re.I)


class LearnError(ValueError):
    """The recording does not show what a policy needs (no login, no logout, a token of unknown origin)."""


@dataclass(frozen=True)
class Exchange:
    """One recorded request and its answer (plain data: what `learn` reads)."""

    index: int
    method: str
    path: str  # path and query, as sent
    request_headers: tuple[tuple[str, str], ...] = ()
    request_body: bytes = b""
    status: int | None = None  # None: no answer recorded
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""

    @property
    def bare_path(self) -> str:
        return urlsplit(self.path).path or "/"

    def request_header(self, name: str) -> str:
        return next((v for k, v in self.request_headers if k.lower() == name.lower()), "")

    def response_header(self, name: str) -> str:
        return next((v for k, v in self.response_headers if k.lower() == name.lower()), "")

    def cookies_sent(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for k, v in self.request_headers:
            if k.lower() == "cookie":
                for pair in v.split(";"):
                    name, sep, value = pair.strip().partition("=")
                    if sep and name:
                        found.setdefault(name, value)
        return found

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.response_headers if k.lower() == "set-cookie"]

    def delivery(self) -> Delivery:
        """The answer as the recipe sees one (for checking a token source on it)."""
        return Delivery(
            status=self.status,
            set_cookies=self.set_cookies(),
            headers=list(self.response_headers),
            body=self.response_body,
        )

    def form(self) -> list[tuple[str, str]] | None:
        """The request's fields (urlencoded or a flat JSON object); None when it sends neither."""
        kind = self.request_header("content-type").split(";")[0].strip().lower()
        text = self.request_body.decode("utf-8", "replace")
        if kind == "application/json":
            try:
                data = json.loads(text)
            except ValueError:
                return None
            if not isinstance(data, dict):
                return None
            return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
        if kind in ("application/x-www-form-urlencoded", "") and self.request_body:
            return parse_qsl(text, keep_blank_values=True)
        if kind == "multipart/form-data":  # the simple fields (file parts left out)
            return MULTIPART_FIELD.findall(text)
        return None


def exchange_of(index: int, flow: http.HTTPFlow) -> Exchange:
    """A recorded mitmproxy flow as an Exchange (bodies decoded as the application sent them)."""
    request, response = flow.request, flow.response

    def body(message: http.Message) -> bytes:
        try:
            return message.get_content(strict=False) or b""
        except ValueError:
            return message.raw_content or b""

    return Exchange(
        index=index,
        method=request.method.upper(),
        path=request.path,
        request_headers=tuple(request.headers.items(multi=True)),
        request_body=body(request),
        status=response.status_code if response is not None else None,
        response_headers=tuple(response.headers.items(multi=True)) if response is not None else (),
        response_body=body(response) if response is not None else b"",
    )


@dataclass
class Learned:
    """The learned policy (the data of a policy file) and the evidence, one line per finding."""

    policy: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# -- the parts --------------------------------------------------------------------------------------
def find_logins(exchanges: Sequence[Exchange]) -> list[Exchange]:
    """The successful logins: a form or JSON with a password field, answered below 400 (in order)."""
    logins = [
        ex
        for ex in exchanges
        if ex.method not in ("GET", "HEAD")
        and ex.status is not None
        and ex.status < 400
        and any(PASSWORD_FIELD.search(name) for name, _ in ex.form() or ())
    ]
    if not logins:
        raise LearnError(
            "no login in the recording: no request sent a form or JSON with a password field and was answered "
            "below 400 (record the login itself, not only a session that was already logged in)"
        )
    return logins


def _issued(ex: Exchange, now: float) -> dict[str, str]:
    found = {}
    for text in ex.set_cookies():
        cookie = parse_set_cookie(text)
        if cookie and cookie.name and ending_reason(cookie, now) is None:
            found[cookie.name] = cookie.value
    return found


def _ended(ex: Exchange, now: float) -> set[str]:
    found = set()
    for text in ex.set_cookies():
        cookie = parse_set_cookie(text)
        if cookie and cookie.name and ending_reason(cookie, now) is not None:
            found.add(cookie.name)
    return found


def _lifetime(ex: Exchange, name: str, now: float) -> float | None:
    for text in ex.set_cookies():
        cookie = parse_set_cookie(text)
        if cookie is None or cookie.name != name:
            continue
        max_age = cookie.attribute("max-age")
        if max_age is not None and parse_max_age(max_age) is not None:
            return float(parse_max_age(max_age) or 0)
        expires = cookie.attribute("expires")
        if expires:
            when = parse_http_date(expires)
            return None if when is None else when - now
    return None


def find_logout(exchanges: Sequence[Exchange], login: Exchange, now: float) -> tuple[Exchange, str]:
    """The logout after `login`, and why it is taken for one."""
    issued = set(_issued(login, now))
    after = [ex for ex in exchanges if ex.index > login.index and ex.status is not None]
    for ex in after:
        ended = _ended(ex, now) & (issued | set(ex.cookies_sent()))
        if ended and ex.cookies_sent():
            return ex, f"its answer deleted the cookie(s) {', '.join(sorted(ended))}"
    for ex in sorted(after, key=lambda e: e.method in ("GET", "HEAD")):  # a POST first
        if LOGOUT_PATH.search(ex.bare_path):
            return ex, f"its path looks like a logout ({ex.bare_path}); its answer deleted no cookie"
    raise LearnError(
        f"no logout after the login ({login.method} {login.bare_path}, flow {login.index}): no answer deleted a "
        "cookie the login issued and no request went to a logout-like path (record the logout itself)"
    )


def session_cookies(login: Exchange, logout: Exchange, now: float) -> tuple[list[str], list[str], list[str]]:
    """(session cookies, remember-me cookies, notes) from what the login issued and the logout ended."""
    issued = _issued(login, now)
    sent = logout.cookies_sent()
    replaced = {n for n, v in _issued(logout, now).items() if n in sent and sent[n] != v}
    ended = (_ended(logout, now) | replaced) & (set(sent) | set(issued))
    notes = []
    if ended:
        names = [n for n in [*sent, *issued] if n in ended]
        notes.append(
            f"session cookies: {', '.join(dict.fromkeys(names))} (the logout deleted or replaced them)"
        )
    else:
        names = [n for n in issued if n in sent and SESSION_NAME.search(n)] or [
            n for n in issued if n in sent and not CSRF_NAME.search(n)
        ]
        if not names:
            raise LearnError(
                f"no session cookie: the logout ({logout.method} {logout.bare_path}) neither deleted nor replaced "
                "a cookie, and none the login issued was sent with it"
            )
        notes.append(
            f"session cookies: {', '.join(names)} (issued at the login and sent with the logout; the logout's "
            "answer did not change them)"
        )
    names = list(dict.fromkeys(names))
    remember = []
    for name in names:
        lifetime = _lifetime(login, name, now)
        if REMEMBER.search(name) or (
            lifetime is not None
            and lifetime > REMEMBER_LIFETIME
            and name in _ended(logout, now)
            and len(names) > 1
        ):
            remember.append(name)
    if remember:
        notes.append(f"remember-me cookies: {', '.join(remember)}")
    return [n for n in names if n not in remember], remember, notes


def _b64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def is_data_cookie(value: str) -> bool:
    """The cookie carries the session's data (signed JSON: itsdangerous/Flask, a JWT), not an ID naming it."""
    value = unquote(value).strip('"')
    compressed = value.startswith(".")
    first = value.lstrip(".").split(".", 1)[0]
    raw = _b64(first)
    if raw is None:
        return False
    if compressed:
        try:
            raw = zlib.decompress(raw)
        except zlib.error:
            return False
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


# -- tokens -----------------------------------------------------------------------------------------
def _forms_with(body: bytes, value: str) -> list[tuple[str, str]]:
    """(field name, action path) of every form input whose value is `value`."""
    parsed = parse_page(body)
    found = [
        (name, urlsplit(action).path.split(";", 1)[0])
        for action, fields in parsed.forms
        for name, v in fields.items()
        if v == value
    ]
    return found + [(name, "") for name, v in parsed.loose.items() if v == value]


def _json_paths(node: object, value: str, prefix: str = "") -> Iterable[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, value, f"{prefix}{k}.")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, value, f"{prefix}{i}.")
    elif not isinstance(node, bool) and node is not None and str(node) == value:
        yield prefix[:-1]


def source_candidates(ex: Exchange, value: str, prefer_action: str) -> list[TokenSource]:
    """Where `value` could have come from in this answer, best first (not yet checked)."""
    found: list[TokenSource] = []
    for name, action in sorted(_forms_with(ex.response_body, value), key=lambda f: f[1] != prefer_action):
        found.append(TokenSource(SourceKind.FORM_FIELD, name, action or None))
    parsed = parse_page(ex.response_body) if b"<meta" in ex.response_body.lower() else None
    if parsed is not None:
        found += [TokenSource(SourceKind.META, n) for n, v in parsed.meta.items() if v == value]
    with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
        found += [
            TokenSource(SourceKind.JSON, p) for p in _json_paths(json.loads(ex.response_body), value) if p
        ]
    found += [
        TokenSource(SourceKind.HEADER, k)
        for k, v in ex.response_headers
        if v == value and k.lower() != "set-cookie"
    ]
    found += [
        TokenSource(SourceKind.COOKIE, c.name)
        for text in ex.set_cookies()
        if (c := parse_set_cookie(text)) is not None and c.name and c.value == value
    ]
    text = ex.response_body.decode("utf-8", "replace")
    at = text.find(value)
    if at > 0:
        before = text[max(0, at - 24) : at].split("\n")[-1]
        if before:
            found.append(TokenSource(SourceKind.REGEX, re.escape(before) + r"([^\"'<>\s&;]+)"))
    return found


def checked_source(ex: Exchange, value: str, prefer_action: str) -> TokenSource | None:
    """The first candidate source that gives back exactly `value` from the recorded answer."""
    for source in source_candidates(ex, value, prefer_action):
        jar = CookieJar({})
        jar.update(ex.set_cookies())
        if take_token(source, ex.delivery(), jar) == value:
            return source
    return None


def _source_data(source: TokenSource) -> dict[str, str]:
    data = {source.kind.value: source.name}
    if source.form_action:
        data["form_action"] = source.form_action
    return data


@dataclass
class Token:
    name: str
    value: str
    where: str  # "body field csrfmiddlewaretoken", "header X-CSRFToken", "query field t"
    page: Exchange
    source: TokenSource


def _looks_random(value: str) -> bool:
    return len(value) >= 16 and bool(re.search(r"\d", value)) and bool(re.search(r"[A-Za-z]", value))


def logout_values(logout: Exchange) -> list[tuple[str, str]]:
    """(where, value) of every value the logout request sends that may be a token."""
    found = [(f"body field {k}", v) for k, v in logout.form() or ()]
    found += [
        (f"query field {k}", v) for k, v in parse_qsl(urlsplit(logout.path).query, keep_blank_values=True)
    ]
    found += [
        (f"header {k}", v)
        for k, v in logout.request_headers
        if k.lower() not in SKIPPED_HEADERS and not k.lower().startswith("sec-")
    ]
    return found


def find_tokens(
    exchanges: Sequence[Exchange], login: Exchange, logout: Exchange, session: Iterable[str]
) -> tuple[list[Token], list[str]]:
    """The tokens of the logout request with the recorded answer each came from; notes on literal values."""
    session_values = {v for n, v in logout.cookies_sent().items() if n in session}
    # The pages a step can fetch again (GETs), those fetched with the session after the login first
    # (the recipe fetches with the session), the newest first.
    earlier = [
        ex
        for ex in reversed(exchanges)
        if ex.index < logout.index and ex.status is not None and ex.method == "GET"
    ]
    earlier.sort(key=lambda ex: ex.index < login.index)
    tokens: list[Token] = []
    notes: list[str] = []
    for where, value in logout_values(logout):
        if len(value) < MIN_TOKEN_LENGTH or value in session_values:
            if where.startswith("header") or not value:
                continue
            notes.append(f"logout {where}: kept as recorded ({value!r})")
            continue
        token = None
        for ex in earlier:
            if value not in _answer_text(ex):
                continue
            source = checked_source(ex, value, logout.bare_path)
            if source is not None:
                name = "csrf" if not tokens else re.sub(r"[^A-Za-z0-9_.-]", "_", where.split(" ", 2)[-1])
                token = Token(name, value, where, ex, source)
                break
        if token is not None:
            tokens.append(token)
            seen = "after" if token.page.index > login.index else "BEFORE"
            notes.append(
                f"token {token.name} ({where}): {token.source.kind.value} {token.source.name!r} of "
                f"{token.page.method} {token.page.path} (flow {token.page.index}, {seen} the login)"
            )
        elif where.startswith("header"):
            continue  # a header of the client's own (no token): not repeated
        elif _looks_random(value) or CSRF_NAME.search(where):
            raise LearnError(
                f"the logout's {where} carries a value no earlier answer issued (a token from elsewhere, or "
                "fetched outside the recording): record the whole session through the proxy, from the login"
            )
        else:
            notes.append(f"logout {where}: kept as recorded ({value!r})")
    return tokens, notes


def _answer_text(ex: Exchange) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in ex.response_headers)
    return headers + "\n" + ex.response_body.decode("utf-8", "replace")


def template(text: str, tokens: Sequence[Token], encode: bool) -> str:
    """The recorded text with each token's value (raw, or URL-encoded) as its placeholder."""
    for token in sorted(tokens, key=lambda t: -len(t.value)):
        for form in {token.value, quote(token.value, safe="")} if encode else {token.value}:
            text = text.replace(form, "{token:" + token.name + "}")
    return text


# -- the check page ---------------------------------------------------------------------------------
class _Texts(HTMLParser):
    """The text pieces of a page and the form actions and input names (marker candidates)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.password_form: list[str] = []  # action and password input name of a login form
        self._action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "form":
            self._action = a.get("action", "")
        elif tag == "input" and a.get("type", "").lower() == "password":
            self.password_form += [x for x in (self._action, a.get("name", "")) if x]

    def handle_data(self, data: str) -> None:
        for line in data.splitlines():
            if line.strip():
                self.texts.append(" ".join(line.split()))


def _texts(body: bytes) -> _Texts:
    parser = _Texts()
    try:
        parser.feed(body.decode("utf-8", "replace"))
        parser.close()
    except (AssertionError, ValueError):
        pass
    return parser


def _marker(
    ins: Sequence[bytes], outs: Sequence[bytes], prefer: Sequence[str], user: str | None
) -> str | None:
    """A text every body of `ins` has and no body of `outs` has (None: none)."""
    if not ins:
        return None
    first = _texts(ins[0])
    candidates = list(prefer) + first.password_form
    for text in first.texts:
        if user and user in text:
            candidates.insert(0, text.split(user, 1)[0].strip())
        candidates.append(text[:MARKER_MAX].strip())

    def fits(marker: str) -> bool:
        data = marker.encode("utf-8")
        return (
            len(marker) >= 4
            and all(data in body for body in ins)
            and not any(data in body for body in outs)
            and not (user and user in marker)
        )

    return next((c for c in dict.fromkeys(candidates) if fits(c)), None)


def _location_path(ex: Exchange) -> str:
    return urlsplit(ex.response_header("location")).path


def check_page(
    exchanges: Sequence[Exchange], login: Exchange, logout: Exchange, user: str | None
) -> tuple[dict[str, Any], str | None, list[str]]:
    """The verify section, where a revoked session is sent (a redirect target or None), notes."""
    logged_in = [
        ex
        for ex in exchanges
        if login.index < ex.index < logout.index and ex.method == "GET" and ex.status is not None
    ]
    logged_out = [
        ex
        for ex in exchanges
        if ex.index > logout.index
        and ex.method == "GET"
        and ex.status is not None
        and not (ex.form() and any(PASSWORD_FIELD.search(n) for n, _ in ex.form() or ()))
    ]
    best: tuple[tuple[int, int, int], dict[str, Any], str | None, str] | None = None
    for path in dict.fromkeys(ex.path for ex in logged_in):
        ins = [ex for ex in logged_in if ex.path == path]
        outs = [ex for ex in logged_out if ex.path == path]
        if not outs:
            continue
        in_status = sorted({ex.status for ex in ins if ex.status is not None})
        out_status = sorted({ex.status for ex in outs if ex.status is not None})
        locations = {_location_path(ex) for ex in outs}
        location = (
            locations.pop()
            if len(locations) == 1 and all(300 <= (ex.status or 0) < 400 for ex in outs)
            else None
        )
        marker_in = _marker([ex.response_body for ex in ins], [ex.response_body for ex in outs], (), user)
        marker_out = None
        if set(in_status) & set(out_status):
            marker_out = _marker(
                [ex.response_body for ex in outs], [ex.response_body for ex in ins], (), user
            )
            if marker_in is None and marker_out is None:
                continue
        state_in: dict[str, Any] = {"status": in_status[0] if len(in_status) == 1 else in_status}
        state_out: dict[str, Any] = {"status": out_status[0] if len(out_status) == 1 else out_status}
        if marker_in:
            state_in["marker"] = marker_in
        if marker_out:
            state_out["marker"] = marker_out
        if location:
            state_out["location"] = location
        verify = {"check_path": path, "logged_in": state_in, "logged_out": state_out}
        how = (
            (f"status {in_status} vs {out_status}" if not set(in_status) & set(out_status) else "the body")
            + (f", marker {marker_in!r}" if marker_in else "")
            + (f" / {marker_out!r}" if marker_out else "")
        )
        rank = (int(not set(in_status) & set(out_status)), int(bool(marker_in)), len(ins) + len(outs))
        if best is None or rank > best[0]:
            best = (rank, verify, location, f"check page {path}: logged in vs out by {how}")
    if best is not None:
        return best[1], best[2], [best[3]]
    fallback = next((ex.path for ex in logged_in if ex.status is not None and 200 <= ex.status < 300), "/")
    return (
        {"check_path": fallback},
        None,
        [
            f"check page {fallback}: no page was fetched both logged in and after the logout with answers that "
            "differ; the probe compares it with an anonymous answer (record a visit of a login-only page "
            "after the logout for a sharper check)"
        ],
    )


# -- the whole ---------------------------------------------------------------------------------------
def learn(exchanges: Sequence[Exchange], application: str = "", now: float | None = None) -> Learned:
    """The policy a recorded session (log in, browse, log out) shows; LearnError when it shows none."""
    now = time.time() if now is None else now
    found: tuple[Exchange, Exchange, str] | None = None
    problem = LearnError("no login")
    for login in reversed(find_logins(exchanges)):  # the last login a logout follows
        try:
            found = (login, *find_logout(exchanges, login, now))
            break
        except LearnError as exc:
            problem = exc
    if found is None:
        raise problem
    login, logout, why = found
    notes = [
        f"login: {login.method} {login.bare_path} (flow {login.index}, answered {login.status})",
        f"logout: {logout.method} {logout.path} (flow {logout.index}, answered {logout.status}): {why}",
    ]
    cookies, remember, cookie_notes = session_cookies(login, logout, now)
    notes += cookie_notes
    issued = _issued(login, now)
    kept_in_cookie = any(is_data_cookie(issued.get(n) or logout.cookies_sent().get(n, "")) for n in cookies)
    if kept_in_cookie:
        notes.append(
            "kept_in: cookie (the session cookie's value is signed data, not an ID: the application's logout "
            "cannot end a copy of it; the proxy's revocation is the defence)"
        )
    tokens, token_notes = find_tokens(exchanges, login, logout, [*cookies, *remember])
    notes += token_notes
    user = next(
        (v for k, v in login.form() or () if USER_FIELD.search(k) and not PASSWORD_FIELD.search(k) and v),
        None,
    )
    verify, revoked_to, check_notes = check_page(exchanges, login, logout, user)
    notes += check_notes

    session: dict[str, Any] = {"cookies": cookies}
    if remember:
        session["remember_cookies"] = remember
    if kept_in_cookie:
        session["kept_in"] = "cookie"
    session["authenticated"] = {"login_paths": [login.bare_path]}

    steps: dict[int, dict[str, Any]] = {}
    for token in tokens:
        step = steps.setdefault(token.page.index, {"path": token.page.path})
        if token.page.status is not None and not 200 <= token.page.status < 300:
            step["expect_status"] = [token.page.status]
        step.setdefault("take", {})[token.name] = _source_data(token.source)
    logout_data: dict[str, Any] = {}
    if steps:
        logout_data["steps"] = [steps[i] for i in sorted(steps)]
    logout_data["method"] = logout.method
    logout_data["path"] = template(logout.path, tokens, encode=True)
    headers = {
        k: template(v, tokens, encode=False)
        for k, v in logout.request_headers
        if any(t.where == f"header {k}" for t in tokens)
    }
    if headers:
        logout_data["headers"] = headers
    if logout.request_body:
        kind = logout.request_header("content-type").split(";")[0].strip()
        logout_data["body"] = template(
            logout.request_body.decode("utf-8", "replace"), tokens, encode=kind != "application/json"
        )
        if kind and kind != "application/x-www-form-urlencoded":  # as sent (a multipart boundary too)
            logout_data["content_type"] = logout.request_header("content-type")
    if logout.status is not None and 100 <= logout.status < 400:
        logout_data["expect_status"] = [logout.status]
    location = _location_path(logout)
    if logout.status is not None and 300 <= logout.status < 400 and location.startswith("/"):
        logout_data["client_response"] = {"type": "redirect", "location": location}
    logout_data["verify"] = verify

    policy: dict[str, Any] = {}
    if application:
        policy["application"] = application
    policy["session"] = session
    policy["logout"] = logout_data
    if revoked_to:
        policy["actions"] = {"revoked_session": "redirect", "redirect_location": revoked_to}
    else:
        policy["actions"] = {"revoked_session": "deny"}
    return Learned(policy, notes)


def to_yaml(learned: Learned, source: str) -> str:
    """The policy file's text: the evidence as comments, then the policy."""
    import yaml

    head = [f"# LogoutGuard policy learned from {source} by `logoutguard learn`. Review it before use:"]
    head += [f"#   {note}" for note in learned.notes]
    body = yaml.safe_dump(learned.policy, sort_keys=False, allow_unicode=True, width=120)
    return "\n".join(head) + "\n" + body
