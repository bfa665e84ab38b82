"""Faults end to end: real mitmdump + addon + demo policy when the store or the application misbehaves.

(a) Redis unreachable at start-up, killed, or hanging mid-traffic, under both fail modes;
(b) the application down or slow while a forced logout is under way;
(c) kill -9 of mitmdump under load with the SQLite store;
(d) the SQLite store on a full or read-only disk (a private tmpfs; needs root).

Timings: every request below is answered within BOUND_S, measured from the client. The first
request after a start is excluded (`wait_ready`): mitmdump listens before the addon has loaded.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from e2e.browser import Browser, Reply
from logoutguard.demo.app import DemoApp
from logoutguard.sessions.hashing import SessionHasher, default_key_path, read_key
from logoutguard.sessions.redis import RETRY_AFTER_S
from logoutguard.sessions.sqlite import SqliteStore
from procs import REPO, Mitmdump, free_port, start_mitmdump
from services import start_redis, wait_ready

pytestmark = pytest.mark.e2e

DEMO_POLICY = REPO / "addon" / "demo" / "policy.yaml"
XSS = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"
SIGNED_OUT = "/login?reason=signed-out"
BOUND_S = 3.0
UNAVAILABLE = "LogoutGuard: session store unavailable ("
REACHABLE = "LogoutGuard: session store reachable again"


def start_guard(upstream: str, tmp: Path, policy: Path = DEMO_POLICY, **options: str) -> Mitmdump:
    """mitmdump with the addon in enforce mode, ready to answer (its warm-up request done)."""
    opts = {
        "guard_policy": str(policy),
        "guard_audit_log": str(tmp / "audit.jsonl"),
        "guard_mode": "enforce",
        "guard_session_store": str(tmp / "sessions.sqlite"),
        **options,
    }
    proxy = start_mitmdump(upstream, tmp, *(f"{k}={v}" for k, v in opts.items()))
    wait_ready(proxy.port)
    return proxy


def write_policy(tmp: Path, **changes: str) -> Path:
    text = DEMO_POLICY.read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "policy-variant.yaml"
    path.write_text(text)
    return path


def audit_lines(tmp: Path) -> list[dict]:
    path = tmp / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def refused(reply: Reply) -> bool:
    """The demo policy's answer to a revoked session: a redirect to the login page."""
    return reply.status == 302 and reply.header("Location") == "/login"


def report(clock: Clock) -> None:
    """Every request answered within BOUND_S; the figures are printed (pytest -s shows them)."""
    print(
        f"\n{len(clock.times)} requests, slowest {max(clock.times):.3f}s, mean {sum(clock.times) / len(clock.times):.3f}s"
    )
    assert max(clock.times) < BOUND_S, clock.times


class Clock:
    """Sends requests and keeps how long each took."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.times: list[float] = []

    def get(self, path: str, cookies: dict[str, str] | None = None, **kwargs: object) -> Reply:
        started = time.monotonic()
        reply = Browser(self.port, timeout=10, **kwargs).get(path, cookies=dict(cookies or {}))  # type: ignore[arg-type]
        self.times.append(time.monotonic() - started)
        return reply

    def login(self) -> dict[str, str]:
        user = Browser(self.port, timeout=10)
        started = time.monotonic()
        user.login()
        self.times.append(time.monotonic() - started)
        return dict(user.cookies)


# --- (a) Redis unreachable, killed, hanging -------------------------------------------------------


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_redis_outages_follow_the_fail_mode(tmp_path: Path, fail_mode: str) -> None:
    port = free_port()
    app = DemoApp(port=0).start()
    proxy = start_guard(
        app.url,
        tmp_path,
        guard_session_store=f"redis://127.0.0.1:{port}/0",
        guard_session_key=str(tmp_path / "shared.key"),
        guard_fail_mode=fail_mode,
    )  # Redis is not running: mitmdump starts all the same
    redis = None
    clock = Clock(proxy.port)
    with_session = 503 if fail_mode == "closed" else 200
    try:
        # 1. down at start-up: anonymous requests pass; with a session: 503 (closed) or judged by rules (open)
        known_to_app = {"JSESSIONID": Browser(app.port).login()}  # a real session, logged in at the app
        assert clock.get("/").status == 200
        assert clock.get("/account", known_to_app).status == with_session
        # 2. Redis comes up: the same mitmdump recovers (no restart)
        redis = start_redis(tmp_path, port=port)
        time.sleep(RETRY_AFTER_S + 0.1)
        user = clock.login()
        assert clock.get("/account", user).status == 200
        # 3. killed mid-traffic
        redis.kill()
        assert clock.get("/").status == 200
        assert clock.get("/account", user).status == with_session
        attacked = clock.get(XSS, user)
        if fail_mode == "closed":
            assert attacked.status == 503
        else:  # judged by the rules alone: the forced logout still reaches the application
            assert attacked.status == 302 and attacked.header("Location") == SIGNED_OUT
            assert not app.is_session_valid(user["JSESSIONID"])
        # 4. back (empty: no persistence in the tests), then hanging (SIGSTOP): bounded by the timeouts
        redis.start()
        time.sleep(RETRY_AFTER_S + 0.1)
        user = clock.login()
        assert redis.proc is not None
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            assert clock.get("/account", user).status == with_session
            assert clock.get("/").status == 200
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        time.sleep(RETRY_AFTER_S + 0.1)
        assert clock.get("/account", user).status == 200  # the data survived the hang
    finally:
        proxy.stop()
        app.stop()
        if redis is not None:
            redis.stop()
    log = proxy.log()
    report(clock)
    assert log.count(UNAVAILABLE) == 3 and log.count(REACHABLE) == 3, log[-4000:]  # once per outage
    assert f"redis://127.0.0.1:{port}/0: look_up failed: cannot reach Redis" in log
    assert "failed: no answer within" in log  # the hang
    assert f"fail mode {fail_mode}" in log
    if fail_mode == "open":
        assert "could not record the revocation (store unavailable); the logout still goes on" in log
    else:
        refusals = [line for line in audit_lines(tmp_path) if line["situation"] == "store_unavailable"]
        assert len(refusals) == 4 and {line["action"] for line in refusals} == {"deny"}
    assert "Traceback" not in log


# --- (b) the application down or slow during a forced logout --------------------------------------


class SlowLogoutApp:
    """A tiny application: POST /login issues JSESSIONID + csrftoken, other paths answer 200, and
    POST /logout accepts the request and never answers (until released at the end of the test)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.logouts = 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST" and self.path == "/logout":
                    app.logouts += 1
                    app.release.wait(60)
                self.send_response(302 if self.path == "/login" else 200)
                if self.path == "/login":
                    self.send_header("Set-Cookie", f"JSESSIONID={secrets.token_hex(16)}; Path=/; HttpOnly")
                    self.send_header("Set-Cookie", f"csrftoken={secrets.token_hex(8)}; Path=/")
                    self.send_header("Location", "/account")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_app() -> Iterator[SlowLogoutApp]:
    app = SlowLogoutApp()
    yield app
    app.stop()


def attack_in_background(port: int, cookies: dict[str, str], timeout: float) -> tuple[threading.Thread, dict]:
    """Send the attack from a thread; the result dict gets reply or error, and elapsed seconds."""
    result: dict = {}

    def run() -> None:
        started = time.monotonic()
        try:
            result["reply"] = Browser(port, cookies=dict(cookies), timeout=timeout).get(XSS)
        except OSError as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
        result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_slow_application_during_rewrite_logout(tmp_path: Path, slow_app: SlowLogoutApp) -> None:
    """Rewrite mode: the addon sends the rewritten request itself, bounded by the policy's logout
    timeout (1 s here): revoked at once, failure logged, the client answered with the policy's redirect."""
    policy = write_policy(tmp_path, **{"  timeout: 5\n  expect_status": "  timeout: 1\n  expect_status"})
    proxy = start_guard(slow_app.url, tmp_path, policy=policy)
    try:
        user = Clock(proxy.port).login()
        thread, result = attack_in_background(proxy.port, user, timeout=15)
        thread.join(20)
        assert slow_app.logouts == 1  # the logout reached the application, which never answered
        assert refused(Browser(proxy.port, cookies=user).get("/account"))  # the session is revoked
    finally:
        slow_app.release.set()
        proxy.stop()
    reply = result.get("reply")
    assert reply is not None and reply.status == 302 and reply.header("Location") == SIGNED_OUT, result
    print(f"\nrewrite logout hanging upstream: client answered after {result['elapsed']:.2f}s")
    assert 1 <= result["elapsed"] < 1 + 2
    assert "LogoutGuard: forced logout request failed" in proxy.log()
    logout = next(line for line in audit_lines(tmp_path) if line["action"] == "logout")
    assert logout["logout"]["ok"] is False and "imeout" in logout["logout"]["error"]


def test_slow_application_during_out_of_band_logout(tmp_path: Path, slow_app: SlowLogoutApp) -> None:
    """Out-of-band mode: the policy's logout timeout (2 s here) bounds the wait; revoked, logged, answered."""
    policy = write_policy(
        tmp_path,
        **{
            "  mode: rewrite": "  mode: out_of_band",
            "  timeout: 5\n  expect_status": "  timeout: 2\n  expect_status",
        },
    )
    proxy = start_guard(slow_app.url, tmp_path, policy=policy)
    try:
        user = Clock(proxy.port).login()
        thread, result = attack_in_background(proxy.port, user, timeout=15)
        thread.join(20)
        assert refused(Browser(proxy.port, cookies=user).get("/account"))
    finally:
        proxy.stop()
    reply = result.get("reply")
    assert reply is not None and reply.status == 302 and reply.header("Location") == SIGNED_OUT, result
    print(f"\nout-of-band logout hanging upstream: client answered after {result['elapsed']:.2f}s")
    assert 2 <= result["elapsed"] < 2 + 2
    assert "LogoutGuard: forced logout request failed" in proxy.log()
    logout = next(line for line in audit_lines(tmp_path) if line["action"] == "logout (out-of-band)")
    assert logout["logout"]["ok"] is False and "imeout" in logout["logout"]["error"]


def test_application_down_during_out_of_band_logout(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, **{"  mode: rewrite": "  mode: out_of_band"})
    app = DemoApp(port=0).start()
    proxy = start_guard(app.url, tmp_path, policy=policy)
    try:
        clock = Clock(proxy.port)
        user = clock.login()
        port = app.port
        app.stop()
        reply = clock.get(XSS, user)
        assert reply.status == 302 and reply.header("Location") == SIGNED_OUT
        app = DemoApp(port=port).start()  # back on the same port: the old ID stays dead at the proxy
        assert refused(clock.get("/account", user))
    finally:
        proxy.stop()
        app.stop()
    report(clock)
    assert "LogoutGuard: forced logout request failed" in proxy.log()
    logout = next(line for line in audit_lines(tmp_path) if line["action"] == "logout (out-of-band)")
    assert logout["logout"]["ok"] is False and logout["logout"]["status"] is None


# --- (c) kill -9 of mitmdump under load (SQLite) --------------------------------------------------


def test_kill_9_under_load_loses_no_revocation(tmp_path: Path) -> None:
    app = DemoApp(port=0).start()
    proxy = start_guard(app.url, tmp_path)
    store = tmp_path / "sessions.sqlite"
    stop = threading.Event()
    logged_out: list[str] = []  # IDs whose forced logout the client saw answered
    browsed = [0]

    def attacker() -> None:
        with contextlib.suppress(OSError, AssertionError, KeyError):
            while not stop.is_set():
                user = Browser(proxy.port, timeout=5)
                old = user.login()
                reply = user.get(XSS)
                if reply.status == 302 and reply.header("Location") == SIGNED_OUT:
                    logged_out.append(old)

    def visitor() -> None:
        with contextlib.suppress(OSError, AssertionError, KeyError):
            user = Browser(proxy.port, timeout=5)
            user.login()
            while not stop.is_set():
                user.get("/account")
                browsed[0] += 1

    threads = [threading.Thread(target=attacker) for _ in range(6)] + [
        threading.Thread(target=visitor) for _ in range(4)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(logged_out) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proxy.proc.kill()  # SIGKILL in the middle of the traffic
    proxy.proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    confirmed = list(logged_out)
    print(f"\nkill -9 after {len(confirmed)} answered forced logouts and {browsed[0]} page views")
    assert len(confirmed) >= 20 and browsed[0] > 0
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        revoked = {row[0] for row in db.execute("SELECT id_hash FROM sessions WHERE state = 'revoked'")}
    hasher = SessionHasher(read_key(default_key_path(store)))
    assert {hasher.hash(old) for old in confirmed} <= revoked
    restarted = start_guard(app.url, tmp_path)
    try:
        assert all(
            refused(Browser(restarted.port, cookies={"JSESSIONID": old}).get("/account")) for old in confirmed
        )
    finally:
        restarted.stop()
        app.stop()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_kill_9_right_after_a_forced_logout(tmp_path: Path, backend: str) -> None:
    """The proxy is killed (SIGKILL) the moment the forced logout is answered, with the sightings of the
    requests before still written behind; restarted on the same SQLite file or Redis, it refuses the
    revoked ID (its own refusal, audited as revoked_session) and still serves the valid session."""
    app = DemoApp(port=0).start()
    redis = start_redis(tmp_path) if backend == "redis" else None
    options = (
        {"guard_session_store": redis.url, "guard_session_key": str(tmp_path / "shared.key")}
        if redis is not None
        else {}
    )
    proxy = start_guard(app.url, tmp_path, **options)
    restarted = None
    try:
        victim, bystander = Browser(proxy.port), Browser(proxy.port)
        stolen = victim.login()
        bystander.login()
        assert victim.get("/account").status == 200 and bystander.get("/account").status == 200
        reply = victim.get(XSS)
        assert reply.status == 302 and reply.header("Location") == SIGNED_OUT
        proxy.proc.kill()  # right after the answer: no done(), no flush
        assert proxy.proc.wait() == -signal.SIGKILL
        restarted = start_guard(app.url, tmp_path, **options)
        before = len(audit_lines(tmp_path))
        assert refused(Browser(restarted.port, cookies={"JSESSIONID": stolen}).get("/account"))
        assert Browser(restarted.port, cookies=dict(bystander.cookies)).get("/account").status == 200
        situations = [line["situation"] for line in audit_lines(tmp_path)[before:]]
        assert situations[0] == "revoked_session", situations
    finally:
        if restarted is not None:
            restarted.stop()
        proxy.stop()
        app.stop()
        if redis is not None:
            redis.stop()


# --- (d) SQLite on a full or read-only disk -------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A private 512 KiB tmpfs (root only; skipped elsewhere: it cannot be simulated faithfully)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_full_disk_fails_closed_then_recovers(tmp_path: Path, tiny_disk: Path) -> None:
    app = DemoApp(port=0).start()
    store = tiny_disk / "sessions.sqlite"
    proxy = start_guard(app.url, tmp_path, guard_session_store=str(store), guard_fail_mode="closed")
    clock = Clock(proxy.port)
    try:
        user = clock.login()
        assert clock.get("/account", user).status == 200
        filler = fill(tiny_disk)
        # no write per request: reads still answer, the sighting waits (and fails) behind
        assert clock.get("/account", user).status == 200
        assert clock.get("/").status == 200  # anonymous traffic is served
        assert clock.get(XSS, user).status == 503  # its score cannot be recorded: closed
        filler.unlink()
        assert clock.get("/account", user).status == 200
    finally:
        proxy.stop()
        app.stop()
    log = proxy.log()
    report(clock)
    assert (
        f"{UNAVAILABLE}session store {store}: record_scored_request failed: database or disk is full (free some disk space)); fail mode closed"
        in log
    )
    assert REACHABLE in log and "Traceback" not in log


def test_full_disk_fails_open(tmp_path: Path, tiny_disk: Path) -> None:
    app = DemoApp(port=0).start()
    store = tiny_disk / "sessions.sqlite"
    proxy = start_guard(app.url, tmp_path, guard_session_store=str(store), guard_fail_mode="open")
    clock = Clock(proxy.port)
    try:
        user = clock.login()
        fill(tiny_disk)
        assert clock.get("/account", user).status == 200  # open: judged by the rules alone
        attacked = clock.get(XSS, user)  # the revocation cannot be written; the logout still happens
        assert attacked.status == 302 and attacked.header("Location") == SIGNED_OUT
        assert not app.is_session_valid(user["JSESSIONID"])
        # the store still reads it active; this worker remembers what it revoked and refuses it itself
        assert refused(clock.get("/account", user))
        assert audit_lines(tmp_path)[-1]["situation"] == "revoked_session"
    finally:
        proxy.stop()
        app.stop()
    log = proxy.log()
    report(clock)
    assert f"{UNAVAILABLE}session store {store}: record_scored_request failed: database or disk is full" in log
    assert "fail mode open" in log and "could not record the revocation (store unavailable)" in log
    assert "Traceback" not in log


def test_read_only_store_file_at_start_up_is_a_clear_error(tmp_path: Path) -> None:
    """SQLite opens at start-up (configure): a read-only file stops the start with a clear message."""
    store = tmp_path / "sessions.sqlite"
    SqliteStore(store, key=b"k" * 32).close_sync()
    store.chmod(0o444)
    proxy = None
    try:
        proxy = start_mitmdump("http://127.0.0.1:9", tmp_path, f"guard_session_store={store}")
        assert proxy.proc.wait(timeout=20) != 0  # it listened for a moment, then stopped
        output = proxy.log()
    except RuntimeError as exc:  # or it stopped before listening
        output = str(exc)
    finally:
        if proxy is not None:
            proxy.stop()
    assert "guard_session_store: session store" in output
    assert "the database file is read-only (mode 0444); the store must be writable" in output
