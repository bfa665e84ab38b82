"""Observer: what the pipeline reports while it runs (judged flows, engine time); the default does nothing.

metrics.py implements it with Prometheus metrics; the pipeline calls it and knows nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine.verdict import Match
from .flow_record import FlowRecord


class Observer:
    """Does nothing: the pipeline's observer while no metrics are wanted."""

    def engine_time(self, phase: str, seconds: float) -> None:
        """The rule engine took `seconds` for one message (phase "request" or "response")."""

    def request_judged(self, record: FlowRecord) -> None:
        """A request was judged (or failed to be) and acted on; `record` says how."""

    def response_judged(self, record: FlowRecord, matches: Sequence[Match]) -> None:
        """A response was judged: `matches` are the response rules' own, `record` the flow's final record."""
