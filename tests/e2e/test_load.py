"""Load: 50 concurrent clients, 20,000 mixed requests through two mitmdump workers behind HAProxy on
one Redis (the scale-out set-up), in front of the demo app.

The mix: benign sessions (log in, browse), attacks on sessions (forced logout), reuse of the
revoked session right after (through whichever worker HAProxy picks), anonymous attacks, and
forged session IDs. Every response is checked against what its request must get; the workers'
output must hold no unhandled exception; RSS before and after and p50/p99 latency are printed.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from urllib.parse import urlencode

import pytest

from e2e.test_flood import rss_mb
from e2e.test_forced_logout import DEMO_POLICY, XSS
from logoutguard.demo.app import DemoApp, DemoServer
from procs import Mitmdump, start_mitmdump
from services import HAProxy, RedisServer, start_haproxy, start_redis, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENTS = 50
REQUESTS = int(os.environ.get("LOGOUTGUARD_LOAD_REQUESTS", "20000"))
DEADLINE_S = float(os.environ.get("LOGOUTGUARD_LOAD_DEADLINE", "300"))
RSS_GROWTH_LIMIT_MB = 80  # generous: per worker, after a warm-up
SIGNED_OUT = "/login?reason=signed-out"
BROWSE = ["/account", "/search?q=running+shoes", "/api/items", "/static/app.css", "/", "/attack?Screen=2"]


@dataclass
class Farm:
    app: DemoApp
    redis: RedisServer
    workers: list[Mitmdump]
    balancer: HAProxy
    tmp: Path

    def audit_lines(self) -> list[dict]:
        return [
            json.loads(line)
            for path in sorted(self.tmp.glob("audit-*.jsonl"))
            for line in path.read_text().splitlines()
        ]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("load")
    server = start_redis(tmp)
    backlog, DemoServer.request_queue_size = (
        DemoServer.request_queue_size,
        256,
    )  # 5 drops connections under load
    app = DemoApp(port=0).start()
    DemoServer.request_queue_size = backlog
    key_file = tmp / "session.key"
    key_file.write_text(secrets.token_hex(32) + "\n")
    key_file.chmod(0o600)
    workers: list[Mitmdump] = []
    balancer = None
    try:
        for i in range(2):
            workers.append(
                start_mitmdump(
                    app.url,
                    tmp,
                    f"guard_policy={DEMO_POLICY}",
                    f"guard_session_store={server.url}",
                    f"guard_session_key={key_file}",
                    f"guard_audit_log={tmp / f'audit-{i}.jsonl'}",
                    "guard_mode=enforce",
                    "flow_detail=0",
                )
            )
        for w in workers:
            wait_ready(w.port, timeout=60)
        balancer = start_haproxy(tmp, [w.port for w in workers])
        yield Farm(app, server, workers, balancer, tmp)
    finally:
        if balancer is not None:
            balancer.stop()
        for worker in workers:
            worker.stop()
        app.stop()
        server.stop()


# -- one client ---------------------------------------------------------------------------------
@dataclass
class Tally:
    """Shared by the clients: tickets (requests left), latencies, outcomes, mismatches."""

    left: int
    deadline: float
    latencies: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline:
                return False
            self.left -= 1
            return True


Expect = Callable[[int, dict[str, str]], bool]


def status(code: int, location: str | None = None) -> Expect:
    return lambda got, headers: got == code and (location is None or headers.get("location") == location)


class Client:
    """One user on one keep-alive connection to the load balancer, with its own cookie jar."""

    def __init__(self, port: int, tally: Tally, rng: random.Random) -> None:
        self.port, self.tally, self.rng = port, tally, rng
        self.conn = HTTPConnection("127.0.0.1", port, timeout=60)
        self.jar: dict[str, str] = {}
        self.user_agent = f"Mozilla/5.0 (X11; Linux x86_64) LoadClient/{rng.randrange(1000)}"

    def send(self, kind: str, method: str, path: str, expect: Expect, *, form=None, cookies=None) -> bool:  # type: ignore[no-untyped-def]
        """One request; False when no ticket is left. A wrong answer is recorded, not raised."""
        if not self.tally.take():
            return False
        jar = self.jar if cookies is None else cookies
        headers = {"Host": f"127.0.0.1:{self.port}", "User-Agent": self.user_agent}
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
        except (OSError, HTTPException) as exc:
            self.conn.close()
            self.conn = HTTPConnection("127.0.0.1", self.port, timeout=60)
            with self.tally.lock:
                self.tally.wrong.append(f"{kind} {method} {path}: {type(exc).__name__}: {exc}")
            return True
        elapsed = time.perf_counter() - started
        got = {k.lower(): v for k, v in response.getheaders()}
        if cookies is None:
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, val = value.split(";", 1)[0].partition("=")
                    self.jar[key.strip()] = val.strip()
        ok = expect(response.status, got)
        with self.tally.lock:
            self.tally.latencies.append(elapsed)
            self.tally.kinds[kind] += 1
            if not ok:
                self.tally.wrong.append(
                    f"{kind} {method} {path}: {response.status} {got.get('location')} (sent {jar.get('JSESSIONID')})"
                )
        return True

    def login(self) -> bool:
        self.jar.clear()
        return self.send(
            "login",
            "POST",
            "/login",
            status(302, "/account"),
            form={"username": "guest", "password": "guest"},
        )

    def benign_session(self) -> bool:
        if not self.login():
            return False
        for _ in range(self.rng.randrange(3, 9)):
            path = self.rng.choice(BROWSE)
            if not self.send("benign", "GET", path, status(200)):
                return False
        return True

    def attacked_session(self) -> bool:
        if not self.login() or not self.send("benign", "GET", "/account", status(200)):
            return False
        old = dict(self.jar)
        if not self.send("attack on session", "GET", XSS, status(302, SIGNED_OUT)):
            return False
        # the stolen (now revoked) session, right away, through whichever worker: refused
        return self.send("revoked reuse", "GET", "/account", status(302, "/login"), cookies=old)

    def anonymous_attack(self) -> bool:
        return self.send("anonymous attack", "GET", XSS, status(403), cookies={})

    def forged_session(self) -> bool:
        forged = {"JSESSIONID": secrets.token_urlsafe(24)}
        return self.send("forged session", "GET", "/account", status(302, "/login"), cookies=forged)

    def run(self) -> None:
        scenarios = (
            [self.benign_session] * 7
            + [self.attacked_session] * 2
            + [self.anonymous_attack, self.forged_session]
        )
        try:
            while self.rng.choice(scenarios)():
                pass
        finally:
            self.conn.close()


def drive(port: int, requests: int, seconds: float, seed: int) -> Tally:
    tally = Tally(requests, time.monotonic() + seconds)
    clients = [Client(port, tally, random.Random(seed * 1000 + i)) for i in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, name=f"load-client-{i}") for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def test_load_through_two_workers_behind_haproxy(farm: Farm) -> None:
    warm = drive(farm.balancer.port, 500, 120, seed=1)
    assert warm.wrong == [], warm.wrong[:10]
    rss_before = [rss_mb(w.proc.pid) for w in farm.workers]
    started = time.monotonic()
    tally = drive(farm.balancer.port, REQUESTS, DEADLINE_S, seed=2)
    elapsed = time.monotonic() - started
    rss_after = [rss_mb(w.proc.pid) for w in farm.workers]
    done = len(tally.latencies)
    p50, p99 = percentile(tally.latencies, 50) * 1000, percentile(tally.latencies, 99) * 1000
    errors = [
        line for w in farm.workers for line in w.log().splitlines() if "Traceback" in line or "rror" in line
    ]
    judged_errors = [
        line for line in farm.audit_lines() if line.get("situation") == "error" or line.get("error")
    ]
    print(
        f"\nload: {done} requests ({dict(tally.kinds)}) from {CLIENTS} clients through HAProxy + 2 mitmdump "
        f"workers (Redis store) in {elapsed:.1f}s = {done / elapsed:.0f}/s after {len(warm.latencies)} warm-up; "
        f"wrong answers {len(tally.wrong)}; p50 {p50:.0f} ms, p99 {p99:.0f} ms; worker RSS "
        + ", ".join(f"{b:.1f} -> {a:.1f} MB" for b, a in zip(rss_before, rss_after, strict=True))
        + f"; log errors {len(errors)}; audit error records {len(judged_errors)}"
    )
    assert tally.wrong == [], [
        f"{w} app knows it: {farm.app.is_session_valid(w.rsplit('sent ', 1)[1][:-1])}"
        for w in tally.wrong[:20]
    ]
    assert done == REQUESTS, f"only {done} of {REQUESTS} requests within {DEADLINE_S:.0f}s"
    assert errors == [] and judged_errors == [], (errors[:5], judged_errors[:3])
    assert all(
        tally.kinds[k] > 0 for k in ("benign", "attack on session", "revoked reuse", "anonymous attack")
    )
    for before, after in zip(rss_before, rss_after, strict=True):
        assert after - before < RSS_GROWTH_LIMIT_MB
