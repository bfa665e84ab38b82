"""Evaluator: runs the rules of one phase over a transaction and returns the matches."""

from __future__ import annotations

from dataclasses import dataclass

from .memo import MAX_TEXT, Memo
from .rules import Action, Ctl, Link, Marker, Phase, Rule, Ruleset, Target, Transformation
from .state import EvalState
from .variables import collect, excluded
from .verdict import Match, redact_excerpt

Hit = tuple[str, str, tuple[str, ...]]  # (variable name, value as inspected, captures)


@dataclass(frozen=True, slots=True)
class PhasePlan:
    """The items of one phase that run at a paranoia level, with marker positions for skip_after."""

    items: tuple[Rule | Marker, ...]
    marker_index: dict[str, int]


def plan(ruleset: Ruleset, paranoia: int) -> dict[Phase, PhasePlan]:
    plans: dict[Phase, PhasePlan] = {}
    for phase, items in ruleset.order.items():
        kept = tuple(i for i in items if isinstance(i, Marker) or i.paranoia <= paranoia)
        markers = {i.name: n for n, i in enumerate(kept) if isinstance(i, Marker)}
        plans[phase] = PhasePlan(kept, markers)
    return plans


LIMITS_COLLECTION = "LIMITS_EXCEEDED"


def limits_plan(plans: dict[Phase, PhasePlan]) -> dict[Phase, PhasePlan]:
    """The plans cut down to the rules that inspect LIMITS_EXCEEDED (all that runs for a request over
    a limit: its collections were cut, and its size must not cost the other rules' work)."""
    limited: dict[Phase, PhasePlan] = {}
    for phase, phase_plan in plans.items():
        kept = tuple(
            item
            for item in phase_plan.items
            if isinstance(item, Rule)
            and any(t.collection == LIMITS_COLLECTION for link in item.links for t in link.targets)
        )
        limited[phase] = PhasePlan(kept, {})
    return limited


def run_phase(plans: dict[Phase, PhasePlan], state: EvalState, phase: Phase) -> list[Match]:
    """Evaluate every rule of `phase` in order; honour skip_after and ctl rule removals."""
    phase_plan = plans[phase]
    matches: list[Match] = []
    items = phase_plan.items
    # With a prefilter, only the rules that may match are visited (same order); see prefilter.py.
    order = range(len(items)) if state.prefilter is None else state.prefilter.order(phase, len(items), state)
    resume = 0  # skip_after: items before this index do not run
    for index in order:
        if state.engine_off:
            break
        if index < resume:
            continue
        item = items[index]
        if isinstance(item, Marker) or item.id in state.removed_ids:
            continue
        if state.removed_tags and _removed_by_tag(state, item):
            continue
        match = evaluate_rule(item, state)
        if match is None:
            continue
        matches.append(match)
        if item.disruptive == "deny":
            state.interrupted = True  # ModSecurity stops the transaction at a blocking rule
            break
        if item.skip_after is not None:
            target = phase_plan.marker_index.get(item.skip_after)
            resume = len(items) if target is None else target + 1
    return matches


def _removed_by_tag(state: EvalState, rule: Rule) -> bool:
    return any(p.search(tag) for p in state.removed_tags for tag in rule.tags)


def evaluate_rule(rule: Rule, state: EvalState) -> Match | None:
    """All links of the rule must match; each link's actions run as that link matches."""
    first_hits: list[Hit] | None = None
    state.matched_vars = []
    for link in rule.links:
        hits = match_link(link, state, rule)
        if not hits:
            return None
        if first_hits is None:
            first_hits = hits
        state.matched_vars = [(name, value) for name, value, _ in hits]
        for name, value, captures in hits:
            state.matched_var_name, state.matched_var = name, value
            if link.capture:
                _store_captures(state, captures)
            for action in link.actions:
                _run_action(state, action)
    assert first_hits is not None
    name, value, _ = first_hits[0]
    return Match(
        id=rule.id,
        msg=state.expand(rule.msg) if "%{" in rule.msg else rule.msg,
        phase=int(rule.phase),
        category=rule.category,
        severity=rule.severity,
        score=rule.score,
        paranoia=rule.paranoia,
        target=name,
        excerpt=redact_excerpt(name, value),
        scoring=rule.scoring,
        disruptive=rule.disruptive,
        tags=rule.tags,
    )


def match_link(link: Link, state: EvalState, rule: Rule) -> list[Hit]:
    exclusions = link.exclusions
    if state.removed_targets or state.removed_targets_by_tag:
        exclusions = exclusions + _removed_targets(state, rule)
    hits: list[Hit] = []
    prefilter = state.prefilter
    head = prefilter.head_gate(link) if prefilter is not None else None
    if head is None:
        for name, value in collect(state, link.targets, exclusions):
            captures = test_value(link, value, state)
            if captures is not None:
                hits.append((name, value, captures))
        return hits
    # A gated rule's first link: a value the prefilter's answer for it rules out is not tested (the
    # same values in the same order as collect() gives for all the targets at once).
    assert prefilter is not None
    may_match = prefilter.member_may_match
    for target in link.targets:
        if not target.count and not prefilter.source_may_match(head, target.collection, state):
            continue  # no member of the collection lets the value through to the rule
        if target.count:
            selected = collect(state, (target,), exclusions)
            own: tuple[Target, ...] = ()
        else:  # the exclusions are asked only of the values the prefilter lets through (as collect would)
            selected = collect(state, (target,), ())
            own = tuple(ex for ex in exclusions if ex.collection == target.collection)
        for name, value in selected:
            if not target.count and not may_match(head, target.collection, name, value, state):
                continue
            if own and excluded(name, target.collection, own):
                continue
            captures = test_value(link, value, state)
            if captures is not None:
                hits.append((name, value, captures))
    return hits


def test_value(link: Link, value: str, state: EvalState) -> tuple[str, ...] | None:
    """Transform the value and apply the operator (after every step with multi_match). With a
    prefilter, the answer for a short value of a link whose operator reads no macro is kept across
    transactions (see Prefilter.results): it is a pure function of the link and the value."""
    prefilter = state.prefilter
    if prefilter is None or len(value) > MAX_TEXT or id(link) not in prefilter.pure_links:
        return _test_value(link, value, state)
    key = (id(link), value)
    results = prefilter.results
    found = results.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        found = results.put(key, _test_value(link, value, state))
    return found


_UNKNOWN = object()


def _test_value(link: Link, value: str, state: EvalState) -> tuple[str, ...] | None:
    operator = link.operator
    prefilter = state.prefilter
    checked = False  # the prefilter's answer is already "maybe" for the candidate(s) below
    if prefilter is not None and not link.multi_match:
        before = prefilter.before_lower(link)
        if before is not None:
            # The text before the final lowercase: for a plain value the value itself, scanned
            # already; lower-casing it and scanning the copy again is then left out.
            if not prefilter.value_may_match(link, transform(state, value, before), state):
                return None
            checked = True
    candidates = (value,) if not link.transform_fns else inspected_values(link, value, state)
    for candidate in candidates:
        if prefilter is not None and not checked and not prefilter.value_may_match(link, candidate, state):
            continue
        captures = operator.predicate(candidate, state.expand)
        if operator.negated:
            captures = None if captures is not None else (candidate,)
        if captures is not None:
            return captures
    return None


def link_matches_value(link: Link, value: str, state: EvalState) -> bool:
    """Does the link's operator match this one collected value (what the prefilter's exact gates ask)?"""
    return test_value(link, value, state) is not None


def inspected_values(link: Link, value: str, state: EvalState) -> list[str]:
    """What the operator sees: the transformed value, or with multi_match each distinct step."""
    if not link.multi_match:
        return [transform(state, value, link)]
    candidates = [value]
    for n in range(1, len(link.transforms) + 1):
        step = _transformed(state, value, link.transforms[:n], link.transform_fns[:n])
        if step != candidates[-1]:
            candidates.append(step)
    return candidates


def transform(state: EvalState, value: str, link: Link) -> str:
    if not link.transform_fns:
        return value
    return _transformed(state, value, link.transforms, link.transform_fns)


def _transformed(
    state: EvalState, value: str, names: tuple[str, ...], fns: tuple[Transformation, ...]
) -> str:
    """`value` through the chain, computed once per value and chain within the transaction (and kept
    across transactions for short values: transformations are pure)."""
    key = (value, names)
    cached = state.transform_cache.get(key)
    if cached is None:
        short = len(value) <= MAX_TEXT
        cached = _MEMO.get(key) if short else None
        if cached is None:
            cached = value if short else _long_steps(state, value, names, fns)
            for fn in fns if short else ():
                cached = fn(cached)
            if short:
                _MEMO.put(key, cached)
        state.transform_cache[key] = cached
    return cached


def _long_steps(state: EvalState, value: str, names: tuple[str, ...], fns: tuple[Transformation, ...]) -> str:
    """A long value (a body) step by step, each (text, step) once per transaction: the many chains that
    start with url_decode_uni decode the body once."""
    cache = state.transform_cache
    for name, fn in zip(names, fns, strict=True):
        step = (value, name)  # a str second item never equals a chain key's tuple
        result = cache.get(step)
        if result is None:
            result = cache[step] = fn(value)
        value = result
    return value


_MEMO = Memo(32768)  # (short value, transformation names) -> result, kept across transactions


def _store_captures(state: EvalState, captures: tuple[str, ...]) -> None:
    for n in range(10):
        state.vars.pop(str(n), None)
    for n, text in enumerate(captures[:10]):
        state.vars[str(n)] = text or ""


def _run_action(state: EvalState, action: Action | Ctl) -> None:
    if isinstance(action, Ctl):
        apply_ctl(state, action)
        state.collect_cache.clear()  # a ctl may change what a target reads (e.g. REQUEST_BODY)
        state.prefilter_cache.clear()
    elif action.kind == "setvar":
        state.set_var(action.argument)


def apply_ctl(state: EvalState, ctl: Ctl) -> None:
    """Change the transaction's settings as the ctl says (parsed at load; a macro value now)."""
    if ctl.dynamic:
        ctl = Ctl.of(ctl.setting, state.expand(ctl.value))
    setting = ctl.setting
    if setting == "ruleremovebyid":
        for low, high in ctl.ids:
            state.removed_ids.update(range(low, high + 1))
    elif setting == "ruleremovetargetbyid" and ctl.target is not None:
        state.removed_targets.extend((low, high, ctl.target) for low, high in ctl.ids)
    elif setting == "ruleremovetargetbytag" and ctl.target is not None:
        state.removed_targets_by_tag.setdefault(ctl.tag, []).append(ctl.target)
    elif setting == "ruleremovebytag" and ctl.pattern is not None:
        state.removed_tags.append(ctl.pattern)
    elif setting == "ruleengine":
        state.engine_off = ctl.on
    elif setting == "forcerequestbodyvariable":
        state.force_request_body = ctl.on
    elif setting == "requestbodyprocessor":
        state.body_processor = ctl.processor


def _removed_targets(state: EvalState, rule: Rule) -> tuple[Target, ...]:
    """The targets ctl actions removed from this rule so far (by its id or one of its tags)."""
    removed = [target for low, high, target in state.removed_targets if low <= rule.id <= high]
    for tag in rule.tags:
        removed.extend(state.removed_targets_by_tag.get(tag, ()))
    return tuple(removed)
