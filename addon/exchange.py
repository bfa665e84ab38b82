"""Exchange: one request on its way through the pipeline (its flow, what was read, the judgement, the tracker)."""

from __future__ import annotations

from dataclasses import dataclass

from mitmproxy import http

from .flow_bridge import SeenRequest
from .judge import Judgement
from .sessions.tracker import SessionTracker


@dataclass(frozen=True)
class Exchange:
    """What the actions need to carry out a judgement on a flow."""

    flow: http.HTTPFlow
    seen: SeenRequest  # the request as judged: Transaction, session IDs, client, time
    judgement: Judgement
    tracker: SessionTracker  # the live store's tracker, or the private one of offline judging
