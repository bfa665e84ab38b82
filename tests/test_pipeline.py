"""The pipeline without mitmproxy options: parts handed in, flows through the stages, records and audit lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from logoutguard import pipeline as pipeline_module
from logoutguard.audit_log import AuditLog
from logoutguard.engine.engine import Engine
from logoutguard.engine.loader import load_ruleset
from logoutguard.flow_record import META_KEY
from logoutguard.pipeline import Mode, Pipeline, Settings
from logoutguard.policy import parse_policy
from logoutguard.sessions.cookies import SessionCookieMatcher
from logoutguard.sessions.hashing import SessionHasher
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.store import StoreError
from logoutguard.sessions.tracker import SessionTracker

RULES = """
category: test
rules:
  - id: 100001
    msg: union select
    phase: 2
    targets: [ARGS]
    operator: contains
    argument: "union select"
    examples: {match: ["union select"], no_match: ["union"]}
  - id: 100002
    msg: leaked SQL error
    phase: 4
    targets: [RESPONSE_BODY]
    operator: contains
    argument: "SQL syntax"
    examples: {match: ["SQL syntax"], no_match: ["fine"]}
"""


class BrokenStore(MemoryStore):
    async def get(self, id_hash: str):  # type: ignore[no-untyped-def]
        raise StoreError("session store test: get failed: down")


@pytest.fixture
def make(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "r.yaml").write_text(RULES)
    ruleset = load_ruleset([tmp_path / "r.yaml"])

    def build(store: MemoryStore | None = None, **settings: object) -> Pipeline:
        p = Pipeline()
        p.engine = Engine(ruleset)
        p.policy = parse_policy({"session": {"grace_period": 0}})
        p.matcher = SessionCookieMatcher(None, ("JSESSIONID",))
        p.use_tracker(SessionTracker(store or MemoryStore(), SessionHasher(b"k" * 32), p.matcher, 0, 0))
        p.audit = AuditLog(tmp_path / "audit.jsonl")
        p.use_settings(Settings(**settings))  # type: ignore[arg-type]
        return p

    return build


def flow(path: str, cookie: str = "", live: bool = True) -> http.HTTPFlow:
    request = tutils.treq(path=path.encode())
    request.headers.clear()
    request.headers["Host"] = "app.test"
    if cookie:
        request.headers["Cookie"] = cookie
    return tflow.tflow(req=request, live=live)


async def test_enforce_denies_detect_logs(make) -> None:  # type: ignore[no-untyped-def]
    enforcing, detecting = make(), make(mode=Mode.DETECT)
    f, g = flow("/?q=union select"), flow("/?q=union select")
    await enforcing.on_request(f)
    await detecting.on_request(g)
    assert f.response.status_code == 403 and f.metadata[META_KEY]["action"] == "deny"
    assert (
        g.response is None
        and g.metadata[META_KEY]["action"] == "log"
        and g.metadata[META_KEY]["decision"] == "deny"
    )


async def test_a_request_and_its_response_make_one_record_and_one_audit_line(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make()
    f = flow("/item")
    await p.on_request(f)
    assert f.id in p.pending
    f.response = tutils.tresp(content=b"You have an error in your SQL syntax")
    f.response.headers["Set-Cookie"] = "JSESSIONID=NEW; Path=/"
    await p.on_response(f)
    record = f.metadata[META_KEY]
    assert (
        record["action"] == "deny (outbound)"
        and record["outbound_score"] == 5
        and f.response.status_code == 403
    )
    assert f.id not in p.pending
    assert await p.tracker.store.get(p.tracker.hasher.hash("NEW")) is not None  # learned from Set-Cookie
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [line["action"] for line in lines] == ["deny (outbound)"]
    failed = flow("/?q=union select")  # the upstream fails: the error hook audits the request's record
    await p.on_request(failed)
    failed.response = None
    await p.on_error(failed)
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [line["action"] for line in lines] == ["deny (outbound)", "deny"]


async def test_saved_flows_use_a_private_tracker_and_change_nothing(make) -> None:  # type: ignore[no-untyped-def]
    p = make()
    f = flow("/?q=union select", live=False)
    f.response = tutils.tresp(status_code=302, content=b"")
    f.response.headers["Set-Cookie"] = "JSESSIONID=S9; Path=/"
    await p.on_request(f)
    await p.on_response(f)
    assert f.metadata[META_KEY]["action"] == "none (offline)" and f.response.status_code == 302
    assert await p.tracker.store.count() == 0  # learned by the offline tracker only
    assert p._offline is not None and await p._offline.store.count() == 1


async def test_store_down_fail_open_judges_the_session_as_valid(make) -> None:  # type: ignore[no-untyped-def]
    p = make(BrokenStore(), fail_closed=False)
    f = flow("/account", cookie="JSESSIONID=S1")
    await p.on_request(f)
    record = f.metadata[META_KEY]
    assert record["session"]["state"] == "active" and "down" in record["store_error"]
    assert f.response is None and p.health.down
    closed = make(BrokenStore(), fail_closed=True)
    g = flow("/account", cookie="JSESSIONID=S1")
    await closed.on_request(g)
    assert g.response.status_code == 503 and g.metadata[META_KEY]["situation"] == "store_unavailable"


async def test_an_error_still_gives_a_record(make) -> None:  # type: ignore[no-untyped-def]
    p = make(deny_on_error=True)
    p.engine = None  # judging now fails
    f = flow("/")
    await p.on_request(f)
    record = f.metadata[META_KEY]
    assert (
        record["situation"] == "error"
        and record["action"] == "deny (error)"
        and f.response.status_code == 403
    )


async def test_pending_and_recent_sessions_are_bounded(make, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(pipeline_module, "MAX_PENDING", 3)
    monkeypatch.setattr(pipeline_module, "MAX_RECENT_SESSIONS", 2)
    p = make()
    for i in range(5):
        await p.on_request(flow("/", cookie=f"JSESSIONID=S{i}"))
    assert len(p.pending) == 3 and len(p.recent) == 2
    assert p.tracker.hasher.hash("S4") in p.recent_sessions() and "S4" not in p.recent_sessions()
    await p.revoke_hashes([p.tracker.hasher.hash("S4")])
    assert await p.tracker.store.is_revoked(p.tracker.hasher.hash("S4"))
    assert p.recent[p.tracker.hasher.hash("S4")]["state"] == "revoked"
