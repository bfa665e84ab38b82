"""Transformations: pure str -> str functions, one per name, in one registry. None of them raises."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

Transformation = Callable[[str], str]


def none(value: str) -> str:
    return value


def lowercase(value: str) -> str:
    return value.lower()


def url_decode(value: str) -> str:
    return unquote_to_bytes(value.replace("+", " ").encode("latin-1", "replace")).decode("latin-1")


TRANSFORMATIONS: dict[str, Transformation] = {
    "none": none,
    "lowercase": lowercase,
    "url_decode": url_decode,
}
