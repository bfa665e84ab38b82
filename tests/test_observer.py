"""The pipeline's observer: told of every judged request and response and of the engine's time; the default does nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mitmproxy.test import tutils
from test_pipeline import flow, make  # noqa: F401  (make is a fixture)

from logoutguard.engine.verdict import Match
from logoutguard.flow_record import FlowRecord
from logoutguard.observer import Observer


class Recording(Observer):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def engine_time(self, phase: str, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("engine", phase))

    def request_judged(self, record: FlowRecord) -> None:
        self.events.append(("request", str(record.action)))

    def response_judged(self, record: FlowRecord, matches: Sequence[Match]) -> None:
        self.events.append(("response", [m.id for m in matches]))


async def test_the_pipeline_reports_each_stage(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    p = make()
    assert type(p.observer) is Observer  # no-op by default
    p.observer = seen = Recording()
    attack = flow("/?q=union select")
    await p.on_request(attack)
    page = flow("/item")
    await p.on_request(page)
    page.response = tutils.tresp(content=b"You have an error in your SQL syntax")
    await p.on_response(page)
    assert seen.events == [
        ("engine", "request"),
        ("request", "deny"),
        ("engine", "request"),
        ("request", "none"),
        ("engine", "response"),
        ("response", [100002]),  # only the response rule's own match
    ]


def test_the_default_observer_accepts_everything() -> None:
    o = Observer()
    o.engine_time("request", 0.1)
    o.request_judged(FlowRecord.from_json({}))
    o.response_judged(FlowRecord.from_json({}), [])
