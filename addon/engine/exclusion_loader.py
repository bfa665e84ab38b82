"""Exclusion files (YAML) -> Exclusions, checked like rule files: every problem with file, entry, field and reason.

```yaml
exclusions:
  - reason: the CMS editor posts HTML in 'content'
    rules: [941100, 941110-941190]    # rule ids and id ranges ...
    tags: [attack-xss]                # ... and/or rule tags
    targets: ["ARGS:content"]         # only these targets; none: the whole rules
    when: {path_prefix: /cms/, method: POST, host: cms.example.com}   # none: every request
    ruleset: crs                      # ours | crs; none: both
```

Rule ids, tags and targets are checked against the rulesets in force (did-you-mean hints for a
near miss): an exclusion that names no rule, or a target none of its rules inspects, excludes
nothing and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .exclusions import CRS, OURS, RULESETS, Condition, Exclusion, Exclusions, host_name
from .pcre import RegexError, compile_pcre
from .rules import Ctl, IdRanges, Rule, Ruleset, Target, id_ranges
from .targets import TargetError, did_you_mean, parse_target
from .transaction import byte_text

_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
_ONE_OR_MORE = {"anyOf": [{"type": "string", "minLength": 1}, _NAMES]}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["exclusions"],
    "properties": {
        "description": {"type": "string"},
        "exclusions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "anyOf": [{"required": ["rules"]}, {"required": ["tags"]}],
                "properties": {
                    "reason": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "anyOf": [
                                {"type": "integer", "minimum": 1},
                                {"type": "string", "pattern": r"^\s*\d+\s*(-\s*\d+\s*)?$"},
                            ]
                        },
                    },
                    "tags": _NAMES,
                    "targets": _NAMES,
                    "ruleset": {"enum": list(RULESETS)},
                    "when": {
                        "type": "object",
                        "additionalProperties": False,
                        "minProperties": 1,
                        "properties": {
                            "path": {"type": "string", "pattern": "^/"},
                            "path_prefix": {"type": "string", "pattern": "^/"},
                            "path_regex": {"type": "string", "minLength": 1},
                            "method": _ONE_OR_MORE,
                            "host": _ONE_OR_MORE,
                        },
                    },
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
_METHOD = re.compile(r"^[A-Za-z]+$")
RULESET_NAMES = {OURS: "our rules", CRS: "the OWASP CRS"}


@dataclass(frozen=True)
class ExclusionProblem:
    file: str
    entry: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = self.file if self.entry is None else f"{self.file} exclusions[{self.entry}]"
        if self.field:
            where += f" field '{self.field}'"
        return f"{where}: {self.reason}"


class ExclusionsError(ValueError):
    def __init__(self, problems: list[ExclusionProblem]):
        self.problems = problems
        if len(problems) == 1:
            super().__init__(str(problems[0]))
        else:
            lines = "\n".join(map(str, problems))
            super().__init__(f"{len(problems)} problems in exclusion files:\n{lines}")


def load_exclusions(paths: Iterable[str | Path], rulesets: Mapping[str, Ruleset]) -> Exclusions:
    """The exclusions of the files, checked against `rulesets` (OURS, and CRS when it is loaded).
    Raises ExclusionsError with every problem."""
    exclusions, problems = lint_exclusions(paths, rulesets)
    if problems:
        raise ExclusionsError(problems)
    return exclusions


def lint_exclusions(
    paths: Iterable[str | Path], rulesets: Mapping[str, Ruleset]
) -> tuple[Exclusions, list[ExclusionProblem]]:
    problems: list[ExclusionProblem] = []
    items: list[Exclusion] = []
    known = _Known(rulesets)
    for path in paths:
        items.extend(_load_file(str(path), known, problems))
    return Exclusions(tuple(items)), problems


class _Known:
    """The rules of each loaded ruleset, by id and by tag, for checking what an exclusion names."""

    def __init__(self, rulesets: Mapping[str, Ruleset]):
        self.rules = {name: ruleset.rules for name, ruleset in rulesets.items()}

    def selected(self, names: frozenset[str], ranges: IdRanges, tags: tuple[str, ...]) -> list[Rule]:
        return [
            rule
            for name in names
            for rule in self.rules.get(name, ())
            if any(low <= rule.id <= high for low, high in ranges) or set(tags) & set(rule.tags)
        ]

    def ids(self, names: frozenset[str]) -> set[int]:
        return {rule.id for name in names for rule in self.rules.get(name, ())}

    def tags(self, names: frozenset[str]) -> set[str]:
        return {tag for name in names for rule in self.rules.get(name, ()) for tag in rule.tags}


def _load_file(file: str, known: _Known, problems: list[ExclusionProblem]) -> list[Exclusion]:
    try:
        data = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(ExclusionProblem(file, None, "", f"cannot read: {exc.strerror or exc}"))
        return []
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problems.append(ExclusionProblem(file, None, "", f"not valid YAML: {exc}".replace("\n", " ")))
        return []
    if not isinstance(data, dict):
        reason = "an exclusions file is a mapping with an 'exclusions' list"
        problems.append(ExclusionProblem(file, None, "", reason))
        return []
    bad: dict[int, list[list[Any]]] = {}  # entry -> paths (in the entry) the schema refused
    for error in sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = list(error.absolute_path)
        entry = path[1] if len(path) >= 2 and path[0] == "exclusions" else None
        if entry is not None:
            path = path[2:]
            bad.setdefault(entry, []).append(path)
        problems.append(ExclusionProblem(file, entry, _field(path), _reason(error, path)))
    entries = data.get("exclusions")
    if not isinstance(entries, list):
        return []
    built = []
    for n, raw in enumerate(entries):
        if n not in bad:
            item = _build(file, n, raw, known, problems)
            if item is not None:
                built.append(item)
        elif isinstance(raw, dict) and all(bad[n]):  # the schema refused parts: check the rest too
            _build(file, n, _without(raw, bad[n]), known, problems)
    problems.sort(key=lambda p: -1 if p.entry is None else p.entry)  # in file order (the sort is stable)
    return built


def _without(raw: dict[str, Any], paths: list[list[Any]]) -> dict[str, Any]:
    """The entry less the fields the schema refused (in `when`, only the refused condition)."""
    kept = dict(raw)
    for path in paths:
        if path[0] == "when" and len(path) > 1 and isinstance(kept.get("when"), dict):
            kept["when"] = {k: v for k, v in kept["when"].items() if k != path[1]}
        else:
            kept.pop(path[0], None)
    if "rules" not in kept and "tags" not in kept:
        kept["rules"] = []
    return kept


def _field(path: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _reason(error: jsonschema.ValidationError, path: list[Any]) -> str:
    """The schema's message, in words for the cases an operator meets."""
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = [str(k) for k in error.instance if k not in allowed]
        return "; ".join(f"unknown field {k!r}{did_you_mean(k, allowed)}" for k in extra)
    if error.validator == "anyOf" and path == []:
        return "name the rules to exclude: 'rules' (ids, ranges) and/or 'tags'"
    if error.validator == "anyOf" and path[:1] == ["rules"]:
        return f"{error.instance!r} is not a rule id or a range such as 942100-942199"
    if error.validator == "anyOf" and path[:1] == ["when"]:
        return f"{error.instance!r}: expected a {path[-1]} or a list of them"
    return error.message


def _build(
    file: str, entry: int, raw: dict[str, Any], known: _Known, problems: list[ExclusionProblem]
) -> Exclusion | None:
    before = len(problems)

    def problem(field: str, reason: str) -> None:
        problems.append(ExclusionProblem(file, entry, field, reason))

    names = frozenset([raw["ruleset"]] if "ruleset" in raw else known.rules)
    if "ruleset" in raw and raw["ruleset"] not in known.rules:
        hint = " (set guard_crs)" if raw["ruleset"] == CRS else ""
        problem("ruleset", f"{RULESET_NAMES[raw['ruleset']]} is not loaded{hint}")
        return None
    where = " or ".join(RULESET_NAMES[n] for n in sorted(names, key=RULESETS.index))
    ranges = _ranges(raw.get("rules", ()), known.ids(names), where, problem)
    tags = tuple(raw.get("tags", ()))
    known_tags = known.tags(names)
    for n, tag in enumerate(tags):
        if tag not in known_tags:
            problem(f"tags[{n}]", f"no rule of {where} has the tag {tag!r}{did_you_mean(tag, known_tags)}")
    targets = _targets(raw.get("targets", ()), known.selected(names, ranges, tags), problem)
    when = _condition(raw.get("when"), problem)
    if len(problems) > before:
        return None
    return Exclusion(
        ctls=_ctls(ranges, tags, targets),
        when=when,
        rulesets=names,
        where=f"{file} exclusions[{entry}]",
        reason=raw.get("reason", ""),
    )


def _ranges(items: Iterable[int | str], ids: set[int], where: str, problem: Any) -> IdRanges:
    ranges: list[tuple[int, int]] = []
    for n, item in enumerate(items):
        (found,), _ = id_ranges([str(item).replace(" ", "")])
        low, high = found
        if low > high:
            problem(f"rules[{n}]", f"range {low}-{high} is empty (write the lower id first)")
        elif low == high and low not in ids:
            problem(f"rules[{n}]", f"no rule {low} in {where}{_nearest(low, ids)}")
        elif not any(low <= i <= high for i in ids):
            problem(f"rules[{n}]", f"no rule in {low}-{high} in {where}")
        else:
            ranges.append(found)
    return tuple(ranges)


def _nearest(rule_id: int, ids: set[int]) -> str:
    """` (did you mean 942100?)`: the loaded id numerically nearest, when it is in the same hundred."""
    near = min(ids, key=lambda i: (abs(i - rule_id), i), default=None)
    return f" (did you mean {near}?)" if near is not None and near // 100 == rule_id // 100 else ""


def _targets(items: Iterable[str], rules: list[Rule], problem: Any) -> tuple[Target, ...]:
    """The targets to remove; each must be one that at least one of the selected rules inspects."""
    inspected = {t.collection for rule in rules for link in rule.links for t in link.targets}
    targets = []
    for n, text in enumerate(items):
        try:
            excluded, target = parse_target(byte_text(text))
        except TargetError as exc:
            problem(f"targets[{n}]", str(exc))
            continue
        if excluded or target.count:
            bare = text.lstrip("!&")
            problem(f"targets[{n}]", f"write the target without '!' or '&' ({bare!r}): it is removed")
        elif rules and target.collection not in inspected:
            problem(
                f"targets[{n}]",
                f"none of the excluded rules inspects {target.collection} (they inspect "
                f"{', '.join(sorted(inspected))}){did_you_mean(target.collection, inspected)}",
            )
        else:
            targets.append(target)
    return tuple(targets)


def _condition(raw: dict[str, Any] | None, problem: Any) -> Condition | None:
    if raw is None:
        return None
    regex = None
    if "path_regex" in raw:
        try:
            regex = compile_pcre(byte_text(raw["path_regex"]))
        except RegexError as exc:
            problem("when.path_regex", f"bad regex: {exc}")
    methods = _listed(raw.get("method"))
    for method in methods:
        if not _METHOD.match(method):
            problem("when.method", f"{method!r} is not an HTTP method such as POST")
    return Condition(
        methods=frozenset(m.upper() for m in methods),
        hosts=frozenset(host_name(h) for h in _listed(raw.get("host"))),
        path=raw.get("path"),
        path_prefix=raw.get("path_prefix"),
        path_regex=regex,
    )


def _listed(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _ctls(ranges: IdRanges, tags: tuple[str, ...], targets: tuple[Target, ...]) -> tuple[Ctl, ...]:
    """The ctl actions the exclusion stands for (the SecLang it would be written as, as the value)."""
    text = " ".join(f"{low}" if low == high else f"{low}-{high}" for low, high in ranges)
    if not targets:
        by_id = (Ctl("ruleremovebyid", text, ids=ranges),) if ranges else ()
        by_tag = tuple(Ctl("ruleremovebytag", tag, pattern=re.compile(f"^{re.escape(tag)}$")) for tag in tags)
        return by_id + by_tag
    ctls: list[Ctl] = []
    for target in targets:
        if ranges:
            ctls.append(Ctl("ruleremovetargetbyid", f"{text};{target}", ids=ranges, target=target))
        ctls.extend(Ctl("ruleremovetargetbytag", f"{tag};{target}", target=target, tag=tag) for tag in tags)
    return tuple(ctls)
