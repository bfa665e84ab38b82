"""Atheris target: Set-Cookie parsing (RFC 6265 5.2), session cookie events and request Cookie headers.

Input: the bytes as text (UTF-8 with surrogate escapes, as mitmproxy hands headers over), split at
NUL into several header values.
Run: python tests/fuzz/fuzz_cookies.py -atheris_runs=100000
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["logoutguard"]):
    from fuzz.properties import check_cookie_header, check_set_cookie


def test_one_input(data: bytes) -> None:
    values = data.decode("utf-8", "surrogateescape").split("\x00")
    now = 1.7e9 + (data[0] if data else 0) * 1e7
    for value in values:
        check_set_cookie(value, now)
    check_cookie_header(values)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
