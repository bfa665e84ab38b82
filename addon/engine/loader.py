"""Loader: YAML rule files -> a validated Ruleset. Every rule-file check lives here.

Problems name the file, the rule id, the field and the reason; `lint` collects all of them,
`load_ruleset` raises RulesetError carrying all of them. What a rule compares with request data
(targets, operator arguments, setvar expressions) is handed to the engine as byte text: a non-ASCII
character as its UTF-8 bytes, as ModSecurity reads a UTF-8 rule file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .operators import OPERATORS, OPTIONAL_OPERATORS, OperatorContext, OperatorError
from .rules import SEVERITY_SCORES, Action, Examples, Link, Marker, Operator, Phase, Rule, Ruleset, Target
from .targets import TargetError, did_you_mean, parse_target
from .transaction import byte_text
from .transformations import TRANSFORMATIONS


def shipped_rules_dir() -> Path:
    """The default ruleset's folder: the package `logoutguard.rules` (the repository's rules/ in an editable
    checkout, `site-packages/logoutguard/rules` from a wheel), found through importlib.resources."""
    folder = resources.files("logoutguard.rules")
    if not isinstance(folder, Path):  # e.g. a zipped install: rule files and data/ must be real files
        raise RuntimeError(f"the shipped rules are not a folder on disk ({folder}): install the package unzipped")
    return folder


DEFAULT_RULES_DIR = shipped_rules_dir()
# libyaml's parser when PyYAML has it (about ten times faster than the pure-Python one)
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Problem:
    file: str
    rule_id: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.rule_id is not None:
            where += f" rule {self.rule_id}"
        if self.field:
            where += f" field '{self.field}'"
        return f"{where}: {self.reason}"


class RulesetError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        if len(problems) == 1:  # one line, e.g. `guard_rules: /nope: no such file or folder`
            super().__init__(shown)
        else:
            super().__init__(f"{len(problems)} problem(s) in rule files:\n{shown}{more}")


def _schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("rule-schema.json").read_text()
    return json.loads(text)


_VALIDATOR = jsonschema.Draft202012Validator(_schema())


def rule_files(paths: list[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Expand folders into their *.yaml files (sorted); report paths that do not exist."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, "", "no such file or folder"))
    return files, problems


def lint(paths: list[str | Path]) -> tuple[Ruleset | None, list[Problem]]:
    """Load everything, collecting every problem. The ruleset is None when there is any problem.

    A rule whose operator needs an optional package that is not installed (libinjection's detect_sqli
    and detect_xss) is no problem: it is left out, and `Ruleset.off` says which and why."""
    files, problems = rule_files(paths)
    rules: list[Rule | Marker] = []
    seen: dict[int, str] = {}
    off: list[Problem] = []  # rules left out: an optional operator is not installed
    for file in files:
        for rule in _load_file(file, problems, off):
            if rule.id in seen:
                problems.append(
                    Problem(str(file), rule.id, "id", f"duplicate id: already defined in {seen[rule.id]}")
                )
                continue
            seen[rule.id] = str(file)
            rules.append(rule)
    if not files and not problems:
        problems.append(Problem(", ".join(map(str, paths)) or "(none)", None, "", "no rule files found"))
    if problems:
        return None, problems
    left_out = tuple((p.rule_id or 0, str(p)) for p in off)
    return Ruleset.build(rules, tuple(str(f) for f in files), off=left_out), []


def load_ruleset(paths: list[str | Path]) -> Ruleset:
    ruleset, problems = lint(paths)
    if problems or ruleset is None:
        raise RulesetError(problems)
    return ruleset


def _load_file(file: Path, problems: list[Problem], off: list[Problem]) -> list[Rule]:
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=YamlLoader)  # a safe loader
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(file), None, "", f"cannot read: {exc}"))
        return []
    except yaml.YAMLError as exc:
        problems.append(Problem(str(file), None, "", f"not valid YAML: {exc}".replace("\n", " ")))
        return []
    if not isinstance(data, dict):
        problems.append(Problem(str(file), None, "", "a rule file is a mapping with a 'rules' list"))
        return []
    schema_errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    bad_indexes: set[int] = set()
    for error in schema_errors:
        path = list(error.absolute_path)
        rule_id = None
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            bad_indexes.add(path[1])
            item = data["rules"][path[1]]
            rule_id = item.get("id") if isinstance(item, dict) else None
            path = path[2:]
        problems.append(Problem(str(file), rule_id, _field(path), _schema_reason(error)))
    if any(not e.absolute_path or e.absolute_path[0] != "rules" for e in schema_errors):
        return []
    defaults = {k: data[k] for k in ("category", "paranoia", "phase") if k in data}
    rules = []
    for index, raw in enumerate(data.get("rules") or []):
        if index in bad_indexes or raw.get("disabled"):
            continue
        rule = _build_rule(file, raw, defaults, problems, off)
        if rule is not None:
            rules.append(rule)
    return rules


def _field(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_reason(error: jsonschema.ValidationError) -> str:
    if error.validator == "unevaluatedProperties":
        return f"unknown field(s): {error.message.split('(')[-1].rstrip(')')}"
    return error.message


def _build_rule(
    file: Path, raw: dict[str, Any], defaults: dict[str, Any], problems: list[Problem], off: list[Problem]
) -> Rule | None:
    """The rule, or None: with its problems added, or (when its only lack is an optional operator that
    is not installed) with the reason it is left out added to `off`."""
    rule_id = raw["id"]
    before = len(problems)
    missing: list[Problem] = []

    def problem(field: str, reason: str, unavailable: bool = False) -> None:
        (missing if unavailable else problems).append(Problem(str(file), rule_id, field, reason))

    head = _build_link(file.parent, raw, "", problem)
    chain = [
        _build_link(file.parent, part, f"chain[{n}].", problem) for n, part in enumerate(raw.get("chain", []))
    ]
    severity = raw.get("severity", "critical")
    phase = raw.get("phase", defaults.get("phase", 2))
    category = raw.get("category", defaults.get("category"))
    if category is None:
        problem("category", "missing (set it on the rule or at the top of the file)")
    examples = raw["examples"]
    if examples.get("target") is not None:
        _parse_target(examples["target"], "examples.target", problem)
    if len(problems) == before and missing:
        off.extend(missing)
    if len(problems) > before or missing or head is None or any(c is None for c in chain):
        return None
    return Rule(
        id=rule_id,
        msg=raw["msg"],
        phase=Phase(phase),
        head=head,
        chain=tuple(c for c in chain if c is not None),
        severity=severity,
        score=raw.get("score", SEVERITY_SCORES[severity]),
        paranoia=raw.get("paranoia", defaults.get("paranoia", 1)),
        category=category,
        tags=tuple(raw.get("tags", ())),
        examples=Examples(
            match=tuple(_freeze(e) for e in examples["match"]),
            no_match=tuple(_freeze(e) for e in examples["no_match"]),
            target=examples.get("target"),
        ),
        source=str(file),
        scoring=raw.get("scoring", True),
        disruptive="deny" if raw.get("deny") else "pass",
    )


def _freeze(example: Any) -> Any:
    if isinstance(example, dict):
        return tuple((k, tuple(v.items()) if isinstance(v, dict) else v) for k, v in example.items())
    return example


def _build_link(rules_dir: Path, raw: dict[str, Any], prefix: str, problem: Any) -> Link | None:
    targets: list[Target] = []
    exclusions: list[Target] = []
    parsed_all = True
    for n, text in enumerate(raw["targets"]):
        parsed = _parse_target(text, f"{prefix}targets[{n}]", problem)
        if parsed is None:
            parsed_all = False
            continue
        excluded, target = parsed
        (exclusions if excluded else targets).append(target)
    if not targets and parsed_all:
        problem(f"{prefix}targets", "needs at least one target that is not an exclusion")
    fns = []
    for n, name in enumerate(raw.get("transforms", [])):
        fn = TRANSFORMATIONS.get(name)
        if fn is None:
            problem(
                f"{prefix}transforms[{n}]",
                f"unknown transformation {name!r}{did_you_mean(name, TRANSFORMATIONS)}",
            )
        else:
            fns.append(fn)
    operator = _build_operator(rules_dir, raw, prefix, problem)
    actions = tuple(Action("setvar", byte_text(s)) for s in raw.get("setvar", []))
    if operator is None or not targets or len(fns) != len(raw.get("transforms", [])):
        return None
    return Link(
        targets=tuple(targets),
        exclusions=tuple(exclusions),
        transforms=tuple(raw.get("transforms", [])),
        transform_fns=tuple(fns),
        operator=operator,
        multi_match=raw.get("multi_match", False),
        capture=raw.get("capture", False),
        actions=actions,
    )


def _build_operator(rules_dir: Path, raw: dict[str, Any], prefix: str, problem: Any) -> Operator | None:
    name = raw["operator"]
    factory = OPERATORS.get(name)
    if factory is None and name in OPTIONAL_OPERATORS:  # degrade: the rule is left out, and says why
        extra = OPTIONAL_OPERATORS[name]
        problem(f"{prefix}operator", f"operator {name!r} needs {extra} (pip install '{extra}'): rule off", True)
        return None
    if factory is None:
        problem(f"{prefix}operator", f"unknown operator {name!r}{did_you_mean(name, OPERATORS)}")
        return None
    argument = byte_text(str(raw.get("argument", "")))
    try:
        predicate = factory(argument, OperatorContext(rules_dir=rules_dir))
    except OperatorError as exc:
        problem(f"{prefix}argument", str(exc))
        return None
    return Operator(name, argument, bool(raw.get("negate", False)), predicate)


def _parse_target(text: str, field: str, problem: Any) -> tuple[bool, Target] | None:
    try:
        return parse_target(byte_text(text))
    except TargetError as exc:
        problem(field, str(exc))
        return None
