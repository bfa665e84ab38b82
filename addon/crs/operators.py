"""The operators CRS needs, with ModSecurity 2's semantics, for names the engine registry lacks.

The importer looks an operator up in `logoutguard.engine.operators.OPERATORS` first and falls back
to `FALLBACK` here; `@rx` always uses `rx` below (PCRE translation, latin-1 bytes, macro patterns).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

from ..engine.operators import OperatorContext, OperatorError
from ..engine.rules import Captures, MacroExpander, Predicate
from .regex import RegexError, compile_pcre

Factory = Callable[[str, OperatorContext], Predicate]
_INT_PREFIX = re.compile(r"\s*([+-]?\d+)")
_PATTERN_CACHE_LIMIT = 256


def atoi(text: str) -> int:
    """C atoi: leading spaces, optional sign, digits; anything else gives 0."""
    m = _INT_PREFIX.match(text)
    return int(m.group(1)) if m else 0


def rx(argument: str, context: OperatorContext) -> Predicate:
    """@rx: PCRE translated by pcre_to_python; a pattern holding a macro is compiled per value (cached)."""
    if "%{" in argument:
        cache: dict[str, re.Pattern[str] | None] = {}

        def dynamic(value: str, expand: MacroExpander) -> Captures | None:
            text = expand(argument)
            pattern = cache.get(text)
            if pattern is None and text not in cache:
                try:
                    pattern = compile_pcre(text)
                except RegexError:
                    pattern = None
                if len(cache) < _PATTERN_CACHE_LIMIT:
                    cache[text] = pattern
            return _search(pattern, value) if pattern is not None else None

        return dynamic
    try:
        pattern = compile_pcre(argument)
    except RegexError as exc:
        raise OperatorError(str(exc)) from None
    search = pattern.search

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        m = search(value)
        if m is None:
            return None
        return _captures(m)

    return predicate


def _search(pattern: re.Pattern[str], value: str) -> Captures | None:
    m = pattern.search(value)
    return None if m is None else _captures(m)


def _captures(m: re.Match[str]) -> Captures:
    """Whole match and groups up to the last one that took part (PCRE's return count)."""
    groups = m.groups()
    last = len(groups)
    while last and groups[last - 1] is None:
        last -= 1
    return (m.group(0), *(g or "" for g in groups[:last]))


def _compare(test: Callable[[int, int], bool]) -> Factory:
    def factory(argument: str, context: OperatorContext) -> Predicate:
        def predicate(value: str, expand: MacroExpander) -> Captures | None:
            return (value,) if test(atoi(value), atoi(expand(argument))) else None

        return predicate

    return factory


def _strings(test: Callable[[str, str], bool]) -> Factory:
    def factory(argument: str, context: OperatorContext) -> Predicate:
        def predicate(value: str, expand: MacroExpander) -> Captures | None:
            return (value,) if test(value, expand(argument)) else None

        return predicate

    return factory


def _phrases_predicate(phrases: list[str]) -> Predicate:
    """Case-insensitive multi-substring search (ModSecurity's Aho-Corasick, first phrase found)."""
    lowered = sorted({p.lower() for p in phrases if p}, key=len)
    if not lowered:
        return lambda value, expand: None
    pattern = re.compile("|".join(re.escape(p) for p in reversed(lowered)), re.DOTALL)

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        m = pattern.search(value.lower())
        return None if m is None else (m.group(0),)

    return predicate


def pm(argument: str, context: OperatorContext) -> Predicate:
    return _phrases_predicate(argument.split())


def read_phrase_file(path: Path) -> list[str]:
    """One phrase per line; `#` lines and blank lines ignored; line ends and leading space dropped."""
    phrases = []
    for line in path.read_bytes().decode("latin-1").splitlines():
        line = line.lstrip()
        if line and not line.startswith("#"):
            phrases.append(line.rstrip("\r\n"))
    return phrases


def pm_from_file(argument: str, context: OperatorContext) -> Predicate:
    phrases: list[str] = []
    for name in argument.split():
        path = Path(name) if Path(name).is_absolute() else context.rules_dir / name
        try:
            phrases.extend(read_phrase_file(path))
        except OSError as exc:
            raise OperatorError(f"cannot read phrase file {path}: {exc.strerror}") from None
    return _phrases_predicate(phrases)


def _byte_ranges(argument: str) -> frozenset[int]:
    allowed: set[int] = set()
    for piece in argument.replace(" ", "").split(","):
        if not piece:
            continue
        low, dash, high = piece.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise OperatorError(f"bad byte range {piece!r}") from None
        if not (0 <= first <= last <= 255):
            raise OperatorError(f"bad byte range {piece!r}")
        allowed.update(range(first, last + 1))
    return frozenset(allowed)


def validate_byte_range(argument: str, context: OperatorContext) -> Predicate:
    allowed = _byte_ranges(argument)
    outside = re.compile("[" + "".join(f"\\x{b:02x}" for b in range(256) if b not in allowed) + "]")

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        m = outside.search(value)
        return None if m is None else (m.group(0),)

    return predicate


_HEX = frozenset("0123456789abcdefABCDEF")


def validate_url_encoding(argument: str, context: OperatorContext) -> Predicate:
    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        i = value.find("%")
        while i >= 0:
            if i + 2 >= len(value) or value[i + 1] not in _HEX or value[i + 2] not in _HEX:
                return (value,)
            i = value.find("%", i + 3)
        return None

    return predicate


def validate_utf8_encoding(argument: str, context: OperatorContext) -> Predicate:
    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        try:
            value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return (value,)
        except UnicodeEncodeError:
            return None
        return None

    return predicate


def ip_match(argument: str, context: OperatorContext) -> Predicate:
    try:
        networks = [ipaddress.ip_network(p.strip(), strict=False) for p in argument.split(",") if p.strip()]
    except ValueError as exc:
        raise OperatorError(f"bad address list {argument!r}: {exc}") from None

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return None
        return (value,) if any(address in n for n in networks if n.version == address.version) else None

    return predicate


def unconditional_match(argument: str, context: OperatorContext) -> Predicate:
    return lambda value, expand: (value,)


def no_match(argument: str, context: OperatorContext) -> Predicate:
    return lambda value, expand: None


def _libinjection(check: str) -> Factory | None:
    try:
        import libinjection  # type: ignore[import-not-found]
    except ImportError:
        return None
    if check == "sqli":

        def sqli(argument: str, context: OperatorContext) -> Predicate:
            def predicate(value: str, expand: MacroExpander) -> Captures | None:
                result = libinjection.is_sql_injection(value)
                return (result["fingerprint"],) if result["is_sqli"] else None

            return predicate

        return sqli

    def xss(argument: str, context: OperatorContext) -> Predicate:
        def predicate(value: str, expand: MacroExpander) -> Captures | None:
            return (value,) if libinjection.is_xss(value)["is_xss"] else None

        return predicate

    return xss


def _within(value: str, param: str) -> bool:
    return value == "" or value in param


FALLBACK: dict[str, Factory] = {
    "rx": rx,
    "eq": _compare(lambda a, b: a == b),
    "ge": _compare(lambda a, b: a >= b),
    "gt": _compare(lambda a, b: a > b),
    "le": _compare(lambda a, b: a <= b),
    "lt": _compare(lambda a, b: a < b),
    "streq": _strings(lambda v, p: v == p),
    "within": _strings(_within),
    "contains": _strings(lambda v, p: p in v),
    "begins_with": _strings(lambda v, p: v.startswith(p)),
    "ends_with": _strings(lambda v, p: v.endswith(p)),
    "contains_word": _strings(
        lambda v, p: re.search(r"(?<![A-Za-z0-9_])" + re.escape(p) + r"(?![A-Za-z0-9_])", v) is not None
    ),
    "pm": pm,
    "pm_from_file": pm_from_file,
    "validate_byte_range": validate_byte_range,
    "validate_url_encoding": validate_url_encoding,
    "validate_utf8_encoding": validate_utf8_encoding,
    "ip_match": ip_match,
    "unconditional_match": unconditional_match,
    "no_match": no_match,
}
for _name, _check in (("detect_sqli", "sqli"), ("detect_xss", "xss")):
    _factory = _libinjection(_check)
    if _factory is not None:
        FALLBACK[_name] = _factory
