"""Rule, Target, Phase and Severity value types: the parsed, compiled form of every rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from .pcre import RegexError, compile_pcre


class Phase(IntEnum):
    REQUEST_HEADERS = 1
    REQUEST_BODY = 2
    RESPONSE_HEADERS = 3
    RESPONSE_BODY = 4


REQUEST_PHASES = (Phase.REQUEST_HEADERS, Phase.REQUEST_BODY)
RESPONSE_PHASES = (Phase.RESPONSE_HEADERS, Phase.RESPONSE_BODY)

# The severities of ModSecurity, by number 0-7, and what a match of each is worth in anomaly points.
SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
SEVERITY_SCORES: dict[str, int] = {
    "emergency": 5,
    "alert": 5,
    "critical": 5,
    "error": 4,
    "warning": 3,
    "notice": 2,
    "info": 0,
    "debug": 0,
}


def severity_name(text: str) -> str:
    """`2` or `CRITICAL` -> `critical`: ModSecurity takes a severity's number or its name."""
    text = text.strip()
    if text.isdigit() and int(text) < len(SEVERITIES):
        return SEVERITIES[int(text)]
    return text.lower()


# A predicate gets a transformed value and the macro environment of the transaction and answers
# None (no match) or the captures: (whole match, group 1, ...) — at least one string.
Captures = tuple[str, ...]
MacroExpander = Callable[[str], str]
Predicate = Callable[[str, MacroExpander], Captures | None]
Transformation = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Target:
    """One variable reference: `ARGS`, `REQUEST_HEADERS:User-Agent`, `ARGS:/^id_/`, `&ARGS`."""

    collection: str
    key: str | None = None
    key_regex: re.Pattern[str] | None = None
    count: bool = False
    key_pattern: str | None = field(default=None, compare=False)  # the key regex as written (PCRE)

    def selects(self, name: str) -> bool:
        """Does this (key-limited) target select the member `name` of its collection?"""
        if self.key_regex is not None:
            return self.key_regex.search(name) is not None
        if self.key is not None:
            return name.lower() == self.key.lower()
        return True

    def __str__(self) -> str:
        text = self.collection
        if self.key_regex is not None:
            text += f":/{self.key_pattern if self.key_pattern is not None else self.key_regex.pattern}/"
        elif self.key is not None:
            text += f":{self.key}"
        return ("&" if self.count else "") + text


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    argument: str
    negated: bool
    predicate: Predicate

    def __str__(self) -> str:
        return f"{'!' if self.negated else ''}@{self.name} {self.argument}"


@dataclass(frozen=True, slots=True)
class Action:
    """A `setvar` run when a rule (or chain link) matches: `name=value`, `name=+n`, `name=-n`, `!name`.
    (`capture` is a flag of the link; `ctl:` actions are Ctl.)"""

    kind: str
    argument: str


# The ctl settings the engine applies (SecLang names, lower-case).
CTL_SETTINGS = frozenset(
    {
        "ruleremovebyid",
        "ruleremovebytag",
        "ruleremovetargetbyid",
        "ruleremovetargetbytag",
        "forcerequestbodyvariable",
        "requestbodyprocessor",
        "ruleengine",
    }
)
IdRanges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Ctl:
    """A `ctl:` action, parsed when its rule is loaded: the setting it changes for this transaction.

    `setting` is one of CTL_SETTINGS; `value` the value as written. What the value says is parsed here
    once: `ids` (ruleRemoveById: ids and ranges; ruleRemoveTargetById: the rule ids, a range allowed),
    `target` (ruleRemoveTargetBy*), `tag` (ruleRemoveTargetByTag), `pattern` (ruleRemoveByTag, PCRE; a
    tag that is no regex is taken literally), `on` (ruleEngine: off? forceRequestBodyVariable: on?) and
    `processor` (requestBodyProcessor). A value holding a %{macro} is parsed again, expanded, each time
    the rule matches (`dynamic`)."""

    setting: str
    value: str
    ids: IdRanges = ()
    target: Target | None = None
    tag: str = ""
    pattern: re.Pattern[str] | None = None
    on: bool = False
    processor: str = ""
    dynamic: bool = False

    @classmethod
    def parse(cls, argument: str) -> Ctl:
        """`ruleRemoveTargetById=942100;ARGS:pwd` -> Ctl. Raises ValueError for a setting not in CTL_SETTINGS."""
        name, _, value = argument.partition("=")
        setting, value = name.strip().lower(), value.strip()
        if setting not in CTL_SETTINGS:
            raise ValueError(f"ctl:{name.strip()} is not supported")
        if "%{" in value:
            return cls(setting, value, dynamic=True)
        return cls.of(setting, value)

    @classmethod
    def of(cls, setting: str, value: str) -> Ctl:
        """The Ctl for a known setting and a (macro-free) value."""
        if setting == "ruleremovebyid":
            return cls(setting, value, ids=id_ranges(value.split())[0])  # parts that are no id: ignored
        if setting in ("ruleremovetargetbyid", "ruleremovetargetbytag"):
            selector, _, text = value.partition(";")
            collection, _, key = text.strip().partition(":")
            target = Target(collection.strip().upper(), key.strip() or None)
            if setting == "ruleremovetargetbytag":
                return cls(setting, value, target=target, tag=selector.strip())
            return cls(setting, value, ids=id_ranges([selector.strip()])[0], target=target)
        if setting == "ruleremovebytag":
            try:
                pattern = compile_pcre(value)
            except RegexError:
                pattern = re.compile(re.escape(value))
            return cls(setting, value, pattern=pattern)
        if setting == "ruleengine":
            return cls(setting, value, on=value.lower() == "off")
        if setting == "forcerequestbodyvariable":
            return cls(setting, value, on=value.lower() in ("on", "1", "true"))
        return cls(setting, value, processor=value.upper())  # requestbodyprocessor


def id_ranges(parts: Iterable[str]) -> tuple[IdRanges, tuple[str, ...]]:
    """Rule ids and id ranges: `["942100", "942200-942299", "x"]` -> (((942100, 942100), (942200, 942299)),
    ("x",)): the ranges, and the parts that are neither."""
    ranges: list[tuple[int, int]] = []
    bad: list[str] = []
    for part in parts:
        low, dash, high = part.partition("-")
        low, high = low.strip(), high.strip()
        if dash and low.isdigit() and high.isdigit():
            ranges.append((int(low), int(high)))
        elif not dash and low.isdigit():
            ranges.append((int(low), int(low)))
        else:
            bad.append(part)
    return tuple(ranges), tuple(bad)


# An example is a value placed into the rule's example target, or a request given as a mapping
# (method, uri, headers, body, ...), frozen as a tuple of (key, value) items.
Example = str | tuple[tuple[str, object], ...]


@dataclass(frozen=True, slots=True)
class Examples:
    match: tuple[Example, ...] = ()
    no_match: tuple[Example, ...] = ()
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """The matching part of a rule: targets, transformations, operator. Chain links are Links."""

    targets: tuple[Target, ...]
    exclusions: tuple[Target, ...]
    transforms: tuple[str, ...]
    transform_fns: tuple[Transformation, ...]
    operator: Operator
    multi_match: bool = False
    capture: bool = False
    actions: tuple[Action | Ctl, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: an id, a first Link, optional chained Links, and what a match is worth."""

    id: int
    msg: str
    phase: Phase
    head: Link
    chain: tuple[Link, ...] = ()
    severity: str = "critical"
    score: int = 5
    paranoia: int = 1
    category: str = "generic"
    tags: tuple[str, ...] = ()
    examples: Examples = field(default_factory=Examples)
    source: str = ""
    # Flow control and disruption for imported SecLang rules: `pass` (default: detection only,
    # scores), `deny` (asks for blocking regardless of score), `skip_after` jumps to a marker.
    disruptive: str = "pass"
    skip_after: str | None = None
    scoring: bool = True  # False for rules that only set state (SecAction-like, session helpers)

    @property
    def links(self) -> tuple[Link, ...]:
        return (self.head, *self.chain)


@dataclass(frozen=True, slots=True)
class Marker:
    """A named position in a phase (SecMarker); `skip_after` jumps to just after it."""

    name: str
    phase: Phase


@dataclass(frozen=True)
class Ruleset:
    """An ordered, validated collection of rules, split by phase, ready to evaluate."""

    rules: tuple[Rule, ...]
    markers: tuple[Marker, ...] = ()
    # phase -> ordered items (Rule or Marker) as they appeared in the sources
    order: dict[Phase, tuple[Rule | Marker, ...]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    # Rules left out because an optional package is not installed: (rule id, where and why).
    off: tuple[tuple[int, str], ...] = ()

    @classmethod
    def build(
        cls, items: list[Rule | Marker], sources: tuple[str, ...] = (), off: tuple[tuple[int, str], ...] = ()
    ) -> Ruleset:
        order: dict[Phase, list[Rule | Marker]] = {p: [] for p in Phase}
        for item in items:
            order[item.phase].append(item)
        rules = tuple(i for i in items if isinstance(i, Rule))
        markers = tuple(i for i in items if isinstance(i, Marker))
        return cls(rules, markers, {p: tuple(v) for p, v in order.items()}, sources, off)

    def by_id(self) -> dict[int, Rule]:
        return {r.id: r for r in self.rules}

    def __len__(self) -> int:
        return len(self.rules)
