"""ModSecurity 2 on Apache's view of a request: paths, cookies (v0), arguments, body processors.

`prepare(state, phase)` is the engine hook the CRS engine runs before each phase: before phase 1
it parses cookies and the query string the ModSecurity way and sets REQBODY_PROCESSOR from the
Content-Type (URLENCODED, MULTIPART, else none: there is no sniffing); before phase 2 it runs the
processor chosen by then (a `ctl:requestBodyProcessor=JSON|XML` of phase 1 wins), filling ARGS,
FILES, XML and REQBODY_ERROR.

Paths: ModSecurity 2 reads REQUEST_URI and REQUEST_FILENAME from Apache's request record, which
Apache normalises and percent-decodes in place between phase 1 and phase 2. So in phase 1 they are
the raw path; from phase 2 on they are the path after `ap_normalize_path` (dot segments, merged
slashes) and `ap_unescape_url`. `apache_path` reproduces that (and says when Apache would refuse).
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
from dataclasses import replace
from xml.parsers import expat

from ..engine.bodies import JsonNaming, parse_json, parse_multipart, parse_urlencoded
from ..engine.rules import Phase
from ..engine.state import EvalState
from ..engine.transaction import Transaction

# Variables this module supplies (through state.extra_vars) that the engine itself does not have.
ADAPTER_VARIABLES = frozenset({"UNIQUE_ID", "DURATION"})


def prepare(state: EvalState, phase: Phase) -> None:
    if phase == Phase.REQUEST_HEADERS:
        state.tx = request_headers_view(state.tx)
        state.extra_vars = {**path_vars(state.tx, state.tx.path), **_transaction_vars()}
    elif phase == Phase.REQUEST_BODY:
        processor = state.body_processor if state.body_processor is not None else state.tx.body_processor
        state.tx, body_vars = request_body_view(state.tx, processor)
        decoded, _ = apache_path(state.tx.path)
        state.extra_vars = {
            **state.extra_vars,
            **body_vars,
            **path_vars(state.tx, decoded if decoded is not None else state.tx.path),
        }
    state.collect_cache.clear()


def _transaction_vars() -> dict[str, list[tuple[str, str]]]:
    """UNIQUE_ID (random, as mod_unique_id's) and DURATION (0 ms: CRS only uses it for sampling)."""
    unique = base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")
    return {"UNIQUE_ID": [("UNIQUE_ID", unique)], "DURATION": [("DURATION", "0")]}


def path_vars(tx: Transaction, path: str) -> dict[str, list[tuple[str, str]]]:
    """REQUEST_URI, REQUEST_FILENAME, REQUEST_BASENAME from Apache's path (raw or decoded)."""
    uri = f"{path}?{tx.query}" if "?" in tx.uri else path
    return {
        "REQUEST_URI": [("REQUEST_URI", uri)],
        "REQUEST_FILENAME": [("REQUEST_FILENAME", path)],
        "REQUEST_BASENAME": [("REQUEST_BASENAME", posixpath.basename(path.replace("\\", "/")))],
    }


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def apache_path(raw: str) -> tuple[str | None, int]:
    """Apache 2.4's in-place rewrite of the path before phase 2 -> (path, 0) or (None, 400 | 404).

    ap_normalize_path(NOT_ABOVE_ROOT | MERGE_SLASHES | DECODE_UNRESERVED), then ap_unescape_url
    (AllowEncodedSlashes Off): a bad %-escape or a path above the root gives 400, %2F or %00 404.
    """
    normalized = _normalize_path(raw)
    if normalized is None:
        return None, 400
    out: list[str] = []
    i = 0
    bad_path = False
    while i < len(normalized):
        char = normalized[i]
        if char == "%":
            if i + 2 >= len(normalized):
                return None, 400
            if normalized[i + 1] not in _HEXDIGITS or normalized[i + 2] not in _HEXDIGITS:
                return None, 400
            decoded = chr(int(normalized[i + 1 : i + 3], 16))
            bad_path = bad_path or decoded in "/\x00"
            out.append(decoded)
            i += 3
            continue
        out.append(char)
        i += 1
    if bad_path:
        return None, 404
    return "".join(out), 0


def _normalize_path(path: str) -> str | None:
    """httpd's ap_normalize_path on a copy; None where it fails (bad escape, above the root)."""
    if not path.startswith("/"):
        return path if path == "*" else None
    chars = list(path)
    n = len(chars)
    ok = True
    out: list[str] = ["/"]
    i = 1
    while i < n:
        if chars[i] == "%":
            if i + 2 < n and chars[i + 1] in _HEXDIGITS and chars[i + 2] in _HEXDIGITS:
                decoded = chr(int(chars[i + 1] + chars[i + 2], 16))
                if decoded in _UNRESERVED:
                    i += 2
                    chars[i] = decoded
            else:
                ok = False
        if out[-1] == "/":
            if chars[i] == "/":
                while i < n and chars[i] == "/":
                    i += 1
                continue
            if chars[i] == ".":
                nxt = chars[i + 1] if i + 1 < n else ""
                if nxt in ("/", ""):
                    i += 2 if nxt else 1
                    continue
                j = i + 1
                dotdot = nxt == "."
                if (
                    not dotdot
                    and nxt == "%"
                    and i + 3 < n + 1
                    and "".join(chars[i + 2 : i + 4]).lower() == "2e"
                ):
                    j = i + 3
                    dotdot = True
                if dotdot and (j + 1 >= n or chars[j + 1] == "/"):
                    if len(out) > 1:
                        out.pop()
                        while len(out) > 1 and out[-1] != "/":
                            out.pop()
                    else:
                        ok = False
                    i = j + 2
                    continue
        out.append(chars[i])
        i += 1
    return "".join(out) if ok else None


def request_headers_view(tx: Transaction) -> Transaction:
    """Phase 1: cookies and query args as ModSecurity parses them; the body is not read yet."""
    cookies: list[tuple[str, str]] = []
    content_type = ""
    for name, value in tx.headers:
        lname = name.lower()
        if lname == "cookie":
            cookies.extend(parse_cookies_v0(value))
        elif lname == "content-type" and not content_type:
            content_type = value
    return replace(
        tx,
        cookies=tuple(cookies),
        query_args=parse_urlencoded(tx.query),
        body_args=(),
        files=(),
        part_headers=(),
        body_processor=processor_for(content_type),
        body_error="",
    )


def processor_for(content_type: str) -> str:
    """ModSecurity 2 picks URLENCODED / MULTIPART by Content-Type prefix, case-insensitively."""
    lowered = content_type.lower()
    if lowered.startswith("application/x-www-form-urlencoded"):
        return "URLENCODED"
    if lowered.startswith("multipart/form-data"):
        return "MULTIPART"
    return ""


def request_body_view(
    tx: Transaction, processor: str
) -> tuple[Transaction, dict[str, list[tuple[str, str]]]]:
    """Phase 2: run `processor` over the body -> (transaction with body args, extra variables)."""
    extra: dict[str, list[tuple[str, str]]] = {}
    if not tx.body or not processor:
        return replace(tx, body_processor=processor), extra
    if processor == "URLENCODED":
        return replace(tx, body_processor=processor, body_args=parse_urlencoded(tx.body)), extra
    if processor == "MULTIPART":
        content_type = tx.header("Content-Type") or ""
        parsed = parse_multipart(content_type, tx.body)
        error = parsed.error
        for _, header in parsed.part_headers:
            name, _, value = header.partition(":")
            if name.strip().lower() != "content-disposition":
                continue
            code, bad_quoting = check_content_disposition(value.strip())
            if code < 0 and not error:
                error = f"Multipart: Invalid Content-Disposition header ({code}): {value.strip()}"
            if bad_quoting:
                extra["MULTIPART_STRICT_ERROR"] = [("MULTIPART_STRICT_ERROR", "1")]
        if error:
            extra["MULTIPART_STRICT_ERROR"] = [("MULTIPART_STRICT_ERROR", "1")]
        parsed = replace(parsed, error=error)
        return (
            replace(
                tx,
                body_processor=processor,
                body_args=parsed.args,
                files=parsed.files,
                part_headers=parsed.part_headers,
                body_error=parsed.error,
                extra={**tx.extra, "files_size": str(parsed.files_size)},
            ),
            extra,
        )
    if processor == "JSON":
        parsed = parse_json(tx.body, JsonNaming.MODSECURITY)
        return replace(tx, body_processor=processor, body_args=parsed.args, body_error=parsed.error), extra
    if processor == "XML":
        values, error = parse_xml(tx.body)
        extra["XML"] = values
        return replace(tx, body_processor=processor, body_error=error), extra
    return replace(tx, body_processor=processor), extra


def check_content_disposition(value: str) -> tuple[int, bool]:
    """ModSecurity's multipart_parse_content_disposition -> (1 or its negative error code, invalid quoting?).

    `form-data` then `; name="..."` / `; filename="..."` parameters, quoted (only `\\<quote>` and
    `\\\\` escapes) or bare tokens; after a value only `;` may follow. A value quoted with `'` is
    "invalid quoting" (a strict-validation error; a `'` inside `"..."` is fine, as 2.9.7 shows).
    """
    if not value.startswith("form-data"):
        return -1, False
    p = 9
    n = len(value)
    bad_quoting = False
    seen: set[str] = set()
    while p < n and value[p] in " \t":
        p += 1
    if p >= n:
        return 1, False
    if value[p] != ";":
        return -2, False
    p += 1
    while p < n:
        while p < n and value[p] in " \t":
            p += 1
        if p >= n:
            return -4, bad_quoting
        start = p
        while p < n and value[p] not in "= \t":
            p += 1
        if p >= n:
            return -5, bad_quoting
        name = value[start:p]
        while p < n and value[p] in " \t":
            p += 1
        if p >= n or value[p] != "=":
            return (-6 if p >= n else -7), bad_quoting
        p += 1
        while p < n and value[p] in " \t":
            p += 1
        if p >= n:
            return -8, bad_quoting
        quote = value[p] if value[p] in "\"'" else ""
        if quote:
            p += 1
            while p < n and value[p] != quote:
                p += 2 if value[p] == "\\" and p + 1 < n and value[p + 1] in (quote, "\\") else 1
            if p >= n:
                return -11, bad_quoting
            p += 1
        else:
            while p < n and value[p] not in ' \t;"':
                p += 1
        if name not in ("name", "filename", "filename*"):
            return -11, bad_quoting
        if name in seen:
            return (-14 if name == "name" else -15), bad_quoting
        seen.add(name)
        bad_quoting = bad_quoting or quote == "'"
        while p < n and value[p] in " \t":
            p += 1
        if p < n:
            if value[p] != ";":
                return -12, bad_quoting
            p += 1
    return 1, bad_quoting


def parse_cookies_v0(header: str) -> list[tuple[str, str]]:
    """ModSecurity's parse_cookies_v0: split on `;`, leading spaces of names dropped, empty names ignored."""
    out = []
    for piece in header.split(";"):
        if not piece:
            continue
        piece = piece.lstrip(" \t\r\n\v\f")
        name, eq, value = piece.partition("=")
        if name:
            out.append((name, value if eq else ""))
    return out


def _bytes_text(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def parse_xml(body: str) -> tuple[list[tuple[str, str]], str]:
    """XML body -> values for `XML:/*` (all text of the document element) and `XML://@*` (attributes).

    Like ModSecurity's libxml2 set-up: no network, external entities are not loaded (a reference
    to one contributes nothing), internal entities are expanded.
    """
    text: list[str] = []
    attributes: list[tuple[str, str]] = []
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.ExternalEntityRefHandler = lambda *args: 1
    parser.CharacterDataHandler = text.append
    parser.StartElementHandler = lambda name, attrs: attributes.extend(
        ("XML://@*", _bytes_text(v)) for v in attrs.values()
    )
    try:
        parser.Parse(body.encode("latin-1"), True)
    except expat.ExpatError as exc:
        return [], f"XML parser error: {exc}"
    return [("XML:/*", _bytes_text("".join(text))), *attributes], ""
