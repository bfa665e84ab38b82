"""Variables: a target name -> the list of (name, value) pairs it selects from a transaction."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from .rules import Target
from .state import EvalState
from .transaction import Pairs, Transaction, byte_text

Values = list[tuple[str, str]]


def _url_decoded(text: str) -> str:
    return unquote_to_bytes(text.encode("latin-1")).decode("latin-1")


def _pairs(name: str, pairs: Pairs) -> Values:
    return [(f"{name}:{k}", v) for k, v in pairs]


def _names(name: str, pairs: Pairs) -> Values:
    return [(f"{name}:{k}", k) for k, _ in pairs]


def _one(name: str, value: str) -> Values:
    return [(name, value)]


def _request_body(s: EvalState) -> Values:
    processor = s.body_processor if s.body_processor is not None else s.tx.body_processor
    if processor in ("", "URLENCODED", "XML") or s.force_request_body or s.tx.body_error:
        return _one("REQUEST_BODY", s.tx.body)
    return []


# Headers left out of REQUEST_HEADERS_TEXT: split into a collection of their own (Cookie), opaque
# credentials, framing and negotiation values the protocol rules judge, validators and dates,
# the headers rules name on their own (User-Agent, Referer: some rules want them, some do not),
# the WebSocket handshake's keys and X-Requested-With. Every other header (X-*, Accept-Language, X-Forwarded-For,
# Origin, ...) is free text an attacker controls and is inspected like an argument.
NOT_TEXT_HEADERS = frozenset(
    {
        *("cookie", "authorization", "proxy-authorization", "host"),
        *("content-type", "content-length", "transfer-encoding", "content-encoding", "te", "trailer"),
        *("accept", "accept-encoding", "accept-charset", "connection", "keep-alive", "upgrade"),
        *("range", "if-range", "if-none-match", "if-match", "if-modified-since", "if-unmodified-since"),
        *("user-agent", "referer"),
        *("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"),
        "x-requested-with",  # a fixed marker, "XMLHttpRequest": the XSS rules' own word
    }
)
NOT_TEXT_HEADER_PREFIXES = ("sec-ch-", "sec-fetch-")  # client hints: quoted brand lists; fetch metadata


def _text_headers(tx: Transaction) -> Values:
    return [
        (f"REQUEST_HEADERS_TEXT:{k}", v)
        for k, v in tx.headers
        if k.lower() not in NOT_TEXT_HEADERS and not k.lower().startswith(NOT_TEXT_HEADER_PREFIXES)
    ]


def _joined_args(tx: Transaction) -> Values:
    """Arguments sent more than once under one name, their values joined with ',' as ASP.NET and IIS
    join them: a payload split across `id=1/*&id=*/union...` is inspected whole."""
    by_name: dict[str, list[str]] = {}
    for name, value in tx.args:
        by_name.setdefault(name, []).append(value)
    return [(f"ARGS_JOINED:{k}", ",".join(vs)) for k, vs in by_name.items() if len(vs) > 1]


def _filename(tx: Transaction) -> str:
    return _url_decoded(tx.path)


def _args_combined_size(tx: Transaction) -> str:
    return str(sum(len(k) + len(v) for k, v in tx.args))


# Every collection a rule may name. Keyed selection (ARGS:id) and exclusions happen in `collect`.
COLLECTIONS: dict[str, Callable[[EvalState], Values]] = {
    "ARGS": lambda s: _pairs("ARGS", s.tx.args),
    "ARGS_NAMES": lambda s: _names("ARGS_NAMES", s.tx.args),
    "ARGS_GET": lambda s: _pairs("ARGS_GET", s.tx.query_args),
    "ARGS_GET_NAMES": lambda s: _names("ARGS_GET_NAMES", s.tx.query_args),
    "ARGS_POST": lambda s: _pairs("ARGS_POST", s.tx.body_args),
    "ARGS_POST_NAMES": lambda s: _names("ARGS_POST_NAMES", s.tx.body_args),
    "ARGS_JOINED": lambda s: _joined_args(s.tx),
    "ARGS_COMBINED_SIZE": lambda s: _one("ARGS_COMBINED_SIZE", _args_combined_size(s.tx)),
    "REQUEST_COOKIES": lambda s: _pairs("REQUEST_COOKIES", s.tx.cookies),
    "REQUEST_COOKIES_NAMES": lambda s: _names("REQUEST_COOKIES_NAMES", s.tx.cookies),
    "REQUEST_HEADERS": lambda s: _pairs("REQUEST_HEADERS", s.tx.headers),
    "REQUEST_HEADERS_NAMES": lambda s: _names("REQUEST_HEADERS_NAMES", s.tx.headers),
    # REQUEST_HEADERS less NOT_TEXT_HEADERS: the headers inspected like arguments by the injection rules
    "REQUEST_HEADERS_TEXT": lambda s: _text_headers(s.tx),
    "REQUEST_METHOD": lambda s: _one("REQUEST_METHOD", s.tx.method),
    "REQUEST_PROTOCOL": lambda s: _one("REQUEST_PROTOCOL", s.tx.protocol),
    "REQUEST_LINE": lambda s: _one("REQUEST_LINE", f"{s.tx.method} {s.tx.uri} {s.tx.protocol}"),
    "REQUEST_URI": lambda s: _one("REQUEST_URI", s.tx.uri),
    "REQUEST_URI_RAW": lambda s: _one("REQUEST_URI_RAW", s.tx.uri),
    "REQUEST_FILENAME": lambda s: _one("REQUEST_FILENAME", _filename(s.tx)),
    "REQUEST_BASENAME": lambda s: _one("REQUEST_BASENAME", posixpath.basename(_filename(s.tx))),
    "QUERY_STRING": lambda s: _one("QUERY_STRING", s.tx.query),
    "REQUEST_BODY": _request_body,
    "REQUEST_BODY_LENGTH": lambda s: _one("REQUEST_BODY_LENGTH", str(s.tx.body_length)),
    # "1" when the body is longer than the inspection limit (guard_body_limit) and was cut there
    "REQUEST_BODY_TRUNCATED": lambda s: _one("REQUEST_BODY_TRUNCATED", "1" if s.tx.body_truncated else "0"),
    "FILES": lambda s: _pairs("FILES", s.tx.files),
    "FILES_NAMES": lambda s: _names("FILES_NAMES", s.tx.files),
    "FILES_COMBINED_SIZE": lambda s: _one("FILES_COMBINED_SIZE", s.tx.extra.get("files_size", "0")),
    "MULTIPART_PART_HEADERS": lambda s: _pairs("MULTIPART_PART_HEADERS", s.tx.part_headers),
    "REQBODY_PROCESSOR": lambda s: _one(
        "REQBODY_PROCESSOR", s.body_processor if s.body_processor is not None else s.tx.body_processor
    ),
    "REQBODY_ERROR": lambda s: _one("REQBODY_ERROR", "1" if s.tx.body_error else "0"),
    "REQBODY_ERROR_MSG": lambda s: _one("REQBODY_ERROR_MSG", s.tx.body_error),
    "REMOTE_ADDR": lambda s: _one("REMOTE_ADDR", s.tx.client_addr),
    # Counts over a limit (guard_max_args, ...): LIMITS_EXCEEDED:cookies = "10000 > 200"; when there
    # are any, the engine runs only the rules that name this collection (engine.py).
    "LIMITS_EXCEEDED": lambda s: _pairs("LIMITS_EXCEEDED", s.tx.limits_exceeded),
    "SESSION": lambda s: _pairs("SESSION", s.tx.session),
    "TX": lambda s: [(f"TX:{k}", v) for k, v in s.vars.items()],
    "MATCHED_VAR": lambda s: _one("MATCHED_VAR", s.matched_var) if s.matched_var_name else [],
    "MATCHED_VAR_NAME": lambda s: _one("MATCHED_VAR_NAME", s.matched_var_name) if s.matched_var_name else [],
    "MATCHED_VARS": lambda s: [(n, v) for n, v in s.matched_vars],
    "MATCHED_VARS_NAMES": lambda s: [(n, n) for n, _ in s.matched_vars],
    "RESPONSE_STATUS": lambda s: _one("RESPONSE_STATUS", str(s.tx.response_status)),
    "RESPONSE_HEADERS": lambda s: _pairs("RESPONSE_HEADERS", s.tx.response_headers),
    "RESPONSE_HEADERS_NAMES": lambda s: _names("RESPONSE_HEADERS_NAMES", s.tx.response_headers),
    "RESPONSE_BODY": lambda s: _one("RESPONSE_BODY", s.tx.response_body),
    # Filled by an adapter's body processing (the CRS importer's XML processor and multipart flags).
    "XML": lambda s: s.extra_vars.get("XML", []),
    "MULTIPART_STRICT_ERROR": lambda s: s.extra_vars.get(
        "MULTIPART_STRICT_ERROR", [("MULTIPART_STRICT_ERROR", "0")]
    ),
    "MULTIPART_UNMATCHED_BOUNDARY": lambda s: s.extra_vars.get(
        "MULTIPART_UNMATCHED_BOUNDARY", [("MULTIPART_UNMATCHED_BOUNDARY", "0")]
    ),
}

def _keys(pairs: Pairs) -> tuple[str, ...]:
    return tuple([k for k, _ in pairs])


# The transaction's fields each static collection's members are made from (of a *_NAMES collection, the
# names alone): COLLECTIONS reads nothing else for them, so equal inputs give equal members, and what is
# worked out from a collection's members can be kept under its inputs (prefilter.Source.wholes) without
# building the members and their names.
# Collections that read the evaluation state too (REQUEST_BODY and REQBODY_PROCESSOR: a ctl may change
# the body processor; an adapter's XML and MULTIPART_*; TX and MATCHED_*) have none.
MEMBER_INPUTS: dict[str, Callable[[Transaction], object]] = {
    "ARGS": lambda tx: (tx.query_args, tx.body_args),
    "ARGS_NAMES": lambda tx: (_keys(tx.query_args), _keys(tx.body_args)),
    "ARGS_GET": lambda tx: tx.query_args,
    "ARGS_GET_NAMES": lambda tx: _keys(tx.query_args),
    "ARGS_POST": lambda tx: tx.body_args,
    "ARGS_POST_NAMES": lambda tx: _keys(tx.body_args),
    "ARGS_JOINED": lambda tx: (tx.query_args, tx.body_args),
    "ARGS_COMBINED_SIZE": lambda tx: (tx.query_args, tx.body_args),
    "REQUEST_COOKIES": lambda tx: tx.cookies,
    "REQUEST_COOKIES_NAMES": lambda tx: _keys(tx.cookies),
    "REQUEST_HEADERS": lambda tx: tx.headers,
    "REQUEST_HEADERS_NAMES": lambda tx: _keys(tx.headers),
    "REQUEST_HEADERS_TEXT": lambda tx: tx.headers,
    "REQUEST_METHOD": lambda tx: tx.method,
    "REQUEST_PROTOCOL": lambda tx: tx.protocol,
    "REQUEST_LINE": lambda tx: (tx.method, tx.uri, tx.protocol),
    "REQUEST_URI": lambda tx: tx.uri,
    "REQUEST_URI_RAW": lambda tx: tx.uri,
    "REQUEST_FILENAME": lambda tx: tx.path,
    "REQUEST_BASENAME": lambda tx: tx.path,
    "QUERY_STRING": lambda tx: tx.query,
    "REQUEST_BODY_LENGTH": lambda tx: tx.body_length,
    "REQUEST_BODY_TRUNCATED": lambda tx: tx.body_truncated,
    "FILES": lambda tx: tx.files,
    "FILES_NAMES": lambda tx: _keys(tx.files),
    "FILES_COMBINED_SIZE": lambda tx: tx.extra.get("files_size", "0"),
    "MULTIPART_PART_HEADERS": lambda tx: tx.part_headers,
    "REQBODY_ERROR": lambda tx: tx.body_error,
    "REQBODY_ERROR_MSG": lambda tx: tx.body_error,
    "REMOTE_ADDR": lambda tx: tx.client_addr,
    "LIMITS_EXCEEDED": lambda tx: tx.limits_exceeded,
    "SESSION": lambda tx: tx.session,
    "RESPONSE_STATUS": lambda tx: tx.response_status,
    "RESPONSE_HEADERS": lambda tx: tx.response_headers,
    "RESPONSE_HEADERS_NAMES": lambda tx: _keys(tx.response_headers),
    "RESPONSE_BODY": lambda tx: tx.response_body,
}

# The same as the Transaction fields they are made from, where that is all they read (not, for one,
# FILES_COMBINED_SIZE, which reads an entry of `extra`): what the prefilter keeps per phase is keyed by
# the fields all its collections read, each field once (prefilter.Prefilter._todo).
MEMBER_FIELDS: dict[str, tuple[str, ...]] = {
    "ARGS": ("query_args", "body_args"),
    "ARGS_NAMES": ("query_args", "body_args"),
    "ARGS_GET": ("query_args",),
    "ARGS_GET_NAMES": ("query_args",),
    "ARGS_POST": ("body_args",),
    "ARGS_POST_NAMES": ("body_args",),
    "ARGS_JOINED": ("query_args", "body_args"),
    "ARGS_COMBINED_SIZE": ("query_args", "body_args"),
    "REQUEST_COOKIES": ("cookies",),
    "REQUEST_COOKIES_NAMES": ("cookies",),
    "REQUEST_HEADERS": ("headers",),
    "REQUEST_HEADERS_NAMES": ("headers",),
    "REQUEST_HEADERS_TEXT": ("headers",),
    "REQUEST_METHOD": ("method",),
    "REQUEST_PROTOCOL": ("protocol",),
    "REQUEST_LINE": ("method", "uri", "protocol"),
    "REQUEST_URI": ("uri",),
    "REQUEST_URI_RAW": ("uri",),
    "REQUEST_FILENAME": ("path",),
    "REQUEST_BASENAME": ("path",),
    "QUERY_STRING": ("query",),
    "REQUEST_BODY_LENGTH": ("body_length",),
    "REQUEST_BODY_TRUNCATED": ("body_truncated",),
    "FILES": ("files",),
    "FILES_NAMES": ("files",),
    "MULTIPART_PART_HEADERS": ("part_headers",),
    "REQBODY_ERROR": ("body_error",),
    "REQBODY_ERROR_MSG": ("body_error",),
    "REMOTE_ADDR": ("client_addr",),
    "LIMITS_EXCEEDED": ("limits_exceeded",),
    "SESSION": ("session",),
    "RESPONSE_STATUS": ("response_status",),
    "RESPONSE_HEADERS": ("response_headers",),
    "RESPONSE_HEADERS_NAMES": ("response_headers",),
    "RESPONSE_BODY": ("response_body",),
}

# The same for collections that read the evaluation state too, where what they read of it is known:
# REQUEST_BODY is made from the body and which body processor applies (a ctl may change it).
STATE_INPUTS: dict[str, Callable[[EvalState], object]] = {
    "REQBODY_PROCESSOR": lambda s: (s.body_processor, s.tx.body_processor),
    "REQUEST_BODY": lambda s: (
        s.body_processor,
        s.tx.body_processor,
        s.force_request_body,
        s.tx.body_error,
        s.tx.body,
    ),
}

# Collections whose names are looked up without regard to case (ModSecurity does the same).


def member_name(full_name: str) -> str:
    """`ARGS:user.name` -> `user.name`; single-value variables have no member name."""
    return full_name.partition(":")[2]


def is_dynamic(collection: str) -> bool:
    """Collections that change while rules run (TX, MATCHED_*): never cached."""
    return collection.startswith(("TX", "MATCHED"))


def lookup(state: EvalState, collection: str, key: str | None) -> Values:
    """Values of one collection, optionally limited to one key (case-insensitive)."""
    if collection == "TX" and key is not None:  # TX is a dict: no scan (CRS reads hundreds per request)
        lkey = key.lower()
        value = state.vars.get(lkey)
        return [] if value is None else [(f"TX:{lkey}", value)]
    override = state.extra_vars.get(collection) if state.extra_vars else None
    if override is not None:  # an adapter's view of this variable (the CRS importer's Apache paths)
        values = override
    else:
        values = state.collect_cache.get(collection)  # only static collections are kept there
        if values is None:
            fetch = COLLECTIONS.get(collection)
            if fetch is None:
                return []
            values = fetch(state)
            if not is_dynamic(collection):
                state.collect_cache[collection] = values
    if key is None:
        return values
    lkey = key.lower()
    return [(n, v) for n, v in values if member_name(n).lower() == lkey]


def collect(state: EvalState, targets: tuple[Target, ...], exclusions: tuple[Target, ...]) -> Values:
    """All (name, value) pairs the targets select, less the exclusions, in target order."""
    out: Values = []
    for target in targets:
        if target.collection == "TX" and target.key is not None and target.key_regex is None:
            lkey = target.key.lower()  # one TX variable: a dict read (CRS rules read hundreds)
            value = state.vars.get(lkey)
            values = [] if value is None else [(f"TX:{lkey}", value)]
        elif target.key is not None and target.key_regex is None:
            values = keyed(state, target.collection, target.key)
        else:
            values = lookup(state, target.collection, None)
            if target.key_regex is not None:
                values = [(n, v) for n, v in values if target.selects(member_name(n))]
        if exclusions:
            # only the exclusions of this target's collection can leave a value out
            own = tuple(ex for ex in exclusions if ex.collection == target.collection)
            if own:
                values = [(n, v) for n, v in values if not excluded(n, target.collection, own)]
        if target.count:
            out.append((str(target), str(len(values))))
        else:
            out.extend(values)
    return out


def keyed(state: EvalState, collection: str, key: str) -> Values:
    """lookup() of one key; for static collections through a per-transaction index of member names
    (one pass over the collection instead of one per key: rules name many REQUEST_HEADERS keys)."""
    if is_dynamic(collection) or state.extra_vars:
        return lookup(state, collection, key)
    index_key = "\x00" + collection  # never a collection name (A-Z and _ only)
    index = state.collect_cache.get(index_key)
    if index is None:
        index = {}
        for name, value in lookup(state, collection, None):
            index.setdefault(member_name(name).lower(), []).append((name, value))
        state.collect_cache[index_key] = index
    return index.get(key.lower(), [])


def excluded(name: str, collection: str, exclusions: tuple[Target, ...]) -> bool:
    """Is the member `name` of `collection` left out by one of the exclusions?"""
    member = member_name(name)
    return any(ex.collection == collection and ex.selects(member) for ex in exclusions)


def known_collection(name: str) -> bool:
    return name in COLLECTIONS


__all__ = ["COLLECTIONS", "Values", "byte_text", "collect", "keyed", "known_collection", "lookup"]
