"""transaction: the frozen snapshot of one exchange, built from wire bytes as byte text."""

from __future__ import annotations

import dataclasses

import pytest

from logoutguard.engine.bodies import JsonNaming
from logoutguard.engine.memo import MAX_TEXT
from logoutguard.engine.transaction import (
    _COOKIE_PAIRS,
    _QUERY_PAIRS,
    DEFAULT_BODY_LIMIT,
    Limits,
    Transaction,
    build_transaction,
    byte_text,
    parse_cookie_header,
    split_uri,
)


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"a\xff\x00", "a\xff\x00"), ("caf\u00e9", "caf\xc3\xa9"), ("\udcff", "\xff"), (b"", "")],
)
def test_byte_text_is_one_character_per_byte(data: bytes | str, text: str) -> None:
    assert byte_text(data) == text


@pytest.mark.parametrize(
    ("uri", "path", "query"),
    [
        ("/a/b?x=1&y", "/a/b", "x=1&y"),
        ("/a?b?c", "/a", "b?c"),
        ("http://h.test/p?q=1", "/p", "q=1"),
        ("https://h.test", "/", ""),
        ("/x?u=http://h/", "/x", "u=http://h/"),
        ("*", "*", ""),
    ],
)
def test_split_uri(uri: str, path: str, query: str) -> None:
    assert split_uri(uri) == (path, query)


@pytest.mark.parametrize(
    ("header", "pairs"),
    [
        ("a=1; b=2", [("a", "1"), ("b", "2")]),
        (" a = 1 ;;b", [("a", "1"), ("b", "")]),
        ('bad"=1; good=2', [('bad"', "1"), ("good", "2")]),  # a malformed pair hides nothing
        ("", []),
    ],
)
def test_parse_cookie_header(header: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_cookie_header(header) == pairs


def test_build_transaction_from_wire_parts() -> None:
    tx = build_transaction(
        method=b"POST",
        uri=b"/login?next=%2Fhome",
        protocol="HTTP/1.0",
        headers=[
            (b"Host", b"shop.test"),
            ("Cookie", "sid=1; pref=\xe9".encode("latin-1")),
            ("Cookie", "b=2"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Type", "text/plain"),
        ],
        body=b"user=ann&pw=%C3%A9",
        client_addr="192.0.2.1",
    )
    assert (tx.method, tx.uri, tx.path, tx.query, tx.protocol) == (
        "POST",
        "/login?next=%2Fhome",
        "/login",
        "next=%2Fhome",
        "HTTP/1.0",
    )
    assert tx.cookies == (("sid", "1"), ("pref", "\xe9"), ("b", "2"))
    assert tx.query_args == (("next", "/home"),)
    assert tx.body_args == (("user", "ann"), ("pw", "\xc3\xa9"))  # the first Content-Type counts
    assert tx.args == tx.query_args + tx.body_args
    assert (tx.body_processor, tx.body_length, tx.body_truncated, tx.body_error) == (
        "URLENCODED",
        18,
        False,
        "",
    )
    assert tx.header("host") == "shop.test" and tx.header("missing") is None
    assert tx.client_addr == "192.0.2.1" and tx.extra == {"files_size": "0"}


def test_a_body_over_the_limit_is_inspected_up_to_it() -> None:
    body = b"a=" + b"x" * 100
    tx = build_transaction(
        method="POST",
        uri="/",
        body=body,
        body_limit=10,
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )
    assert tx.body == "a=xxxxxxxx" and tx.body_length == 102 and tx.body_truncated
    assert DEFAULT_BODY_LIMIT == 128 * 1024


def test_text_parts_are_taken_as_utf8() -> None:
    tx = build_transaction(method="GET", uri="/caf\u00e9", headers=[("X", "\u00e9")], body="\u00e9")
    assert (tx.path, tx.headers, tx.body) == ("/caf\xc3\xa9", (("X", "\xc3\xa9"),), "\xc3\xa9")


def test_json_naming_is_one_option_of_the_transaction() -> None:
    parts = {
        "method": "POST",
        "uri": "/api",
        "headers": [("Content-Type", "application/json")],
        "body": b'{"c":[1,2]}',
    }
    assert build_transaction(**parts).body_args == (("c.0", "1"), ("c.1", "2"))  # type: ignore[arg-type]
    modsecurity = build_transaction(**parts, json_naming=JsonNaming.MODSECURITY)  # type: ignore[arg-type]
    assert modsecurity.body_args == (("c.c", "1"), ("c.c", "2"))


def test_transactions_are_frozen_and_grow_a_response_and_session_facts() -> None:
    tx = Transaction()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx.method = "POST"  # type: ignore[misc]
    answered = tx.with_response(404, (("Server", "x"),), "nope")
    assert (answered.response_status, answered.response_headers, answered.response_body) == (
        404,
        (("Server", "x"),),
        "nope",
    )
    assert tx.response_status == 0
    assert tx.with_session((("state", "revoked"),)).session == (("state", "revoked"),)


def test_a_grown_transaction_keeps_every_other_field_and_stays_frozen() -> None:
    tx = build_transaction(
        method="POST",
        uri="/a;b=c?q=1",
        headers=[("Cookie", "sid=x"), ("Content-Type", "application/x-www-form-urlencoded")],
        body=b"a=1&b=2",
        client_addr="192.0.2.9",
        limits=Limits(args=1),
    )
    facts = (("state", "active"),)
    for grown, expected in (
        (tx.with_session(facts), dataclasses.replace(tx, session=facts)),
        (
            tx.with_response(200, (("Server", "x"),), "ok"),
            dataclasses.replace(
                tx, response_status=200, response_headers=(("Server", "x"),), response_body="ok"
            ),
        ),
    ):
        assert grown == expected and grown is not tx and grown.extra is tx.extra
        assert [getattr(grown, f.name) for f in dataclasses.fields(tx)] == [
            getattr(expected, f.name) for f in dataclasses.fields(tx)
        ]
        with pytest.raises(dataclasses.FrozenInstanceError):
            grown.method = "GET"  # type: ignore[misc]


def test_a_built_transaction_has_every_field_as_its_init_sets_it() -> None:
    """build_transaction makes its Transaction slot by slot: every field as __init__ sets it (the
    fields it does not name at their defaults, the mutable one fresh), frozen alike; header bytes and
    text side by side are each byte text."""
    tx = build_transaction(
        method=b"POST",
        uri=b"/a?q=1",
        headers=[(b"Cookie", b"sid=\xe9"), ("Content-Type", "application/x-www-form-urlencoded")],
        body=b"a=1",
        client_addr="192.0.2.9",
    )
    assert (tx.session, tx.response_status, tx.response_headers, tx.response_body) == ((), 0, (), "")
    assert tx.headers == (("Cookie", "sid=\xe9"), ("Content-Type", "application/x-www-form-urlencoded"))
    assert tx.extra == {"files_size": "0"}
    assert tx.extra is not build_transaction(method="GET", uri="/").extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx.body = ""  # type: ignore[misc]


def test_counts_over_a_limit_are_named_and_the_collections_cut_there() -> None:
    limits = Limits(args=3, cookies=2, headers=4, parts=1)
    tx = build_transaction(
        method="GET",
        uri="/?a=1&b=2&c=3&d=4&e=5",
        headers=[("Host", "h"), ("Cookie", "x=1; y=2; z=3"), ("X-A", "1"), ("X-B", "2"), ("X-C", "3")],
        limits=limits,
    )
    assert dict(tx.limits_exceeded) == {"headers": "5 > 4", "cookies": "3 > 2", "args": "5 > 3"}
    assert tx.cookies == (("x", "1"), ("y", "2"))
    assert [k for k, _ in tx.query_args] == ["a", "b", "c"]
    assert len(tx.headers) == 4


def test_empty_pieces_count_toward_the_limit() -> None:
    """Semicolons or ampersands without pairs cannot push a cookie or an argument past the parsed part."""
    tx = build_transaction(
        method="GET",
        uri="/?" + "&" * 10 + "q=evil",
        headers=[("Cookie", ";" * 10 + "s=evil")],
        limits=Limits(args=5, cookies=5),
    )
    assert {k for k, _ in tx.limits_exceeded} == {"args", "cookies"}


def test_at_the_limits_nothing_is_exceeded() -> None:
    tx = build_transaction(
        method="GET",
        uri="/?a=1&b=2",
        headers=[("Host", "h"), ("Cookie", "x=1; y=2")],
        limits=Limits(args=2, cookies=2, headers=2),
    )
    assert tx.limits_exceeded == ()
    assert tx.cookies == (("x", "1"), ("y", "2"))


def test_multipart_parts_over_the_limit() -> None:
    part = b'--B\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n'
    tx = build_transaction(
        method="POST",
        uri="/",
        headers=[("Content-Type", "multipart/form-data; boundary=B")],
        body=part * 3 + b"--B--\r\n",
        limits=Limits(parts=2),
    )
    assert dict(tx.limits_exceeded) == {"parts": "3 > 2"}
    assert len(tx.body_args) == 2


def test_a_cut_json_body_is_read_as_far_as_it_goes() -> None:
    body = b'{"q": "<script>alert(1)</script>", "pad": "' + b"a" * 200 + b'"}'
    tx = build_transaction(
        method="POST", uri="/", headers=[("Content-Type", "application/json")], body=body, body_limit=100
    )
    assert tx.body_truncated
    assert tx.body_args[0] == ("q", "<script>alert(1)</script>")
    assert tx.body_args[1][0] == "pad"
    assert "cut at the inspection limit" in tx.body_error


def test_a_short_cookie_header_or_query_seen_again_gives_the_same_pairs_under_its_own_limit() -> None:
    """The pairs of a short Cookie header or query string are kept (transaction._kept_pairs in
    _COOKIE_PAIRS and _QUERY_PAIRS): the same text again gives the same pairs, the same text under another limit is cut
    at that limit, and a text longer than memo.MAX_TEXT is parsed every time (never kept)."""
    headers = [("Cookie", "sid=abc; theme=dark; lang=en")]
    first = build_transaction(method="GET", uri="/s?q=shoes&page=2&sort=price", headers=headers)
    again = build_transaction(method="GET", uri="/s?q=shoes&page=2&sort=price", headers=headers)
    assert again.cookies == first.cookies == (("sid", "abc"), ("theme", "dark"), ("lang", "en"))
    assert again.query_args == first.query_args == (("q", "shoes"), ("page", "2"), ("sort", "price"))
    cut = build_transaction(
        method="GET", uri="/s?q=shoes&page=2&sort=price", headers=headers, limits=Limits(args=2, cookies=1)
    )
    assert cut.cookies == (("sid", "abc"),) and cut.query_args == (("q", "shoes"), ("page", "2"))
    assert build_transaction(method="GET", uri="/s?q=shoes&page=2&sort=price", headers=headers) == first
    long_value = "x" * (MAX_TEXT + 1)
    long = build_transaction(method="GET", uri=f"/s?q={long_value}", headers=[("Cookie", f"t={long_value}")])
    assert long.query_args == (("q", long_value),) and long.cookies == (("t", long_value),)
    kept = [key for table in (_COOKIE_PAIRS, _QUERY_PAIRS) for key in table]
    assert ("sid=abc; theme=dark; lang=en", 1) in kept and ("q=shoes&page=2&sort=price", 2) in kept
    assert not any(long_value in text for text, _ in kept)
