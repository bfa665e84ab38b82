"""Transaction: the frozen snapshot of one HTTP exchange that rules inspect.

All text is "byte text": every character is one byte of the wire data (latin-1), so rules match
byte-wise the way ModSecurity does and nothing is lost to a decoding error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bodies import JsonNaming

Pairs = tuple[tuple[str, str], ...]


def byte_text(data: bytes | str) -> str:
    """Wire bytes as text, one character per byte; str input is taken as UTF-8 first."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return data.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Transaction:
    method: str = "GET"
    uri: str = "/"  # the raw request-target as sent: path and query, undecoded
    path: str = "/"  # raw path without the query string
    query: str = ""  # raw query string without '?'
    protocol: str = "HTTP/1.1"
    headers: Pairs = ()
    cookies: Pairs = ()
    query_args: Pairs = ()
    body_args: Pairs = ()
    files: Pairs = ()  # (field name, file name) of multipart uploads
    part_headers: Pairs = ()  # (field name, "Header: value") of every multipart part
    body: str = ""  # raw request body, up to the inspection limit
    body_length: int = 0  # full length of the body on the wire
    body_truncated: bool = False
    body_processor: str = ""  # URLENCODED | MULTIPART | JSON | "" (raw)
    body_error: str = ""  # why a body could not be parsed as its processor expects
    client_addr: str = ""
    # Facts from the session tracker (state, ua_changed, ...), inspected as the SESSION collection.
    session: Pairs = ()
    # Response side (phases 3 and 4).
    response_status: int = 0
    response_headers: Pairs = ()
    response_body: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # The counts over a Limits maximum, as (what, "count > limit"): args, cookies, headers, parts.
    # The collections were cut at the limit, and the engine runs only the rules about limits.
    limits_exceeded: Pairs = ()

    @property
    def args(self) -> Pairs:
        return self.query_args + self.body_args

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def with_response(self, status: int, headers: Pairs, body: str) -> Transaction:
        return _replaced(self, response_status=status, response_headers=headers, response_body=body)

    def with_session(self, facts: Pairs) -> Transaction:
        return _replaced(self, session=facts)


_FIELDS = tuple(f.name for f in fields(Transaction))
_values = attrgetter(*_FIELDS)
_SETTERS = {name: getattr(Transaction, name).__set__ for name in _FIELDS}  # the slots' own setters
_ALL_SETTERS = tuple(_SETTERS.values())


def _replaced(tx: Transaction, **changes: object) -> Transaction:
    """dataclasses.replace(tx, **changes) at about a third of its cost (the proxy does it twice per
    flow): a copy made slot by slot, without the frozen __init__'s object.__setattr__ per field
    (every field is copied, so nothing __init__ does is left out: Transaction has no __post_init__)."""
    new = object.__new__(Transaction)
    # one value per field (strict=True would cost a third more)
    for setter, value in zip(_ALL_SETTERS, _values(tx), strict=False):
        setter(new, value)
    for name, value in changes.items():
        _SETTERS[name](new, value)
    return new


DEFAULT_BODY_LIMIT = 128 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The most arguments, cookies, headers and multipart parts one request may carry before any
    rule runs (guard_max_args, guard_max_cookies, guard_max_headers, guard_max_parts)."""

    args: int = 1000
    cookies: int = 200
    headers: int = 200
    parts: int = 1000


DEFAULT_LIMITS = Limits()


def parse_cookie_header(value: str, limit: int | None = None) -> list[tuple[str, str]]:
    """Lenient `a=1; b=2` split, as ModSecurity does it: a malformed pair never hides the others.
    With `limit`, only the first `limit` pieces are read.

    (http.cookies rejects a whole header for one bad character, which would let an attacker hide
    a payload from the rules, so it is not used here.)
    """
    pairs: list[tuple[str, str]] = []
    pieces = value.split(";") if limit is None else value.split(";", limit)[:limit]
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        name, _, val = piece.partition("=")
        pairs.append((name.strip(), val.strip()))
    return pairs


def split_uri(uri: str) -> tuple[str, str]:
    """Request-target -> (path, query); absolute-form targets lose their scheme and authority."""
    if "://" in uri.split("?", 1)[0]:
        rest = uri.split("://", 1)[1]
        slash = rest.find("/")
        uri = rest[slash:] if slash >= 0 else "/"
    path, _, query = uri.partition("?")
    return path, query


def build_transaction(
    *,
    method: str | bytes,
    uri: str | bytes,
    protocol: str | bytes = "HTTP/1.1",
    headers: list[tuple[str | bytes, str | bytes]] | tuple[tuple[str | bytes, str | bytes], ...] = (),
    body: bytes | memoryview | str | None = None,
    client_addr: str = "",
    body_limit: int = DEFAULT_BODY_LIMIT,
    json_naming: JsonNaming | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Transaction:
    """Build a Transaction from the raw parts of a request (wire bytes, or text taken as UTF-8).

    `json_naming` says how the values of a JSON body are named as ARGS (bodies.JsonNaming: PATHS,
    `items.0`, the default and what our rules are written for; MODSECURITY, `items.items`, what the
    OWASP CRS is written for). It is the one point where the two views of a request differ on purpose.

    A body longer than `body_limit` is cut there and what is left is parsed as far as it goes.
    Headers, cookies, arguments and multipart parts beyond `limits` are not kept; the counts over a
    limit are in `limits_exceeded` (each collection is counted with work linear in its size).
    """
    from .bodies import JsonNaming, parse_body, parse_urlencoded  # local: bodies imports Pairs from here

    method_t, uri_t, protocol_t = byte_text(method), byte_text(uri), byte_text(protocol)
    exceeded: list[tuple[str, str]] = []
    if len(headers) > limits.headers:
        exceeded.append(("headers", f"{len(headers)} > {limits.headers}"))
        headers = headers[: limits.headers]
    header_pairs = tuple([(byte_text(k), byte_text(v)) for k, v in headers])
    path, query = split_uri(uri_t)
    cookie_values: list[str] = []
    content_type = None  # the first Content-Type
    for name, value in header_pairs:  # one pass, each name lower-cased once
        lname = name.lower()
        if lname == "cookie":
            cookie_values.append(value)
        elif lname == "content-type" and content_type is None:
            content_type = value
    cookie_count = sum(value.count(";") + 1 for value in cookie_values)  # pieces, empty ones too
    if cookie_count > limits.cookies:
        exceeded.append(("cookies", f"{cookie_count} > {limits.cookies}"))
    cookies: list[tuple[str, str]] = []
    for value in cookie_values:
        if len(cookies) >= limits.cookies:
            break
        cookies.extend(parse_cookie_header(value, limits.cookies - len(cookies)))
    del cookies[limits.cookies :]
    if body is None:
        body = b""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    body_length = len(body)
    truncated = body_length > body_limit
    view = memoryview(body)[:body_limit] if truncated else body
    body_text = str(view, "latin-1") if isinstance(view, memoryview) else view.decode("latin-1")
    parsed = parse_body(content_type, body_text, json_naming or JsonNaming.PATHS, truncated, limits.parts)
    query_count = query.count("&") + 1 if query else 0  # pieces, empty ones too
    query_args = parse_urlencoded(query, limits.args) if query else ()
    body_args = parsed.args
    if query_count + len(body_args) > limits.args:
        exceeded.append(("args", f"{query_count + len(body_args)} > {limits.args}"))
        query_args = query_args[: limits.args]
        body_args = body_args[: limits.args - len(query_args)]
    if parsed.parts > limits.parts:
        exceeded.append(("parts", f"{parsed.parts} > {limits.parts}"))
    return Transaction(
        method=method_t,
        uri=uri_t,
        path=path,
        query=query,
        protocol=protocol_t,
        headers=header_pairs,
        cookies=tuple(cookies),
        query_args=query_args,
        body_args=body_args,
        files=parsed.files,
        part_headers=parsed.part_headers,
        body=body_text,
        body_length=body_length,
        body_truncated=truncated,
        body_processor=parsed.processor,
        body_error=parsed.error,
        client_addr=client_addr,
        extra={"files_size": str(parsed.files_size)},
        limits_exceeded=tuple(exceeded),
    )
