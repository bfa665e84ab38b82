"""Request bodies -> args: urlencoded, multipart (field values and file names), JSON (key paths) and XML.

Works on byte text (one character per byte). A body whose Content-Type is missing or wrong is
still inspected: JSON and urlencoded shapes are recognised from the bytes themselves. A body cut at
the inspection limit is parsed as far as it goes (a JSON document is closed where it was cut).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from xml.parsers import expat

from .transaction import Pairs
from .transformations import url_decode

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
    parts: int = 0  # multipart parts in the body (all of them, also those past the parts limit)


NO_BODY = ParsedBody()  # what an empty body parses to (frozen: one for every bodiless request)


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


def parse_body(
    content_type: str | None,
    body: str,
    naming: JsonNaming = JsonNaming.PATHS,
    truncated: bool = False,
    max_parts: int | None = None,
) -> ParsedBody:
    """Parse `body` according to its Content-Type, falling back to what the bytes look like; JSON
    values are named as `naming` says. `truncated`: the body was cut at the inspection limit, so what
    is there is read as far as it goes. `max_parts`: multipart parts past it are left out."""
    if not body:
        return NO_BODY
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return ParsedBody("URLENCODED", parse_urlencoded(body))
    if mime == "multipart/form-data":
        parsed = parse_multipart(content_type or "", body, max_parts)
        if not parsed.error or (truncated and parsed.parts):
            return parsed
        return _sniff(body, parsed.error, naming, truncated)
    if mime == "application/json" or mime.endswith("+json"):
        parsed = parse_json(body, naming, truncated)
        if not parsed.error or parsed.args:
            return parsed
        return _sniff(body, parsed.error, naming, truncated)
    if mime in ("application/xml", "text/xml") or mime.endswith("+xml"):
        return parse_xml(body, truncated)
    return _sniff(body, "", naming, truncated)


def _sniff(body: str, error: str, naming: JsonNaming, truncated: bool = False) -> ParsedBody:
    """No (usable) Content-Type: recognise JSON, XML or urlencoded by shape, else inspect it raw."""
    stripped = body.lstrip()
    if stripped[:1] in ("{", "["):
        parsed = parse_json(body, naming, truncated)
        if not parsed.error or parsed.args:
            return ParsedBody("JSON", parsed.args, error=error or parsed.error)
    if stripped[:1] == "<":
        parsed = parse_xml(body, truncated)
        if parsed.args:  # the XML view of an undeclared body; its parse error is not the body's error
            return replace(parsed, error=error)
    if _looks_urlencoded(body):
        return ParsedBody("URLENCODED", parse_urlencoded(body), error=error)
    return ParsedBody("", error=error)


def _looks_urlencoded(body: str) -> bool:
    first = body.split("&", 1)[0]
    return bool(_URLENCODED_SHAPE.fullmatch(first)) and "\n" not in body[:4096]


def parse_urlencoded(text: str, limit: int | None = None) -> Pairs:
    """`a=1&b=2&a=3` -> all pairs, repeated names kept, percent-decoding byte-exact; with `limit`,
    only the first `limit` `&`-separated pieces are read.

    The pairs `urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="latin-1")` gives (a
    property test holds it to that), at about half its cost: every request's query and every form
    body passes here. Names and values are decoded by the url_decode transformation (+ a space, a
    valid %xx its byte, the rest as written), which is unquote_plus to latin-1."""
    pieces = text.split("&") if limit is None else text.split("&", limit)[:limit]
    pairs: list[tuple[str, str]] = []
    for piece in pieces:
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((url_decode(name), url_decode(value)))
    return tuple(pairs)


def parse_multipart(content_type: str, body: str, max_parts: int | None = None) -> ParsedBody:
    if "boundary=" not in content_type.lower():
        return ParsedBody("MULTIPART", error="multipart body without a boundary")
    # Parsed as text (byte text: one character per byte), not as bytes: BytesParser keeps non-ASCII header
    # bytes as surrogates and hands them back as U+FFFD, which is no byte at all (a filename with a
    # Latin-1 or UTF-8 byte would be inspected as something the client never sent).
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n"
    message = email.parser.Parser(policy=email.policy.compat32).parsestr(head + body)
    if not message.is_multipart():
        return ParsedBody("MULTIPART", error="multipart body could not be split into parts")
    parts = message.get_payload()
    if not parts:
        return ParsedBody("MULTIPART", error="multipart body has no parts")
    args: list[tuple[str, str]] = []
    files: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    size = 0
    for part in parts[:max_parts]:
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
    return ParsedBody("MULTIPART", tuple(args), tuple(files), tuple(headers), size, error, len(parts))


class _Object(list):  # type: ignore[type-arg]
    """An object's (key, value) pairs in document order, duplicates kept (as a streaming parser sees them)."""


def parse_json(body: str, naming: JsonNaming = JsonNaming.PATHS, truncated: bool = False) -> ParsedBody:
    """A JSON body -> its values as ARGS, named as `naming` says (error: why it could not be read).
    A `truncated` body that does not parse is closed where it was cut (close_truncated_json) and read
    as far as it goes; the error says so."""
    try:
        document = json.loads(
            body.encode("latin-1"), object_pairs_hook=_Object, parse_float=str, parse_int=str, parse_constant=str
        )
    except (ValueError, RecursionError) as exc:
        if not truncated:
            return _json_error(exc)
        closed = close_truncated_json(body.encode("latin-1").decode("utf-8", "surrogateescape"))
        try:
            document = json.loads(
                closed, object_pairs_hook=_Object, parse_float=str, parse_int=str, parse_constant=str
            )
        except (ValueError, RecursionError):
            return _json_error(exc)
        args, error = flatten_json(document, naming)
        return ParsedBody("JSON", args, error=error or "JSON body cut at the inspection limit; read as far as it goes")
    args, error = flatten_json(document, naming)
    return ParsedBody("JSON", args, error=error)


def _json_error(exc: Exception) -> ParsedBody:
    if isinstance(exc, RecursionError):
        return ParsedBody("JSON", error=f"JSON depth limit {JSON_DEPTH_LIMIT} exceeded")
    return ParsedBody("JSON", error=f"JSON parsing error: {exc}")


# What ends a number or literal: exactly the characters close_truncated_json reads as something else (JSON's
# four blanks, not every \s: a form feed or a no-break space there would end a literal at itself, and the
# reader would stand still on it for ever).
_JSON_LITERAL_END = re.compile(r'[ \t\r\n,:\[\]{}"]')
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def close_truncated_json(text: str) -> str:
    """A JSON document cut short -> the same document closed where it was cut: a cut string ends
    there, a cut number or literal is dropped, a key without its value gets null, open arrays and
    objects are closed. Linear; the result parses when the part before the cut was valid JSON."""
    stack: list[list[str]] = []  # per open container: [kind "{" or "[", what comes next]
    i, n = 0, len(text)
    end = 0  # the text up to here is kept
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        top = stack[-1] if stack else None
        if c in "{[":
            stack.append([c, "key" if c == "{" else "value"])
            i += 1
        elif c in "}]":
            if stack:
                stack.pop()
            i += 1
            if stack:
                stack[-1][1] = "comma"
        elif c == ",":
            if top is not None:
                top[1] = "key" if top[0] == "{" else "value"
            i += 1
        elif c == ":":
            if top is not None:
                top[1] = "value"
            i += 1
        elif c == '"':
            string = _JSON_STRING.match(text, i)
            if string is None:  # the cut is inside this string: end it there
                value = _without_cut_escape(text)
                if top is not None and top[0] == "{" and top[1] == "key":
                    return value + '":null' + _closers(stack, "comma")
                return value + '"' + _closers(stack, "comma")
            i = string.end()
            if top is not None:
                top[1] = "colon" if top[0] == "{" and top[1] == "key" else "comma"
        else:  # a number or literal: kept only when something ends it before the cut
            found = _JSON_LITERAL_END.search(text, i)
            if found is None:
                break
            i = found.start()
            if top is not None:
                top[1] = "comma"
        end = i
    kept = text[:end].rstrip()
    expecting = stack[-1][1] if stack else "comma"
    if expecting == "key" and kept.endswith(","):
        kept = kept[:-1]
    return kept + _closers(stack, expecting)


def _without_cut_escape(text: str) -> str:
    """A string's text cut at its end without the escape sequence the cut broke (`\\`, `\\u12`)."""
    unicode_cut = re.search(r"\\u[0-9a-fA-F]{0,3}$", text)
    if unicode_cut is not None:
        before = text[: unicode_cut.start()]
        if (len(before) - len(before.rstrip("\\"))) % 2 == 0:
            return before
    if (len(text) - len(text.rstrip("\\"))) % 2 == 1:
        return text[:-1]
    return text


def _closers(stack: list[list[str]], expecting: str) -> str:
    """What closes the open containers, starting with what the innermost one lacks."""
    head = ""
    if stack and stack[-1][0] == "{":
        head = {"colon": ":null", "value": "null"}.get(expecting, "")
    elif stack and expecting == "value":
        head = "null"  # after '[' or ','
    return head + "".join("}" if kind == "{" else "]" for kind, _ in reversed(stack))


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


def parse_xml(body: str, truncated: bool = False) -> ParsedBody:
    """An XML body -> element text and attribute values as ARGS, named by element path (`order/item`,
    `order/item/@id`). No DTD is loaded and no external entity fetched (expat, as the CRS importer's
    parse_xml). A `truncated` or malformed document gives what was read before the cut or the error."""
    args: list[tuple[str, str]] = []
    path: list[str] = []
    text: list[list[str]] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        path.append(name)
        text.append([])
        where = "/".join(path)
        args.extend((f"{where}/@{key}", value) for key, value in attributes.items())

    def end(name: str) -> None:
        content = "".join(text.pop())
        if content.strip():
            args.append(("/".join(path), content))
        path.pop()

    def data(chunk: str) -> None:
        if text:
            text[-1].append(chunk)

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.ExternalEntityRefHandler = lambda *args: 1
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    error = ""
    try:
        parser.Parse(body.encode("latin-1"), not truncated)
    except expat.ExpatError as exc:
        error = f"XML parser error: {exc}"
    while text:  # elements left open by a cut or an error: their text so far
        end(path[-1])
    if truncated and not error:
        error = "XML body cut at the inspection limit; read as far as it goes"
    return ParsedBody("XML", tuple((_text(name), _text(value)) for name, value in args), error=error)
