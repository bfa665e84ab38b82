"""Transaction: the frozen snapshot of one HTTP exchange that rules inspect.

All text is "byte text": every character is one byte of the wire data (latin-1), so rules match
byte-wise the way ModSecurity does and nothing is lost to a decoding error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
        return replace(self, response_status=status, response_headers=headers, response_body=body)

    def with_session(self, facts: Pairs) -> Transaction:
        return replace(self, session=facts)


DEFAULT_BODY_LIMIT = 128 * 1024


def parse_cookie_header(value: str) -> list[tuple[str, str]]:
    """Lenient `a=1; b=2` split, as ModSecurity does it: a malformed pair never hides the others.

    (http.cookies rejects a whole header for one bad character, which would let an attacker hide
    a payload from the rules, so it is not used here.)
    """
    pairs = []
    for piece in value.split(";"):
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
) -> Transaction:
    """Build a Transaction from the raw parts of a request (wire bytes, or text taken as UTF-8).

    `json_naming` says how the values of a JSON body are named as ARGS (bodies.JsonNaming: PATHS,
    `items.0`, the default and what our rules are written for; MODSECURITY, `items.items`, what the
    OWASP CRS is written for). It is the one point where the two views of a request differ on purpose.
    """
    from .bodies import JsonNaming, parse_body, parse_urlencoded  # local: bodies imports Pairs from here

    method_t, uri_t, protocol_t = byte_text(method), byte_text(uri), byte_text(protocol)
    header_pairs = tuple((byte_text(k), byte_text(v)) for k, v in headers)
    path, query = split_uri(uri_t)
    cookies: list[tuple[str, str]] = []
    content_type = None
    for name, value in header_pairs:
        lname = name.lower()
        if lname == "cookie":
            cookies.extend(parse_cookie_header(value))
        elif lname == "content-type" and content_type is None:
            content_type = value
    if body is None:
        body = b""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    body_length = len(body)
    truncated = body_length > body_limit
    view = memoryview(body)[:body_limit] if truncated else body
    body_text = str(view, "latin-1") if isinstance(view, memoryview) else view.decode("latin-1")
    parsed = parse_body(content_type, body_text, json_naming or JsonNaming.PATHS)
    return Transaction(
        method=method_t,
        uri=uri_t,
        path=path,
        query=query,
        protocol=protocol_t,
        headers=header_pairs,
        cookies=tuple(cookies),
        query_args=parse_urlencoded(query) if query else (),
        body_args=parsed.args,
        files=parsed.files,
        part_headers=parsed.part_headers,
        body=body_text,
        body_length=body_length,
        body_truncated=truncated,
        body_processor=parsed.processor,
        body_error=parsed.error,
        client_addr=client_addr,
        extra={"files_size": str(parsed.files_size)},
    )
