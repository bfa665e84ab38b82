"""CombinedEngine: several engines (our YAML rules, an imported OWASP CRS) judge one transaction.

Each engine runs its own rules with its own state; the combined verdict lists every match, adds up
the scores, and is decided once, on those merged totals (scoring.merge): over a threshold when the
sum is, or when any engine's rule denies. The thresholds are the first engine's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine import Engine
from .scoring import Thresholds, merge
from .state import EvalState
from .transaction import Transaction
from .verdict import Match, Verdict


@dataclass
class CombinedState:
    parts: list[tuple[EvalState, list[Match]]] = field(default_factory=list)

    @property
    def tx(self) -> Transaction:
        return self.parts[0][0].tx


@dataclass
class CombinedEngine:
    engines: list[Engine]

    @property
    def paranoia(self) -> int:
        return self.engines[0].paranoia

    @property
    def inbound_threshold(self) -> int:
        return self.engines[0].inbound_threshold

    @property
    def outbound_threshold(self) -> int:
        return self.engines[0].outbound_threshold

    @property
    def thresholds(self) -> Thresholds:
        return self.engines[0].thresholds

    def inspect_request(self, tx: Transaction) -> tuple[Verdict, CombinedState]:
        state = CombinedState()
        verdicts = []
        for engine in self.engines:
            verdict, part = engine.inspect_request(tx)
            state.parts.append((part, verdict.matches))
            verdicts.append(verdict)
        return merge(verdicts, self.thresholds), state

    def inspect_response(
        self, state: CombinedState, tx: Transaction, request_matches: list[Match]
    ) -> Verdict:
        """`request_matches` (the merged list) is not needed: each engine continues from its own."""
        verdicts = [
            engine.inspect_response(part, tx, matches)
            for engine, (part, matches) in zip(self.engines, state.parts, strict=True)
        ]
        return merge(verdicts, self.thresholds)

    def inspect(self, tx: Transaction) -> Verdict:
        return merge([engine.inspect(tx) for engine in self.engines], self.thresholds)
