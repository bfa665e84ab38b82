"""Regex lint: regexes that can backtrack catastrophically, by a static check and a timed probe.

Python's `re` backtracks. Three shapes make it slow on long inputs:
- nested quantifiers, `(a+)+`, `(\\w+\\s?)*`: an outer repeat whose body can split the same text in
  several ways (exponential);
- overlapping alternatives under a repeat, `(\\w|\\d)+`, `(a|aa)*` (exponential);
- quantifiers that compete for the same characters, `\\w+\\s*=`, `.*a.*b`, or a pattern that
  starts with one (`search` retries it at every position): polynomial, which at the 128 KiB that
  bodies are inspected up to is just as fatal.
The static check reports the first two from the parsed pattern; the third is only suspected
statically and confirmed by the probe: crafted inputs (the text leading to the quantifier, then one
character the competing quantifiers share, repeated, then a character that makes the rest fail) are
timed at two lengths in a child process. Time growing clearly faster than the length (over
GROWTH_LIMIT for four times the length, on a search slow enough to judge) or a search still running
after PROBE_TIMEOUT_S flags the regex. Growth rather than a fixed time keeps the verdict the same on
fast and slow machines.
"""

from __future__ import annotations

import multiprocessing
import re
import re._constants as sre
import re._parser as sre_parse
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .loader import Problem
from .prefilter import byte_set
from .rules import Rule, Ruleset

PROBE_LENGTH = 8192  # characters pumped into the long probe input; the short one has a quarter
GROWTH_LIMIT = 8.0  # linear search time grows 4x for 4x the length, quadratic 16x
SLOW_S = 0.01  # searches of the long input faster than this are not judged
CLEARLY_SLOW_S = 0.25  # a short input taking this long flags the regex at once
PROBE_TIMEOUT_S = 1.0  # the child process gets killed after this (per regex)
BIG_REPEAT = 16  # an upper bound above this counts as unbounded
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_CHAR_OPS = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN)
_FAILERS = "\x00!~\n"  # candidates for the character that makes the rest of a pattern fail

Node = tuple[Any, Any]


@dataclass(frozen=True)
class Finding:
    kind: str  # nested-quantifier | overlapping-alternation | slow-probe
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


# --- facts about parsed patterns ---------------------------------------------------------------------


def _unbounded(high: Any) -> bool:
    return high is sre.MAXREPEAT or high > BIG_REPEAT


def chars(items: Sequence[Node], flags: int) -> frozenset[int]:
    """Every byte the items may consume."""
    return _bytes(items, flags, leading=False)


def _bytes(items: Sequence[Node], flags: int, leading: bool) -> frozenset[int]:
    """The bytes the items may consume, or (`leading`) those that can start a match of them."""
    out: set[int] = set()
    for index, (op, av) in enumerate(items):
        if op in _CHAR_OPS:
            out |= byte_set((op, av), flags)
        elif op is sre.SUBPATTERN:
            out |= _bytes(av[3], (flags | av[1]) & ~av[2], leading)
        elif op is sre.ATOMIC_GROUP:
            out |= _bytes(av, flags, leading)
        elif op is sre.BRANCH:
            for branch in av[1]:
                out |= _bytes(branch, flags, leading)
        elif op in _REPEATS:
            out |= _bytes(av[2], flags, leading)
        elif op is sre.GROUPREF:
            if leading:
                return frozenset(range(256))
            out |= set(range(256))
        elif op is sre.GROUPREF_EXISTS and not leading:
            out |= _bytes(av[1], flags, leading) | _bytes(av[2] or [], flags, leading)
        if leading and not nullable(items[index : index + 1]):
            break
    return frozenset(out)


def nullable(items: Iterable[Node]) -> bool:
    """Can the items match the empty string?"""
    for op, av in items:
        if op in _CHAR_OPS:
            return False
        if op is sre.SUBPATTERN and not nullable(av[3]):
            return False
        if op is sre.ATOMIC_GROUP and not nullable(av):
            return False
        if op is sre.BRANCH and not any(nullable(b) for b in av[1]):
            return False
        if op in _REPEATS and av[0] > 0 and not nullable(av[2]):
            return False
    return True


def first(items: Sequence[Node], flags: int) -> frozenset[int]:
    """Bytes that can start a match of the items."""
    return _bytes(items, flags, leading=True)


def _single_class(items: Sequence[Node]) -> bool:
    """One character class, or a repeat of one: it matches any string over its characters."""
    if len(items) != 1:
        return False
    op, av = items[0]
    if op in _CHAR_OPS:
        return True
    if op is sre.SUBPATTERN:
        return _single_class(av[3])
    return op in _REPEATS and _single_class(av[2])


def _show(byte: int) -> str:
    return chr(byte) if 0x21 <= byte < 0x7F and chr(byte) not in "-]\\" else f"\\x{byte:02x}"


def describe(members: frozenset[int]) -> str:
    """A short class for messages: [0-9a-z] style, printable where possible."""
    if len(members) == 256:
        return "any byte"
    parts, ordered = [], sorted(members)
    start = prev = ordered[0] if ordered else 0
    for b in [*ordered[1:], -2]:
        if b == prev + 1:
            prev = b
            continue
        parts.append(_show(start) if start == prev else f"{_show(start)}-{_show(prev)}")
        start = prev = b
    text = "".join(parts)
    return f"[{text[:40]}{'...' if len(text) > 40 else ''}]"


# --- the static check -------------------------------------------------------------------------------


def _repeats_in(items: Iterable[Node]) -> Iterator[Node]:
    """Repeat nodes in the items, through groups and alternatives but not into other repeats."""
    for op, av in items:
        if op in _REPEATS:
            yield (op, av)
        elif op is sre.SUBPATTERN:
            yield from _repeats_in(av[3])
        elif op is sre.BRANCH:
            for branch in av[1]:
                yield from _repeats_in(branch)


def _flatten(items: Sequence[Node]) -> list[Node]:
    """A sequence with plain (?:...) groups opened up."""
    out: list[Node] = []
    for op, av in items:
        if op is sre.SUBPATTERN and not av[1] and not av[2]:
            out.extend(_flatten(av[3]))
        else:
            out.append((op, av))
    return out


def _nested(body: Sequence[Node], flags: int) -> str | None:
    """The outer repeat's body can split one text in several ways through an inner repeat."""
    items = _flatten(body)
    alternatives = (
        [_flatten(b) for b in items[0][1][1]] if len(items) == 1 and items[0][0] is sre.BRANCH else [items]
    )
    for sequence in alternatives:
        tail = len(sequence)
        while tail > 0 and nullable(sequence[tail - 1 : tail]):
            tail -= 1
        if 0 < tail < len(sequence) and chars(sequence[tail:], flags) & first(sequence, flags):
            shared = chars(sequence[tail:], flags) & first(sequence, flags)
            return f"a repeated group ends in an optional part over {describe(shared)} that can also start the next round"
        for index, (op, av) in enumerate(sequence):
            inner = [(op, av)] if op in _REPEATS else list(_repeats_in([(op, av)]))
            for inner_op, inner_av in inner:
                if inner_op is sre.POSSESSIVE_REPEAT or not _unbounded(inner_av[1]):
                    continue
                shared = chars(inner_av[2], flags)
                rest = sequence[:index] + sequence[index + 1 :]
                if all(nullable([r]) or chars([r], flags) & shared for r in rest):
                    return f"a repeated group holds a repeat over {describe(shared)} that the group can also split"
    return None


def _overlapping(body: Sequence[Node], flags: int) -> str | None:
    items = _flatten(body)
    if len(items) != 1 or items[0][0] is not sre.BRANCH:
        return None
    branches = [_flatten(b) for b in items[0][1][1]]
    for i, a in enumerate(branches):
        if not _single_class(a):
            continue
        own = chars(a, flags)
        for j, b in enumerate(branches):
            if i != j and not nullable(b) and chars(b, flags) <= own:
                return f"alternatives under a repeat both match text over {describe(own)}"
    return None


def static_check(regex: re.Pattern[str]) -> list[Finding]:
    """Exponential shapes: nested quantifiers and overlapping alternatives under a repeat."""
    try:
        parsed = sre_parse.parse(regex.pattern, regex.flags)
    except (re.error, RecursionError):
        return []
    findings: list[Finding] = []

    def walk(items: Iterable[Node], flags: int) -> None:
        for op, av in items:
            if op in _REPEATS:
                if op is not sre.POSSESSIVE_REPEAT and _unbounded(av[1]):
                    nested = _nested(av[2], flags)
                    if nested:
                        findings.append(Finding("nested-quantifier", nested))
                    overlap = _overlapping(av[2], flags)
                    if overlap:
                        findings.append(Finding("overlapping-alternation", overlap))
                walk(av[2], flags)
            elif op is sre.SUBPATTERN:
                walk(av[3], (flags | av[1]) & ~av[2])
            elif op is sre.ATOMIC_GROUP:
                continue  # no backtracking into it
            elif op is sre.BRANCH:
                for branch in av[1]:
                    walk(branch, flags)
            elif op is sre.GROUPREF_EXISTS:
                walk(av[1], flags)
                walk(av[2] or [], flags)

    walk(parsed, parsed.state.flags)
    return findings


# --- probe inputs -----------------------------------------------------------------------------------


def _sample(members: frozenset[int]) -> str:
    """A representative character: a letter or digit when there is one, else printable, else any."""
    for wanted in ("a", "1", " ", "'", "<", "/", "."):
        if ord(wanted) in members:
            return wanted
    printable = [b for b in sorted(members) if 0x20 <= b < 0x7F]
    return chr(printable[0] if printable else min(members))


def _minimal(items: Iterable[Node], flags: int) -> str:
    """A short string the items match (good enough to lead a probe to a quantifier)."""
    out = []
    for op, av in items:
        if op in _CHAR_OPS:
            members = byte_set((op, av), flags)
            out.append(_sample(members) if members else "")
        elif op is sre.SUBPATTERN:
            out.append(_minimal(av[3], (flags | av[1]) & ~av[2]))
        elif op is sre.ATOMIC_GROUP:
            out.append(_minimal(av, flags))
        elif op is sre.BRANCH:
            out.append(min((_minimal(b, flags) for b in av[1]), key=len))
        elif op in _REPEATS:
            out.append(_minimal(av[2], flags) * av[0])
        elif op is sre.GROUPREF_EXISTS:
            out.append(_minimal(av[1], flags))
    return "".join(out)


def _suspects(
    items: Sequence[Node], flags: int, prefix: str, at_start: bool
) -> Iterator[tuple[str, str, str]]:
    """(prefix, pumped character, rest) for each unbounded repeat that competes for characters with
    what follows it, or that starts the pattern (search retries it at every position)."""
    items = list(items)
    for index, (op, av) in enumerate(items):
        lead = prefix + _minimal(items[:index], flags)
        starts = at_start and nullable(items[:index])
        if op in _REPEATS:
            if op is not sre.POSSESSIVE_REPEAT and _unbounded(av[1]):
                own = chars(av[2], flags)
                rest = items[index + 1 :]
                later = chars(rest, flags) & own
                if own and (later or starts):
                    pump = _sample(later or own)
                    fail = next((c for c in _FAILERS if ord(c) not in first(rest, flags) | own), "")
                    yield lead, pump, fail
            yield from _suspects(av[2], flags, lead, starts)
        elif op is sre.SUBPATTERN:
            yield from _suspects(av[3], (flags | av[1]) & ~av[2], lead, starts)
        elif op is sre.BRANCH:
            for branch in av[1]:
                yield from _suspects(branch, flags, lead, starts)


def probe_inputs(regex: re.Pattern[str], length: int = PROBE_LENGTH) -> list[tuple[str, ...]]:
    """Crafted inputs (tiny, short, long: 1/16, 1/4 and all of `length` pumped characters) for the
    regex; none when nothing in it competes for characters."""
    try:
        parsed = sre_parse.parse(regex.pattern, regex.flags)
    except (re.error, RecursionError):
        return []
    shapes = sorted(set(_suspects(parsed, parsed.state.flags, "", True)))[:12]
    return [
        tuple(lead + pump * n + fail for n in (length // 16, length // 4, length))
        for lead, pump, fail in shapes
    ]


# --- the timed probe, in a child process ---------------------------------------------------------


def _best(regex: re.Pattern[str], text: str, runs: int) -> float:
    """The shortest of `runs` searches, in CPU time of this thread: time the machine spent on other
    processes (a busy CI machine) does not count, so the growth measured is the regex's own."""
    best = float("inf")
    for _ in range(runs):
        start = time.thread_time()
        regex.search(text)
        best = min(best, time.thread_time() - start)
    return best


def _probe_worker(conn: Any) -> None:
    """Answers (pattern, flags, inputs) with the worst (growth, seconds) over the inputs; growth is
    infinite when a shorter input is already clearly slow (the longer ones are then not tried)."""
    while True:
        job = conn.recv()
        if job is None:
            return
        pattern, flags, inputs = job
        regex = re.compile(pattern, flags)
        worst = (0.0, 0.0)
        for tiny, short, long in inputs:
            if (tiny_time := _best(regex, tiny, 1)) > CLEARLY_SLOW_S:
                worst = max(worst, (float("inf"), tiny_time))
                continue
            if (short_time := _best(regex, short, 1)) > CLEARLY_SLOW_S:
                worst = max(worst, (float("inf"), short_time))
                continue
            long_time = _best(regex, long, 1)
            if long_time < SLOW_S:
                continue
            for runs in (2, 4, 8):  # a growth over the limit must survive more runs (busy machines)
                long_time = min(long_time, _best(regex, long, runs))
                short_time = min(short_time, _best(regex, short, runs))
                if long_time / max(short_time, 1e-6) <= GROWTH_LIMIT:
                    break
            worst = max(worst, (long_time / max(short_time, 1e-6), long_time))
        conn.send(worst)


class _Prober:
    """A child process that runs searches; killed and replaced when one takes too long."""

    def __init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._proc = self._context.Process(target=_probe_worker, args=(child,), daemon=True)
        self._proc.start()
        self._conn = parent

    def worst(
        self, regex: re.Pattern[str], inputs: list[tuple[str, ...]], timeout: float
    ) -> tuple[float, float] | None:
        """(growth, long search seconds) of the worst input, or None when the child was killed."""
        if self._proc is None:
            self._start()
        self._conn.send((regex.pattern, regex.flags, inputs))
        if self._conn.poll(timeout):
            growth, seconds = self._conn.recv()
            return growth, seconds
        self.close()
        return None

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._conn.close()
        self._proc = self._conn = None

    def shutdown(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._conn.send(None)
            self._proc.join(timeout=2)
        self.close()


def check(regexes: Sequence[re.Pattern[str]], probe: bool = True) -> list[list[Finding]]:
    """Findings for each regex (static ones, then the probe's)."""
    results = [static_check(r) for r in regexes]
    if not probe:
        return results
    prober = _Prober()
    try:
        for regex, findings in zip(regexes, results, strict=True):
            inputs = probe_inputs(regex)
            if not inputs:
                continue
            worst = prober.worst(regex, inputs, PROBE_TIMEOUT_S)
            if worst is None:
                detail = (
                    f"a search of a crafted {PROBE_LENGTH}-character input ran over {PROBE_TIMEOUT_S:g} s"
                )
                findings.append(Finding("slow-probe", detail))
            elif worst[0] == float("inf"):
                detail = (
                    f"a crafted input of at most {PROBE_LENGTH // 4} characters took {worst[1] * 1000:.0f} ms"
                )
                findings.append(Finding("slow-probe", detail))
            elif worst[0] > GROWTH_LIMIT:
                detail = (
                    f"4x the crafted input length took {worst[0]:.0f}x the search time "
                    f"({worst[1] * 1000:.0f} ms for {PROBE_LENGTH} characters): super-linear backtracking"
                )
                findings.append(Finding("slow-probe", detail))
    finally:
        prober.shutdown()
    return results


# --- rule files ------------------------------------------------------------------------------------


def lint_ruleset(ruleset: Ruleset, probe: bool = True) -> list[Problem]:
    """A problem for every rx regex of the ruleset that can backtrack catastrophically."""
    sites: list[tuple[Rule, str, re.Pattern[str]]] = []
    for rule in ruleset.rules:
        for n, link in enumerate(rule.links):
            if link.operator.name != "rx":
                continue
            for regex in getattr(link.operator.predicate, "prefilter", ()):
                sites.append((rule, "argument" if n == 0 else f"chain[{n - 1}].argument", regex))
    unique = list({(r.pattern, r.flags): r for _, _, r in sites}.values())
    found = dict(zip(((r.pattern, r.flags) for r in unique), check(unique, probe), strict=True))
    return [
        Problem(rule.source, rule.id, field, f"regex can backtrack catastrophically ({finding})")
        for rule, field, regex in sites
        for finding in found[(regex.pattern, regex.flags)]
    ]
