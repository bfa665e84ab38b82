"""EvalState: the mutable per-transaction state of an evaluation (TX collection, matched vars, ctl)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .transaction import Transaction

if TYPE_CHECKING:
    from .prefilter import Prefilter
    from .rules import Target

MACRO = re.compile(r"%\{([^}]+)\}")


@dataclass(slots=True)
class EvalState:
    tx: Transaction
    paranoia: int = 1
    vars: dict[str, str] = field(default_factory=dict)  # the TX collection, lower-case keys
    matched_var: str = ""
    matched_var_name: str = ""
    matched_vars: list[tuple[str, str]] = field(default_factory=list)
    removed_ids: set[int] = field(default_factory=set)
    # ctl:ruleRemoveTargetById: (first rule id, last rule id, target) ...; ...ByTag: tag -> targets
    removed_targets: list[tuple[int, int, Target]] = field(default_factory=list)
    removed_targets_by_tag: dict[str, list[Target]] = field(default_factory=dict)
    force_request_body: bool = False
    body_processor: str | None = None  # ctl:requestBodyProcessor override
    removed_tags: list[re.Pattern[str]] = field(default_factory=list)  # ctl:ruleRemoveByTag patterns
    interrupted: bool = False  # a `deny` rule matched: no further rules or phases run
    engine_off: bool = False  # ctl:ruleEngine=Off: no further rules or phases run
    # Variables a body processor or adapter fills in (XML, MULTIPART_STRICT_ERROR, ...): name -> values
    extra_vars: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # (value, transformation names) -> transformed value; shared by all rules of the transaction
    # (evaluator._long_steps also keeps (long text, one transformation name) -> result here)
    transform_cache: dict[tuple[str, object], str] = field(default_factory=dict)
    # collection -> its (name, value) pairs; variables.keyed also keeps member-name indexes here
    collect_cache: dict[str, Any] = field(default_factory=dict)
    # The engine's prefilter (prefilter.py) and its per-transaction answers: what it derived from the
    # collections (valid as long as collect_cache is: cleared with it and on ctl), and inspected
    # value -> pattern ids that may match it ((number, long text) -> the hits of a chain's own
    # database, Prefilter._chain_scan).
    prefilter: Prefilter | None = None
    prefilter_cache: dict[object, Any] = field(default_factory=dict)
    scan_cache: dict[object, set[int] | frozenset[int]] = field(default_factory=dict)

    def expand(self, text: str) -> str:
        """Expand ModSecurity macros such as %{tx.score}, %{MATCHED_VAR}, %{REQUEST_HEADERS.Host}."""
        if "%{" not in text:
            return text
        return MACRO.sub(self._macro_value, text)

    def _macro_value(self, match: re.Match[str]) -> str:
        from .variables import lookup  # local: variables imports this module

        name = match.group(1)
        collection, _, key = name.partition(".")
        if key and collection in ("tx", "TX"):  # the CRS's common case (%{tx.x}): lookup's dict read
            return self.vars.get(key.lower(), "")
        values = lookup(self, collection.upper(), key or None)
        return values[0][1] if values else ""

    def set_var(self, expression: str) -> None:
        """Apply a setvar expression: `name=value`, `name=+n`, `name=-n`, `!name` (macros expanded)."""
        expression = expression.strip()
        if expression.startswith("!"):
            self.vars.pop(_tx_key(self.expand(expression[1:])), None)
            return
        name, eq, value = expression.partition("=")
        key = _tx_key(self.expand(name))
        if not eq:
            self.vars[key] = "1"
            return
        value = self.expand(value)
        if value[:1] in "+-" and value[1:].strip().lstrip("-").isdigit():
            current = _to_int(self.vars.get(key, "0"))
            delta = int(value[1:].strip())
            self.vars[key] = str(current + delta if value[0] == "+" else current - delta)
        else:
            self.vars[key] = value


def _tx_key(name: str) -> str:
    name = name.strip().lower()
    return name[3:] if name.startswith("tx.") else name


def _to_int(text: str) -> int:
    try:
        return int(text.strip() or 0)
    except ValueError:
        return 0
