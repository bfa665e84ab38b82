"""Request bodies -> args: urlencoded, multipart (field values and file names) and JSON (key paths).

Works on byte text (one character per byte). A body whose Content-Type is missing or wrong is
still inspected: JSON and urlencoded shapes are recognised from the bytes themselves.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from dataclasses import dataclass
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


def parse_body(content_type: str | None, body: str) -> ParsedBody:
    """Parse `body` according to its Content-Type, falling back to what the bytes look like."""
    if not body:
        return ParsedBody()
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return ParsedBody("URLENCODED", parse_urlencoded(body))
    if mime == "multipart/form-data":
        parsed = parse_multipart(content_type or "", body)
        if not parsed.error:
            return parsed
        return _sniff(body, parsed.error)
    if mime == "application/json" or mime.endswith("+json"):
        parsed = parse_json(body)
        if not parsed.error:
            return parsed
        return _sniff(body, parsed.error)
    return _sniff(body, "")


def _sniff(body: str, error: str) -> ParsedBody:
    """No (usable) Content-Type: recognise JSON or urlencoded by shape, else inspect it raw."""
    stripped = body.lstrip()
    if stripped[:1] in ("{", "["):
        parsed = parse_json(body)
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


def parse_json(body: str) -> ParsedBody:
    try:
        document = json.loads(body.encode("latin-1"))
    except RecursionError:
        return ParsedBody("JSON", error="JSON nested too deeply")
    except ValueError as exc:
        return ParsedBody("JSON", error=f"invalid JSON: {exc}")
    args, error = flatten_json(document)
    return ParsedBody("JSON", args, error=error)


def flatten_json(document: object) -> tuple[Pairs, str]:
    """{"user": {"name": "x"}, "items": [1]} -> (("user.name", "x"), ("items.0", "1")); iterative."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[str, object, int]] = [("", document, 0)]
    error = ""
    while stack:
        path, value, depth = stack.pop()
        if depth > JSON_DEPTH_LIMIT:
            error = f"JSON deeper than {JSON_DEPTH_LIMIT} levels; deeper values not inspected"
            continue
        if isinstance(value, dict):
            children = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}.{i}" if path else str(i), v) for i, v in enumerate(value)]
        else:
            out.append((_text(path), _scalar(value)))
            continue
        if not children and path:
            out.append((_text(path), ""))
        stack.extend((p, v, depth + 1) for p, v in reversed(children))
    return tuple(out), error


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return _text(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text(value: str) -> str:
    """JSON strings are Unicode; inspect them as their UTF-8 bytes like every other value."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")
