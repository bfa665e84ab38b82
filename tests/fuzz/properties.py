"""The properties the fuzzers check, shared by the hypothesis tests and the atheris targets.

Each `check_*` takes plain inputs, runs one area of LogoutGuard on them and asserts what must hold
for every input (never raises except where documented, keeps everything, byte text stays byte text).
An AssertionError or any other exception is a finding.
"""

from __future__ import annotations

from urllib.parse import quote

from mitmproxy import http
from mitmproxy.test import tflow

from logoutguard.engine.transaction import Transaction, build_transaction, byte_text, parse_cookie_header
from logoutguard.engine.transformations import TRANSFORMATIONS
from logoutguard.flow_bridge import carried_session_ids
from logoutguard.forced_logout import Upstream, build_logout_request, rewrite_to_logout
from logoutguard.policy import (
    FORBIDDEN_IN_VALUES,
    Policy,
    PolicyError,
    TemplateValueError,
    parse_policy,
    render,
)
from logoutguard.sessions.cookies import (
    SessionCookieMatcher,
    parse_set_cookie,
    session_cookie_events,
)

CONTENT_TYPES = (
    None,
    "",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "multipart/form-data",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data; boundary=",
    "application/json",
    "application/vnd.api+json",
    "text/plain",
    "text/xml",
)
MATCHER = SessionCookieMatcher(None, ("JSESSIONID",))
INJECTION = frozenset("\r\n\x00")


def is_byte_text(text: str) -> bool:
    """Every character is one byte (latin-1 range)."""
    return all(ord(c) < 0x100 for c in text)


def _strings(tx: Transaction) -> list[str]:
    out = [tx.method, tx.uri, tx.path, tx.query, tx.protocol, tx.body, tx.body_processor]
    for pairs in (tx.headers, tx.cookies, tx.query_args, tx.body_args, tx.files, tx.part_headers):
        for name, value in pairs:
            out += [name, value]
    return out


# -- the Transaction builder ---------------------------------------------------------------------
def check_transaction(
    method: bytes,
    uri: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    content_type: str | None,
    body_limit: int,
) -> Transaction:
    """Arbitrary raw parts: never raises, keeps headers and length, all text is byte text."""
    all_headers = [*headers] + (
        [(b"Content-Type", content_type.encode())] if content_type is not None else []
    )
    tx = build_transaction(method=method, uri=uri, headers=all_headers, body=body, body_limit=body_limit)
    assert tx.body_length == len(body), (tx.body_length, len(body))
    assert tx.body_truncated == (len(body) > body_limit)
    assert tx.body == body[:body_limit].decode("latin-1")
    assert tx.method == method.decode("latin-1") and tx.uri == uri.decode("latin-1")
    assert tx.headers == tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in all_headers)
    bad = [s for s in _strings(tx) if not is_byte_text(s)]
    assert not bad, f"not byte text: {bad[:3]!r}"
    cookie_pairs = [p for k, v in tx.headers if k.lower() == "cookie" for p in parse_cookie_header(v)]
    assert list(tx.cookies) == cookie_pairs
    return tx


def _encoded(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"&".join(quote(k, safe="").encode() + b"=" + quote(v, safe="").encode() for k, v in pairs)


def check_args_kept(query: list[tuple[bytes, bytes]], form: list[tuple[bytes, bytes]]) -> None:
    """Percent-encoded query and form pairs come back as ARGS, every one, in order, byte-exact."""
    uri = b"/p" + (b"?" + _encoded(query) if query else b"")
    tx = build_transaction(
        method=b"POST",
        uri=uri,
        headers=[(b"Content-Type", b"application/x-www-form-urlencoded")],
        body=_encoded(form),
    )
    as_text = [(byte_text(k), byte_text(v)) for k, v in query]
    assert list(tx.query_args) == as_text, (tx.query_args, as_text)
    assert list(tx.body_args) == [(byte_text(k), byte_text(v)) for k, v in form]
    assert list(tx.args) == as_text + list(tx.body_args)


def check_json_args_kept(document: dict[str, str]) -> None:
    """Every key and value of a flat JSON object is an ARG (as its UTF-8 bytes)."""
    import json

    body = json.dumps(document).encode()
    tx = build_transaction(
        method=b"POST", uri=b"/api", headers=[(b"Content-Type", b"application/json")], body=body
    )
    expected = {(byte_text(k), byte_text(v)) for k, v in document.items()}
    assert set(tx.body_args) == expected and tx.body_processor == "JSON"


def check_multipart_args_kept(fields: list[tuple[str, bytes]]) -> None:
    """Every field of a well-formed multipart body is an ARG with its exact bytes."""
    boundary = b"----fuzzBoundary7MA4YWxk"
    parts = b"".join(
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"\r\n\r\n'
        + value
        + b"\r\n"
        for name, value in fields
    )
    body = parts + b"--" + boundary + b"--\r\n"
    tx = build_transaction(
        method=b"POST",
        uri=b"/upload",
        headers=[(b"Content-Type", b"multipart/form-data; boundary=" + boundary)],
        body=body,
    )
    assert tx.body_processor == "MULTIPART", tx.body_error
    assert list(tx.body_args) == [(name, value.decode("latin-1")) for name, value in fields], tx.body_args


# -- transformations -----------------------------------------------------------------------------
def check_transformation(name: str, value: str) -> str:
    """Byte text in, byte text out; any str (even beyond latin-1) in: never raises."""
    result = TRANSFORMATIONS[name](value)
    assert isinstance(result, str), type(result)
    if is_byte_text(value):
        assert is_byte_text(result), f"{name}({value!r}) -> {result!r}: not byte text"
    return result


# -- cookies -------------------------------------------------------------------------------------
def check_set_cookie(header_value: str, now: float) -> None:
    """Set-Cookie parsing never raises; what it yields is well-formed."""
    cookie = parse_set_cookie(header_value)
    if cookie is not None:
        assert ";" not in cookie.name and ";" not in cookie.value
        assert cookie.name == cookie.name.strip(" \t") and cookie.value == cookie.value.strip(" \t")
        assert cookie.name or cookie.value
        for key, _ in cookie.attributes:
            assert key and key == key.lower() and ";" not in key
    for event in session_cookie_events([header_value, header_value], now, MATCHER):
        assert event.kind in ("issued", "ended") and MATCHER.matches(event.name)
        if event.kind == "issued":
            assert event.value


def check_cookie_header(header_values: list[str]) -> None:
    """Request Cookie parsing never raises; session IDs are non-empty, unique, of session cookies."""
    ids = carried_session_ids(header_values, MATCHER)
    assert len(ids) == len(set(ids))
    for name, value in ids:
        assert value and MATCHER.matches(name) and ";" not in value
    for value in header_values:
        for name, val in parse_cookie_header(value):
            assert ";" not in name and ";" not in val


# -- policy templates ----------------------------------------------------------------------------
def check_render(template: str, cookies: dict[str, str], headers: dict[str, str], session: str) -> None:
    """A template free of CR/LF/NUL renders free of them, or raises TemplateValueError; nothing else."""
    try:
        out = render(template, cookies, {k.lower(): v for k, v in headers.items()}, session, "csrftoken")
    except TemplateValueError:
        values = [*cookies.values(), *headers.values(), session]
        assert any(FORBIDDEN_IN_VALUES.search(v) for v in values), "refused without a forbidden value"
        return
    if not FORBIDDEN_IN_VALUES.search(template):
        assert not INJECTION & set(out), f"{template!r} rendered {out!r}"


def logout_policy(path: str, header_template: str, body_template: str) -> Policy | None:
    """A policy with these logout templates, through the real loader; None when it refuses them
    (a template with CR/LF/NUL or an unknown placeholder never gets as far as a request). Its recipe
    has a step that takes the token `csrf`, so `{csrf}` and `{token:csrf}` are allowed."""
    data = {
        "session": {"cookies": ["JSESSIONID"], "csrf_cookie": "csrftoken"},
        "logout": {
            "steps": [{"path": "/account", "take": {"csrf": {"form_field": "csrf"}}}],
            "method": "POST",
            "path": path,
            "headers": {"X-Logout": header_template},
            "body": body_template,
        },
    }
    try:
        return parse_policy(data)
    except PolicyError:
        return None


def check_logout_request(
    request: http.Request, policy: Policy | None, upstream: Upstream, tokens: dict[str, str] | None = None
) -> None:
    """The logout request built from a request (and tokens an application answer gave) and applied to
    its flow: it goes to the upstream only, nothing injects, only the session's own cookies travel
    (never a cookie name the request carried besides them, whatever the values), and the original
    bytes survive the rewrite."""
    if policy is None:
        return
    session = dict(carried_session_ids(request.headers.get_all("cookie"), MATCHER))
    try:
        logout = build_logout_request(policy, request, session, upstream, tokens)
    except TemplateValueError:
        values = [*(tokens or {}).values(), *request.headers.values()]
        assert any(FORBIDDEN_IN_VALUES.search(v) for v in values), "refused without a forbidden value"
        return
    flow = tflow.tflow(req=request.copy())
    rewrite_to_logout(flow, logout, upstream)
    assert (flow.request.scheme, flow.request.host, flow.request.port) == (
        upstream.scheme,
        upstream.host,
        upstream.port,
    )
    assert flow.request.headers.get_all("host") == [upstream.authority]
    assert flow.request.path == logout.path and flow.request.raw_content == logout.body
    names = [k.lower() for k, _ in logout.headers]
    assert names[0] == "host" and logout.headers[0][1] == upstream.authority
    assert names.count("host") == 1
    for key, value in logout.headers:
        assert not INJECTION & set(key + value), (key, value)
    assert not INJECTION & set(logout.path) and logout.path.startswith("/")
    for key, value in logout.headers:
        if key.lower() == "cookie":
            sent = [n for n, _ in parse_cookie_header(value)]
            assert set(sent) <= set(session) and len(sent) == len(set(sent)), (sent, session)
