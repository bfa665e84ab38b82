"""Load-time folding of the CRS's TX bookkeeping: what cannot differ between requests is decided once.

Most CRS rules that run for a benign request read only TX variables that crs-setup and the 901
initialisation rules set to constants: paranoia-level gates (`TX:EXECUTING_PARANOIA_LEVEL "@lt 1"
... skipAfter`), defaults (`&TX:x "@eq 0" ... setvar:tx.x=...`), add-on package switches. `fold`
walks an Engine's phase plans in execution order with what is known about TX at each point (an
abstract interpretation: a variable is a known value, known absent, or unknown) and:

- runs a rule that reads only known TX values (or is a SecAction) once, at load, on those values,
  with the evaluator itself (so operators, transformations, setvar arithmetic are exactly the
  run-time ones);
- leaves out of the plan a rule so decided that has no effect (no match, nothing set) and, when the
  decided rule jumps (skipAfter), the items that jump passes over and no other path reaches;
- moves the setvars of a decided rule into the starting TX when nothing before it at run time can
  observe the difference (no kept rule reads or writes those variables, none may jump, deny or
  switch the engine off before it, and it is in a request phase);
- keeps everything else as it was: a rule reading request data, a TX variable some kept rule may
  write at run time (it is unknown from there on), a rule a ctl action or an exclusion may remove
  (or remove a target of that it reads), a logged or denying match, a rule with ctl actions; but
  writes into a kept rule's operator argument and setvars the %{tx.x} values known there;
- then leaves out the kept rules that only set variables nothing reads (901318's ua_hash: only the
  IP collection LogoutGuard does not keep used it), and the starting variables nothing reads.

The ctls that can remove rules are those of the engine's exclusions and of the rules that can run:
folding is repeated until the rules kept stop changing (an add-on exclusion package behind a switch
that is off never runs, so its ruleRemoveById ranges do not count).

Verdicts are unchanged: every kept rule sees the TX values it reads as it would have, every jump
that can happen still can, the anomaly totals (949/959/980) are computed by the same rules; the
final TX differs only in variables that neither a rule nor the verdict reads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.evaluator import PhasePlan, evaluate_rule, match_link
from ..engine.operators import OPERATORS, OperatorContext, atoi
from ..engine.rules import Action, Ctl, Link, Marker, Operator, Phase, Rule, Target
from ..engine.state import MACRO, EvalState
from ..engine.transaction import build_transaction
from ..engine.variables import COLLECTIONS
from .modsec import ADAPTER_VARIABLES

if TYPE_CHECKING:
    from ..engine.engine import Engine


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()  # a TX variable whose presence or value may differ between requests
Value = str | None | _Unknown  # None: known to be absent

# Macro collections that a rule's own match determines (the evaluator sets them from its hits) or
# that expand to the same text for every request (RULE: not a collection LogoutGuard has: "").
_SELF_MACROS = frozenset({"MATCHED_VAR", "MATCHED_VAR_NAME", "RULE"})
_MATCHED = ("MATCHED_VAR", "MATCHED_VARS", "MATCHED_VAR_NAME", "MATCHED_VARS_NAMES")
_REMOVALS = ("ruleremovebyid", "ruleremovebytag", "ruleremovetargetbyid", "ruleremovetargetbytag")
_CAPTURES = frozenset(str(n) for n in range(10))
# Persistent collections LogoutGuard does not keep: always empty (a count of 0, no value).
_EMPTY = frozenset({"IP", "GLOBAL", "USER", "RESOURCE", "GEO"}) - COLLECTIONS.keys() - ADAPTER_VARIABLES


@dataclass(frozen=True, slots=True)
class Access:
    """What a rule reads and writes of TX, and whether it reads anything a request supplies."""

    reads: frozenset[str]  # TX variables read by name (targets, macros, setvar increments)
    patterns: tuple[re.Pattern[str], ...]  # TX:/regex/ targets
    all_tx: bool  # a target names the whole TX collection
    request: bool  # reads request data (or the previous rule's MATCHED_*, or a dynamic name)
    writes: frozenset[str]  # TX variables a setvar or capture may set or delete
    wild: tuple[str, ...]  # the literal prefix of each setvar name holding a macro (lower case)
    ctl: bool  # has ctl actions
    engine_off: bool  # may switch the rule engine off (ctl:ruleEngine)
    collections: frozenset[str]  # collections its targets read (for target removals)


def access(rule: Rule) -> Access:
    reads: set[str] = set()
    writes: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    wild: list[str] = []
    flags = {"all": False, "request": False, "ctl": False, "off": False}
    collections: set[str] = set()
    for n, link in enumerate(rule.links):
        _link_targets(link, n, reads, patterns, flags, collections)
        _macros(link.operator.argument, reads, flags, own=False)
        if link.capture:
            writes |= _CAPTURES
        for action in link.actions:
            if isinstance(action, Ctl):
                flags["ctl"] = True
                flags["off"] |= action.setting == "ruleengine"
                if action.dynamic:
                    _macros(action.value, reads, flags, own=True)
            elif isinstance(action, Action) and action.kind == "setvar":
                _setvar_access(action.argument, reads, writes, wild, flags)
    _macros(rule.msg, reads, flags, own=True)
    return Access(
        frozenset(reads),
        tuple(patterns),
        flags["all"],
        flags["request"],
        frozenset(writes),
        tuple(wild),
        flags["ctl"],
        flags["off"],
        frozenset(collections),
    )


def _unconditional(link: Link) -> bool:
    """A SecAction's link: one REQUEST_METHOD value, always matched (its value is never used)."""
    return (
        link.operator.name == "unconditional_match"
        and not link.operator.negated
        and link.targets == (Target("REQUEST_METHOD"),)
    )


def _link_targets(
    link: Link, n: int, reads: set[str], patterns: list, flags: dict, collections: set[str]
) -> None:
    for target in link.targets:
        collections.add(target.collection)
        if target.collection == "TX":
            if target.key_regex is not None:
                patterns.append(target.key_regex)
            elif target.key is not None:
                reads.add(target.key.lower())
            else:
                flags["all"] = True
        elif target.collection in _EMPTY:
            continue  # the same (nothing) for every request
        elif n > 0 and target.collection in _MATCHED:
            continue  # a chain link reading what its own rule's previous link matched
        elif not _unconditional(link):
            flags["request"] = True


def _macros(text: str, reads: set[str], flags: dict, *, own: bool) -> None:
    for match in MACRO.finditer(text):
        collection, _, key = match.group(1).partition(".")
        collection = collection.upper()
        if collection == "TX" and key:
            reads.add(key.strip().lower())
        elif not (own and collection in _SELF_MACROS):
            flags["request"] = True


def _setvar_access(expression: str, reads: set[str], writes: set[str], wild: list[str], flags: dict) -> None:
    expression = expression.strip()
    name, eq, value = expression.lstrip("!").partition("=")
    name = name.strip().lower()
    name = name[3:] if name.startswith("tx.") else name
    if "%{" in name:
        wild.append(name.partition("%{")[0])
        _macros(name, reads, flags, own=True)
        flags["request"] = True  # which variable it writes is only known at run time
        return
    writes.add(name)
    if eq:
        _macros(value, reads, flags, own=True)
        if value.strip()[:1] in "+-":
            reads.add(name)


# --- what is known about TX -------------------------------------------------------------------------


@dataclass
class Facts:
    """What is known about TX at one point of the run, for every request."""

    values: dict[str, str | _Unknown] = field(default_factory=dict)  # absent from here: absent
    wild: frozenset[str] = frozenset()  # prefixes of names a rule may have made up at run time

    def get(self, name: str) -> Value:
        if name in self.values:
            return self.values[name]
        return UNKNOWN if any(name.startswith(p) for p in self.wild) else None

    def copy(self) -> Facts:
        return Facts(dict(self.values), self.wild)

    def join(self, other: Facts) -> Facts:
        """What holds on both paths."""
        joined: dict[str, str | _Unknown] = {}
        for name in self.values.keys() | other.values.keys():
            mine, theirs = self.get(name), other.get(name)
            if mine is UNKNOWN or theirs is UNKNOWN or mine != theirs:
                joined[name] = UNKNOWN
            elif mine is not None:
                joined[name] = mine
        return Facts(joined, self.wild | other.wild)

    def forget(self, acc: Access) -> None:
        """A rule that may or may not run (or set) its writes: they are unknown from here."""
        for name in acc.writes:
            self.values[name] = UNKNOWN
        if acc.wild:
            self.wild = self.wild | set(acc.wild)

    def readable(self, acc: Access) -> bool:
        """Is everything the rule reads known?"""
        if any(self.get(name) is UNKNOWN for name in acc.reads | acc.writes):
            return False
        if acc.all_tx:
            return not self.wild and all(v is not UNKNOWN for v in self.values.values())
        for pattern in acc.patterns:
            if any(not _disjoint(pattern, prefix) for prefix in self.wild):
                return False
            if any(v is UNKNOWN for k, v in self.values.items() if pattern.search(k)):
                return False
        return True

    def concrete(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if isinstance(v, str)}


_LITERAL_HEAD = re.compile(r"\^([A-Za-z0-9_]+)")


def _disjoint(pattern: re.Pattern[str], prefix: str) -> bool:
    """Can no name starting with `prefix` match `pattern`? Only decided for `^literal...` patterns."""
    head = _LITERAL_HEAD.match(pattern.pattern)
    if head is None or not prefix:
        return False
    literal = head.group(1).lower()
    n = min(len(literal), len(prefix))
    return literal[:n] != prefix[:n]


# --- who may remove a rule at run time --------------------------------------------------------------


@dataclass(frozen=True)
class Removals:
    """Every ctl that may remove rules or their targets for some request (rules' ctl actions and the
    engine's exclusions), whatever its condition."""

    ids: tuple[tuple[int, int], ...]
    tags: tuple[re.Pattern[str], ...]
    target_ids: tuple[tuple[int, int, Target], ...]
    target_tags: dict[str, tuple[Target, ...]]
    anything: bool  # a ctl whose value is a macro: it may remove anything

    @classmethod
    def of(cls, ctls: Iterable[Ctl]) -> Removals:
        ids: list[tuple[int, int]] = []
        tags: list[re.Pattern[str]] = []
        target_ids: list[tuple[int, int, Target]] = []
        target_tags: dict[str, list[Target]] = {}
        anything = False
        for ctl in ctls:
            if ctl.setting not in _REMOVALS:
                continue
            if ctl.dynamic:
                anything = True
            elif ctl.setting == "ruleremovebyid":
                ids.extend(ctl.ids)
            elif ctl.setting == "ruleremovebytag" and ctl.pattern is not None:
                tags.append(ctl.pattern)
            elif ctl.setting == "ruleremovetargetbyid" and ctl.target is not None:
                target_ids.extend((low, high, ctl.target) for low, high in ctl.ids)
            elif ctl.target is not None:
                target_tags.setdefault(ctl.tag, []).append(ctl.target)
        return cls(
            tuple(ids),
            tuple(tags),
            tuple(target_ids),
            {k: tuple(v) for k, v in target_tags.items()},
            anything,
        )

    def rule(self, rule: Rule) -> bool:
        return (
            self.anything
            or any(low <= rule.id <= high for low, high in self.ids)
            or any(p.search(tag) for p in self.tags for tag in rule.tags)
        )

    def targets(self, rule: Rule, collections: frozenset[str]) -> bool:
        """May a target removal change what the rule reads?"""
        if self.anything:
            return True
        removed = [t for low, high, t in self.target_ids if low <= rule.id <= high]
        for tag in rule.tags:
            removed.extend(self.target_tags.get(tag, ()))
        return any(t.collection in collections for t in removed)


# --- the walk ---------------------------------------------------------------------------------------


@dataclass
class FoldStats:
    """What fold did (for tests and the report)."""

    dropped: list[int] = field(default_factory=list)  # rules decided at load and left out
    skipped: list[int] = field(default_factory=list)  # rules a decided jump passes over
    preset: list[int] = field(default_factory=list)  # rules whose setvars are in the starting TX
    dead: list[int] = field(default_factory=list)  # kept rules that set only what nothing reads
    unread: list[str] = field(default_factory=list)  # starting TX variables nothing reads: left out
    kept: int = 0


@dataclass
class _Walk:
    """The state of the walk over all phases in execution order."""

    quiet: frozenset[int]
    removals: Removals
    start: dict[str, str | None]  # the starting TX being built (None: delete)
    stats: FoldStats
    prefix: bool = True  # every kept rule so far leaves the run's path and the folded variables alone
    observed: set[str] = field(default_factory=set)  # TX names kept rules read or write
    observed_patterns: list[re.Pattern[str]] = field(default_factory=list)
    observed_prefixes: list[str] = field(default_factory=list)  # dynamic names kept rules write
    observed_all: bool = False


_DUMMY = build_transaction(method="GET", uri="/")


def fold(engine: Engine, plans: dict[Phase, PhasePlan]) -> tuple[dict[Phase, PhasePlan], dict[str, str]]:
    """The engine's plans with what is decided at load left out, and the TX each request starts from."""
    plans, start, _ = fold_plans(engine, plans)
    return plans, start


def fold_plans(
    engine: Engine, plans: dict[Phase, PhasePlan]
) -> tuple[dict[Phase, PhasePlan], dict[str, str], FoldStats]:
    """Fold until the rules kept stop changing. A ctl can only remove rules when the rule holding it
    runs: the first round counts every rule's ctls, each next round only those of the rules the
    previous round kept (the add-on exclusion packages behind a switch that is off never run)."""
    if _reads_previous_match(plans):
        return plans, dict(engine.tx_defaults), FoldStats()
    excluded = [c for item in engine.exclusions.items for c in item.ctls] if engine.exclusions else []
    holders: list[Rule] = [i for p in plans.values() for i in p.items if isinstance(i, Rule)]
    for _ in range(8):
        removals = Removals.of([*excluded, *_ctls(holders)])
        folded, start, stats = _fold_once(engine, plans, removals)
        kept = [i for p in folded.values() for i in p.items if isinstance(i, Rule)]
        if {r.id for r in kept} == {r.id for r in holders}:
            break
        holders = kept
    else:  # no fixed point (never seen): fold with every rule's ctls, which is always right
        folded, start, stats = _fold_once(engine, plans, Removals.of([*excluded, *_ctls(holders)]))
    folded, observed = _without_dead(folded, engine, stats)
    if observed is not None:  # what nothing reads need not be copied into every request's TX
        stats.unread = sorted(k for k in start if k not in observed and k not in engine.tx_defaults)
        start = {k: v for k, v in start.items() if k in observed or k in engine.tx_defaults}
    return folded, start, stats


def _ctls(rules: Iterable[Rule]) -> list[Ctl]:
    return [a for r in rules for link in r.links for a in link.actions if isinstance(a, Ctl)]


def _fold_once(
    engine: Engine, plans: dict[Phase, PhasePlan], removals: Removals
) -> tuple[dict[Phase, PhasePlan], dict[str, str], FoldStats]:
    stats = FoldStats()
    walk = _Walk(engine.quiet_ids, removals, {}, stats)
    facts: Facts | None = Facts(dict(engine.tx_defaults))
    folded: dict[Phase, PhasePlan] = {}
    for phase in sorted(plans):
        if phase > Phase.REQUEST_BODY:
            walk.prefix = False  # the request's verdict reads TX before these phases run
        items, facts = _fold_phase(plans[phase], facts, walk)
        folded[phase] = _plan_without(PhasePlan(items, {}), set())
    start: dict[str, str] = dict(engine.tx_defaults)
    for name, value in walk.start.items():
        if value is None:
            start.pop(name, None)
        else:
            start[name] = value
    return folded, start, stats


def _without_dead(
    plans: dict[Phase, PhasePlan], engine: Engine, stats: FoldStats
) -> tuple[dict[Phase, PhasePlan], _Observed | None]:
    """Leave out the kept rules whose only effect is to set TX variables nothing reads: no rule of the
    plan (by name, pattern, macro), nor the verdict (the score variables and `*_score`). They are
    quiet, do not jump or deny and have no ctl; a rule left out no longer reads, so repeat. Returns
    the plans and what they read (None: some rule reads all of TX)."""
    score_vars = set(engine.score_vars or ())
    while True:
        rules = [i for p in plans.values() for i in p.items if isinstance(i, Rule)]
        accesses = {id(r): access(r) for r in rules}
        read: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        for acc in accesses.values():
            if acc.all_tx:
                return plans, None
            read |= acc.reads
            patterns.extend(acc.patterns)

        observed = _Observed(frozenset(read | score_vars), tuple(patterns))
        gone = {id(r) for r in rules if _dead(r, accesses[id(r)], observed, engine.quiet_ids)}
        if not gone:
            return plans, observed
        stats.dead.extend(r.id for r in rules if id(r) in gone)
        plans = {phase: _plan_without(p, gone) for phase, p in plans.items()}


@dataclass(frozen=True, slots=True)
class _Observed:
    """The TX variables some rule of the plan or the verdict reads: by name (the verdict reads the
    score variables and every `*_score`), or through a TX:/regex/ target."""

    names: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    def __contains__(self, name: str) -> bool:
        return name in self.names or name.endswith("_score") or any(p.search(name) for p in self.patterns)


def _dead(rule: Rule, acc: Access, observed: _Observed, quiet: frozenset[int]) -> bool:
    """Does the rule only set variables nothing reads (and say nothing, jump nowhere)?"""
    if acc.ctl or acc.wild or not acc.writes or rule.skip_after is not None:
        return False
    if rule.disruptive == "deny" or rule.id not in quiet:
        return False
    return not any(name in observed for name in acc.writes)


def _plan_without(phase_plan: PhasePlan, gone: set[int]) -> PhasePlan:
    items = tuple(i for i in phase_plan.items if id(i) not in gone)
    return PhasePlan(items, {i.name: n for n, i in enumerate(items) if isinstance(i, Marker)})


def _reads_previous_match(plans: dict[Phase, PhasePlan]) -> bool:
    """Does some rule's first link read MATCHED_* (what the previous matching rule left)? Leaving
    rules out would change it: then nothing is folded."""
    for phase_plan in plans.values():
        for item in phase_plan.items:
            if isinstance(item, Rule):
                head = item.head
                if any(t.collection in _MATCHED for t in head.targets) or "%{matched" in (
                    head.operator.argument.lower()
                ):
                    return True
    return False


def _fold_phase(
    phase_plan: PhasePlan, facts: Facts | None, walk: _Walk
) -> tuple[tuple[Rule | Marker, ...], Facts | None]:
    items = phase_plan.items
    arriving: dict[int, Facts] = {}  # item index -> what holds on the jumps landing there
    kept: list[Rule | Marker] = []
    for index, item in enumerate(items):
        if index in arriving:
            landed = arriving.pop(index)
            facts = landed if facts is None else facts.join(landed)
        if isinstance(item, Marker):
            kept.append(item)
            continue
        if facts is None:
            walk.stats.skipped.append(item.id)
            continue  # no run reaches it
        facts = _fold_rule(item, index, phase_plan, facts, walk, arriving, kept)
    end = len(items)
    if end in arriving:
        landed = arriving.pop(end)
        facts = landed if facts is None else facts.join(landed)
    return tuple(kept), facts


def _jump(rule: Rule, index: int, phase_plan: PhasePlan) -> int:
    """The index the rule's skipAfter resumes at (as run_phase computes it)."""
    assert rule.skip_after is not None
    target = phase_plan.marker_index.get(rule.skip_after)
    if target is None:
        return len(phase_plan.items)
    return max(target + 1, index + 1)


def _land(arriving: dict[int, Facts], at: int, facts: Facts) -> None:
    arriving[at] = facts.copy() if at not in arriving else arriving[at].join(facts)


def _fold_rule(
    rule: Rule,
    index: int,
    phase_plan: PhasePlan,
    facts: Facts,
    walk: _Walk,
    arriving: dict[int, Facts],
    kept: list[Rule | Marker],
) -> Facts | None:
    """Decide or keep one rule; returns what holds after it on the fall-through path (None: none)."""
    acc = access(rule)
    removable = walk.removals.rule(rule)
    decidable = not acc.request and not walk.removals.targets(rule, acc.collections) and facts.readable(acc)
    if not decidable and _head_misses(rule, facts, walk):
        walk.stats.dropped.append(rule.id)
        return facts  # its first link matches nothing: no action runs, whatever the rest reads
    if not decidable:
        _keep(rule, acc, walk, kept, facts, certain=False)
        facts.forget(acc)
        if rule.skip_after is not None:
            _land(arriving, _jump(rule, index, phase_plan), facts)
        return facts
    matched, effects, ran_ctl = _simulate(rule, facts)
    after = facts.copy()
    for name, value in effects.items():
        if value is None:
            after.values.pop(name, None)
        else:
            after.values[name] = value
    if not matched and not effects and not ran_ctl:
        walk.stats.dropped.append(rule.id)
        return facts  # decided: nothing happens, whether it runs or not
    jumps = matched and rule.skip_after is not None
    stops = matched and rule.disruptive == "deny"
    if removable:  # it may run (as decided) or not (removed): both paths go on
        _keep(rule, acc, walk, kept, facts, certain=False)
        if jumps:
            _land(arriving, _jump(rule, index, phase_plan), after)
        return facts if jumps or stops else facts.join(after)
    droppable = not ran_ctl and not stops and (not matched or rule.id in walk.quiet)
    if droppable and effects:
        droppable = walk.prefix and _unobserved(walk, effects)
    if droppable and jumps:
        resume = _jump(rule, index, phase_plan)
        droppable = not any(index < at < resume for at in arriving)
    if droppable:
        walk.stats.dropped.append(rule.id)
        if effects:
            walk.start.update(effects)
            walk.stats.preset.append(rule.id)
    else:
        _keep(rule, acc, walk, kept, facts, certain=True)
    if jumps:
        _land(arriving, _jump(rule, index, phase_plan), after)
        return None
    return None if stops else after


def _head_misses(rule: Rule, facts: Facts, walk: _Walk) -> bool:
    """Is the rule's first link decided, on known TX values alone, to match no value?"""
    head = dataclasses.replace(rule.head, actions=(), capture=False)
    acc = access(dataclasses.replace(rule, head=head, chain=(), msg=""))
    if acc.request or walk.removals.targets(rule, acc.collections) or not facts.readable(acc):
        return False
    state = EvalState(tx=_DUMMY, vars=facts.concrete())
    return not match_link(head, state, rule)


def _simulate(rule: Rule, facts: Facts) -> tuple[bool, dict[str, str | None], bool]:
    """Run the rule on the known TX: (matched?, the variables it set or deleted, ran a ctl?)."""
    state = EvalState(tx=_DUMMY, vars=facts.concrete())
    before = dict(state.vars)
    matched = evaluate_rule(rule, state) is not None
    effects: dict[str, str | None] = {k: v for k, v in state.vars.items() if before.get(k) != v}
    effects.update({k: None for k in before if k not in state.vars})
    ran_ctl = bool(state.matched_vars) and access(rule).ctl
    return matched, effects, ran_ctl


def _unobserved(walk: _Walk, effects: dict[str, str | None]) -> bool:
    """Would no kept rule so far have seen these variables set earlier than they are?"""
    if walk.observed_all:
        return False
    for name in effects:
        if name in walk.observed or any(p.search(name) for p in walk.observed_patterns):
            return False
        if any(name.startswith(prefix) for prefix in walk.observed_prefixes):
            return False
    return True


def _keep(
    rule: Rule, acc: Access, walk: _Walk, kept: list[Rule | Marker], facts: Facts, *, certain: bool
) -> None:
    """Keep the rule in the plan (its %{tx.x} macros of known values written in); what it reads or
    writes at run time may no longer be preset, and after a rule that may change the run's path
    (jump, deny, engine off) nothing more is."""
    kept.append(specialised(rule, acc, facts))
    walk.stats.kept += 1
    walk.observed |= acc.reads | acc.writes
    walk.observed_patterns.extend(acc.patterns)
    walk.observed_prefixes.extend(acc.wild)
    walk.observed_all = walk.observed_all or acc.all_tx
    turns = rule.skip_after is not None or rule.disruptive == "deny" or acc.engine_off
    if acc.engine_off or (turns and not certain):
        walk.prefix = False


# --- known macros written in ------------------------------------------------------------------------

# Operators whose factory needs nothing but the argument, and which expand their macros the same way
# at run time (numeric ones through atoi).
_NUMERIC = frozenset({"eq", "ge", "gt", "le", "lt"})
_STRING = frozenset({"contains", "contains_word", "streq", "begins_with", "ends_with", "within"})


def specialised(rule: Rule, acc: Access, facts: Facts) -> Rule:
    """The rule with each %{tx.x} in its operator arguments and setvar values replaced by x's value,
    where x is known here on every path and the rule itself does not write it (so it holds when each
    link and action runs): the operator is built once on the constant (and a link without a macro
    can be gated by the prefilter, prefilter.exact_gate), and setvars expand nothing at run time."""
    links = tuple(_specialised_link(link, acc, facts) for link in rule.links)
    if all(new is old for new, old in zip(links, rule.links, strict=True)):
        return rule
    return dataclasses.replace(rule, head=links[0], chain=links[1:])


def _specialised_link(link: Link, acc: Access, facts: Facts) -> Link:
    operator = link.operator
    if "%{" in operator.argument and operator.name in _NUMERIC | _STRING:
        text = _written_in(operator.argument, acc, facts)
        if text is not None and operator.name in _NUMERIC:
            text = str(atoi(text))
        if text is not None and "%{" not in text:
            predicate = OPERATORS[operator.name](text, OperatorContext(rules_dir=Path(".")))
            operator = Operator(operator.name, text, operator.negated, predicate)
    actions = tuple(_specialised_action(a, acc, facts) for a in link.actions)
    if operator is link.operator and all(new is old for new, old in zip(actions, link.actions, strict=True)):
        return link
    return dataclasses.replace(link, operator=operator, actions=actions)


def _specialised_action(action: Action | Ctl, acc: Access, facts: Facts) -> Action | Ctl:
    if not isinstance(action, Action) or action.kind != "setvar" or "%{" not in action.argument:
        return action
    name, eq, value = action.argument.strip().partition("=")
    if not eq or "%{" in name or "%{" not in value:
        return action
    text = _written_in(value, acc, facts)
    if text is None or "%{" in text:
        return action
    return Action("setvar", f"{name}={text}")


def _written_in(text: str, acc: Access, facts: Facts) -> str | None:
    """`text` with its macros expanded as the run would, or None when one is not known here."""
    values: list[str] = []
    for match in MACRO.finditer(text):
        collection, _, key = match.group(1).partition(".")
        name = key.strip().lower()
        if collection.upper() != "TX" or not name or name in acc.writes:
            return None
        if any(name.startswith(prefix) for prefix in acc.wild):
            return None
        value = facts.get(name)
        if value is UNKNOWN:
            return None
        values.append(value if isinstance(value, str) else "")
    found = iter(values)
    return MACRO.sub(lambda _: next(found), text)
