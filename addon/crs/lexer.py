"""Apache config lexing as ModSecurity 2 on Apache reads it: logical lines, then directive arguments.

Follows httpd's `ap_cfg_getline` (a physical line ending in a single `\\` is joined to the next one
*before* comments are recognised; the logical line is trimmed) and `ap_getword_conf` /
`substring_conf` (arguments are `"..."`, `'...'` or bare words; inside a quoted argument `\\<quote>`
gives the quote, and in every argument `\\\\` gives one backslash).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Directive:
    """One configuration directive: its name, its arguments as Apache hands them over, and where."""

    name: str
    args: tuple[str, ...]
    file: str
    line: int  # the physical line the directive starts on (1-based)


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first physical line number, trimmed logical line) with continuations joined.

    A line continues when it ends (before CR/LF) in one backslash that is not itself escaped by
    another backslash (`[^\\\\]\\\\[\\r]\\n` in httpd). The backslash is dropped and the next physical
    line is appended as it is, leading whitespace included.
    """
    buffer = ""
    start = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not buffer:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            buffer += line[:-1]
            continue
        buffer += line
        yield start, buffer.strip()
        buffer = ""
    if buffer:
        yield start, buffer.strip()


def substring_conf(text: str, quote: str) -> str:
    """httpd's substring_conf: `\\\\` -> `\\` always, `\\<quote>` -> `<quote>` inside quotes."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and (text[i + 1] == "\\" or (quote and text[i + 1] == quote)):
            out.append(text[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def getword_conf(line: str, pos: int) -> tuple[str, int]:
    """httpd's ap_getword_conf: one argument starting at `pos` -> (argument, position after it)."""
    n = len(line)
    while pos < n and line[pos].isspace():
        pos += 1
    if pos >= n:
        return "", n
    quote = line[pos]
    if quote in "\"'":
        end = pos + 1
        while end < n and line[end] != quote:
            if line[end] == "\\" and end + 1 < n and line[end + 1] in (quote, "\\"):
                end += 2
            else:
                end += 1
        word = substring_conf(line[pos + 1 : end], quote)
        if end < n and line[end] == quote:
            end += 1
    else:
        end = pos
        while end < n and not line[end].isspace():
            end += 1
        word = substring_conf(line[pos:end], "")
    while end < n and line[end].isspace():
        end += 1
    return word, end


def split_args(line: str) -> list[str]:
    """All arguments of a logical line (the directive name first)."""
    words: list[str] = []
    pos = 0
    while pos < len(line):
        word, pos = getword_conf(line, pos)
        words.append(word)
    return words


def directives(text: str, file: str) -> Iterator[Directive]:
    """Every directive of a config text, comments and blank lines dropped, `<IfModule>` lines kept."""
    for number, line in logical_lines(text):
        if not line or line.startswith("#"):
            continue
        words = split_args(line)
        if words:
            yield Directive(words[0], tuple(words[1:]), file, number)
