"""SecLang directives -> an AST (SecRule chains, SecAction, SecMarker, defaults, exclusions), with file and line.

Only the shape is checked here (argument counts, action-list syntax, chains); meaning (operators,
variables, transformations) is the importer's job. Directives this module does not know are kept
as `Other` so that the report can list them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.rules import id_ranges
from .actions import ParseError, parse_generic
from .lexer import Directive, directives

ActionList = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class RulePart:
    """One SecRule (or the SecAction pseudo-rule): targets text, operator text, actions."""

    targets: str
    operator: str
    actions: ActionList
    where: Where

    def action(self, name: str) -> str | None:
        """The last value of an action (ModSecurity keeps the last `id`, `phase`, ...)."""
        value = None
        for key, val in self.actions:
            if key.lower() == name.lower():
                value = val if val is not None else ""
        return value

    def has(self, name: str) -> bool:
        return any(key.lower() == name.lower() for key, _ in self.actions)


@dataclass(frozen=True, slots=True)
class SecRule:
    """A rule with its chain links (`parts[0]` is the head); SecAction is a rule with no target."""

    parts: tuple[RulePart, ...]
    is_action: bool = False

    @property
    def head(self) -> RulePart:
        return self.parts[0]

    @property
    def where(self) -> Where:
        return self.head.where

    @property
    def id(self) -> int | None:
        value = self.head.action("id")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class SecMarker:
    name: str
    where: Where


@dataclass(frozen=True, slots=True)
class SecDefaultAction:
    actions: ActionList
    where: Where


@dataclass(frozen=True, slots=True)
class RemoveById:
    """SecRuleRemoveById: ids and ranges (`942100 942200-942299`)."""

    ranges: tuple[tuple[int, int], ...]
    where: Where


@dataclass(frozen=True, slots=True)
class RemoveByPattern:
    """SecRuleRemoveByTag / ByMsg: the rules whose tag or msg the regex `pattern` finds."""

    by: str  # "tag" | "msg"
    pattern: str
    where: Where


@dataclass(frozen=True, slots=True)
class UpdateTarget:
    """SecRuleUpdateTargetById / ByTag / ByMsg: `selector` is the id spec, tag or msg."""

    by: str  # "id" | "tag" | "msg"
    selector: str
    targets: str
    replaced: str | None
    where: Where


@dataclass(frozen=True, slots=True)
class UpdateAction:
    """SecRuleUpdateActionById: replace the rule's disruptive action, add/replace others."""

    rule_id: int
    actions: ActionList
    where: Where


@dataclass(frozen=True, slots=True)
class Other:
    """Any other directive (SecRuleEngine, SecComponentSignature, ...): kept for the report."""

    name: str
    args: tuple[str, ...]
    where: Where


Node = (
    SecRule
    | SecMarker
    | SecDefaultAction
    | RemoveById
    | RemoveByPattern
    | UpdateTarget
    | UpdateAction
    | Other
)


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    where: Where
    reason: str
    rule_id: int | None = None

    def __str__(self) -> str:
        rule = f" rule {self.rule_id}" if self.rule_id is not None else ""
        return f"{self.where}{rule}: {self.reason}"


@dataclass
class ParseResult:
    nodes: list[Node] = field(default_factory=list)
    problems: list[SyntaxProblem] = field(default_factory=list)


def parse_file(path: str | Path, result: ParseResult | None = None) -> ParseResult:
    """Parse one config file (read as latin-1: every byte kept) into `result`."""
    path = Path(path)
    result = result or ParseResult()
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as exc:
        result.problems.append(SyntaxProblem(Where(str(path), 0), f"cannot read: {exc}"))
        return result
    return parse_text(text, str(path), result)


def parse_text(text: str, file: str, result: ParseResult | None = None) -> ParseResult:
    result = result or ParseResult()
    build(directives(text, file), result)
    return result


def build(items: Iterable[Directive], result: ParseResult) -> None:
    """Directives -> nodes; a rule carrying `chain` adopts the following SecRule(s)."""
    chain: list[RulePart] | None = None
    chain_is_action = False
    for directive in items:
        where = Where(directive.file, directive.line)
        name = directive.name.lower()
        if name in ("secrule", "secaction"):
            part = _rule_part(directive, where, result)
            if part is None:
                continue
            if chain is not None:
                if name == "secaction":
                    _close_chain(chain, chain_is_action, result, "a chain must continue with SecRule")
                    chain = None
                else:
                    chain.append(part)
                    if not part.has("chain"):
                        result.nodes.append(SecRule(tuple(chain), chain_is_action))
                        chain = None
                    continue
            if part.has("chain"):
                chain, chain_is_action = [part], name == "secaction"
            else:
                result.nodes.append(SecRule((part,), name == "secaction"))
            continue
        if chain is not None:
            _close_chain(chain, chain_is_action, result, f"chain interrupted by {directive.name}")
            chain = None
        node = _other_node(directive, where, result)
        if node is not None:
            result.nodes.append(node)
    if chain is not None:
        _close_chain(chain, chain_is_action, result, "chain not continued before the end of the file")


def _close_chain(chain: list[RulePart], is_action: bool, result: ParseResult, reason: str) -> None:
    rule = SecRule(tuple(chain), is_action)
    result.problems.append(SyntaxProblem(rule.where, reason, rule.id))


def _rule_part(directive: Directive, where: Where, result: ParseResult) -> RulePart | None:
    args = directive.args
    if directive.name.lower() == "secaction":
        if len(args) != 1:
            result.problems.append(SyntaxProblem(where, f"SecAction takes 1 argument, got {len(args)}"))
            return None
        targets, operator, action_text = "", "@unconditionalMatch", args[0]
    else:
        if len(args) not in (2, 3):
            result.problems.append(SyntaxProblem(where, f"SecRule takes 2 or 3 arguments, got {len(args)}"))
            return None
        targets, operator = args[0], args[1]
        action_text = args[2] if len(args) == 3 else ""
    try:
        actions = tuple(parse_generic(action_text))
    except ParseError as exc:
        result.problems.append(SyntaxProblem(where, f"bad action list: {exc}"))
        return None
    return RulePart(targets, operator, actions, where)


def _other_node(directive: Directive, where: Where, result: ParseResult) -> Node | None:
    name, args = directive.name.lower(), directive.args

    def need(count: int | tuple[int, ...]) -> bool:
        counts = (count,) if isinstance(count, int) else count
        if len(args) in counts:
            return True
        result.problems.append(
            SyntaxProblem(where, f"{directive.name} takes {count} argument(s), got {len(args)}")
        )
        return False

    try:
        if name == "secmarker":
            return SecMarker(args[0], where) if need(1) else None
        if name == "secdefaultaction":
            return SecDefaultAction(tuple(parse_generic(args[0])), where) if need(1) else None
        if name == "secruleremovebyid":
            return RemoveById(tuple(r for a in args for r in parse_id_ranges(a)), where)
        if name in ("secruleremovebytag", "secruleremovebymsg"):
            return RemoveByPattern(name.removeprefix("secruleremoveby"), args[0], where) if need(1) else None
        if name in ("secruleupdatetargetbyid", "secruleupdatetargetbytag", "secruleupdatetargetbymsg"):
            if not need((2, 3)):
                return None
            by = name.removeprefix("secruleupdatetargetby")
            return UpdateTarget(by, args[0], args[1], args[2] if len(args) == 3 else None, where)
        if name == "secruleupdateactionbyid":
            if not need(2):
                return None
            return UpdateAction(int(args[0].split(":")[0]), tuple(parse_generic(args[1])), where)
    except (ParseError, ValueError) as exc:
        result.problems.append(SyntaxProblem(where, f"{directive.name}: {exc}"))
        return None
    return Other(directive.name, args, where)


def parse_id_ranges(text: str) -> list[tuple[int, int]]:
    """`"942100 942200-942299,1"` -> [(942100, 942100), (942200, 942299), (1, 1)]; ValueError naming
    a piece that is neither an id nor a range."""
    ranges, bad = id_ranges(text.replace(",", " ").split())
    if bad:
        raise ValueError(f"bad rule id {bad[0]!r}")
    return list(ranges)
