"""PCRE as ModSecurity 2 compiles `@rx`, translated to Python `re`: the one regex dialect of every rule.

ModSecurity compiles a pattern with PCRE_DOTALL | PCRE_DOLLAR_ENDONLY and no UTF mode, so patterns
match bytes. Rule values are byte text (one character per byte) and a translated pattern is compiled
with FLAGS (re.DOTALL | re.ASCII: `\\w \\d \\s \\b` and `(?i)` are ASCII-only, as in PCRE's C locale).
The pattern is read once by one tokenizer (escapes, character classes, groups, alternatives) into a
tree, and written out with these rewrites, each of which keeps the pattern's PCRE meaning:

* `$` outside a class -> `\\Z` (DOLLAR_ENDONLY: never before a final newline), but `$` where `(?m)` is in
  force (PCRE then ignores DOLLAR_ENDONLY; Python's multi-line `$` means the same);
* `\\z` -> `\\Z`; PCRE's `\\Z` (the end, or before a final newline) -> `(?=\\n?\\Z)`;
* `\\x{hh}` -> `\\xhh` (a value above 0xff is refused, as PCRE refuses it without UTF mode);
  `\\Q...\\E` -> the quoted text escaped; `\\e` -> `\\x1b`;
* `\\h \\H \\v \\V \\R` -> PCRE's horizontal / vertical space sets (inside a class `\\h \\v`);
* POSIX classes `[:alpha:]` and friends inside a class -> ASCII ranges; a `[` inside a class and a `]`
  right after `[` or `[^` are literals, written escaped;
* `(?<name>...)` and `(?'name'...)` -> `(?P<name>...)`;
* an inline flag group `(?i)` anywhere but at the very start -> scoped `(?i:...)` over the rest of its
  alternative and over every later alternative of the enclosing group (PCRE applies a flag set
  mid-group to the rest of the group, later alternatives included): `a(?i)b|c` -> `a(?i:b)|(?i:c)`;
* a look-behind whose alternatives differ in width (PCRE allows it, `re` does not) -> one fixed-width
  look-behind per alternative: `(?<!ab|c)` -> `(?<!ab)(?<!c)`, `(?<=ab|c)` -> `(?:(?<=ab)|(?<=c))`.
Anything else is handed to `re` as written; what `re` refuses is refused with the pattern named.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

FLAGS = re.DOTALL | re.ASCII

_VERTICAL = "\\n\\x0b\\f\\r\\x85"
_HORIZONTAL = "\\t \\xa0"
_ESCAPES = {  # outside a class
    "z": "\\Z",
    "Z": "(?=\\n?\\Z)",
    "e": "\\x1b",
    "h": f"[{_HORIZONTAL}]",
    "H": f"[^{_HORIZONTAL}]",
    "v": f"[{_VERTICAL}]",
    "V": f"[^{_VERTICAL}]",
    "R": f"(?:\\r\\n|[{_VERTICAL}])",
}
_CLASS_ESCAPES = {"e": "\\x1b", "h": _HORIZONTAL, "v": _VERTICAL}
_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "xdigit": "0-9A-Fa-f",
    "space": "\\t\\n\\x0b\\f\\r ",
    "blank": "\\t ",
    "word": "\\w",
    "cntrl": "\\x00-\\x1f\\x7f",
    "print": "\\x20-\\x7e",
    "graph": "\\x21-\\x7e",
    "punct": "!-/:-@\\[-`{-~",
    "ascii": "\\x00-\\x7f",
}
_HEX_BRACE = re.compile(r"\\x\{([0-9A-Fa-f]+)\}")
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z]*(?:-[a-zA-Z]*)?)\)")
_SCOPED_FLAGS = re.compile(r"\(\?([a-zA-Z]*(?:-[a-zA-Z]*)?):")
_NAMED_GROUP = re.compile(r"\(\?(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')")
_PLAIN_OPENERS = ("(?<=", "(?<!", "(?P<", "(?:", "(?=", "(?!", "(?>", "(?|")
_LOOKBEHIND_WIDTH = "look-behind requires fixed-width pattern"


class RegexError(ValueError):
    """A pattern that cannot be translated or compiled; the message names the pattern and the reason."""


# --- the tree ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Dollar:
    """A `$` outside a class: `\\Z`, or `$` where multi-line mode is in force."""


@dataclass(frozen=True, slots=True)
class _Flags:
    """An inline flag group `(?flags)`: `flags` is the text between `(?` and `)`, e.g. `i` or `-i`."""

    flags: str


@dataclass(slots=True)
class _Group:
    """A group: its opener as Python writes it (`(`, `(?:`, `(?<!`, ...; "" for the whole pattern),
    its alternatives (lists of items), and whether its `)` was found."""

    opener: str
    alternatives: list[list[_Item]] = field(default_factory=lambda: [[]])
    closed: bool = False


_Item = str | _Dollar | _Flags | _Group


def _multiline(flags: str, current: bool) -> bool:
    """Multi-line mode after a flag setting such as `im`, `-m` or `i-m`."""
    on, _, off = flags.partition("-")
    return True if "m" in on else False if "m" in off else current


# --- the tokenizer ----------------------------------------------------------------------------------


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The escape starting at pattern[i] (a backslash) -> (Python text, index after it)."""
    if i + 1 >= len(pattern):
        return "\\", i + 1  # a lone trailing backslash: `re` refuses it
    char = pattern[i + 1]
    if char == "Q":
        end = pattern.find("\\E", i + 2)
        end = len(pattern) if end < 0 else end
        return re.escape(pattern[i + 2 : end]), end + 2
    if char == "x" and (brace := _HEX_BRACE.match(pattern, i)):
        code = int(brace.group(1), 16)
        if code > 0xFF:
            raise RegexError(
                f"bad regex {pattern!r}: \\x{{{brace.group(1)}}} is above 0xff (patterns match bytes)"
            )
        return f"\\x{code:02x}", brace.end()
    table = _CLASS_ESCAPES if in_class else _ESCAPES
    return table.get(char, pattern[i : i + 2]), i + 2


def _class(pattern: str, i: int) -> tuple[str, int]:
    """The character class starting at pattern[i] (`[`) -> (Python text, index after it)."""
    out = ["["]
    i += 1
    if pattern.startswith("^", i):
        out.append("^")
        i += 1
    if pattern.startswith("]", i):  # a `]` right at the start is a literal, as in PCRE
        out.append("\\]")
        i += 1
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            text, i = _escape(pattern, i, in_class=True)
            out.append(text)
        elif char == "]":
            out.append("]")
            return "".join(out), i + 1
        elif char == "[":
            close = pattern.find(":]", i + 2) if pattern.startswith("[:", i) else -1
            body = _POSIX_CLASSES.get(pattern[i + 2 : close]) if close > 0 else None
            out.append("\\[" if body is None else body)
            i = i + 1 if body is None else close + 2
        else:
            out.append(char)
            i += 1
    return "".join(out), i  # unterminated: `re` refuses it


def _opener(pattern: str, i: int) -> tuple[str | _Flags, int]:
    """The group opener at pattern[i] (`(`) as Python writes it, or an inline flag group."""
    if not pattern.startswith("(?", i):
        return "(", i + 1
    if m := _INLINE_FLAGS.match(pattern, i):
        return _Flags(m.group(1)), m.end()
    if m := _NAMED_GROUP.match(pattern, i):
        return f"(?P<{m.group(1) or m.group(2)}>", m.end()
    if m := _SCOPED_FLAGS.match(pattern, i):
        return m.group(0), m.end()
    for opener in _PLAIN_OPENERS:
        if pattern.startswith(opener, i):
            return opener, i + len(opener)
    return "(?", i + 2  # anything else is handed to `re` as written


def parse(pattern: str) -> _Group:
    """Read a PCRE pattern once into a tree of groups and alternatives (raises RegexError)."""
    root = _Group("")
    stack = [root]
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        group = stack[-1]
        items = group.alternatives[-1]
        if char == "\\":
            text, i = _escape(pattern, i, in_class=False)
            items.append(text)
        elif char == "[":
            text, i = _class(pattern, i)
            items.append(text)
        elif pattern.startswith("(?#", i):  # a comment, kept as written
            end = pattern.find(")", i)
            end = n if end < 0 else end + 1
            items.append(pattern[i:end])
            i = end
        elif char == "(":
            opened, i = _opener(pattern, i)
            if isinstance(opened, _Flags):
                items.append(opened)
            else:
                child = _Group(opened)
                items.append(child)
                stack.append(child)
        elif char == ")" and len(stack) > 1:
            group.closed = True
            stack.pop()
            i += 1
        elif char == "|":
            group.alternatives.append([])
            i += 1
        else:
            items.append(_Dollar() if char == "$" else char)
            i += 1
    return root


# --- writing Python -------------------------------------------------------------------------------


def _write(group: _Group, multiline: bool, split: bool, top: bool = False) -> str:
    """A group as Python; `split`: give each alternative of a look-behind a look-behind of its own."""
    opener = group.opener
    if scoped := _SCOPED_FLAGS.fullmatch(opener):
        multiline = _multiline(scoped.group(1), multiline)
    alternatives = _write_alternatives(group.alternatives, multiline, split, top)
    if split and len(alternatives) > 1 and opener == "(?<!":
        return "".join(f"(?<!{a})" for a in alternatives)
    if split and len(alternatives) > 1 and opener == "(?<=":
        return "(?:" + "|".join(f"(?<={a})" for a in alternatives) + ")"
    return opener + "|".join(alternatives) + (")" if group.closed else "")


def _write_alternatives(
    alternatives: list[list[_Item]], multiline: bool, split: bool, top: bool
) -> list[str]:
    """Each alternative as Python; a flag set in one is in force in the later ones (as a scope)."""
    out: list[str] = []
    carried: list[str] = []  # flag settings made by earlier alternatives, in order
    for n, items in enumerate(alternatives):
        mode = multiline
        for flags in carried:
            mode = _multiline(flags, mode)
        text, made = _write_items(items, mode, split, at_start=top and n == 0)
        for flags in reversed(carried):
            text = f"(?{flags}:{text})" if text else ""
        out.append(text)
        carried.extend(made)
    return out


def _write_items(
    items: list[_Item], multiline: bool, split: bool, *, at_start: bool
) -> tuple[str, list[str]]:
    """One alternative as Python, and the flag settings made in it. Flags at the very start of the
    pattern stay global; anywhere else they scope the rest of the alternative."""
    parts: list[str] = []
    for k, item in enumerate(items):
        if isinstance(item, _Flags):
            if at_start and k == 0:
                parts.append(f"(?{item.flags})")
                continue
            rest, made = _write_items(
                items[k + 1 :], _multiline(item.flags, multiline), split, at_start=False
            )
            if rest:
                parts.append(f"(?{item.flags}:{rest})")
            return "".join(parts), [item.flags, *made]
        if isinstance(item, _Group):
            parts.append(_write(item, multiline, split))
        elif isinstance(item, _Dollar):
            parts.append("$" if multiline else "\\Z")
        else:
            parts.append(item)
    return "".join(parts), []


def _compile(translated: str, flags: int = 0) -> re.Pattern[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" and the like
        return re.compile(translated, FLAGS | flags)


def pcre_to_python(pattern: str) -> str:
    """Translate a PCRE pattern so that `re` (with FLAGS) gives it the same meaning (see the module
    docstring). Raises RegexError for what PCRE itself refuses without UTF mode (`\\x{100}`)."""
    tree = parse(pattern)
    first = tree.alternatives[0][:1]
    multiline = bool(first) and isinstance(first[0], _Flags) and _multiline(first[0].flags, False)
    translated = _write(tree, multiline, split=False, top=True)
    try:
        _compile(translated)
    except re.error as exc:
        if _LOOKBEHIND_WIDTH in str(exc):
            translated = _write(tree, multiline, split=True, top=True)
    return translated


def compile_pcre(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Translate and compile (FLAGS and `flags`); RegexError names the pattern and `re`'s reason."""
    translated = pcre_to_python(pattern)
    try:
        return _compile(translated, flags)
    except re.error as exc:
        shown = "" if translated == pattern else f" (as {translated!r})"
        raise RegexError(f"bad regex {pattern!r}{shown}: {exc}") from None
