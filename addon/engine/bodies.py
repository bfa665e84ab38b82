"""Request bodies -> args: urlencoded, multipart (field values and file names) and JSON (key paths).

Works on byte text (one character per byte). A body whose Content-Type is missing or wrong is
still inspected: JSON and urlencoded shapes are recognised from the bytes themselves.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl

from .transaction import Pairs

JSON_DEPTH_LIMIT = 512
_URLENCODED_SHAPE = re.compile(r"[^=&\s]+=[^\s]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class ParsedBody:
    processor: str = ""  # URLENCODED | MULTIPART | JSON | "" (raw only)
    args: Pairs = ()
    files: Pairs = ()
    part_headers: Pairs = ()
    files_size: int = 0
    error: str = ""


class JsonNaming(Enum):
    """How the values of a JSON body are named as ARGS: the one place where our view of a request and
    ModSecurity's differ on purpose. Both read a document alike otherwise: every key in document order,
    duplicates kept; numbers as written; strings as their UTF-8 bytes.

    PATHS (our rules, the default): a value is named by its full path, an array item by its index:
    `{"user": {"name": "x"}, "items": [1]}` -> `user.name`, `items.0`. An empty object or array is
    an argument of its own with an empty value, so that its name is inspected. Past JSON_DEPTH_LIMIT
    levels the deeper values are left out and the rest of the document is read.
    MODSECURITY (ModSecurity 2.9's msc_json.c, for the CRS): an array item is named after its array
    (`{"c": [2, 3]}` -> `c.c`, `c.c`; a top-level array is `array`), a key holding a dot moves the
    prefix as msc_json.c's does, an empty object or array gives nothing, and parsing stops at the
    depth limit.
    """

    PATHS = "paths"
    MODSECURITY = "modsecurity"


def parse_body(content_type: str | None, body: str, naming: JsonNaming = JsonNaming.PATHS) -> ParsedBody:
    """Parse `body` according to its Content-Type, falling back to what the bytes look like; JSON
    values are named as `naming` says."""
    if not body:
        return ParsedBody()
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return ParsedBody("URLENCODED", parse_urlencoded(body))
    if mime == "multipart/form-data":
        parsed = parse_multipart(content_type or "", body)
        if not parsed.error:
            return parsed
        return _sniff(body, parsed.error, naming)
    if mime == "application/json" or mime.endswith("+json"):
        parsed = parse_json(body, naming)
        if not parsed.error:
            return parsed
        return _sniff(body, parsed.error, naming)
    return _sniff(body, "", naming)


def _sniff(body: str, error: str, naming: JsonNaming) -> ParsedBody:
    """No (usable) Content-Type: recognise JSON or urlencoded by shape, else inspect it raw."""
    stripped = body.lstrip()
    if stripped[:1] in ("{", "["):
        parsed = parse_json(body, naming)
        if not parsed.error:
            return ParsedBody("JSON", parsed.args, error=error)
    if _looks_urlencoded(body):
        return ParsedBody("URLENCODED", parse_urlencoded(body), error=error)
    return ParsedBody("", error=error)


def _looks_urlencoded(body: str) -> bool:
    first = body.split("&", 1)[0]
    return bool(_URLENCODED_SHAPE.fullmatch(first)) and "\n" not in body[:4096]


def parse_urlencoded(text: str) -> Pairs:
    """`a=1&b=2&a=3` -> all pairs, repeated names kept, percent-decoding byte-exact."""
    return tuple(parse_qsl(text, keep_blank_values=True, encoding="latin-1", errors="strict"))


def parse_multipart(content_type: str, body: str) -> ParsedBody:
    if "boundary=" not in content_type.lower():
        return ParsedBody("MULTIPART", error="multipart body without a boundary")
    raw = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw + body.encode("latin-1"))
    if not message.is_multipart():
        return ParsedBody("MULTIPART", error="multipart body could not be split into parts")
    parts = message.get_payload()
    if not parts:
        return ParsedBody("MULTIPART", error="multipart body has no parts")
    args: list[tuple[str, str]] = []
    files: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    size = 0
    for part in parts:
        name = part.get_param("name", header="content-disposition") or ""
        if isinstance(name, tuple):  # RFC 2231 encoded
            name = email.utils.collapse_rfc2231_value(name)
        payload = part.get_payload(decode=True) or b""
        for key, value in part.items():
            headers.append((name, f"{key}: {value}"))
        filename = part.get_filename()
        if filename is not None:
            files.append((name, filename))
            size += len(payload)
        else:
            args.append((name, payload.decode("latin-1")))
    error = (
        ""
        if message.defects == []
        else f"multipart defects: {', '.join(type(d).__name__ for d in message.defects)}"
    )
    return ParsedBody("MULTIPART", tuple(args), tuple(files), tuple(headers), size, error)


class _Object(list):  # type: ignore[type-arg]
    """An object's (key, value) pairs in document order, duplicates kept (as a streaming parser sees them)."""


def parse_json(body: str, naming: JsonNaming = JsonNaming.PATHS) -> ParsedBody:
    """A JSON body -> its values as ARGS, named as `naming` says (error: why it could not be read)."""
    try:
        document = json.loads(
            body.encode("latin-1"), object_pairs_hook=_Object, parse_float=str, parse_int=str, parse_constant=str
        )
    except RecursionError:
        return ParsedBody("JSON", error=f"JSON depth limit {JSON_DEPTH_LIMIT} exceeded")
    except ValueError as exc:
        return ParsedBody("JSON", error=f"JSON parsing error: {exc}")
    args, error = flatten_json(document, naming)
    return ParsedBody("JSON", args, error=error)


def flatten_json(document: object, naming: JsonNaming = JsonNaming.PATHS) -> tuple[Pairs, str]:
    """A parsed document (objects as _Object pairs) -> (name, value) pairs and an error ("" if none).
    Depth-first, as a streaming parser's callbacks see it; iterative, so depth costs no recursion."""
    names: _PathNames | _ModSecurityNames = _PathNames() if naming is JsonNaming.PATHS else _ModSecurityNames()
    stack: list[tuple[bool, Iterator[tuple[str | int, object]], list[bool]]] = []

    def visit(key: str | int | None, value: object) -> None:
        is_map = isinstance(value, _Object)
        if not (is_map or isinstance(value, list)):
            names.scalar(key, _scalar(value))
        elif names.begin(key, is_map):
            children = iter(value) if is_map else enumerate(value)  # type: ignore[arg-type]
            stack.append((is_map, children, [True]))

    try:
        visit(None, document)
        while stack:
            is_map, children, empty = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                names.end(is_map, empty[0])
                continue
            empty[0] = False
            visit(*child)
    except _DepthExceeded:
        pass
    return tuple(names.args), names.error


class _DepthExceeded(Exception):
    pass


class _PathNames:
    """JsonNaming.PATHS: full paths, array items by index."""

    def __init__(self) -> None:
        self.paths: list[str] = []  # of the open objects and arrays
        self.args: list[tuple[str, str]] = []
        self.error = ""

    def _path(self, key: str | int | None) -> str | None:
        """The path of a child of the innermost open container, or None when it is too deep."""
        if len(self.paths) > JSON_DEPTH_LIMIT:
            self.error = f"JSON depth limit {JSON_DEPTH_LIMIT} exceeded; deeper values not inspected"
            return None
        parent = self.paths[-1] if self.paths else ""
        name = "" if key is None else _text(key) if isinstance(key, str) else str(key)
        return f"{parent}.{name}" if parent else name

    def begin(self, key: str | int | None, is_map: bool) -> bool:
        path = self._path(key)
        if path is not None:
            self.paths.append(path)
        return path is not None

    def end(self, is_map: bool, empty: bool) -> None:
        path = self.paths.pop()
        if empty and path:
            self.args.append((path, ""))

    def scalar(self, key: str | int | None, text: str) -> None:
        path = self._path(key)
        if path is not None:
            self.args.append((path, text))


class _ModSecurityNames:
    """JsonNaming.MODSECURITY: msc_json.c's prefix / current_key rules, replayed callback by callback."""

    def __init__(self) -> None:
        self.prefix: str | None = None
        self.key: str | None = None
        self.depth = 0
        self.args: list[tuple[str, str]] = []
        self.error = ""

    def _map_key(self, key: str | int | None) -> None:
        if isinstance(key, str):  # yajl's map_key callback; array items leave the key as it is
            self.key = _text(key)

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > JSON_DEPTH_LIMIT:
            self.error = f"JSON depth limit {JSON_DEPTH_LIMIT} exceeded"
            raise _DepthExceeded

    def begin(self, key: str | int | None, is_map: bool) -> bool:
        self._map_key(key)
        if is_map:
            if self.key is not None:
                self.prefix = f"{self.prefix}.{self.key}" if self.prefix else self.key
                self._deeper()
        else:
            if self.key is None and self.prefix is None:
                self.prefix = self.key = "array"
            elif self.prefix:
                self.prefix = f"{self.prefix}.{self.key}"
            else:
                self.prefix = self.key
            self._deeper()
        return True

    def end(self, is_map: bool, empty: bool) -> None:
        if self.prefix is None:
            return
        head, sep, tail = self.prefix.rpartition(".")
        if is_map:
            if sep:
                self.prefix, self.key = head, tail
            else:
                self.key, self.prefix = self.prefix, None
        else:
            self.prefix = head if sep else None
        self.depth -= 1

    def scalar(self, key: str | int | None, text: str) -> None:
        self._map_key(key)
        name = self.key if self.key is not None else ""
        self.args.append((f"{self.prefix}.{name}" if self.prefix else name, text))


def _scalar(value: object) -> str:
    """A JSON scalar as inspected text (numbers come as written: parsed as text)."""
    if isinstance(value, str):
        return _text(value)
    if value is None:
        return ""
    return "true" if value is True else "false"


def _text(value: str) -> str:
    """JSON strings are Unicode; inspect them as their UTF-8 bytes like every other value."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")
