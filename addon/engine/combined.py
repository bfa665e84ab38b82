"""CombinedEngine: several engines (our YAML rules, an imported OWASP CRS) judge one transaction.

Each engine keeps its own state and compares its own total with its own thresholds; the merged
verdict lists every match, adds up the scores, and is over a threshold when any engine's is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine import Engine
from .state import EvalState
from .transaction import Transaction
from .verdict import Match, Verdict


@dataclass
class CombinedState:
    parts: list[tuple[EvalState, list[Match]]] = field(default_factory=list)

    @property
    def tx(self) -> Transaction:
        return self.parts[0][0].tx


def merge(verdicts: list[Verdict]) -> Verdict:
    first = verdicts[0]
    merged = Verdict(
        paranoia=first.paranoia,
        inbound_threshold=first.inbound_threshold,
        outbound_threshold=first.outbound_threshold,
    )
    for v in verdicts:
        merged.matches.extend(v.matches)
        merged.inbound_score += v.inbound_score
        merged.outbound_score += v.outbound_score
        for category, points in v.scores.items():
            merged.scores[category] = merged.scores.get(category, 0) + points
        merged.inbound_blocked = merged.inbound_blocked or v.inbound_blocked
        merged.outbound_blocked = merged.outbound_blocked or v.outbound_blocked
    merged.reason = "; ".join(v.reason for v in verdicts if v.reason)
    return merged


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

    def inspect_request(self, tx: Transaction) -> tuple[Verdict, CombinedState]:
        state = CombinedState()
        verdicts = []
        for engine in self.engines:
            verdict, part = engine.inspect_request(tx)
            state.parts.append((part, verdict.matches))
            verdicts.append(verdict)
        return merge(verdicts), state

    def inspect_response(
        self, state: CombinedState, tx: Transaction, request_matches: list[Match]
    ) -> Verdict:
        """`request_matches` (the merged list) is not needed: each engine continues from its own."""
        return merge(
            [
                engine.inspect_response(part, tx, matches)
                for engine, (part, matches) in zip(self.engines, state.parts, strict=True)
            ]
        )

    def inspect(self, tx: Transaction) -> Verdict:
        return merge([engine.inspect(tx) for engine in self.engines])
