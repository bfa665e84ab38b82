"""Outcomes, the values a request carries, and which of them are payloads."""

from __future__ import annotations

import pytest

from .grading import Tally, check_adds_up, normalised, outcome, payload_parts, record_params


@pytest.mark.parametrize(
    ("served", "status", "reached", "error", "expected"),
    [
        (True, 200, True, None, "passed"),
        (True, 500, True, None, "passed"),  # the application's own error page
        (False, 403, False, None, "refused"),
        (False, 403, True, None, "response-blocked"),
        (False, 502, False, None, "error"),
        (False, 0, False, "ConnectionResetError", "error"),
        (False, 0, True, "Client disconnected.", "error"),  # the tool gave up waiting, not a block
    ],
)
def test_outcome(served: bool, status: int, reached: bool, error: str | None, expected: str) -> None:
    assert outcome(served, status, reached, error) == expected


def record(path: str, headers: list[list[str]] | None = None, body: str = "") -> dict:
    return {"path": path, "headers": headers or [], "body": body}


def test_values_from_every_place() -> None:
    params = record_params(
        record(
            "/a?x=1&y=%27",
            [
                ["Host", "localhost:1"],
                ["Content-Type", "application/json"],
                ["Cookie", "lang=de%27; t=1"],
                ["X-Tenant-Id", "1 OR 1"],
                ["User-Agent", "Mozilla/5.0"],
            ],
            '{"category": "tools", "n": {"k": [1]}}',
        )
    )
    assert params == [
        ("/a", "query", "x", "1"),
        ("/a", "query", "y", "'"),
        ("/a", "json", "category", "tools"),
        ("/a", "json", "n.k[0]", "1"),
        ("/a", "cookie", "lang", "de'"),
        ("/a", "cookie", "t", "1"),
        ("/a", "header", "x-tenant-id", "1 OR 1"),
    ]
    form = record_params(record("/l", [["Content-Type", "application/x-www-form-urlencoded"]], "u=a%27&p=x"))
    assert form == [("/l", "form", "u", "a'"), ("/l", "form", "p", "x")]
    multipart = record_params(
        record(
            "/up",
            [["Content-Type", "multipart/form-data; boundary=B"]],
            '--B\r\nContent-Disposition: form-data; name="file"; filename="a.php"\r\n\r\n<?php ?>\r\n--B--\r\n',
        )
    )
    assert ("/up", "multipart", "file#filename", "a.php") in multipart
    assert record_params(record("/x", [["Content-Type", "text/xml"]], "<a/>")) == [("/x", "body", "", "<a/>")]


def test_payload_is_what_the_baseline_lacks() -> None:
    baseline = set(record_params(record("/items?id=1")))
    assert payload_parts(record("/items?id=1"), baseline) == []
    assert payload_parts(record("/items?id=1%20AND%201=1"), baseline) == [
        ("/items", "query", "id", "1 AND 1=1")
    ]


def test_normalised_tool_payloads() -> None:
    assert normalised("id=1 AND 5960=5960") == normalised("id=1 AND 1234=1234")
    assert normalised("q=' AND 'xYzq'='xYzq") == normalised("q=' AND 'AbCd'='AbCd")


def test_tally_adds_up() -> None:
    tally = Tally()
    for what in ("passed", "refused", "refused", "error"):
        tally.add(what)
    figures = tally.as_dict()
    assert figures["sent"] == 4 and figures["refused_share"] == 0.5
    check_adds_up(figures)
    with pytest.raises(AssertionError):
        check_adds_up({**figures, "sent": 5})
