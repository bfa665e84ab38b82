"""Test helpers: rules built in a line (Links and Rules from target, operator and argument text),
YAML rule files written from dicts, and requests built from their parts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from logoutguard.engine.loader import load_ruleset
from logoutguard.engine.operators import OPERATORS, OperatorContext
from logoutguard.engine.rules import Action, Ctl, Link, Operator, Phase, Rule, Ruleset
from logoutguard.engine.targets import parse_target
from logoutguard.engine.transaction import Transaction, build_transaction
from logoutguard.engine.transformations import TRANSFORMATIONS

CONTEXT = OperatorContext(rules_dir=Path(__file__).parent)


def link(
    targets: str | Iterable[str] = "ARGS",
    operator: str = "rx",
    argument: str = "x",
    *,
    transforms: Iterable[str] = (),
    negate: bool = False,
    multi_match: bool = False,
    capture: bool = False,
    actions: Iterable[Action | Ctl] = (),
) -> Link:
    parsed = [parse_target(t) for t in ([targets] if isinstance(targets, str) else targets)]
    names = tuple(transforms)
    return Link(
        targets=tuple(t for excluded, t in parsed if not excluded),
        exclusions=tuple(t for excluded, t in parsed if excluded),
        transforms=names,
        transform_fns=tuple(TRANSFORMATIONS[n] for n in names),
        operator=Operator(operator, argument, negate, OPERATORS[operator](argument, CONTEXT)),
        multi_match=multi_match,
        capture=capture,
        actions=tuple(actions),
    )


def rule(rule_id: int, head: Link, *chain: Link, phase: int = 2, **fields: Any) -> Rule:
    return Rule(
        id=rule_id,
        msg=fields.pop("msg", f"rule {rule_id}"),
        phase=Phase(phase),
        head=head,
        chain=chain,
        **fields,
    )


def yaml_rules(folder: Path, *rules: dict[str, Any], name: str = "rules.yaml", **top: Any) -> Ruleset:
    """Write the rules (msg and examples filled in when missing) as a YAML rule file and load it."""
    for raw in rules:
        raw.setdefault("msg", f"rule {raw['id']}")
        raw.setdefault("examples", {"match": ["x"], "no_match": ["y"]})
    path = folder / name
    path.write_text(yaml.safe_dump({"category": "test", **top, "rules": list(rules)}), encoding="utf-8")
    return load_ruleset([path])


def request(
    uri: str = "/",
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | str | None = None,
) -> Transaction:
    return build_transaction(
        method=method,
        uri=uri,
        headers=[("Host", "example.test"), *headers],
        body=body,
        client_addr="192.0.2.10",
    )
