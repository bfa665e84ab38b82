"""Prometheus metrics: counted from records and store calls, served over real HTTP, the option validated."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons
from prometheus_client.parser import text_string_to_metric_families
from test_flow_record import logged_out

from logoutguard.engine.verdict import Match, Verdict
from logoutguard.flow_record import ActionTaken, FlowRecord
from logoutguard.guard import LogoutGuard
from logoutguard.judge import Judgement, Situation
from logoutguard.metrics import Metrics, TimedStore, parse_listen, serve, untimed
from logoutguard.policy import Action
from logoutguard.sessions.memory import MemoryStore
from logoutguard.sessions.store import StoreError
from logoutguard.sessions.tracker import SessionFacts
from procs import free_port


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of everything the registry holds."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [("9464", ("127.0.0.1", 9464)), ("0.0.0.0:9100", ("0.0.0.0", 9100)), ("[::1]:80", ("::1", 80)),
     ("localhost:1", ("localhost", 1))],
)  # fmt: skip
def test_listen_values(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["", "x", "9464x", "0", "70000", "host:", ":9464", "a b:1", "[::zz]:1"])
def test_bad_listen_values(value: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(value)


def test_counts_from_records() -> None:
    metrics = Metrics()
    metrics.request_judged(logged_out())
    clean = FlowRecord.judged(Verdict(), SessionFacts(), Judgement(Situation.CLEAN, Action.NONE), "enforce")
    metrics.request_judged(clean)
    leak = Match(951100, "SQL error", 4, "leakage", "critical", 4, 1, "RESPONSE_BODY", "SQL syntax")
    clean.action = ActionTaken.DENY_OUTBOUND
    metrics.response_judged(clean, [leak])
    metrics.engine_time("request", 0.002)
    got = samples(metrics)
    assert got[("logoutguard_requests_judged_total", (("mode", "enforce"),))] == 2
    assert (
        got[
            (
                "logoutguard_actions_total",
                (("action", "logout"), ("situation", "authenticated_over_threshold")),
            )
        ]
        == 1
    )
    assert got[("logoutguard_actions_total", (("action", "none"), ("situation", "clean")))] == 1
    assert got[("logoutguard_actions_total", (("action", "deny (outbound)"), ("situation", "clean")))] == 1
    assert got[("logoutguard_forced_logouts_total", (("result", "ended"),))] == 1
    assert got[("logoutguard_rule_hits_total", (("category", "sqli"), ("rule", "942100")))] == 1
    assert got[("logoutguard_rule_hits_total", (("category", "leakage"), ("rule", "951100")))] == 1
    assert got[("logoutguard_engine_seconds_count", (("phase", "request"),))] == 1
    assert got[("logoutguard_engine_seconds_bucket", (("le", "0.0025"), ("phase", "request")))] == 1
    assert got[("logoutguard_engine_seconds_bucket", (("le", "0.001"), ("phase", "request")))] == 0


class DownStore(MemoryStore):
    async def get(self, id_hash: str):  # type: ignore[no-untyped-def]
        raise StoreError("session store test: get failed: down")


async def test_store_calls_timed_and_failures_counted() -> None:
    metrics = Metrics()
    store = metrics.timed(DownStore())
    assert (
        isinstance(store, TimedStore)
        and metrics.timed(store) is store
        and isinstance(untimed(store), DownStore)
    )
    assert store.ttl == untimed(store).ttl  # attributes pass through
    await store.revoke("h1", "test", 1.0)
    with pytest.raises(StoreError):
        await store.get("h1")
    got = samples(metrics)
    assert got[("logoutguard_store_seconds_count", (("call", "revoke"),))] == 1
    assert got[("logoutguard_store_seconds_count", (("call", "get"),))] == 1
    assert got[("logoutguard_store_errors_total", (("call", "get"),))] == 1
    assert ("logoutguard_store_errors_total", (("call", "revoke"),)) not in got


def test_served_over_http_on_loopback() -> None:
    metrics = Metrics()
    metrics.request_judged(logged_out())
    server = serve(metrics, str(free_port()))
    try:
        assert server.host == "127.0.0.1" and server.url.endswith("/metrics")
        got = scrape(server.url)
        assert got[("logoutguard_forced_logouts_total", (("result", "ended"),))] == 1
        assert not any(
            name.startswith("python_") or name.startswith("process_") for name, _ in got
        )  # own registry
    finally:
        server.close()


def test_the_option_is_off_by_default_validated_and_served(tmp_path: Path) -> None:
    guard = LogoutGuard()
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_session_store="memory", guard_audit_log="")
        assert guard.metrics is None and guard.metrics_server is None  # off by default
        with pytest.raises(exceptions.OptionsError, match="guard_metrics: 'nope'"):
            tctx.configure(guard, guard_metrics="nope")
        port = free_port()
        tctx.configure(guard, guard_metrics=str(port))
        assert (
            guard.metrics_server is not None
            and guard.metrics_server.url == f"http://127.0.0.1:{port}/metrics"
        )
        assert (
            isinstance(guard.pipeline.tracker.store, TimedStore) and guard.pipeline.observer is guard.metrics
        )
        assert ("logoutguard_requests_judged_total", (("mode", "enforce"),)) not in scrape(
            guard.metrics_server.url
        )
        taken = serve(Metrics(), str(free_port()))
        try:
            with pytest.raises(
                exceptions.OptionsError, match=f"guard_metrics: cannot listen on '{taken.port}'"
            ):
                tctx.configure(guard, guard_metrics=str(taken.port))
        finally:
            taken.close()
        assert guard.metrics_server is not None and guard.metrics_server.port == port  # still serving
        scrape(guard.metrics_server.url)
        tctx.configure(guard, guard_metrics="")
        assert guard.metrics is None and not isinstance(guard.pipeline.tracker.store, TimedStore)
