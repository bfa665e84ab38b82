"""SecLang AST -> engine Rule / Marker objects, with ModSecurity 2's merge, chain and exclusion semantics.

Every construct the engine cannot carry is reported (file, line, rule id, reason) and its rule
skipped; parts that cannot change a verdict (logging, persistence) are dropped with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.operators import OPERATORS, OperatorContext, OperatorError
from ..engine.pcre import RegexError, compile_pcre
from ..engine.rules import (
    CTL_SETTINGS,
    SEVERITY_SCORES,
    Action,
    Ctl,
    Link,
    Marker,
    Operator,
    Phase,
    Rule,
    Target,
    severity_name,
)
from ..engine.targets import TargetError, target_of
from ..engine.transformations import TRANSFORMATIONS
from .actions import ParseError, parse_generic
from .modsec import ADAPTER_VARIABLES
from .seclang import (
    ActionList,
    Node,
    Other,
    RemoveById,
    RemoveByPattern,
    RulePart,
    SecDefaultAction,
    SecMarker,
    SecRule,
    UpdateAction,
    UpdateTarget,
    Where,
    parse_id_ranges,
)

BUILTIN_DEFAULT: ActionList = (("phase", "2"), ("log", None), ("auditlog", None), ("pass", None))
DISRUPTIVE = {"pass", "block", "deny", "drop", "allow", "redirect", "proxy", "pause"}
# Actions that only describe or log: dropped silently.
METADATA = {
    "msg",
    "logdata",
    "tag",
    "ver",
    "rev",
    "maturity",
    "accuracy",
    "severity",
    "status",
    "log",
    "nolog",
    "auditlog",
    "noauditlog",
    "sanitisearg",
    "sanitisematched",
    "sanitisematchedbytes",
    "sanitiserequestheader",
    "sanitiseresponseheader",
    "xmlns",
}
# Actions on persistent collections (IP, GLOBAL, SESSION, USER): not kept by LogoutGuard.
PERSISTENCE = {"initcol", "expirevar", "setsid", "setuid", "setrsc", "deprecatevar"}
PERSISTENT_COLLECTIONS = {"IP", "GLOBAL", "SESSION", "USER", "RESOURCE", "GEO"}
CTL_IGNORED = {
    "auditengine",
    "auditlogparts",
    "debugloglevel",
    "requestbodylimit",
    "requestbodyaccess",
    "responsebodyaccess",
    "responsebodylimit",
    "hashengine",
    "hashenforcement",
}
TRANSFORMATION_ALIASES = {
    "utf8tounicode": "utf8_to_unicode",
    "normalisepath": "normalize_path",
    "normalisepathwin": "normalize_path_win",
    "sqlhexdecode": "sql_hex_decode",
}
OPERATOR_ALIASES = {
    "detectsqli": "detect_sqli",
    "detectxss": "detect_xss",
    "pmf": "pm_from_file",
    "ipmatchf": "ip_match_from_file",
    "verifycc": "verify_cc",
    "verifycpf": "verify_cpf",
    "verifyssn": "verify_ssn",
    "validatedtd": "validate_dtd",
    "validateschema": "validate_schema",
}
PHASE_NAMES = {"request": 2, "response": 4, "logging": 5}


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """Something in a CRS file the engine does not carry. `skipped`: the whole rule was left out."""

    file: str
    line: int
    rule_id: int | None
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        rule = f" rule {self.rule_id}" if self.rule_id is not None else ""
        kind = "skipped" if self.skipped else "note"
        return f"{self.file}:{self.line}{rule}: {kind}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What the report and the differential test need to know about an imported rule."""

    id: int
    file: str
    line: int
    phase: int
    paranoia: int
    logged: bool  # would ModSecurity write a message for it (log or auditlog after the merge)?
    loaded: bool


class Unsupported(Exception):
    """Raised while building a rule: the reason it is skipped."""


@dataclass
class _Entry:
    """A rule waiting to be built: its parts, the defaults in force, and later updates."""

    node: SecRule
    defaults: ActionList
    extra_actions: list[tuple[str, str | None]] = field(default_factory=list)
    extra_targets: list[str] = field(default_factory=list)
    replaced_targets: list[tuple[str, str]] = field(default_factory=list)
    removed: bool = False


@dataclass
class ImportResult:
    items: list[Rule | Marker]
    infos: dict[int, RuleInfo]
    problems: list[ImportProblem]
    static_tx: dict[str, str]  # tx values set by unconditional SecActions (crs-setup), in order


def import_nodes(nodes: list[Node], pinned: dict[str, str] | None = None) -> ImportResult:
    """Build the rules in order; `pinned` tx variables (lower-case, no `tx.`) ignore every setvar."""
    pinned = pinned or {}
    problems: list[ImportProblem] = []
    sequence: list[_Entry | SecMarker] = []
    by_id: dict[int, _Entry] = {}
    defaults = BUILTIN_DEFAULT
    for node in nodes:
        if isinstance(node, SecRule):
            entry = _Entry(node, defaults)
            sequence.append(entry)
            if node.id is not None:
                by_id[node.id] = entry
        elif isinstance(node, SecMarker):
            sequence.append(node)
        elif isinstance(node, SecDefaultAction):
            defaults = node.actions
        else:
            _apply_directive(node, sequence, by_id, problems)
    items: list[Rule | Marker] = []
    infos: dict[int, RuleInfo] = {}
    static_tx: dict[str, str] = {}
    seen: set[int] = set()
    for item in sequence:
        if isinstance(item, SecMarker):
            items.extend(Marker(item.name, phase) for phase in Phase)
            continue
        if item.removed:
            continue
        rule, info = _build_entry(item, pinned, problems, seen)
        if info is not None:
            infos[info.id] = info
        if rule is not None:
            items.append(rule)
            if item.node.is_action and len(item.node.parts) == 1:
                _static_setvars(rule, static_tx)
    return ImportResult(items, infos, problems, static_tx)


def _static_setvars(rule: Rule, static_tx: dict[str, str]) -> None:
    for action in rule.head.actions:
        if isinstance(action, Action) and "%{" not in action.argument and "=" in action.argument:
            name, _, value = action.argument.partition("=")
            key = name.strip().lower().removeprefix("tx.")
            if not value.startswith(("+", "-")):
                static_tx[key] = value


def _apply_directive(
    node: Node, sequence: list, by_id: dict[int, _Entry], problems: list[ImportProblem]
) -> None:
    """Exclusion directives act on the rules defined before them (ModSecurity 2 at config time)."""
    where = getattr(node, "where", Where("?", 0))
    entries = [e for e in sequence if isinstance(e, _Entry)]
    if isinstance(node, RemoveById):
        for entry in entries:
            rid = entry.node.id
            if rid is not None and any(lo <= rid <= hi for lo, hi in node.ranges):
                entry.removed = True
    elif isinstance(node, RemoveByPattern):
        try:
            pattern = compile_pcre(node.pattern)
        except RegexError as exc:
            problems.append(ImportProblem(where.file, where.line, None, f"bad pattern: {exc}", False))
            return
        for entry in entries:
            values = [v or "" for k, v in entry.node.head.actions if k.lower() == node.by]
            if any(pattern.search(v) for v in values):
                entry.removed = True
    elif isinstance(node, UpdateTarget):
        for entry in _selected(node, entries, problems):
            if node.replaced is not None:
                entry.replaced_targets.append((node.replaced, node.targets))
            else:
                entry.extra_targets.append(node.targets)
    elif isinstance(node, UpdateAction):
        entry = by_id.get(node.rule_id)
        if entry is None:
            problems.append(
                ImportProblem(
                    where.file, where.line, node.rule_id, "SecRuleUpdateActionById: no such rule", False
                )
            )
        else:
            entry.extra_actions.extend(node.actions)
    elif isinstance(node, Other):
        return


def _selected(node: UpdateTarget, entries: list[_Entry], problems: list[ImportProblem]) -> list[_Entry]:
    if node.by == "id":
        try:
            ranges = parse_id_ranges(node.selector)
        except ValueError:
            problems.append(
                ImportProblem(node.where.file, node.where.line, None, f"bad rule id {node.selector!r}", False)
            )
            return []
        return [
            e for e in entries if e.node.id is not None and any(lo <= e.node.id <= hi for lo, hi in ranges)
        ]
    try:
        pattern = compile_pcre(node.selector)
    except RegexError as exc:
        problems.append(ImportProblem(node.where.file, node.where.line, None, str(exc), False))
        return []
    return [
        e
        for e in entries
        if any(pattern.search(v or "") for k, v in e.node.head.actions if k.lower() == node.by)
    ]


def _build_entry(
    entry: _Entry, pinned: dict[str, str], problems: list[ImportProblem], seen: set[int]
) -> tuple[Rule | None, RuleInfo | None]:
    node = entry.node
    head = node.head
    rule_id = node.id
    where = node.where
    notes: list[str] = []
    if rule_id is None:
        problems.append(ImportProblem(where.file, where.line, None, "rule without a numeric id"))
        return None, None
    head_actions = _merged(entry.defaults, head.actions + tuple(entry.extra_actions))
    phase = _phase(head_actions)
    logged = _logged(head_actions)
    tags = tuple(v or "" for k, v in head_actions if k.lower() == "tag")
    paranoia = _paranoia(tags)
    info = RuleInfo(rule_id, where.file, where.line, phase or 0, paranoia, logged, loaded=False)
    if rule_id in seen:
        problems.append(ImportProblem(where.file, where.line, rule_id, "duplicate rule id"))
        return None, info
    seen.add(rule_id)
    try:
        if phase not in (1, 2, 3, 4):
            raise Unsupported(f"phase {phase} (logging) is not run by LogoutGuard")
        links = []
        for index, part in enumerate(node.parts):
            actions = head_actions if index == 0 else _merged(entry.defaults, part.actions)
            targets = part.targets
            if index == 0:
                targets = _update_targets(targets, entry)
            links.append(_build_link(part, targets, actions, pinned, notes, is_action=node.is_action))
        disruptive = _disruptive(head_actions, entry.defaults)
        skip_after = _last(head_actions, "skipafter")
        if _last(head_actions, "skip") is not None:
            raise Unsupported("action 'skip' (count-based skipping) is not supported; use skipAfter")
    except Unsupported as exc:
        problems.append(ImportProblem(where.file, where.line, rule_id, str(exc)))
        return None, info
    for note in dict.fromkeys(notes):  # once per rule and reason
        problems.append(ImportProblem(where.file, where.line, rule_id, note, skipped=False))
    severity = severity_name(_last(head_actions, "severity") or "")
    rule = Rule(
        id=rule_id,
        msg=_last(head_actions, "msg") or "",
        phase=Phase(phase),
        head=links[0],
        chain=tuple(links[1:]),
        severity=severity or "notice",
        score=SEVERITY_SCORES.get(severity, 0),
        paranoia=paranoia,
        category=_category(tags, where.file),
        tags=tags,
        source=f"{where.file}:{where.line}",
        disruptive=disruptive,
        skip_after=skip_after,
        scoring=False,  # CRS scores through its own TX variables (setvar), not per match
    )
    return rule, RuleInfo(rule_id, where.file, where.line, phase, paranoia, logged, loaded=True)


def _merged(defaults: ActionList, actions: ActionList) -> ActionList:
    """ModSecurity 2 merges every rule (and chain link) with the SecDefaultAction in force."""
    return tuple(defaults) + tuple(actions)


def _last(actions: ActionList, name: str) -> str | None:
    value = None
    for key, val in actions:
        if key.lower() == name:
            value = val if val is not None else ""
    return value


def _phase(actions: ActionList) -> int | None:
    text = (_last(actions, "phase") or "2").strip().lower()
    if text in PHASE_NAMES:
        return PHASE_NAMES[text]
    return int(text) if text.isdigit() else None


def _logged(actions: ActionList) -> bool:
    log = audit = True
    for key, _ in actions:
        key = key.lower()
        if key == "log":
            log = True
        elif key == "nolog":
            log = audit = False
        elif key == "auditlog":
            audit = True
        elif key == "noauditlog":
            audit = False
    return log or audit


def _paranoia(tags: tuple[str, ...]) -> int:
    for tag in tags:
        if tag.startswith("paranoia-level/") and tag[15:].isdigit():
            return int(tag[15:])
    return 1


def _category(tags: tuple[str, ...], file: str) -> str:
    for tag in tags:
        if tag.startswith("attack-"):
            return tag[7:]
    m = re.search(r"-(\d{3})-([A-Z-]+)\.conf$", file)
    return m.group(2).lower() if m else "crs"


def _disruptive(actions: ActionList, defaults: ActionList) -> str:
    chosen = "pass"
    for key, _ in actions:
        key = key.lower()
        if key in DISRUPTIVE:
            chosen = key
    if chosen == "block":
        chosen = "pass"
        for key, _ in defaults:
            if key.lower() in DISRUPTIVE - {"block"}:
                chosen = key.lower()
    if chosen in ("drop", "redirect"):
        return "deny"  # both stop the request: the verdict is a block, the policy picks the response
    if chosen in ("allow", "proxy"):
        raise Unsupported(f"disruptive action '{chosen}' is not supported")
    return "deny" if chosen == "deny" else "pass"


def _update_targets(targets: str, entry: _Entry) -> str:
    for old, new in entry.replaced_targets:
        items = [t for t in _split_targets(targets)]
        targets = "|".join(new if t == old else t for t in items)
    for extra in entry.extra_targets:
        targets = f"{targets}|{extra}" if targets else extra
    return targets


def _split_targets(text: str) -> list[str]:
    return [name + (f":{value}" if value is not None else "") for name, value in parse_generic(text)]


def _build_link(
    part: RulePart,
    targets_text: str,
    actions: ActionList,
    pinned: dict[str, str],
    notes: list[str],
    *,
    is_action: bool,
) -> Link:
    if is_action and not targets_text:
        targets: tuple[Target, ...] = (Target("REQUEST_METHOD"),)  # SecAction: one unconditional value
        exclusions: tuple[Target, ...] = ()
    else:
        targets, exclusions = parse_targets(targets_text, notes)
    transforms = _transforms(actions)
    fns = tuple(TRANSFORMATIONS[name] for name in transforms)
    operator = build_operator(part.operator, Path(part.where.file).parent)
    link_actions: list[Action | Ctl] = []
    for key, value in actions:
        key_l = key.lower()
        if key_l == "setvar":
            action = _setvar(value or "", pinned, notes)
            if action is not None:
                link_actions.append(action)
        elif key_l == "ctl":
            action = _ctl(value or "", notes)
            if action is not None:
                link_actions.append(action)
        elif key_l in PERSISTENCE:
            notes.append(f"action '{key}' dropped: persistent collections are not kept")
        elif key_l == "exec":
            notes.append("action 'exec' dropped: LogoutGuard runs no external scripts")
        elif key_l in ("append", "prepend"):
            notes.append(f"action '{key}' dropped: response bodies are not modified")
        elif key_l not in METADATA | DISRUPTIVE | {
            "id",
            "phase",
            "chain",
            "t",
            "capture",
            "multimatch",
            "skipafter",
            "skip",
        }:
            raise Unsupported(f"unknown action '{key}'")
    return Link(
        targets=targets,
        exclusions=exclusions,
        transforms=transforms,
        transform_fns=fns,
        operator=operator,
        multi_match=any(k.lower() == "multimatch" for k, _ in actions),
        capture=any(k.lower() == "capture" for k, _ in actions),
        actions=tuple(link_actions),
    )


def parse_targets(text: str, notes: list[str]) -> tuple[tuple[Target, ...], tuple[Target, ...]]:
    """`ARGS|!ARGS:foo|&TX:x|REQUEST_COOKIES:/^sess/` -> (targets, exclusions)."""
    try:
        items = parse_generic(text)
    except ParseError as exc:
        raise Unsupported(f"bad target list {text!r}: {exc}") from None
    targets: list[Target] = []
    exclusions: list[Target] = []
    for name, key in items:
        try:
            excluded, target = target_of(name, key, also=ADAPTER_VARIABLES | PERSISTENT_COLLECTIONS)
        except TargetError as exc:
            raise Unsupported(str(exc)) from None
        if target.collection in PERSISTENT_COLLECTIONS:
            notes.append(f"{target.collection} is a persistent collection: always empty in LogoutGuard")
        (exclusions if excluded else targets).append(target)
    if not targets:
        raise Unsupported(f"no target in {text!r}")
    return tuple(targets), tuple(exclusions)


def _transforms(actions: ActionList) -> tuple[str, ...]:
    names: list[str] = []
    for key, value in actions:
        if key.lower() != "t":
            continue
        raw = (value or "").strip()
        if raw.lower() == "none":
            names.clear()
            continue
        name = transformation_name(raw)
        if name not in TRANSFORMATIONS:
            raise Unsupported(f"transformation t:{raw} is not supported")
        names.append(name)
    return tuple(names)


def transformation_name(raw: str) -> str:
    """`urlDecodeUni` -> `url_decode_uni` (registry naming), with ModSecurity's aliases."""
    alias = TRANSFORMATION_ALIASES.get(raw.lower())
    return alias or re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", raw).lower()


def operator_name(raw: str) -> str:
    alias = OPERATOR_ALIASES.get(raw.lower())
    return alias or re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", raw).lower()


def build_operator(text: str, rules_dir: Path) -> Operator:
    """`!@rx foo` / `@pmFromFile x.data` / `foo` (implicit @rx) -> Operator with its predicate."""
    negated = text.startswith("!")
    body = text[1:] if negated else text
    if body.startswith("@"):
        raw, _, argument = body[1:].partition(" ")
        argument = argument.lstrip(" ")
    else:
        raw, argument = "rx", body
    name = operator_name(raw)
    factory = OPERATORS.get(name)
    if factory is None:
        if name in ("detect_sqli", "detect_xss"):
            raise Unsupported(f"@{raw} needs libinjection (pip install 'logoutguard[libinjection]')")
        raise Unsupported(f"operator @{raw} is not supported")
    try:
        predicate = factory(argument, OperatorContext(rules_dir=rules_dir))
    except OperatorError as exc:
        raise Unsupported(f"@{raw}: {exc}") from None
    return Operator(name, argument, negated, predicate)


def _setvar(argument: str, pinned: dict[str, str], notes: list[str]) -> Action | None:
    expression = argument.strip()
    name = expression.lstrip("!").partition("=")[0].strip().lower()
    collection, dot, key = name.partition(".")
    if not dot or collection != "tx":
        notes.append(f"setvar:{argument} dropped: only the TX collection is kept")
        return None
    if key in pinned:
        return None  # our option overrides crs-setup / 901 for this variable
    return Action("setvar", expression)


def _ctl(argument: str, notes: list[str]) -> Ctl | None:
    name = argument.partition("=")[0].strip().lower()
    if name in CTL_SETTINGS:
        return Ctl.parse(argument)
    if name in CTL_IGNORED:
        return None
    notes.append(f"ctl:{argument} dropped: not supported")
    return None
