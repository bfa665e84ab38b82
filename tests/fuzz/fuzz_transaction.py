"""Atheris target: the Transaction builder (and the raw-request reader) on arbitrary request bytes.

Input: one byte choosing the Content-Type, one the body limit, then a raw HTTP/1 request
(request line, header lines, blank line, body) split leniently, so any bytes are a request.
Run: python tests/fuzz/fuzz_transaction.py -atheris_runs=100000 (any libFuzzer flags work).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["logoutguard"]):
    from fuzz.properties import CONTENT_TYPES, check_transaction
    from logoutguard.flow_bridge import parse_raw_request


def split_request(data: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    """Lenient split of raw bytes into method, target, headers and body (never fails)."""
    head, _, body = data.partition(b"\r\n\r\n")
    first, *lines = head.split(b"\r\n")
    method, _, rest = first.partition(b" ")
    uri = rest.rsplit(b" ", 1)[0] if b" " in rest else rest
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(b":") for line in lines)]
    return method, uri, headers, body


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    content_type = CONTENT_TYPES[data[0] % len(CONTENT_TYPES)]
    body_limit = 1 + data[1] * 4
    method, uri, headers, body = split_request(data[2:])
    check_transaction(method, uri, headers, body, content_type, body_limit)
    with contextlib.suppress(ValueError):  # the documented refusal of a malformed request
        parse_raw_request(data[2:], body_limit)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
