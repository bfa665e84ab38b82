"""Transaction: the frozen snapshot of one HTTP exchange that rules inspect.

All text is "byte text": every character is one byte of the wire data (latin-1), so rules match
byte-wise the way ModSecurity does and nothing is lost to a decoding error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .memo import MAX_TEXT, Memo

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
        return _with_response(self, status, headers, body)

    def with_session(self, facts: Pairs) -> Transaction:
        return _with_session(self, facts)


_FIELDS = tuple(f.name for f in fields(Transaction))


def _slot_writer(name: str, params: str, value_of: Callable[[str], str], **names: object) -> Any:
    """A function `name(params)` making a Transaction slot by slot in straight-line code (generated,
    as dataclasses makes __init__): object.__new__, then each field's slot setter in field order,
    with the value `value_of(field)` (an expression of the parameters and `names`). What the frozen
    __init__ or dataclasses.replace give, at about half the cost (the proxy makes three Transactions
    per flow): no object.__setattr__ per field, no loop. Every field is set, so nothing __init__ does
    is left out (Transaction has no __post_init__), and the result is as frozen as any other."""
    if hasattr(Transaction, "__post_init__"):  # it would be skipped: fail at import instead
        raise TypeError("Transaction has a __post_init__: _slot_writer's copies would skip it")
    namespace: dict[str, Any] = {"_new": object.__new__, "_Transaction": Transaction, **names}
    lines = [f"def {name}({params}):", "    new = _new(_Transaction)"]
    for i, field_name in enumerate(_FIELDS):
        namespace[f"_set{i}"] = getattr(Transaction, field_name).__set__  # the slot's own setter
        lines.append(f"    _set{i}(new, {value_of(field_name)})")
    lines.append("    return new")
    exec("\n".join(lines), namespace)  # our own text, made from the field names
    return namespace[name]


def _copy_setting(*changed: str) -> Any:
    """(tx, *values of `changed`) -> a copy of tx with those fields changed (dataclasses.replace)."""
    return _slot_writer(
        "copy_setting", ", ".join(("tx", *changed)), lambda f: f if f in changed else f"tx.{f}"
    )


def _made_by_keywords() -> Any:
    """Transaction(**values) for build_transaction: the same keywords and defaults as its __init__,
    but a field with a default_factory (extra) must be given (build_transaction always gives it)."""
    defaults = {f"_default_{f.name}": f.default for f in fields(Transaction) if f.default is not MISSING}
    params = (f"{f}=_default_{f}" if f"_default_{f}" in defaults else f for f in _FIELDS)
    return _slot_writer("made", "*, " + ", ".join(params), lambda f: f, **defaults)


_with_session = _copy_setting("session")
_with_response = _copy_setting("response_status", "response_headers", "response_body")
_made = _made_by_keywords()


DEFAULT_BODY_LIMIT = 128 * 1024
PAIRS_ENTRIES = 4096  # short Cookie headers, and short query strings, whose pairs are kept (memo.py)


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
    method_t, uri_t, protocol_t = byte_text(method), byte_text(uri), byte_text(protocol)
    exceeded: list[tuple[str, str]] = []
    if len(headers) > limits.headers:
        exceeded.append(("headers", f"{len(headers)} > {limits.headers}"))
        headers = headers[: limits.headers]
    try:  # wire bytes (mitmproxy's header fields): decoded as byte_text does, without its type test
        header_pairs = tuple([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])  # type: ignore[union-attr]
    except AttributeError:  # text among them
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
        cookies.extend(_kept_pairs(_COOKIE_PAIRS, parse_cookie_header, value, limits.cookies - len(cookies)))
    del cookies[limits.cookies :]
    if body is None:
        body = b""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    body_length = len(body)
    truncated = body_length > body_limit
    view = memoryview(body)[:body_limit] if truncated else body
    body_text = str(view, "latin-1") if isinstance(view, memoryview) else view.decode("latin-1")
    parsed = bodies.parse_body(
        content_type, body_text, json_naming or bodies.JsonNaming.PATHS, truncated, limits.parts
    )
    query_count = query.count("&") + 1 if query else 0  # pieces, empty ones too
    query_args = _kept_pairs(_QUERY_PAIRS, bodies.parse_urlencoded, query, limits.args) if query else ()
    body_args = parsed.args
    if query_count + len(body_args) > limits.args:
        exceeded.append(("args", f"{query_count + len(body_args)} > {limits.args}"))
        query_args = query_args[: limits.args]
        body_args = body_args[: limits.args - len(query_args)]
    if parsed.parts > limits.parts:
        exceeded.append(("parts", f"{parsed.parts} > {limits.parts}"))
    return _made(
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


# A user's Cookie header and a page's query string come again and again: their pairs (pure functions of
# the text and the limit) are kept for short texts (memo.py), as the engine keeps its answers for them.
_COOKIE_PAIRS = Memo(PAIRS_ENTRIES)
_QUERY_PAIRS = Memo(PAIRS_ENTRIES)


def _kept_pairs(table: Memo, parse: Callable[[str, int], Iterable[tuple[str, str]]], text: str, limit: int) -> Pairs:
    """parse(text, limit) as a tuple, kept in `table` for a short text."""
    if len(text) > MAX_TEXT:
        return tuple(parse(text, limit))
    key = (text, limit)
    found = table.get(key)
    if found is None:
        found = table.put(key, tuple(parse(text, limit)))
    return found


# bodies imports Pairs from here: imported last, as a module (whichever of the two is imported first,
# the other finds what it needs), not inside build_transaction, where the import ran on every call.
from . import bodies  # noqa: E402
