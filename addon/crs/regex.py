"""PCRE (as ModSecurity 2 compiles it) -> Python `re`: the rewrites that keep a pattern's meaning.

ModSecurity compiles `@rx` with PCRE_DOTALL | PCRE_DOLLAR_ENDONLY and no UTF mode, so patterns
match bytes. Here values are latin-1 "byte text" (one character per byte) and patterns are
compiled with re.DOTALL | re.ASCII after these rewrites (each one is unit-tested):

* `$` outside a class -> `\\Z` (DOLLAR_ENDONLY: `$` never matches before a final newline);
* `\\z` -> `\\Z`; PCRE's `\\Z` (end or before a final newline) -> `(?=\\n?\\Z)`;
* `\\x{hh}` -> `\\xhh` (inside and outside classes);
* an inline flag group `(?i)` that is not at the very start -> scoped `(?i:...)` over the rest of
  each alternative of the enclosing group (PCRE applies it to the rest of the group);
* `\\v` -> the PCRE vertical-space set, `\\h` -> the horizontal-space set, `\\e` -> `\\x1b`;
* POSIX classes `[:alpha:]` and friends inside a class -> ASCII ranges;
* a look-behind whose alternatives differ in width -> one look-behind per alternative
  (`(?<!A|B)` -> `(?<!A)(?<!B)`, `(?<=A|B)` -> `(?:(?<=A)|(?<=B))`), only when `re` refuses it.
"""

from __future__ import annotations

import re

FLAGS = re.DOTALL | re.ASCII

_VSPACE = r"\n\x0b\f\r\x85"
_HSPACE = r"\t \xa0"
_POSIX = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r"\t\n\x0b\f\r ",
    "blank": r"\t ",
    "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "cntrl": r"\x00-\x1f\x7f",
    "print": r"\x20-\x7e",
    "graph": r"\x21-\x7e",
}
_HEX_BRACE = re.compile(r"x\{([0-9A-Fa-f]{1,2})\}")
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z]*(?:-[a-zA-Z]+)?)\)")


class RegexError(ValueError):
    """A pattern that cannot be translated or compiled; the message names the pattern."""


def pcre_to_python(pattern: str) -> str:
    """Rewrite a PCRE pattern so that Python's `re` (with FLAGS) gives it the same meaning."""
    text = _rewrite_escapes(pattern)
    text = _scope_inline_flags(text)
    try:
        re.compile(text, FLAGS)
    except re.error as exc:
        if "look-behind requires fixed-width pattern" in str(exc):
            text = _split_lookbehinds(text)
    return text


def compile_pcre(pattern: str) -> re.Pattern[str]:
    """Translate and compile; raise RegexError naming the pattern and Python's reason."""
    translated = pcre_to_python(pattern)
    try:
        return re.compile(translated, FLAGS)
    except re.error as exc:
        raise RegexError(f"cannot compile {pattern!r} (as {translated!r}): {exc}") from None


def _rewrite_escapes(pattern: str) -> str:
    """One pass over the pattern, tracking character classes: `$`, `\\z`, `\\Z`, `\\x{}`, `\\v`..."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    class_start = -1
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escaped = pattern[i + 1]
            brace = _HEX_BRACE.match(pattern, i + 1)
            if brace:
                out.append("\\x" + brace.group(1).rjust(2, "0"))
                i = brace.end()
                continue
            out.append(_escape(escaped, in_class))
            i += 2
            continue
        if in_class:
            if char == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                if name in _POSIX:
                    out.append(_POSIX[name])
                    i = end + 2
                    continue
            if char == "]" and i > class_start:
                in_class = False
            elif char == "[":
                out.append("\\[")
                i += 1
                continue
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append(char)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            class_start = i  # a `]` right here is a literal, as in PCRE
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if char == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _escape(escaped: str, in_class: bool) -> str:
    if escaped == "v":
        return _VSPACE if in_class else f"[{_VSPACE}]"
    if escaped == "h":
        return _HSPACE if in_class else f"[{_HSPACE}]"
    if escaped == "e":
        return r"\x1b"
    if not in_class and escaped == "z":
        return r"\Z"
    if not in_class and escaped == "Z":
        return r"(?=\n?\Z)"
    return "\\" + escaped


def _scope_inline_flags(pattern: str) -> str:
    """`a(?i)b|c` -> `a(?i:b)|(?i:c)`: PCRE flags set mid-pattern last to the end of their group."""
    match = _find_inline_flags(pattern)
    while match is not None and match.start() > 0:
        start, end, flags = match.start(), match.end(), match.group(1)
        group_end = _group_end(pattern, end)
        rest = _split_alternatives(pattern[end:group_end])
        scoped = "|".join(f"(?{flags}:{alt})" if alt else "" for alt in rest)
        pattern = pattern[:start] + scoped + pattern[group_end:]
        match = _find_inline_flags(pattern)
    return pattern


def _find_inline_flags(pattern: str) -> re.Match[str] | None:
    """The first `(?flags)` that is a real group (not escaped, not inside a class) and not at 0."""
    i = 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif char == "(":
            m = _INLINE_FLAGS.match(pattern, i)
            if m and i > 0:
                return m
        i += 1
    return None


def _group_end(pattern: str, start: int) -> int:
    """Index of the `)` closing the group that contains `start` (or len(pattern) at top level)."""
    depth = 0
    i = start
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 2
                continue
            if pattern[i + 1 : i + 3] == "^]":
                i += 3
                continue
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(pattern)


def _split_alternatives(text: str) -> list[str]:
    """Split on `|` at nesting depth 0 (outside classes and groups)."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    in_class = False
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if text[i + 1 : i + 2] == "]":
                i += 2
                continue
            if text[i + 1 : i + 3] == "^]":
                i += 3
                continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


_LOOKBEHIND = re.compile(r"\(\?<([=!])")


def _split_lookbehinds(pattern: str) -> str:
    """Give every alternative of a variable-width look-behind its own fixed-width look-behind."""
    out: list[str] = []
    i = 0
    while True:
        m = _LOOKBEHIND.search(pattern, i)
        if m is None or _escaped(pattern, m.start()):
            if m is None:
                out.append(pattern[i:])
                return "".join(out)
            out.append(pattern[i : m.end()])
            i = m.end()
            continue
        end = _group_end(pattern, m.end())
        body = pattern[m.end() : end]
        alternatives = _split_alternatives(body)
        out.append(pattern[i : m.start()])
        kind = m.group(1)
        if len(alternatives) == 1:
            out.append(pattern[m.start() : end + 1])
        elif kind == "!":
            out.append("".join(f"(?<!{alt})" for alt in alternatives))
        else:
            out.append("(?:" + "|".join(f"(?<={alt})" for alt in alternatives) + ")")
        i = end + 1


def _escaped(text: str, pos: int) -> bool:
    backslashes = 0
    while pos - backslashes - 1 >= 0 and text[pos - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1
