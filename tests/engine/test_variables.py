"""variables: every collection a rule may name -> the (name, value) pairs it selects from a transaction."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from logoutguard.engine.rules import Target
from logoutguard.engine.state import EvalState
from logoutguard.engine.targets import parse_target
from logoutguard.engine.transaction import build_transaction
from logoutguard.engine.variables import (
    COLLECTIONS,
    MEMBER_FIELDS,
    MEMBER_INPUTS,
    STATE_INPUTS,
    collect,
    is_dynamic,
    known_collection,
    lookup,
    member_name,
)

MULTIPART = (
    b'--B\r\nContent-Disposition: form-data; name="up"; filename="a.txt"\r\n\r\nhello\r\n'
    b'--B\r\nContent-Disposition: form-data; name="t"\r\n\r\nv\r\n--B--\r\n'
)


def state(kind: str = "form") -> EvalState:
    bodies = {
        "form": ("application/x-www-form-urlencoded", b"b=2&c=3"),
        "json": ("application/json", b'{"j":"1"}'),
        "multipart": ("multipart/form-data; boundary=B", MULTIPART),
    }
    content_type, body = bodies[kind]
    tx = build_transaction(
        method="POST",
        uri="/dir/file.php?a=1&A2=x",
        headers=[("Host", "h.test"), ("Cookie", "sid=s1"), ("Content-Type", content_type)],
        body=body,
        client_addr="192.0.2.9",
    )
    tx = tx.with_session((("state", "active"),)).with_response(200, (("Server", "x"),), "<p>ok</p>")
    s = EvalState(tx=tx)
    s.vars["score"] = "5"
    return s


# (collection, the pairs it gives for state("form"))
FORM = [
    ("ARGS", [("ARGS:a", "1"), ("ARGS:A2", "x"), ("ARGS:b", "2"), ("ARGS:c", "3")]),
    (
        "ARGS_NAMES",
        [("ARGS_NAMES:a", "a"), ("ARGS_NAMES:A2", "A2"), ("ARGS_NAMES:b", "b"), ("ARGS_NAMES:c", "c")],
    ),
    ("ARGS_GET", [("ARGS_GET:a", "1"), ("ARGS_GET:A2", "x")]),
    ("ARGS_GET_NAMES", [("ARGS_GET_NAMES:a", "a"), ("ARGS_GET_NAMES:A2", "A2")]),
    ("ARGS_POST", [("ARGS_POST:b", "2"), ("ARGS_POST:c", "3")]),
    ("ARGS_POST_NAMES", [("ARGS_POST_NAMES:b", "b"), ("ARGS_POST_NAMES:c", "c")]),
    ("ARGS_COMBINED_SIZE", [("ARGS_COMBINED_SIZE", "9")]),
    ("REQUEST_COOKIES", [("REQUEST_COOKIES:sid", "s1")]),
    ("REQUEST_COOKIES_NAMES", [("REQUEST_COOKIES_NAMES:sid", "sid")]),
    ("REQUEST_METHOD", [("REQUEST_METHOD", "POST")]),
    ("REQUEST_PROTOCOL", [("REQUEST_PROTOCOL", "HTTP/1.1")]),
    ("REQUEST_LINE", [("REQUEST_LINE", "POST /dir/file.php?a=1&A2=x HTTP/1.1")]),
    ("REQUEST_URI", [("REQUEST_URI", "/dir/file.php?a=1&A2=x")]),
    ("REQUEST_URI_RAW", [("REQUEST_URI_RAW", "/dir/file.php?a=1&A2=x")]),
    ("REQUEST_FILENAME", [("REQUEST_FILENAME", "/dir/file.php")]),
    ("REQUEST_BASENAME", [("REQUEST_BASENAME", "file.php")]),
    ("QUERY_STRING", [("QUERY_STRING", "a=1&A2=x")]),
    ("REQUEST_BODY", [("REQUEST_BODY", "b=2&c=3")]),
    ("REQUEST_BODY_LENGTH", [("REQUEST_BODY_LENGTH", "7")]),
    ("REQUEST_BODY_TRUNCATED", [("REQUEST_BODY_TRUNCATED", "0")]),
    ("FILES", []),
    ("FILES_COMBINED_SIZE", [("FILES_COMBINED_SIZE", "0")]),
    ("REQBODY_PROCESSOR", [("REQBODY_PROCESSOR", "URLENCODED")]),
    ("REQBODY_ERROR", [("REQBODY_ERROR", "0")]),
    ("REQBODY_ERROR_MSG", [("REQBODY_ERROR_MSG", "")]),
    ("LIMITS_EXCEEDED", []),
    ("ARGS_JOINED", []),  # no name repeated (tests/engine/test_variables.py: joined)
    ("REQUEST_HEADERS_TEXT", []),  # Host, Cookie and Content-Type are not free text  # under every limit (tests/engine/test_transaction.py: over them)
    ("REMOTE_ADDR", [("REMOTE_ADDR", "192.0.2.9")]),
    ("SESSION", [("SESSION:state", "active")]),
    ("TX", [("TX:score", "5")]),
    ("MATCHED_VAR", []),
    ("MATCHED_VARS", []),
    ("RESPONSE_STATUS", [("RESPONSE_STATUS", "200")]),
    ("RESPONSE_HEADERS", [("RESPONSE_HEADERS:Server", "x")]),
    ("RESPONSE_HEADERS_NAMES", [("RESPONSE_HEADERS_NAMES:Server", "Server")]),
    ("RESPONSE_BODY", [("RESPONSE_BODY", "<p>ok</p>")]),
    ("XML", []),
    ("MULTIPART_STRICT_ERROR", [("MULTIPART_STRICT_ERROR", "0")]),
    ("MULTIPART_UNMATCHED_BOUNDARY", [("MULTIPART_UNMATCHED_BOUNDARY", "0")]),
]


@pytest.mark.parametrize(("collection", "pairs"), FORM)
def test_collections(collection: str, pairs: list[tuple[str, str]]) -> None:
    assert lookup(state(), collection, None) == pairs


def test_every_collection_is_in_the_table() -> None:
    tested = {c for c, _ in FORM} | {
        "REQUEST_HEADERS",
        "REQUEST_HEADERS_NAMES",
        "FILES_NAMES",
        "MULTIPART_PART_HEADERS",
        "MATCHED_VAR_NAME",
        "MATCHED_VARS_NAMES",
    }
    assert tested == set(COLLECTIONS)


def test_headers_and_multipart_collections() -> None:
    s = state("multipart")
    assert lookup(s, "REQUEST_HEADERS", "host") == [("REQUEST_HEADERS:Host", "h.test")]
    assert ("REQUEST_HEADERS_NAMES:Cookie", "Cookie") in lookup(s, "REQUEST_HEADERS_NAMES", None)
    assert lookup(s, "FILES", None) == [("FILES:up", "a.txt")]
    assert lookup(s, "FILES_NAMES", None) == [("FILES_NAMES:up", "up")]
    assert lookup(s, "FILES_COMBINED_SIZE", None) == [("FILES_COMBINED_SIZE", "5")]
    assert lookup(s, "ARGS_POST", None) == [("ARGS_POST:t", "v")]
    assert (
        "MULTIPART_PART_HEADERS:up",
        'Content-Disposition: form-data; name="up"; filename="a.txt"',
    ) in lookup(s, "MULTIPART_PART_HEADERS", None)


def test_request_body_is_there_for_raw_and_urlencoded_bodies_or_when_forced() -> None:
    s = state("json")
    assert lookup(s, "REQUEST_BODY", None) == []  # parsed into ARGS instead
    assert lookup(s, "ARGS_POST", None) == [("ARGS_POST:j", "1")]
    s.force_request_body = True  # ctl:forceRequestBodyVariable=On (it empties the cache)
    s.collect_cache.clear()
    assert lookup(s, "REQUEST_BODY", None) == [("REQUEST_BODY", '{"j":"1"}')]
    s = state("json")
    s.body_processor = "URLENCODED"  # ctl:requestBodyProcessor
    assert lookup(s, "REQUEST_BODY", None) == [("REQUEST_BODY", '{"j":"1"}')]
    assert lookup(s, "REQBODY_PROCESSOR", None) == [("REQBODY_PROCESSOR", "URLENCODED")]


def test_keys_are_matched_without_regard_to_case() -> None:
    s = state()
    assert lookup(s, "ARGS", "a2") == [("ARGS:A2", "x")]
    assert lookup(s, "TX", "SCORE") == [("TX:score", "5")]
    assert lookup(s, "TX", "missing") == []
    assert lookup(s, "NO_SUCH_COLLECTION", None) == []


def test_matched_variables_follow_the_state() -> None:
    s = state()
    s.matched_var_name, s.matched_var = "ARGS:a", "1"
    s.matched_vars = [("ARGS:a", "1"), ("ARGS:b", "2")]
    assert lookup(s, "MATCHED_VAR", None) == [("MATCHED_VAR", "1")]
    assert lookup(s, "MATCHED_VAR_NAME", None) == [("MATCHED_VAR_NAME", "ARGS:a")]
    assert lookup(s, "MATCHED_VARS_NAMES", None) == [("ARGS:a", "ARGS:a"), ("ARGS:b", "ARGS:b")]
    s.matched_vars = [("ARGS:c", "3")]  # dynamic: never cached
    assert lookup(s, "MATCHED_VARS", None) == [("ARGS:c", "3")]


def test_an_adapters_view_overrides_a_collection() -> None:
    s = state()
    s.extra_vars = {"REQUEST_FILENAME": [("REQUEST_FILENAME", "/decoded")], "UNIQUE_ID": [("UNIQUE_ID", "u")]}
    assert lookup(s, "REQUEST_FILENAME", None) == [("REQUEST_FILENAME", "/decoded")]
    assert lookup(s, "UNIQUE_ID", None) == [("UNIQUE_ID", "u")]


def targets(*texts: str) -> tuple[tuple[Target, ...], tuple[Target, ...]]:
    parsed = [parse_target(t) for t in texts]
    return tuple(t for x, t in parsed if not x), tuple(t for x, t in parsed if x)


@pytest.mark.parametrize(
    ("texts", "pairs"),
    [
        (("ARGS_GET:a", "REQUEST_COOKIES"), [("ARGS_GET:a", "1"), ("REQUEST_COOKIES:sid", "s1")]),
        (("ARGS", "!ARGS:b", "!ARGS:/^a/"), [("ARGS:c", "3")]),
        (("ARGS:/^a/",), [("ARGS:a", "1"), ("ARGS:A2", "x")]),
        (("&ARGS",), [("&ARGS", "4")]),
        (("&ARGS", "!ARGS:c"), [("&ARGS", "3")]),
        (("&ARGS:nope",), [("&ARGS:nope", "0")]),
        (("REQUEST_HEADERS:HOST", "REQUEST_HEADERS:host"), [("REQUEST_HEADERS:Host", "h.test")] * 2),
    ],
)
def test_collect(texts: tuple[str, ...], pairs: list[tuple[str, str]]) -> None:
    assert collect(state(), *targets(*texts)) == pairs


def test_helpers() -> None:
    assert member_name("ARGS:user.name") == "user.name" and member_name("REQUEST_METHOD") == ""
    assert is_dynamic("TX") and is_dynamic("MATCHED_VARS") and not is_dynamic("ARGS")
    assert known_collection("ARGS") and not known_collection("IP")


def test_request_headers_text_leaves_out_structured_and_opaque_headers() -> None:
    from logoutguard.engine.variables import lookup

    tx = build_transaction(
        method="GET",
        uri="/",
        headers=[
            ("Host", "h"),
            ("Cookie", "a=1"),
            ("Authorization", "Bearer x"),
            ("User-Agent", "UA"),
            ("sec-ch-ua", '"Chromium";v="128"'),
            ("Accept", "*/*"),
            ("X-Tenant-Id", "1' or '1'='1"),
            ("Accept-Language", "en-US,en;q=0.9"),
            ("X-Forwarded-For", "10.0.0.1"),
        ],
    )
    assert lookup(EvalState(tx=tx), "REQUEST_HEADERS_TEXT", None) == [
        ("REQUEST_HEADERS_TEXT:X-Tenant-Id", "1' or '1'='1"),
        ("REQUEST_HEADERS_TEXT:Accept-Language", "en-US,en;q=0.9"),
        ("REQUEST_HEADERS_TEXT:X-Forwarded-For", "10.0.0.1"),
    ]


def test_args_joined_joins_repeated_names_only() -> None:
    from logoutguard.engine.variables import lookup

    tx = build_transaction(method="GET", uri="/?id=1%20union/*&q=x&id=*/select")
    assert lookup(EvalState(tx=tx), "ARGS_JOINED", None) == [("ARGS_JOINED:id", "1 union/*,*/select")]


def test_x_requested_with_is_a_marker_not_text() -> None:
    """Its value `XMLHttpRequest` is a word the XSS rules look for (the held-out benign corpus has it)."""
    from logoutguard.engine.variables import lookup

    tx = build_transaction(method="GET", uri="/", headers=[("X-Requested-With", "XMLHttpRequest")])
    assert lookup(EvalState(tx=tx), "REQUEST_HEADERS_TEXT", None) == []


def _changed(value: object) -> object:
    """Another value of the same type as a Transaction field's."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return (*value, ("z", "9"))
    assert isinstance(value, dict)
    return {**value, "files_size": "77"}


def _base() -> EvalState:
    """state("form") with a free-text header and an argument name sent twice: every collection has members."""
    tx = state("form").tx
    return EvalState(
        tx=replace(tx, headers=(*tx.headers, ("X-Note", "hi")), query_args=(*tx.query_args, ("a", "9")))
    )


def _variants() -> list[EvalState]:
    """state("form") with one Transaction field changed (or the values of one field of pairs), or one
    setting of the evaluation state."""
    base = _base()
    out = [
        EvalState(tx=replace(base.tx, **{f.name: _changed(getattr(base.tx, f.name))}))
        for f in fields(base.tx)
    ]
    for f in fields(base.tx):  # the same names with other values
        pairs = getattr(base.tx, f.name)
        if isinstance(pairs, tuple) and pairs:
            out.append(EvalState(tx=replace(base.tx, **{f.name: tuple((k, v + "x") for k, v in pairs)})))
    out.append(EvalState(tx=base.tx, body_processor="JSON"))
    out.append(EvalState(tx=base.tx, force_request_body=True))
    return out


@pytest.mark.parametrize("collection", sorted(MEMBER_INPUTS))
def test_a_collections_members_are_a_function_of_its_inputs(collection: str) -> None:
    """What prefilter.Source keeps under MEMBER_INPUTS is right only if no other field or setting changes
    the members: every variant with the same inputs gives the same members, and every variant whose
    members differ has other inputs (each collection meets both kinds of variant)."""
    base = _base()
    inputs, members = MEMBER_INPUTS[collection](base.tx), lookup(base, collection, None)
    same = other = 0
    for variant in _variants():
        if MEMBER_INPUTS[collection](variant.tx) == inputs:
            assert lookup(variant, collection, None) == members, variant
            same += 1
        else:
            other += 1
    assert same and other


@pytest.mark.parametrize("collection", sorted(MEMBER_FIELDS))
def test_a_collections_members_are_a_function_of_its_fields(collection: str) -> None:
    """The same for MEMBER_FIELDS (what the prefilter keeps a phase's answer under): equal fields give
    equal members; every collection of MEMBER_INPUTS is there but the one that reads `extra`."""
    base = _base()
    names = MEMBER_FIELDS[collection]
    inputs, members = [getattr(base.tx, n) for n in names], lookup(base, collection, None)
    same = other = 0
    for variant in _variants():
        if [getattr(variant.tx, n) for n in names] == inputs:
            assert lookup(variant, collection, None) == members, variant
            same += 1
        else:
            other += 1
    assert same and other
    assert set(MEMBER_INPUTS) - set(MEMBER_FIELDS) == {"FILES_COMBINED_SIZE"}


@pytest.mark.parametrize("collection", sorted(STATE_INPUTS))
def test_a_collections_members_are_a_function_of_its_state_inputs(collection: str) -> None:
    """The same as above for the collections STATE_INPUTS names (what the prefilter keeps per phase):
    their inputs are read from the evaluation state, body processor settings included."""
    base = _base()
    inputs, members = STATE_INPUTS[collection](base), lookup(base, collection, None)
    same = other = 0
    for variant in _variants():
        if STATE_INPUTS[collection](variant) == inputs:
            assert lookup(variant, collection, None) == members, variant
            same += 1
        else:
            other += 1
    assert same and other


def test_collections_without_inputs_read_the_evaluation_state() -> None:
    """The static collections MEMBER_INPUTS leaves out: those whose members follow a setting of the
    evaluation state (a ctl's body processor, an adapter's variables), shown to change with it."""
    static = {c for c in COLLECTIONS if not is_dynamic(c)}
    left_out = static - set(MEMBER_INPUTS)
    assert left_out == {
        "REQUEST_BODY",
        "REQBODY_PROCESSOR",
        "XML",
        "MULTIPART_STRICT_ERROR",
        "MULTIPART_UNMATCHED_BOUNDARY",
    }
    assert not set(MEMBER_INPUTS) - static
    json_body = state("json")
    assert lookup(json_body, "REQUEST_BODY", None) == []
    assert lookup(EvalState(tx=json_body.tx, force_request_body=True), "REQUEST_BODY", None) != []
    assert lookup(EvalState(tx=json_body.tx, body_processor="XML"), "REQBODY_PROCESSOR", None) == [
        ("REQBODY_PROCESSOR", "XML")
    ]
    for name in ("XML", "MULTIPART_STRICT_ERROR", "MULTIPART_UNMATCHED_BOUNDARY"):
        view = [(name, "seen")]
        assert lookup(EvalState(tx=json_body.tx, extra_vars={name: view}), name, None) == view
