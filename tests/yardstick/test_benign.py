"""Benign samples: troff markup removed, repeatable for a seed; forms filled as a person would."""

from __future__ import annotations

from .benign import _Page, form_request, man_text, samples


def test_man_text_drops_requests_and_escapes() -> None:
    source = ".TH LS 1\n.SH NAME\nls \\- list directory contents\n.B ls\n\\fBfoo\\fR \\(aqbar\\(aq\n"
    assert man_text(source).split("\n") == ["", "ls - list directory contents", "ls", "foo 'bar'"]


def test_samples_are_repeatable() -> None:
    first, again = samples(7, 3), samples(7, 3)
    assert first == again
    assert all(len(v) <= 3 for v in first.values())


def test_forms_are_filled_with_their_values_or_realistic_ones() -> None:
    page = _Page()
    page.feed(
        '<form action="/login" method="post"><input name="username"><input name="token" value="t1">'
        '<textarea name="message">hi</textarea></form>'
        '<form action="/up" method="post" enctype="multipart/form-data"><input type="file" name="f"></form>'
    )
    method, url, headers, body = form_request("http://localhost:1/", page.forms[0])
    assert (method, url) == ("POST", "http://localhost:1/login")
    assert body == b"username=alice&token=t1&message=hi"
    method, url, headers, body = form_request("http://localhost:1/", page.forms[1])
    assert headers["Content-Type"].startswith("multipart/form-data") and b'filename="notes.txt"' in body
