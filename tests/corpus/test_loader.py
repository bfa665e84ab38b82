"""Tests for the corpus loader: validation errors name the line, entries become the right Transactions."""

from __future__ import annotations

import json

import pytest

from corpus.loader import DEFAULT_HOST, CorpusError, parse_lines

BASE = {"id": "x-001", "category": "sqli", "method": "GET", "uri": "/?a=1", "note": "n"}
BOUNDARY = "----b0und"
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="t"\r\n\r\nhello\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n'
    f"Content-Type: image/png\r\n\r\nPNG\r\n--{BOUNDARY}--\r\n"
)


def line(**changes: object) -> str:
    entry = {**BASE, **changes}
    return json.dumps({k: v for k, v in entry.items() if v is not None})


def parse_one(text: str, attack: bool = True):
    return parse_lines([text], "t.jsonl", attack=attack)[0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (line(extra=1), "unknown field(s): extra"),
        (line(note=None), "missing field(s): note"),
        (line(uri=5), "field 'uri' has the wrong type"),
        (line(id="X 1"), "id 'X 1' must be"),
        (line(category="sql"), "category 'sql' is not one of"),
        (line(method="GE T"), "not an HTTP token"),
        (line(uri="/a b"), "without spaces"),
        (line(note="  "), "note must say"),
        (line(headers={"Bad Name": "v"}), "not an HTTP token"),
        (line(headers={"X": "a\r\nInjected: 1"}), "without CR or LF"),
        (line(headers=[["X"]]), "not a [name, value] pair"),
        (line(body="a", body_base64="YQ=="), "not both"),
        (line(body_base64="***"), "not valid base64"),
        (line(headers={"Content-Type": "multipart/form-data"}, body=MULTIPART), "without a boundary"),
        (
            line(headers={"Content-Type": "multipart/form-data; boundary=other"}, body=MULTIPART),
            "does not contain",
        ),
    ],
)
def test_invalid_lines_name_file_line_and_reason(text: str, reason: str) -> None:
    with pytest.raises(CorpusError, match=r"^t\.jsonl line 1") as info:
        parse_one(text)
    assert reason in str(info.value)


def test_line_numbers_count_blank_lines_and_duplicates_are_rejected() -> None:
    with pytest.raises(
        CorpusError, match=r"t.jsonl line 3: duplicate id 'x-001' \(first on t.jsonl line 1\)"
    ):
        parse_lines([line(), "", line()], "t.jsonl", attack=True)


def test_benign_categories_are_free_form_slugs() -> None:
    assert parse_one(line(category="json-api"), attack=False).category == "json-api"


def test_host_and_content_length_are_added_as_on_the_wire() -> None:
    tx = parse_one(line(method="POST", body="a=1&b=2")).transaction()
    assert tx.header("Host") == DEFAULT_HOST
    assert tx.header("Content-Length") == "7"
    assert tx.body_args == (("a", "1"), ("b", "2"))
    assert tx.client_addr == "192.0.2.10"


def test_given_host_and_framing_are_kept() -> None:
    entry = parse_one(
        line(method="POST", headers={"Host": "a.test", "Transfer-Encoding": "chunked"}, body="0\r\n\r\n")
    )
    tx = entry.transaction()
    assert tx.header("Host") == "a.test"
    assert tx.header("Content-Length") is None


def test_exact_headers_adds_nothing() -> None:
    tx = parse_one(line(exact_headers=True)).transaction()
    assert tx.headers == ()


def test_repeated_headers_as_pairs() -> None:
    tx = parse_one(line(headers=[["Content-Length", "1"], ["Content-Length", "2"]], body="x")).transaction()
    assert [v for k, v in tx.headers if k == "Content-Length"] == ["1", "2"]


def test_multipart_body_is_parsed_into_fields_and_files() -> None:
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    tx = parse_one(line(method="POST", headers={"Content-Type": ctype}, body=MULTIPART)).transaction()
    assert tx.body_processor == "MULTIPART"
    assert tx.body_args == (("t", "hello"),)
    assert tx.files == (("f", "a.png"),)


def test_body_base64_keeps_exact_bytes_and_text_is_utf8() -> None:
    raw = parse_one(line(method="POST", body_base64="/9j/4A==")).transaction()
    assert raw.body == "\xff\xd8\xff\xe0"
    text = parse_one(line(uri="/?q=caf%C3%A9", body="é")).transaction()
    assert text.body == "é".encode().decode("latin-1")
    assert text.query_args == (("q", "café".encode().decode("latin-1")),)


def test_protocol_and_method_are_passed_through() -> None:
    tx = parse_one(line(method="TRACE", protocol="HTTP/1.0")).transaction()
    assert (tx.method, tx.protocol) == ("TRACE", "HTTP/1.0")
