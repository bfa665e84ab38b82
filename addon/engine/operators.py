"""Operators: factories that validate an argument and return a pure predicate, in one registry.

A factory gets the argument text and an OperatorContext and returns a Predicate:
`predicate(value, expand) -> None | captures` where captures is a tuple whose first item is the
matched text. A bad argument raises OperatorError with the reason; the loader adds file and rule id.

Semantics follow ModSecurity 2 (apache2/re_operators.c) because an importer maps OWASP CRS `@`
names onto these:
- Values and arguments are byte text (one char per byte): a rule loader hands over arguments as the
  bytes of its rule file (the YAML loader: a non-ASCII character as its UTF-8 bytes, as ModSecurity
  reads a UTF-8 configuration file; the SecLang reader: the file's bytes).
- `rx` is PCRE as ModSecurity 2 compiles it, translated by pcre.py (the one regex dialect). A pattern
  holding %{..} is expanded per value and compiled as is (ModSecurity 2.9.8+), with a small cache.
- `pm` / `pm_from_file`: case-insensitive (ASCII) phrase search; ModSecurity's |hex| and \\ escape
  syntax is honoured; the capture is the phrase as written, choosing like ModSecurity's Aho-Corasick
  the match that ends first (the longest one ending there).
- Numbers use C atoi: leading spaces, a sign, digits up to the first other char; anything else is 0.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .memo import MAX_TEXT, Memo
from .pcre import RegexError, compile_pcre
from .rules import Captures, MacroExpander, Predicate
from .shell import ShellDetector
from .transformations import lowercase

try:  # optional: ships with logoutguard[fast]
    import ahocorasick_rs
except ImportError:  # pragma: no cover - exercised by forcing the fallback in tests
    ahocorasick_rs = None

try:  # optional: ships with logoutguard[libinjection]
    import libinjection
except ImportError:  # pragma: no cover - depends on the environment
    libinjection = None


class OperatorError(ValueError):
    """An operator argument that cannot be used (bad regex, missing phrase file, ...)."""


@dataclass(frozen=True)
class OperatorContext:
    rules_dir: Path  # the folder of the rule file; phrase files are looked up under <it>/data/ too


OperatorFactory = Callable[[str, OperatorContext], Predicate]

# Operators that exist only when an optional dependency is installed: name -> what to install.
OPTIONAL_OPERATORS: dict[str, str] = {
    "detect_sqli": "logoutguard[libinjection]",
    "detect_xss": "logoutguard[libinjection]",
}

_C_SPACE = " \t\n\v\f\r"
_C_SPACE_RUN = re.compile("[ \t\n\v\f\r]+")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def gated(predicate: Predicate, *regexes: re.Pattern[str]) -> Predicate:
    """Declare for the prefilter (prefilter.py): wherever `predicate` matches, one of `regexes`
    finds a match in the same value. Operators without this declaration are never skipped."""
    predicate.prefilter = regexes  # type: ignore[attr-defined]
    return predicate


# --- regular expressions --------------------------------------------------------------------------


def _rx_captures(m: re.Match[str]) -> Captures:
    """Group 0 and groups 1..9 up to the last one that took part (like PCRE's ovector)."""
    last = 0
    for group in range(1, min(m.re.groups, 9) + 1):
        if m.start(group) >= 0:
            last = group
    return (m.group(0), *((m.group(g) or "") for g in range(1, last + 1)))


def rx(argument: str, context: OperatorContext) -> Predicate:
    if "%{" in argument:
        return _rx_with_macros(argument)
    try:
        pattern = compile_pcre(argument)
    except RegexError as exc:
        raise OperatorError(str(exc)) from None

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        m = pattern.search(value)
        return None if m is None else _rx_captures(m)

    return gated(predicate, pattern)


def _rx_with_macros(argument: str) -> Predicate:
    @functools.lru_cache(maxsize=64)
    def compiled(expanded: str) -> re.Pattern[str] | None:
        try:
            return compile_pcre(expanded)
        except RegexError:
            return None  # ModSecurity: a pattern that does not compile after expansion never matches

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        pattern = compiled(expand(argument))
        m = None if pattern is None else pattern.search(value)
        return None if m is None else _rx_captures(m)

    return predicate


# --- phrase matching ------------------------------------------------------------------------------


def parse_pm_content(text: str) -> str | None:
    """ModSecurity's parse_pm_content: strip enclosing double quotes, decode |hex hex| byte runs and the
    escapes \\: \\; \\\\ \\". None for an unsupported escape or empty content."""
    content = text.lstrip(_C_SPACE)
    if len(content) >= 2 and content[0] == '"' and text[-1] == '"':
        content = content[1:-1]
    if not content:
        return None
    out: list[str] = []
    hex_digits = ""
    in_hex = escaped = converted = False
    for ch in content:
        if ch == "|":
            in_hex = not in_hex
        elif not escaped and ch == "\\":
            escaped = True
        elif in_hex:
            if ch in "0123456789abcdefABCDEF":
                hex_digits += ch
                if len(hex_digits) == 2:
                    out.append(chr(int(hex_digits, 16)))
                    hex_digits = ""
                    converted = True
        elif escaped:
            if ch not in ':;\\"':
                return None
            out.append(ch)
            escaped = False
            converted = True
        else:
            out.append(ch)
    return "".join(out) if converted else content


class PhraseMatcher:
    """Case-insensitive multi-phrase search with ModSecurity's choice of the reported phrase."""

    def __init__(self, phrases: Iterable[str], *, use_automaton: bool = True) -> None:
        self.original: dict[str, str] = {}  # lowercase phrase -> first spelling seen
        for phrase in phrases:
            if phrase:
                self.original.setdefault(phrase.translate(_LOWER), phrase)
        self.lowered = sorted(self.original, key=len, reverse=True)
        self.automaton = None
        if use_automaton and ahocorasick_rs is not None and self.lowered:
            self.automaton = ahocorasick_rs.AhoCorasick(self.lowered)

    def __len__(self) -> int:
        return len(self.lowered)

    def search(self, value: str) -> str | None:
        """The phrase (as written) whose match ends first in value; the longest of those ending there."""
        if not value or not self.lowered:
            return None
        haystack = lowercase(value)
        end = self._first_end(haystack)
        if end is None:
            return None
        for phrase in self.lowered:  # longest first
            if haystack.endswith(phrase, 0, end):
                return self.original[phrase]
        return None  # pragma: no cover - some phrase ends at `end` by construction

    def _first_end(self, haystack: str) -> int | None:
        if self.automaton is not None:
            found = self.automaton.find_matches_as_indexes(haystack)
            return found[0][2] if found else None
        ends = [i + len(p) for p in self.lowered if (i := haystack.find(p)) >= 0]
        return min(ends) if ends else None


def _phrase_predicate(matcher: PhraseMatcher) -> Predicate:
    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        phrase = matcher.search(value)
        return None if phrase is None else (phrase,)

    phrases = (re.compile(re.escape(p), re.IGNORECASE | re.ASCII) for p in matcher.lowered)
    return gated(predicate, *phrases)


def pm(argument: str, context: OperatorContext) -> Predicate:
    parsed = parse_pm_content(argument)
    phrases = _C_SPACE_RUN.split(argument if parsed is None else parsed)
    phrases = [p for p in phrases if p]
    if not phrases:
        raise OperatorError("pm needs at least one phrase (space-separated)")
    return _phrase_predicate(PhraseMatcher(phrases))


def _phrase_file_lines(raw: bytes) -> list[str]:
    """Phrases of a ModSecurity phrase file: one a line, trimmed, blank and # lines skipped."""
    phrases = []
    text = raw.decode("latin-1")
    for line in re.findall(r"[^\n]*\n|[^\n]+$", text):
        parsed = parse_pm_content(line)
        phrase = (line if parsed is None else parsed).strip(_C_SPACE)
        if phrase and not phrase.startswith("#"):
            phrases.append(phrase)
    return phrases


@functools.lru_cache(maxsize=128)
def _read_phrase_file(path: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    return tuple(_phrase_file_lines(path.read_bytes()))


def _file_name(name: str) -> str:
    """A file name given as byte text -> the name the file system knows (its bytes, as os decodes them)."""
    try:
        return os.fsdecode(name.encode("latin-1"))
    except UnicodeEncodeError:  # not byte text: taken as it is
        return name


def find_phrase_file(name: str, rules_dir: Path) -> Path:
    """Resolve a phrase file name (byte text): absolute, or under rules_dir, then rules_dir/data."""
    if name.startswith(("http://", "https://")):
        raise OperatorError(f"remote phrase file {name!r} is not supported; download it next to the rules")
    given = Path(_file_name(name))
    candidates = [given] if given.is_absolute() else [rules_dir / given, rules_dir / "data" / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise OperatorError(f"phrase file {name!r} not found (tried {tried})")


def pm_from_file(argument: str, context: OperatorContext) -> Predicate:
    names = argument.split()
    if not names:
        raise OperatorError("pm_from_file needs one or more phrase file names")
    phrases: list[str] = []
    for name in names:
        path = find_phrase_file(name, context.rules_dir)
        try:
            stat = path.stat()
            phrases.extend(_read_phrase_file(path, stat.st_mtime_ns, stat.st_size))
        except OSError as exc:
            raise OperatorError(f"cannot read phrase file {str(path)!r}: {exc.strerror}") from None
    return _phrase_predicate(PhraseMatcher(phrases))


# --- string comparison ----------------------------------------------------------------------------


def _string_operator(
    test: Callable[[str, str], bool], capture_value: bool = False, needle_in_value: bool = True
) -> OperatorFactory:
    """Factory for `test(value, expanded argument)`; captures the value or the argument.
    `needle_in_value`: the test only passes when the value contains the argument (prefilter)."""

    def factory(argument: str, context: OperatorContext) -> Predicate:
        has_macro = "%{" in argument

        def predicate(value: str, expand: MacroExpander) -> Captures | None:
            needle = expand(argument) if has_macro else argument
            if not test(value, needle):
                return None
            return (value,) if capture_value else (needle,)

        if needle_in_value and argument and not has_macro:
            return gated(predicate, re.compile(re.escape(argument)))
        return predicate

    return factory


_WORD = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def _contains_word(value: str, needle: str) -> bool:
    """ModSecurity containsWord: needle not preceded nor followed by [A-Za-z0-9_]."""
    if not needle:
        return True
    start = value.find(needle)
    while start >= 0:
        end = start + len(needle)
        if (start == 0 or value[start - 1] not in _WORD) and (end == len(value) or value[end] not in _WORD):
            return True
        start = value.find(needle, start + 1)
    return False


contains = _string_operator(lambda value, needle: needle in value)
contains_word = _string_operator(_contains_word)
begins_with = _string_operator(lambda value, needle: value.startswith(needle))
ends_with = _string_operator(lambda value, needle: value.endswith(needle))
streq = _string_operator(lambda value, needle: value == needle, capture_value=True)
# ModSecurity within: the value is a substring of the argument; an empty value always matches
within = _string_operator(
    lambda value, haystack: value in haystack, capture_value=True, needle_in_value=False
)


# --- numbers --------------------------------------------------------------------------------------

_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def atoi(text: str) -> int:
    """C atoi as glibc does it: strtol saturating at the long range, then truncated to a 32-bit int."""
    m = _ATOI.match(text)
    if m is None:
        return 0
    digits = m.group(1)
    if len(digits.lstrip("+-").lstrip("0")) > 20:
        number = -(2**63) if digits.startswith("-") else 2**63 - 1
    else:
        number = max(-(2**63), min(int(digits), 2**63 - 1))
    return ((number + 2**31) % 2**32) - 2**31


def _numeric_operator(name: str, compare: Callable[[int, int], bool]) -> OperatorFactory:
    def factory(argument: str, context: OperatorContext) -> Predicate:
        has_macro = "%{" in argument
        if not has_macro and not _INTEGER.fullmatch(argument):
            raise OperatorError(f"{name} needs an integer or a %{{macro}}, not {argument!r}")
        fixed = atoi(argument)

        def predicate(value: str, expand: MacroExpander) -> Captures | None:
            right = atoi(expand(argument)) if has_macro else fixed
            return (value,) if compare(atoi(value), right) else None

        return predicate

    return factory


eq = _numeric_operator("eq", lambda left, right: left == right)
ge = _numeric_operator("ge", lambda left, right: left >= right)
gt = _numeric_operator("gt", lambda left, right: left > right)
le = _numeric_operator("le", lambda left, right: left <= right)
lt = _numeric_operator("lt", lambda left, right: left < right)


# --- validation -----------------------------------------------------------------------------------

_BAD_URL_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT = re.compile("%")
_NOT_ASCII = re.compile("[^\x00-\x7f]")


def validate_url_encoding(argument: str, context: OperatorContext) -> Predicate:
    """Matches a value with a % not followed by two hex digits (ModSecurity validateUrlEncoding)."""

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        return (value,) if "%" in value and _BAD_URL_ESCAPE.search(value) else None

    return gated(predicate, _PERCENT)


def _utf8_error(value: str) -> bool:
    """ModSecurity's detect_utf8_character over the value: True at the first invalid sequence
    (truncated, bad continuation, overlong, surrogate, lead byte 0xF5+ or a stray byte)."""
    i, n = 0, len(value)
    while i < n:
        c = ord(value[i])
        if c < 0x80:
            i += 1
            continue
        if c < 0xC0 or c >= 0xF5:  # stray continuation byte, or beyond U+10FFFF (or not byte text)
            return True
        size = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
        tail = value[i + 1 : i + size]
        if len(tail) < size - 1 or any(ord(t) & 0xC0 != 0x80 for t in tail):
            return True
        code = c & (0x7F >> size)
        for t in tail:
            code = (code << 6) | (ord(t) & 0x3F)
        if 0xD800 <= code <= 0xDFFF or code < (0x80, 0x800, 0x10000)[size - 2]:
            return True
        i += size
    return False


def validate_utf8_encoding(argument: str, context: OperatorContext) -> Predicate:
    """Matches a value that is not valid UTF-8 by ModSecurity's rules (validateUtf8Encoding)."""

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        if value.isascii():
            return None
        try:
            value.encode("latin-1").decode("utf-8")  # strict UTF-8 is valid for ModSecurity too
            return None
        except UnicodeError:
            return (value,) if _utf8_error(value) else None  # e.g. F4 90.. is valid for ModSecurity

    return gated(predicate, _NOT_ASCII)


_RANGE_ITEM = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")


def parse_byte_ranges(argument: str) -> frozenset[int]:
    """`"9,10,13,32-126"` -> the allowed byte values. Raises OperatorError with the bad part."""
    allowed: set[int] = set()
    for item in argument.split(","):
        if not item.strip():
            continue
        m = _RANGE_ITEM.fullmatch(item)
        if m is None:
            raise OperatorError(f"bad byte range {item.strip()!r} in {argument!r}: expected N or N-M")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        if start > 255 or end > 255:
            raise OperatorError(f"bad byte range {item.strip()!r}: values go from 0 to 255")
        if start > end:
            raise OperatorError(f"bad byte range {item.strip()!r}: start is above end")
        allowed.update(range(start, end + 1))
    if not allowed:
        raise OperatorError("validate_byte_range needs ranges such as '32-126' or '9,10,13,32-126'")
    return frozenset(allowed)


def validate_byte_range(argument: str, context: OperatorContext) -> Predicate:
    """Matches a value holding any byte outside the allowed ranges."""
    allowed = {byte: None for byte in parse_byte_ranges(argument)}

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        return (value,) if value.translate(allowed) else None

    outside = re.compile("[^" + "".join(f"\\x{b:02x}" for b in sorted(allowed)) + "]")
    return gated(predicate, outside)


# --- addresses and constants ----------------------------------------------------------------------


def ip_match(argument: str, context: OperatorContext) -> Predicate:
    """Matches a value that is an IP address inside one of the comma-separated addresses/CIDRs."""
    networks = []
    for item in argument.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise OperatorError(f"bad IP address or network {text!r}: {exc}") from None
    if not networks:
        raise OperatorError("ip_match needs comma-separated IP addresses or CIDR networks")

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        if "%" in value:  # zone ids are no addresses for ModSecurity (inet_pton)
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return None
        return (value,) if any(address in network for network in networks) else None

    return predicate


def unconditional_match(argument: str, context: OperatorContext) -> Predicate:
    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        return (value,)

    return predicate


def no_match(argument: str, context: OperatorContext) -> Predicate:
    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        return None

    return predicate


# --- libinjection ---------------------------------------------------------------------------------


class _RawBytes(str):
    """A str that libinjection-python encodes as its latin-1 bytes, so it sees the original bytes."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return str.encode(self, "latin-1", "replace")


def _sqli(value: str) -> Captures | None:
    """libinjection SQLi detection; the capture is the fingerprint, as in ModSecurity."""
    result = libinjection.is_sql_injection(_RawBytes(value))
    return (str(result["fingerprint"]),) if result["is_sqli"] else None


def _xss(value: str) -> Captures | None:
    """libinjection XSS detection; the capture is the value. Its HTML5 tokenizer reaches a tag, a
    comment or a doctype only through "<", and an attribute value after a listed attribute name only
    through "=" (the value a context starts in follows no name): without either, it finds nothing."""
    if "<" not in value and "=" not in value:
        return None
    return (value,) if libinjection.is_xss(_RawBytes(value))["is_xss"] else None


def _libinjection_operator(check: Callable[[str], Captures | None]) -> OperatorFactory:
    """A factory for a libinjection check; results for short values are kept across transactions
    (libinjection is pure and not cheap)."""
    memo = Memo(8192)

    def factory(argument: str, context: OperatorContext) -> Predicate:
        def predicate(value: str, expand: MacroExpander) -> Captures | None:
            if not value:
                return None
            if len(value) > MAX_TEXT:
                return check(value)
            if value in memo:
                return memo[value]
            return memo.put(value, check(value))

        return predicate

    return factory


detect_sqli = _libinjection_operator(_sqli)
detect_xss = _libinjection_operator(_xss)


# --- shell syntax ---------------------------------------------------------------------------------

_SHELL_POSITION = re.compile(r"[;|&\n\r`]|[$<>]\(")


def detect_shell(argument: str, context: OperatorContext) -> Predicate:
    """A known Unix command run at a command position, across quoting, escapes, expansions and globs
    (shell.py). The argument names command list files (as pm_from_file finds them): one command a
    line, then `bare` when the command is used without arguments, `prefix` when it runs the command
    that follows it (sudo, exec, nohup). `--start` among the names: the start of the value is the
    command position instead (with an obfuscated word or a command-line argument after it). The capture
    is the command."""
    names = argument.split()
    at_start = "--start" in names
    names = [n for n in names if n != "--start"]
    if not names:
        raise OperatorError("detect_shell needs one or more command list file names")
    commands: list[str] = []
    flagged: dict[str, list[str]] = {"bare": [], "prefix": []}
    for name in names:
        path = find_phrase_file(name, context.rules_dir)
        try:
            stat = path.stat()
            lines = _read_phrase_file(path, stat.st_mtime_ns, stat.st_size)
        except OSError as exc:
            raise OperatorError(f"cannot read command list {str(path)!r}: {exc.strerror}") from None
        for line in lines:
            command, *flags = line.split()
            if any(flag not in flagged for flag in flags):
                raise OperatorError(
                    f"command list {str(path)!r}: bad line {line!r} (expected NAME [bare] [prefix])"
                )
            commands.append(command)
            for flag in flags:
                flagged[flag].append(command)
    if not commands:
        raise OperatorError(f"detect_shell: no command names in {argument!r}")
    detector = ShellDetector(commands, flagged["bare"], flagged["prefix"], at_start=at_start)
    memo = Memo(8192)

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        if len(value) > MAX_TEXT:
            found = detector.search(value)
        elif value in memo:
            found = memo[value]
        else:
            found = memo.put(value, detector.search(value))
        return None if found is None else (found,)

    return predicate if at_start else gated(predicate, _SHELL_POSITION)


OPERATORS: dict[str, OperatorFactory] = {
    "rx": rx,
    "pm": pm,
    "pm_from_file": pm_from_file,
    "contains": contains,
    "contains_word": contains_word,
    "streq": streq,
    "begins_with": begins_with,
    "ends_with": ends_with,
    "within": within,
    "eq": eq,
    "ge": ge,
    "gt": gt,
    "le": le,
    "lt": lt,
    "validate_url_encoding": validate_url_encoding,
    "validate_utf8_encoding": validate_utf8_encoding,
    "validate_byte_range": validate_byte_range,
    "ip_match": ip_match,
    "unconditional_match": unconditional_match,
    "no_match": no_match,
    "detect_shell": detect_shell,
}
if libinjection is not None:
    OPERATORS["detect_sqli"] = detect_sqli
    OPERATORS["detect_xss"] = detect_xss

__all__ = ["OPERATORS", "OPTIONAL_OPERATORS", "OperatorContext", "OperatorError", "Predicate", "atoi"]
