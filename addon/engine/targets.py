"""Target text -> Target: the one parser of `[!|&]COLLECTION[:key|:/regex/]`, whoever loads the rule."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable

from .pcre import RegexError, compile_pcre
from .rules import Target
from .variables import COLLECTIONS

_TARGET = re.compile(r"^(?P<flag>[!&]?)(?P<collection>[A-Z_]+)(?::(?P<key>.+))?$")


class TargetError(ValueError):
    """A target that cannot be used; the message says why (and the likely collection meant)."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` naming the closest known name, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_target(text: str, *, also: Collection[str] = ()) -> tuple[bool, Target]:
    """`!REQUEST_COOKIES:/^_ga/` -> (excluded=True, Target). `also`: collections the caller supplies
    itself besides the engine's. Raises TargetError with the reason."""
    m = _TARGET.match(text.strip())
    if m is None:
        raise TargetError(f"bad target {text!r}: expected [!|&]COLLECTION[:key|:/regex/]")
    return target_of(m["flag"] + m["collection"], m["key"], also=also)


def target_of(name: str, key: str | None, *, also: Collection[str] = ()) -> tuple[bool, Target]:
    """A target from its parts: `name` (`ARGS`, `!ARGS`, `&ARGS`; the collection's case does not
    matter) and `key` (None, a member name, or `/regex/`: PCRE, case-insensitive). XML keys are XPath."""
    flag = name[:1] if name[:1] in ("!", "&") else ""
    collection = name[len(flag) :].upper()
    if collection not in COLLECTIONS and collection not in also:
        raise TargetError(f"unknown collection {collection!r}{did_you_mean(collection, COLLECTIONS)}")
    key_regex = key_pattern = None
    if key is not None and len(key) >= 2 and key[0] == key[-1] == "/" and collection != "XML":
        try:
            key_regex = compile_pcre(key[1:-1], re.IGNORECASE)
        except RegexError as exc:
            raise TargetError(f"bad key regex {key!r}: {exc}") from None
        key, key_pattern = None, key[1:-1]
    return flag == "!", Target(collection, key or None, key_regex, flag == "&", key_pattern)
