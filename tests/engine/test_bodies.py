"""bodies: urlencoded, multipart and JSON bodies -> args, and the one JSON naming option (PATHS / MODSECURITY)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logoutguard.engine.bodies import (
    JSON_DEPTH_LIMIT,
    JsonNaming,
    ParsedBody,
    close_truncated_json,
    parse_body,
    parse_json,
    parse_multipart,
    parse_urlencoded,
)

PATHS, MODSECURITY = JsonNaming.PATHS, JsonNaming.MODSECURITY

# (JSON body, args under PATHS, args under MODSECURITY)
JSON_NAMES = [
    ('{"a":{"b":"x"},"c":1.50}', [("a.b", "x"), ("c", "1.50")], [("a.b", "x"), ("c", "1.50")]),
    (
        '{"c":[1,2],"d":true,"e":null}',
        [("c.0", "1"), ("c.1", "2"), ("d", "true"), ("e", "")],
        [("c.c", "1"), ("c.c", "2"), ("d", "true"), ("e", "")],
    ),
    ('[{"q":"v"}]', [("0.q", "v")], [("array.array.q", "v")]),  # msc_json.c: a top array is "array"
    ('{"a":{"b":{"c":1}},"z":2}', [("a.b.c", "1"), ("z", "2")], [("a.b.c", "1"), ("z", "2")]),
    ('{"k":"\\u00e9"}', [("k", "\xc3\xa9")], [("k", "\xc3\xa9")]),  # values as UTF-8 bytes
    ('{"\\u00e9":1}', [("\xc3\xa9", "1")], [("\xc3\xa9", "1")]),  # names too
    ('{"a":1,"a":2}', [("a", "1"), ("a", "2")], [("a", "1"), ("a", "2")]),  # duplicates kept
    (
        '{"n":1e3,"m":-0,"f":NaN}',
        [("n", "1e3"), ("m", "-0"), ("f", "NaN")],
        [("n", "1e3"), ("m", "-0"), ("f", "NaN")],
    ),
    ('{"p":{},"q":[]}', [("p", ""), ("q", "")], []),  # PATHS: an empty container's name is inspected
    ('{"__proto__":{}}', [("__proto__", "")], []),
    (
        '{"a.b":{"c":1},"d":[5]}',
        [("a.b.c", "1"), ("d.0", "5")],
        [("a.b.c", "1"), ("a.d.d", "5")],
    ),  # msc_json.c's prefix
    (
        '{"a":[[1],{"b":2}],"c":3}',
        [("a.0.0", "1"), ("a.1.b", "2"), ("c", "3")],
        [("a.a.a", "1"), ("a.a.b", "2"), ("c", "3")],
    ),
    ('"top"', [("", "top")], [("", "top")]),
    ("[]", [], []),
]


@pytest.mark.parametrize(("body", "paths", "modsecurity"), JSON_NAMES)
def test_json_naming(body: str, paths: list[tuple[str, str]], modsecurity: list[tuple[str, str]]) -> None:
    assert parse_json(body, PATHS) == ParsedBody("JSON", tuple(paths))
    assert parse_json(body, MODSECURITY) == ParsedBody("JSON", tuple(modsecurity))


@pytest.mark.parametrize("naming", list(JsonNaming))
def test_bad_json_is_an_error_naming_the_reason(naming: JsonNaming) -> None:
    parsed = parse_json('{"a": ', naming)
    assert parsed.args == () and parsed.error.startswith("JSON parsing error: Expecting value")


def test_too_deep_json_skips_the_deep_part_with_paths_and_stops_with_modsecurity() -> None:
    deep = "[" * (JSON_DEPTH_LIMIT + 5) + '"x"' + "]" * (JSON_DEPTH_LIMIT + 5)
    body = '{"a":1,"deep":' + deep + ',"b":"after"}'
    paths = parse_json(body, PATHS)
    assert paths.error == f"JSON depth limit {JSON_DEPTH_LIMIT} exceeded; deeper values not inspected"
    assert ("a", "1") in paths.args and ("b", "after") in paths.args
    assert not any(value == "x" for _, value in paths.args)
    modsecurity = parse_json(body, MODSECURITY)
    assert modsecurity.error == f"JSON depth limit {JSON_DEPTH_LIMIT} exceeded"
    assert modsecurity.args == (("a", "1"),)  # parsing stopped: "after" is never seen


def test_nesting_beyond_the_parser_is_an_error_not_a_crash() -> None:
    body = "[" * 100_000 + "]" * 100_000
    for naming in JsonNaming:
        parsed = parse_json(body, naming)
        assert parsed.args == () and "depth limit" in parsed.error


@pytest.mark.parametrize(
    ("content_type", "body", "processor", "args"),
    [
        (
            "application/x-www-form-urlencoded",
            "a=1&b=%41+B&a=3",
            "URLENCODED",
            [("a", "1"), ("b", "A B"), ("a", "3")],
        ),
        ("application/json", '{"q":"x"}', "JSON", [("q", "x")]),
        ("application/vnd.api+json", '{"q":"x"}', "JSON", [("q", "x")]),
        (None, '{"q":"x"}', "JSON", [("q", "x")]),  # no Content-Type: JSON by shape
        ("text/plain", "a=1&b=2", "URLENCODED", [("a", "1"), ("b", "2")]),  # wrong type: urlencoded by shape
        ("text/plain", "just text\nwith lines", "", []),  # raw only
    ],
)
def test_parse_body_by_type_then_by_shape(
    content_type: str | None, body: str, processor: str, args: list[tuple[str, str]]
) -> None:
    parsed = parse_body(content_type, body)
    assert (parsed.processor, list(parsed.args), parsed.error) == (processor, args, "")


def test_parse_body_names_json_as_asked() -> None:
    assert parse_body("application/json", '{"c":[1]}').args == (("c.0", "1"),)
    assert parse_body("application/json", '{"c":[1]}', MODSECURITY).args == (("c.c", "1"),)


def test_json_that_does_not_parse_is_still_sniffed_and_the_error_kept() -> None:
    parsed = parse_body("application/json", "a=1&b={")
    assert parsed.processor == "URLENCODED" and parsed.args == (("a", "1"), ("b", "{"))
    assert parsed.error.startswith("JSON parsing error")


def test_empty_body_is_nothing() -> None:
    assert parse_body("application/json", "") == ParsedBody()


@pytest.mark.parametrize(
    ("text", "pairs"),
    [  # as ModSecurity's parse_arguments splits them (the CRS engine's view uses this too)
        ("a=1&b=%41+B&&c", (("a", "1"), ("b", "A B"), ("c", ""))),
        ("x=%zz%4", (("x", "%zz%4"),)),  # invalid escapes stay
        ("a=1&a=2", (("a", "1"), ("a", "2"))),
        ("a=1;b=2", (("a", "1;b=2"),)),  # only `&` separates
        ("a=%C3%A9&b=%FF&c", (("a", "\xc3\xa9"), ("b", "\xff"), ("c", ""))),  # byte-exact
        ("=v&n=", (("", "v"), ("n", ""))),
    ],
)
def test_parse_urlencoded(text: str, pairs: tuple[tuple[str, str], ...]) -> None:
    assert parse_urlencoded(text) == pairs


MULTIPART = (
    "--XyZ\r\n"
    'Content-Disposition: form-data; name="f"; filename="a.php"\r\n'
    "Content-Type: text/plain\r\n\r\n"
    "<?php echo 1; ?>\r\n"
    "--XyZ\r\n"
    'Content-Disposition: form-data; name="t"\r\n\r\n'
    "hello\r\n"
    "--XyZ--\r\n"
)


def test_multipart_fields_files_and_part_headers() -> None:
    parsed = parse_multipart("multipart/form-data; boundary=XyZ", MULTIPART)
    assert parsed.processor == "MULTIPART" and parsed.error == ""
    assert parsed.args == (("t", "hello"),)
    assert parsed.files == (("f", "a.php"),)
    assert parsed.files_size == len("<?php echo 1; ?>")
    assert ("f", "Content-Type: text/plain") in parsed.part_headers


def test_multipart_names_and_headers_keep_every_byte_as_sent() -> None:
    """A filename or field name with bytes over 127 (Latin-1, UTF-8, stray) is inspected as those bytes
    (byte text), never as U+FFFD or surrogates; so are the part headers and the part's content."""
    raw = "a.ph\x90\xd8 \xc3\xa9t\xe9"  # a stray pair, UTF-8 for é, Latin-1 for é: one character a byte
    body = (
        "--XyZ\r\n"
        f'Content-Disposition: form-data; name="f\xe9"; filename="{raw}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "<?php \xff ?>\r\n"
        "--XyZ\r\n"
        'Content-Disposition: form-data; name="q\xc3\xa9"\r\n\r\n'
        "caf\xc3\xa9\r\n"
        "--XyZ--\r\n"
    )
    parsed = parse_multipart("multipart/form-data; boundary=XyZ", body)
    assert parsed.error == ""
    assert parsed.files == (("f\xe9", raw),)
    assert parsed.args == (("q\xc3\xa9", "caf\xc3\xa9"),)
    assert parsed.files_size == len("<?php \xff ?>")
    assert ("f\xe9", f'Content-Disposition: form-data; name="f\xe9"; filename="{raw}"') in parsed.part_headers
    texts = [t for pair in (*parsed.files, *parsed.args, *parsed.part_headers) for t in pair]
    assert all(max(map(ord, t), default=0) < 256 for t in texts)


@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        ("multipart/form-data", "without a boundary"),
        ("multipart/form-data; boundary=Other", "could not be split into parts"),
    ],
)
def test_bad_multipart_is_an_error(content_type: str, error: str) -> None:
    assert error in parse_multipart(content_type, MULTIPART).error


@pytest.mark.parametrize(
    ("cut", "closed"),
    [
        ('{"a": "<script>alert(1)</scr', '{"a": "<script>alert(1)</scr"}'),
        ('{"a": 1, "b": [1, 2, 3', '{"a": 1, "b": [1, 2,null]}'),
        ('{"a": 1, "b', '{"a": 1, "b":null}'),
        ('{"a": 1,', '{"a": 1}'),
        ("[1, 2,", "[1, 2,null]"),
        ('{"a":', '{"a":null}'),
        ('{"a": tru', '{"a":null}'),
        ('{"a": "x\\', '{"a": "x"}'),
        ('{"a": "x\\\\', '{"a": "x\\\\"}'),
        ('{"a": "x\\u00', '{"a": "x"}'),
        ('[{"k": {"z": ["q', '[{"k": {"z": ["q"]}}]'),
    ],
)
def test_close_truncated_json(cut: str, closed: str) -> None:
    assert close_truncated_json(cut) == closed
    json.loads(closed)


@pytest.mark.parametrize("blank", ["\x0c", "\x0b", "\x1c", "\x1f", "\x85", "\xa0"])
def test_a_cut_json_body_with_any_other_blank_is_closed_in_linear_time(blank: str) -> None:
    """Characters that are blanks to a regex but not to JSON (a form feed, a no-break space) are part of
    a literal like any other: the reader goes on past them (it once stood still on one for ever)."""
    cut = '{"name": "x", "n": 1' + blank + '2, "tags": [1, {"a": "b' + blank * 5000
    assert close_truncated_json(cut) == cut + '"}]}'  # the literal 1<blank>2 kept as sent
    parsed = parse_body("application/json", cut, truncated=True)
    assert parsed.error and parsed.args == ()  # not JSON, and said so
    closed_after = '{"a": ' + blank + '1, "b": "c' + blank
    assert close_truncated_json(closed_after) == closed_after + '"}'



def test_a_cut_json_body_without_content_type_is_still_json() -> None:
    parsed = parse_body(None, '{"q": "1 union select", "p": "aaaa', truncated=True)
    assert parsed.processor == "JSON"
    assert parsed.args == (("q", "1 union select"), ("p", "aaaa"))


def test_an_uncut_invalid_json_body_is_an_error_not_a_guess() -> None:
    parsed = parse_body("application/json", '{"q": "x", ', truncated=False)
    assert parsed.args == () and parsed.error.startswith("JSON parsing error")


def test_a_cut_multipart_body_keeps_the_parts_before_the_cut() -> None:
    body = '--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n<script>\r\n--B\r\nContent-Disposition: form-d'
    parsed = parse_body("multipart/form-data; boundary=B", body, truncated=True)
    assert ("a", "<script>") in parsed.args


def test_xml_element_text_and_attributes_are_args() -> None:
    body = '<?xml version="1.0"?><order id="1\' OR 1=1"><item>a<b>x</b>c</item><note>&lt;script&gt;</note></order>'
    parsed = parse_body("application/xml", body)
    assert parsed.processor == "XML" and parsed.error == ""
    assert parsed.args == (
        ("order/@id", "1' OR 1=1"),
        ("order/item/b", "x"),
        ("order/item", "ac"),
        ("order/note", "<script>"),
    )


def test_xml_cut_or_malformed_gives_what_was_read() -> None:
    assert parse_body("text/xml", "<a><b>union select", truncated=True).args == (("a/b", "union select"),)
    malformed = parse_body("application/xml", "<a><b>bad</a>")
    assert malformed.args == (("a/b", "bad"),) and malformed.error.startswith("XML parser error")
    sniffed = parse_body(None, "<a><b>bad</a>")  # not declared XML: no body error for the guess
    assert sniffed.processor == "XML" and sniffed.error == ""


def test_xml_external_entities_are_not_loaded() -> None:
    body = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    assert parse_body("application/xml", body).args == ()


def test_urlencoded_limit_reads_the_first_pieces_only() -> None:
    assert parse_urlencoded("a=1&b=2&c=3", 2) == (("a", "1"), ("b", "2"))


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("%+=&;aZ09fFgG \0\x7f\x80\xe9\xff\u0100"), max_size=40),
    limit=st.none() | st.integers(min_value=0, max_value=6),
)
def test_urlencoded_pairs_are_the_standard_librarys(text: str, limit: int | None) -> None:
    """parse_urlencoded is its own loop for speed; what it gives is what parse_qsl gives."""
    kept = text if limit is None else "&".join(text.split("&", limit)[:limit])
    expected = parse_qsl(kept, keep_blank_values=True, encoding="latin-1", errors="strict")
    assert parse_urlencoded(text, limit) == tuple(expected)
