"""Corpus loader: JSON-lines request corpora -> validated entries -> engine Transactions.

One request per line:
    {"id": "sqli-001", "category": "sqli", "method": "GET", "uri": "/p?id=1%27", "note": "...",
     "headers": {...} | [[name, value], ...], "body": "...", "body_base64": "...",
     "protocol": "HTTP/1.1", "exact_headers": false}
`uri` is the raw request-target as sent (already percent-encoded). `headers` is a dict, or a list of
pairs when a name repeats. `body` is text sent as UTF-8, `body_base64` exact bytes (only one of the
two). Multipart bodies are ready raw bodies with CRLF line ends; the boundary is in Content-Type.
As on the wire, the loader adds `Host` and `Content-Length` when they are absent, unless
`exact_headers` is true (for requests that are malformed on purpose, e.g. without Host).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logoutguard.engine.transaction import Transaction, build_transaction

CORPUS_DIR = Path(__file__).resolve().parent
ATTACKS_FILE = CORPUS_DIR / "attacks.jsonl"
BENIGN_FILE = CORPUS_DIR / "benign.jsonl"
ATTACK_CATEGORIES = (
    "protocol",
    "scanner",
    "lfi",
    "rfi",
    "rce",
    "php",
    "generic",
    "xss",
    "sqli",
    "session-fixation",
)
DEFAULT_HOST = "www.example.com"
CLIENT_ADDR = "192.0.2.10"
BODY_METHODS = ("POST", "PUT", "PATCH")

_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "category": str,
    "method": str,
    "uri": str,
    "note": str,
    "headers": (dict, list),
    "body": str,
    "body_base64": str,
    "protocol": str,
    "exact_headers": bool,
}
_REQUIRED = ("id", "category", "method", "uri", "note")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_HEADER_NAME = _METHOD
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)

Headers = tuple[tuple[str, str], ...]


class CorpusError(ValueError):
    """A corpus line that is not a valid request; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    id: str
    category: str
    method: str
    uri: str
    note: str
    headers: Headers = ()
    body: bytes | None = None
    protocol: str = "HTTP/1.1"
    exact_headers: bool = False
    where: str = ""  # "attacks.jsonl line 12"

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def wire_headers(self) -> list[tuple[str, str]]:
        """The headers as a client would send them: Host and Content-Length added when absent."""
        headers = list(self.headers)
        if self.exact_headers:
            return headers
        if self.header("Host") is None:
            headers.insert(0, ("Host", DEFAULT_HOST))
        framed = self.header("Content-Length") is not None or self.header("Transfer-Encoding") is not None
        if not framed and (self.body is not None or self.method in BODY_METHODS):
            headers.append(("Content-Length", str(len(self.body or b""))))
        return headers

    def transaction(self) -> Transaction:
        return build_transaction(
            method=self.method,
            uri=self.uri,
            protocol=self.protocol,
            headers=self.wire_headers(),
            body=self.body,
            client_addr=CLIENT_ADDR,
        )


def _headers(raw: dict[str, Any] | list[Any]) -> tuple[Headers, str]:
    """Header dict or list of pairs -> pairs, or ((), reason)."""
    items = list(raw.items()) if isinstance(raw, dict) else raw
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            return (), f"header {item!r} is not a [name, value] pair"
        name, value = item
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            return (), f"header name {name!r} is not an HTTP token"
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            return (), f"header {name!r}: value must be a string without CR or LF"
        pairs.append((name, value))
    return tuple(pairs), ""


def _body(raw: dict[str, Any]) -> tuple[bytes | None, str]:
    if "body" in raw and "body_base64" in raw:
        return None, "give either 'body' or 'body_base64', not both"
    if "body_base64" in raw:
        try:
            return base64.b64decode(raw["body_base64"], validate=True), ""
        except binascii.Error as exc:
            return None, f"'body_base64' is not valid base64: {exc}"
    if "body" in raw:
        return raw["body"].encode("utf-8", "surrogateescape"), ""
    return None, ""


def _multipart_problem(headers: Headers, body: bytes | None) -> str:
    ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
    if not ctype.lower().startswith("multipart/form-data"):
        return ""
    found = _BOUNDARY.search(ctype)
    if not found:
        return "multipart Content-Type without a boundary"
    if body is None or b"--" + found.group(1).encode("latin-1") not in body:
        return f"multipart body does not contain its boundary {found.group(1)!r}"
    if b"\r\n" not in body:
        return "multipart body must use CRLF line ends"
    return ""


def _problem(raw: Any, attack: bool) -> str:
    """Why this decoded line is not a valid entry ('' when it is)."""
    if not isinstance(raw, dict):
        return "each line must be a JSON object"
    unknown = sorted(set(raw) - set(_FIELD_TYPES))
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    missing = [f for f in _REQUIRED if f not in raw]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    for name, kind in _FIELD_TYPES.items():
        if name in raw and not isinstance(raw[name], kind):
            return f"field '{name}' has the wrong type ({type(raw[name]).__name__})"
    if not _SLUG.fullmatch(raw["id"]):
        return f"id {raw['id']!r} must be lower-case letters, digits and dashes"
    if attack and raw["category"] not in ATTACK_CATEGORIES:
        return f"category {raw['category']!r} is not one of {', '.join(ATTACK_CATEGORIES)}"
    if not _SLUG.fullmatch(raw["category"]):
        return f"category {raw['category']!r} must be lower-case letters, digits and dashes"
    if not _METHOD.fullmatch(raw["method"]):
        return f"method {raw['method']!r} is not an HTTP token"
    if not raw["uri"] or any(c in raw["uri"] for c in " \r\n"):
        return "uri must be a non-empty request-target without spaces, CR or LF"
    if not raw["note"].strip():
        return "note must say what the request is"
    return ""


def parse_entry(raw: Any, where: str, *, attack: bool) -> CorpusEntry:
    """One decoded JSON line -> CorpusEntry; CorpusError naming `where` when it is invalid."""
    reason = _problem(raw, attack)
    headers: Headers = ()
    body = None
    if not reason:
        headers, reason = _headers(raw.get("headers", {}))
    if not reason:
        body, reason = _body(raw)
    if not reason:
        reason = _multipart_problem(headers, body)
    if reason:
        entry_id = raw.get("id") if isinstance(raw, dict) else None
        raise CorpusError(f"{where}{f' ({entry_id})' if entry_id else ''}: {reason}")
    return CorpusEntry(
        id=raw["id"],
        category=raw["category"],
        method=raw["method"],
        uri=raw["uri"],
        note=raw["note"],
        headers=headers,
        body=body,
        protocol=raw.get("protocol", "HTTP/1.1"),
        exact_headers=raw.get("exact_headers", False),
        where=where,
    )


def parse_lines(lines: list[str], name: str, *, attack: bool) -> list[CorpusEntry]:
    entries: list[CorpusEntry] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: invalid JSON: {exc}") from None
        entry = parse_entry(raw, where, attack=attack)
        if entry.id in seen:
            raise CorpusError(f"{where}: duplicate id {entry.id!r} (first on {seen[entry.id]})")
        seen[entry.id] = where
        entries.append(entry)
    return entries


def load_corpus(path: Path, *, attack: bool) -> list[CorpusEntry]:
    """Read and validate a whole corpus file; the first invalid line raises CorpusError."""
    return parse_lines(path.read_text(encoding="utf-8").splitlines(), path.name, attack=attack)


def load_attacks(path: Path = ATTACKS_FILE) -> list[CorpusEntry]:
    return load_corpus(path, attack=True)


def load_benign(path: Path = BENIGN_FILE) -> list[CorpusEntry]:
    return load_corpus(path, attack=False)
