"""Operators: factories that validate an argument and return a pure predicate, in one registry.

A factory gets the argument text and an OperatorContext and returns a Predicate:
`predicate(value, expand) -> None | captures` where captures is a tuple whose first item is the
matched text. A bad argument raises OperatorError with the reason; the loader adds file and rule id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .rules import Captures, MacroExpander, Predicate


class OperatorError(ValueError):
    """An operator argument that cannot be used (bad regex, missing phrase file, ...)."""


@dataclass(frozen=True)
class OperatorContext:
    rules_dir: Path  # the folder of the rule file; phrase files are looked up under <it>/data/ too


OperatorFactory = Callable[[str, OperatorContext], Predicate]


def rx(argument: str, context: OperatorContext) -> Predicate:
    try:
        pattern = re.compile(argument, re.DOTALL)
    except re.error as exc:
        raise OperatorError(f"bad regex {argument!r}: {exc}") from None

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        m = pattern.search(value)
        if m is None:
            return None
        return (m.group(0), *(g or "" for g in m.groups()))

    return predicate


def contains(argument: str, context: OperatorContext) -> Predicate:
    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        needle = expand(argument)
        return (needle,) if needle in value else None

    return predicate


OPERATORS: dict[str, OperatorFactory] = {
    "rx": rx,
    "contains": contains,
}


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def eq(argument: str, context: OperatorContext) -> Predicate:
    if "%{" not in argument and _int(argument) is None:
        raise OperatorError(f"eq needs an integer, not {argument!r}")

    def predicate(value: str, expand: MacroExpander) -> Captures | None:
        left, right = _int(value) or 0, _int(expand(argument)) or 0
        return (value,) if left == right else None

    return predicate


OPERATORS["eq"] = eq
