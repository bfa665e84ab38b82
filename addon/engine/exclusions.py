"""Exclusions: rules, or targets of rules, switched off for the requests a condition selects, as ctl actions.

An exclusion is what a CRS operator writes as `SecRule REQUEST_FILENAME "@beginsWith /cms/"
"...,ctl:ruleRemoveTargetById=941100;ARGS:content"`: a condition on the request (none: every request)
and ctl actions (rules.Ctl: ruleRemoveById, ruleRemoveByTag, ruleRemoveTargetById,
ruleRemoveTargetByTag). The engine applies the actions of every exclusion whose condition holds to
the transaction's EvalState before its first rule runs — the same state the CRS's own ctl rules
change (removed_ids, removed_targets, ...), so there is one mechanism for both. Exclusion files
(YAML) are read by exclusion_loader.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .evaluator import apply_ctl
from .rules import Ctl
from .state import EvalState
from .transaction import Transaction
from .transformations import normalize_path_win

OURS = "ours"  # our YAML rules
CRS = "crs"  # the imported OWASP CRS
RULESETS = (OURS, CRS)


@dataclass(frozen=True, slots=True)
class Request:
    """What a condition looks at: the method (upper case), the Host without port (lower case), and
    the path percent-decoded and normalised (`..`, `.`, `//`, `\\`), so `/cms/../admin` is `/admin`."""

    method: str
    host: str
    path: str

    @classmethod
    def of(cls, tx: Transaction) -> Request:
        return cls(tx.method.upper(), host_name(tx.header("host") or ""), request_path(tx.path))


def host_name(host: str) -> str:
    """`Shop.Test:8080` -> `shop.test`; `[::1]:8080` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def request_path(raw: str) -> str:
    decoded = unquote_to_bytes(raw.encode("latin-1", "replace")).decode("latin-1")
    return normalize_path_win(decoded) or "/"


@dataclass(frozen=True, slots=True)
class Condition:
    """All given parts must hold; an empty part holds for every request."""

    methods: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    path: str | None = None  # exactly this path
    path_prefix: str | None = None
    path_regex: re.Pattern[str] | None = None  # searched in the path (anchor it with ^ and $)

    def holds(self, request: Request) -> bool:
        return (
            (not self.methods or request.method in self.methods)
            and (not self.hosts or request.host in self.hosts)
            and (self.path is None or request.path == self.path)
            and (self.path_prefix is None or request.path.startswith(self.path_prefix))
            and (self.path_regex is None or self.path_regex.search(request.path) is not None)
        )


@dataclass(frozen=True, slots=True)
class Exclusion:
    ctls: tuple[Ctl, ...]
    when: Condition | None = None  # None: every request
    rulesets: frozenset[str] = frozenset(RULESETS)  # the rulesets it applies to
    where: str = ""  # `file exclusions[2]`, for messages
    reason: str = ""


@dataclass(frozen=True)
class Exclusions:
    items: tuple[Exclusion, ...] = ()

    def for_ruleset(self, name: str) -> Exclusions | None:
        """The exclusions that apply to one ruleset (OURS or CRS), or None when there are none."""
        items = tuple(e for e in self.items if name in e.rulesets)
        return Exclusions(items) if items else None

    def apply(self, state: EvalState) -> None:
        """Run the ctl actions of every exclusion whose condition holds for the state's request."""
        request: Request | None = None
        for item in self.items:
            if item.when is not None:
                request = request or Request.of(state.tx)
                if not item.when.holds(request):
                    continue
            for ctl in item.ctls:
                apply_ctl(state, ctl)

    def __len__(self) -> int:
        return len(self.items)
