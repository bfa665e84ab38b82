"""Scale-out end to end: two mitmdump workers with the addon on one Redis, behind HAProxy, before the demo app.

        client ─► HAProxy (round robin) ─┬─► mitmdump 1 ─┐
                                         └─► mitmdump 2 ─┴─► demo app
                                both on one private redis-server, one shared key file

Requests also go to each worker directly, so that "the other proxy" is deterministic.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from e2e.browser import Browser, Reply
from logoutguard.demo.app import DemoApp
from logoutguard.sessions.hashing import SessionHasher, read_key
from procs import REPO, Mitmdump, start_mitmdump
from services import HAProxy, RedisServer, start_haproxy, start_redis, wait_ready

pytestmark = pytest.mark.e2e

DEMO_POLICY = REPO / "addon" / "demo" / "policy.yaml"
XSS = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"
SIGNED_OUT = "/login?reason=signed-out"


@dataclass
class Farm:
    tmp: Path
    app: DemoApp
    redis: RedisServer
    workers: list[Mitmdump]
    balancer: HAProxy
    key_file: Path

    def via(self, worker: int | None = None, **kwargs: object) -> Browser:
        """A client of one worker, or (None) of the load balancer."""
        port = self.balancer.port if worker is None else self.workers[worker].port
        return Browser(port, **kwargs)  # type: ignore[arg-type]

    def audit(self, worker: int) -> list[dict]:
        path = self.tmp / f"audit-{worker}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stored_hashes(self) -> set[str]:
        client = redis.Redis(host="127.0.0.1", port=self.redis.port)
        return {key.decode().rsplit(":", 1)[1] for key in client.scan_iter("logoutguard:s:*")}


def start_worker(tmp: Path, app: DemoApp, store: str, key_file: Path, index: int) -> Mitmdump:
    return start_mitmdump(
        app.url,
        tmp,
        f"guard_policy={DEMO_POLICY}",
        f"guard_session_store={store}",
        f"guard_session_key={key_file}",
        f"guard_audit_log={tmp / f'audit-{index}.jsonl'}",
        "guard_mode=enforce",
    )


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("scaleout")
    server = start_redis(tmp)
    app = DemoApp(port=0).start()
    key_file = tmp / "session.key"
    key_file.write_text(secrets.token_hex(32) + "\n")
    key_file.chmod(0o600)
    workers: list[Mitmdump] = []
    balancer = None
    try:
        workers = [start_worker(tmp, app, server.url, key_file, i) for i in range(2)]
        warm = [threading.Thread(target=wait_ready, args=(w.port,)) for w in workers]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        balancer = start_haproxy(tmp, [w.port for w in workers])
        yield Farm(tmp, app, server, workers, balancer, key_file)
    finally:
        if balancer is not None:
            balancer.stop()
        for worker in workers:
            worker.stop()
        app.stop()
        server.stop()
    for worker in workers:
        assert "Traceback" not in worker.log(), worker.log()[-3000:]


def refused(reply: Reply) -> bool:
    """The policy's answer to a revoked session: a redirect to the login page."""
    return reply.status == 302 and reply.header("Location") == "/login"


@pytest.mark.parametrize(("issuer", "other"), [(0, 1), (1, 0)])
def test_a_session_issued_through_one_worker_is_known_to_the_other(
    farm: Farm, issuer: int, other: int
) -> None:
    user = farm.via(issuer)
    session = user.login()
    # an ID a worker never saw issued is stripped (the app then redirects to /login): 200 means known
    reply = farm.via(other, cookies=dict(user.cookies)).get("/account")
    assert reply.status == 200 and b"guest" in reply.body
    assert SessionHasher(read_key(farm.key_file)).hash(session) in farm.stored_hashes()
    assert session not in "".join(farm.stored_hashes())
    never_issued = farm.via(other, cookies={"JSESSIONID": "never-issued-" + secrets.token_hex(8)})
    assert never_issued.get("/account").status == 302  # stripped: the store is shared, not permissive


@pytest.mark.parametrize(("attacked", "other"), [(0, 1), (1, 0)])
def test_forced_logout_through_one_worker_is_refused_by_the_other_at_once(
    farm: Farm, attacked: int, other: int
) -> None:
    user = farm.via(attacked)
    old = user.login()
    jar = dict(user.cookies)
    assert farm.via(other, cookies=jar).get("/account").status == 200
    reply = user.get(XSS)
    assert reply.status == 302 and reply.header("Location") == SIGNED_OUT
    assert not farm.app.is_session_valid(old)
    # the very next request with the old ID, on the other worker: refused
    assert refused(farm.via(other, cookies=jar).get("/account"))
    last = farm.audit(other)[-1]
    assert last["situation"] == "revoked_session" and last["action"] == "redirect"


def test_defective_logout_is_closed_by_every_worker(farm: Farm) -> None:
    """The app's logout may leave the session alive; both workers still refuse it (the revocation is shared)."""
    user = farm.via(0)
    old = user.login()
    jar = dict(user.cookies)
    farm.app.site.defective_logout = True
    try:
        assert user.get(XSS).status == 302
        assert farm.app.is_session_valid(old)  # the application forgot to kill it ...
    finally:
        farm.app.site.defective_logout = False
    assert refused(farm.via(1, cookies=jar).get("/account"))  # ... the proxies did not
    assert refused(farm.via(0, cookies=jar).get("/account"))


def test_through_the_load_balancer(farm: Farm) -> None:
    counts_before = [w.log().count("GET http://127.0.0.1") for w in farm.workers]
    user = farm.via()
    old = user.login()
    jar = dict(user.cookies)
    assert [user.get("/account").status for _ in range(6)] == [200] * 6
    counts = [
        w.log().count("GET http://127.0.0.1") - before
        for w, before in zip(farm.workers, counts_before, strict=True)
    ]
    assert min(counts) >= 2, f"round robin should spread the requests: {counts}"
    assert user.get(XSS).status == 302 and not farm.app.is_session_valid(old)
    # the next requests land on one worker then the other: both refuse the old ID
    assert [refused(farm.via(cookies=jar).get("/account")) for _ in range(4)] == [True] * 4


def test_the_cumulative_window_is_shared(farm: Farm) -> None:
    """A stolen cookie jar used with another User-Agent scores 3 a request; the third, on either worker, logs out."""
    user = farm.via(0)
    old = user.login()
    thieves = [farm.via(i, cookies=dict(user.cookies), user_agent="curl/8.5.0") for i in (0, 1, 0)]
    assert [t.get("/account").status for t in thieves[:2]] == [200, 200]
    reply = thieves[2].get("/account")
    assert reply.status == 302 and not farm.app.is_session_valid(old)
    last = farm.audit(0)[-1]
    assert last["situation"] == "cumulative_threshold" and last["action"] == "logout"


def test_haproxy_config_is_the_documented_one(farm: Farm) -> None:
    text = farm.balancer.config.read_text()
    assert "balance roundrobin" in text and "mode http" in text
    assert len(re.findall(r"^\s+server proxy\d 127\.0\.0\.1:\d+", text, flags=re.M)) == 2
