"""ModSecurity 2's `msre_parse_generic`: split an action list or a target list into (name, value) items.

Items are separated by `,` or `|` (whitespace around them ignored). An item is `name` or
`name:value`; a value is either bare (it ends at `,`, `|` or whitespace) or `'single-quoted'`, where
only `\\'` and `\\\\` are escapes (any other backslash pair is an error, as in ModSecurity).
"""

from __future__ import annotations

_SEPARATORS = ",|"


class ParseError(ValueError):
    """An action or target list ModSecurity would reject; the message says where."""


def parse_generic(text: str) -> list[tuple[str, str | None]]:
    """`"id:1, t:none,msg:'a, b'"` -> [("id", "1"), ("t", "none"), ("msg", "a, b")]."""
    items: list[tuple[str, str | None]] = []
    n = len(text)
    p = 0
    while p < n:
        while p < n and text[p].isspace():
            p += 1
        if p >= n:
            break
        start = p
        while p < n and text[p] not in _SEPARATORS and text[p] != ":" and not text[p].isspace():
            p += 1
        name = text[start:p]
        if p >= n or text[p] != ":":
            items.append((name, None))
            while p < n and text[p].isspace():
                p += 1
            if p >= n:
                break
            if text[p] in _SEPARATORS:
                p += 1
                continue
            raise ParseError(f"unexpected character {text[p]!r} at position {p}")
        p += 1  # the colon
        if p >= n:
            items.append((name, None))
            break
        if text[p] == "'":
            value, p = _quoted(text, p + 1)
        else:
            start = p
            while p < n and text[p] not in _SEPARATORS and not text[p].isspace():
                p += 1
            value = text[start:p]
        items.append((name, value))
        while p < n and (text[p].isspace() or text[p] in _SEPARATORS):
            p += 1
    return items


def _quoted(text: str, p: int) -> tuple[str, int]:
    out: list[str] = []
    n = len(text)
    while True:
        if p >= n:
            raise ParseError(f"missing closing quote in {text!r}")
        char = text[p]
        if char == "\\":
            if p + 1 >= n or text[p + 1] not in "'\\":
                raise ParseError(f"invalid quoted pair at position {p} in {text!r}")
            out.append(text[p + 1])
            p += 2
        elif char == "'":
            return "".join(out), p + 1
        else:
            out.append(char)
            p += 1
