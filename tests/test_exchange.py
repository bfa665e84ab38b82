"""Exchange: the one object that carries a request through the actions (flow, request read, judgement, tracker)."""

from __future__ import annotations

import dataclasses

import pytest
from mitmproxy.test import tflow

from logoutguard.exchange import Exchange
from logoutguard.flow_bridge import read_request
from logoutguard.judge import Judgement, Situation
from logoutguard.policy import Action
from logoutguard.sessions.cookies import SessionCookieMatcher
from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.tracker import SessionTracker


def test_an_exchange_is_fixed_once_judged() -> None:
    flow = tflow.tflow()
    matcher = SessionCookieMatcher()
    exchange = Exchange(
        flow,
        read_request(flow, matcher, 1024),
        Judgement(Situation.CLEAN, Action.NONE),
        SessionTracker(MemoryStore(), SessionHasher(b"k" * 32), matcher, 0, 0),
    )
    assert exchange.flow is flow and exchange.seen.tx.path == flow.request.path
    with pytest.raises(dataclasses.FrozenInstanceError):
        exchange.judgement = Judgement(Situation.CLEAN, Action.DENY)  # type: ignore[misc]
