"""Prometheus metrics: judged requests, actions by situation, forced logouts by result, rule hits, store and engine time.

Served over HTTP (`GET /metrics`, the Prometheus text format, by prometheus_client) when the
`guard_metrics` option names a port; off by default, loopback unless a host is given. Every metric
lives in a registry of its own (never the process-wide default), so two proxies in one process or
a reload do not mix their numbers.

| metric | labels | counts |
|---|---|---|
| `logoutguard_requests_judged_total` | `mode` | requests judged (saved flows too), failures included |
| `logoutguard_actions_total` | `situation`, `action` | every judged request by its situation and what was done; responses denied for their own score add `deny (outbound)` |
| `logoutguard_forced_logouts_total` | `result` | forced logouts: ended, app failed, app defective, not verifiable, proxy only, not sent |
| `logoutguard_rule_hits_total` | `rule`, `category` | rule matches (request and response rules) |
| `logoutguard_store_seconds` | `call` | histogram: session store call latency |
| `logoutguard_store_errors_total` | `call` | session store calls that failed |
| `logoutguard_engine_seconds` | `phase` | histogram: rule engine time per request or response |
"""

from __future__ import annotations

import inspect
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from .engine.verdict import Match
from .flow_record import ActionTaken, FlowRecord, logout_result
from .observer import Observer
from .sessions.store import SessionStore

DEFAULT_HOST = "127.0.0.1"
ENGINE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
STORE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics(Observer):
    """The pipeline's observer that counts into Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.judged = Counter("logoutguard_requests_judged", "Requests judged", ["mode"], registry=r)
        self.actions = Counter(
            "logoutguard_actions",
            "Judged requests by situation and action taken",
            ["situation", "action"],
            registry=r,
        )
        self.logouts = Counter(
            "logoutguard_forced_logouts", "Forced logouts by result", ["result"], registry=r
        )
        self.rule_hits = Counter("logoutguard_rule_hits", "Rule matches", ["rule", "category"], registry=r)
        self.store_seconds = Histogram(
            "logoutguard_store_seconds",
            "Session store call latency",
            ["call"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "logoutguard_store_errors", "Session store calls that failed", ["call"], registry=r
        )
        self.engine_seconds = Histogram(
            "logoutguard_engine_seconds",
            "Rule engine time per message",
            ["phase"],
            buckets=ENGINE_BUCKETS,
            registry=r,
        )

    # -- the pipeline's reports ------------------------------------------------------------------
    def engine_time(self, phase: str, seconds: float) -> None:
        self.engine_seconds.labels(phase).observe(seconds)

    def request_judged(self, record: FlowRecord) -> None:
        self.judged.labels(record.mode).inc()
        self.actions.labels(str(record.situation), str(record.action)).inc()
        if record.logout is not None:
            self.logouts.labels(logout_result(record.logout)).inc()
        self._count_hits(record.verdict.matches)

    def response_judged(self, record: FlowRecord, matches: Sequence[Match]) -> None:
        self._count_hits(matches)
        if record.action is ActionTaken.DENY_OUTBOUND:
            self.actions.labels(str(record.situation), str(record.action)).inc()

    def _count_hits(self, matches: Sequence[Match]) -> None:
        for m in matches:
            self.rule_hits.labels(str(m.id), m.category).inc()

    # -- the session store -----------------------------------------------------------------------
    def timed(self, store: SessionStore) -> SessionStore:
        """The store with every call timed and every failure counted (the same store beneath)."""
        return store if isinstance(store, TimedStore) else TimedStore(store, self)  # type: ignore[return-value]

    def store_call(self, call: str, seconds: float, failed: bool) -> None:
        self.store_seconds.labels(call).observe(seconds)
        if failed:
            self.store_errors.labels(call).inc()


class TimedStore:
    """A session store seen through: its coroutine methods are timed, every other attribute passes."""

    def __init__(self, store: SessionStore, metrics: Metrics) -> None:
        self.inner = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        return self._timed(name, attr)

    def _timed(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started, failed = time.perf_counter(), True
            try:
                result = await call(*args, **kwargs)
                failed = False
                return result
            finally:  # a StoreError (or anything else a store raises) counts as a failed call
                self._metrics.store_call(name, time.perf_counter() - started, failed)

        return timed


def untimed(store: Any) -> SessionStore:
    return store.inner if isinstance(store, TimedStore) else store


def parse_listen(value: str) -> tuple[str, int]:
    """`9464` -> ("127.0.0.1", 9464); `HOST:9464`, `[::1]:9464`. ValueError naming what is wrong."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r}: the port must be a number 1-65535 (PORT or HOST:PORT)")
    if not host or any(c.isspace() or c in "/[]" for c in host):
        raise ValueError(f"{value!r}: {host!r} is not a host (PORT or HOST:PORT)")
    if ":" in host:
        ipaddress.IPv6Address(host)  # ValueError for a bad one
    return host, int(port_text)


@dataclass
class MetricsServer:
    """The HTTP endpoint that serves a registry (`GET /metrics`) from a thread of its own."""

    host: str
    port: int
    server: WSGIServer
    thread: Thread

    @property
    def listen(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.listen}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(metrics: Metrics, listen: str) -> MetricsServer:
    """Serve `metrics` at `listen` (see parse_listen). ValueError for a bad value, OSError when the
    address cannot be bound."""
    host, port = parse_listen(listen)
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(host, port, server, thread)
