"""Payloads are placed in each kind of point as a client would send them; the lists load."""

from __future__ import annotations

import json

from .sender import POINTS_BY_NAME, benign_probes, build, fill_wapiti_placeholders

PAYLOAD = "1' OR \"a\"<>'b'; cat /etc/passwd\r\n\x00é"


def test_each_location() -> None:
    query = build(POINTS_BY_NAME["items-id"], PAYLOAD, "s", "sqli", 0)
    assert query.target.startswith(
        "/items?id=1%27+OR+%22a%22%3C%3E%27b%27%3B+cat+%2Fetc%2Fpasswd%0D%0A%00%C3%A9"
    )
    form = build(POINTS_BY_NAME["login-username"], PAYLOAD, "s", "sqli", 0)
    assert form.body.startswith(b"username=1%27+OR") and form.body.endswith(b"&password=x")
    body = build(POINTS_BY_NAME["api-category"], PAYLOAD, "s", "sqli", 0).body
    assert json.loads(body) == {"category": PAYLOAD}
    cookie = dict(build(POINTS_BY_NAME["greeting-lang"], PAYLOAD, "s", "sqli", 0).headers)["Cookie"]
    assert cookie.startswith("lang=1%27%20OR%20%22a%22") and " " not in cookie and ";" not in cookie
    header = dict(build(POINTS_BY_NAME["report-tenant"], PAYLOAD, "s", "sqli", 0).headers)["X-Tenant-Id"]
    assert header.startswith("1' OR \"a\"<>'b'; cat") and "%0D%0A%00" in header and "\r" not in header


def test_wfuzz_lines_are_seen_as_if_sent_raw_in_a_url() -> None:
    line = "'%20or%201=1--+x%252e"
    query = build(POINTS_BY_NAME["items-id"], line, "wfuzz:SQL.txt", "sqli", 0, raw_url=True)
    assert query.target == "/items?id=%27+or+1%3D1--+x%252e"  # the application decodes "' or 1=1-- x%2e"
    cookie = dict(build(POINTS_BY_NAME["greeting-lang"], line, "w", "sqli", 0, raw_url=True).headers)[
        "Cookie"
    ]
    assert cookie == "lang=%27%20or%201%3D1--%20x%252e"
    body = build(POINTS_BY_NAME["api-category"], line, "w", "sqli", 0, raw_url=True).body
    assert json.loads(body) == {"category": line}  # JSON: as written


def test_wapiti_placeholders() -> None:
    filled = fill_wapiti_placeholders("a[TAB]b[LF][EXTERNAL_ENDPOINT]x[TIME][NULL]", "http://127.0.0.1:9/")
    assert filled == "a\tb\nhttp://127.0.0.1:9/x2\0"


def test_benign_samples_go_to_the_safe_forms_in_turn() -> None:
    probes = benign_probes({"prose": ["one text", "two text", "three text"]})
    assert [p.point for p in probes] == ["contact-message", "docs-q", "notes-text"]
    assert all(p.source == "benign:prose" for p in probes)
