"""ModSecurity-2-on-Apache request view: paths, cookies, arguments, JSON/XML/multipart bodies."""

from __future__ import annotations

import pytest

from logoutguard.crs.modsec import (
    apache_path,
    check_content_disposition,
    parse_cookies_v0,
    parse_xml,
    processor_for,
)

from .helpers import engine_for, run


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/a/b", ("/a/b", 0)),
        ("/a//b/./c/../d", ("/a/b/d", 0)),
        ("/%41%42/x%20y", ("/AB/x y", 0)),
        ("/..%252fetc", ("/..%2fetc", 0)),  # decoded once
        ("/a/.%2e/b", ("/b", 0)),  # %2e is unreserved: decoded before dot segments go
        ("/search/%3Cscript%3E", ("/search/<script>", 0)),
        ("/../x", (None, 400)),  # above the root
        ("/files/%e0%a", (None, 400)),  # bad escape
        ("/cgi-bin/.%%32%65/x", (None, 400)),
        ("/static/..%2f..%2fetc", (None, 404)),  # AllowEncodedSlashes Off
        ("/index.php%00.jpg", (None, 404)),
    ],
)
def test_apache_path(raw, expected):
    assert apache_path(raw) == expected


@pytest.mark.parametrize(
    ("header", "pairs"),
    [
        ("a=1; b=2", [("a", "1"), ("b", "2")]),
        ("a=1 ; b", [("a", "1 "), ("b", "")]),  # value keeps its trailing space; bare name -> ""
        ("=x; ;c=3=4", [("c", "3=4")]),  # empty names ignored
    ],
)
def test_parse_cookies_v0(header, pairs):
    assert parse_cookies_v0(header) == pairs


def test_xml_text_and_attributes():
    values, error = parse_xml('<a x="1"><b>t1</b>tail<c y="2"/></a>')
    assert error == "" and values == [("XML:/*", "t1tail"), ("XML://@*", "1"), ("XML://@*", "2")]
    assert parse_xml("<a><b></a>")[1].startswith("XML parser error")
    values, error = parse_xml('<!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><f>&x;</f>')
    assert error == "" and values == [("XML:/*", "")]  # external entities are not loaded


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ('form-data; name="a"', (1, False)),
        ('form-data; name="f"; filename="x.png"', (1, False)),
        ('form-data; name="f"; filename=""><img src=x>.png"', (-12, False)),
        ("form-data; name='a'", (1, True)),
        ('form-data; name="t\'x"', (1, False)),
        ('form-data; name="a"; name="b"', (-14, False)),
        ("attachment; name=a", (-1, False)),
    ],
)
def test_content_disposition(value, result):
    assert check_content_disposition(value) == result


@pytest.mark.parametrize(
    ("content_type", "processor"),
    [
        ("application/x-www-form-urlencoded; charset=UTF-8", "URLENCODED"),
        ("Multipart/Form-Data; boundary=x", "MULTIPART"),
        ("application/json", ""),  # JSON and XML only through ctl:requestBodyProcessor (200000/200001)
        ("", ""),
    ],
)
def test_processor_for(content_type, processor):
    assert processor_for(content_type) == processor


def test_phase_view_of_paths_and_bodies():
    engine = engine_for(
        'SecRule REQUEST_FILENAME "@contains <" "id:1,phase:1,pass"\n'
        'SecRule REQUEST_FILENAME "@contains <" "id:2,phase:2,pass"\n'
        'SecRule REQUEST_HEADERS:Content-Type "^application/json" '
        '"id:3,phase:1,pass,nolog,t:lowercase,ctl:requestBodyProcessor=JSON"\n'
        'SecRule ARGS_NAMES "@streq a.b" "id:4,phase:2,pass"\n'
        'SecRule REQBODY_PROCESSOR "@streq JSON" "id:5,phase:2,pass"\n'
    )
    verdict, _ = run(engine, uri="/x%3Cy")
    assert verdict.rule_ids == [2]  # raw in phase 1, decoded from phase 2 on
    verdict, _ = run(
        engine, method="POST", headers=[("Content-Type", "application/json")], body=b'{"a":{"b":1}}'
    )
    assert verdict.rule_ids == [3, 4, 5]
    verdict, _ = run(engine, method="POST", headers=[("Content-Type", "text/plain")], body=b'{"a":{"b":1}}')
    assert verdict.rule_ids == []  # no sniffing: no processor, no ARGS
