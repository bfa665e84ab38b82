"""Saved flows (tests/flows/*.mitm) re-judged offline, and re-sent live with --client-replay through the addon.

Offline: `mitmdump -n -r FILE -s addon/main.py -w OUT` per file; the saved flows are judged on a private
in-memory tracker fed in order (a flow rewritten into the logout is judged on its original request),
nothing is sent (guard_upstream points at a recording server that must stay silent) and nothing is
revoked (the SQLite store stays empty, guard_offline_revoke is off).

Live: client-replayed flows run through every addon of the mitmdump that replays them (mitmproxy's
clientplayback.ReplayHandler.handle_hook hands each hook to `master.addons`, the HTTP layer sets
`flow.live = True`) and go to the host/port recorded in the request (HTTPMode.transparent). So the
saved flows are prepared (tests/flows/replay_tokens.py: original requests back, aimed at a fresh
demo app) and replayed by `mitmdump -n -C ... -s replay_tokens.py -s addon/main.py --mode
reverse:APP`; the reverse mode names the upstream the addon sends the logout and the probe to.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from flows.replay_tokens import prepare
from mitmproxy import http
from mitmproxy import io as mitmio

from e2e.test_forced_logout import DEMO_POLICY, store_rows
from logoutguard.demo.app import DemoApp
from logoutguard.logout_flow import LOGOUT_KEY
from procs import ADDON_SCRIPT, BIN, REPO, Received, start_backend

pytestmark = pytest.mark.e2e

FLOWS = REPO / "tests" / "flows"
TOKEN_SWAP = FLOWS / "replay_tokens.py"
NAMES = ("benign", "attack", "stolen", "defective")
TIMEOUT_S = 240


def read_flows(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as fh:
        return [f for f in mitmio.FlowReader(fh).stream() if isinstance(f, http.HTTPFlow)]


def write_flows(path: Path, flows: list[http.HTTPFlow]) -> None:
    with path.open("wb") as fh:
        writer = mitmio.FlowWriter(fh)
        for f in flows:
            writer.add(f)


def mitmdump(*args: str) -> subprocess.CompletedProcess[str]:
    """A one-shot mitmdump with the addon (LOGOUTGUARD_TEST_RULES honoured like tests/procs.py)."""
    rules = os.environ.get("LOGOUTGUARD_TEST_RULES")
    command = [str(BIN / "mitmdump"), *args, *(["--set", f"guard_rules={rules}"] if rules else [])]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=REPO)


def guard_options(tmp: Path, **extra: str) -> list[str]:
    options = {
        "guard_policy": str(DEMO_POLICY),
        "guard_session_store": str(tmp / "sessions.sqlite"),
        "guard_audit_log": str(tmp / "audit.jsonl"),
        "guard_mode": "enforce",
        **extra,
    }
    return [arg for k, v in options.items() for arg in ("--set", f"{k}={v}")]


def record(f: http.HTTPFlow) -> dict:
    return f.metadata["logoutguard"]


def rule_ids(f: http.HTTPFlow) -> set[int]:
    return {m["id"] for m in record(f)["matches"]}


# -- offline ------------------------------------------------------------------------------------


class Expect(NamedTuple):
    """What the offline judge must say about one saved flow."""

    situation: str
    state: str  # the session state the tracker reports (none: no session cookie)
    rules: frozenset[int] = frozenset()  # must all match; empty: no rule may match
    category: str | None = None  # a matched rule's category
    blocked: bool = False


CLEAN_ANON = Expect("clean", "none")
CLEAN = Expect("clean", "active")
XSS_LOGOUT = Expect(
    "authenticated_over_threshold", "active", frozenset({941100, 941110}), "xss", blocked=True
)
SQLI_LOGOUT = Expect("authenticated_over_threshold", "active", frozenset({942140}), "sqli", blocked=True)
# after the logout the application replaced the cookie (offline nothing is revoked): the old ID is "ended"
OLD_ID = Expect("revoked_session", "ended", frozenset({945120}), "session", blocked=True)
STOLEN_USE = Expect("clean", "active", frozenset({945140}), "session")
STOLEN_LOGOUT = Expect("cumulative_threshold", "active", frozenset({945140}), "session", blocked=True)

OFFLINE: dict[str, list[Expect]] = {
    # GET /login, POST /login, /account, /search, POST /logout (CSRF), GET /
    "benign": [CLEAN_ANON, CLEAN_ANON, CLEAN, CLEAN, CLEAN, CLEAN],
    # login, /account, /search, XSS (rewritten), old ID again, login, SQLi (rewritten)
    "attack": [CLEAN_ANON, CLEAN, CLEAN, XSS_LOGOUT, OLD_ID, CLEAN, SQLI_LOGOUT],
    # login, /account, thief x3 (the third rewritten: cumulative threshold), the victim's old ID
    "stolen": [CLEAN_ANON, CLEAN, STOLEN_USE, STOLEN_USE, STOLEN_LOGOUT, OLD_ID],
    # login, /account, XSS (rewritten), old ID again
    "defective": [CLEAN_ANON, CLEAN, XSS_LOGOUT, OLD_ID],
}


@dataclass
class Judged:
    saved: list[http.HTTPFlow]
    judged: list[http.HTTPFlow]
    process: subprocess.CompletedProcess[str]
    store: Path
    audit: Path


@pytest.fixture(scope="module")
def backend_received() -> Iterator[tuple[str, list[Received]]]:
    """A server that records whatever reaches it: the offline judge must send it nothing."""
    backend = start_backend()
    yield backend.url, backend.received
    backend.stop()


@pytest.fixture(scope="module")
def offline(
    tmp_path_factory: pytest.TempPathFactory, backend_received: tuple[str, list[Received]]
) -> Callable[[str], Judged]:
    """name -> the saved file re-judged offline (one mitmdump run per file, cached for the module)."""
    cache: dict[str, Judged] = {}

    def judge(name: str) -> Judged:
        if name not in cache:
            tmp = tmp_path_factory.mktemp(f"offline-{name}")
            out = tmp / "judged.mitm"
            process = mitmdump(
                "-n",
                "-r",
                str(FLOWS / f"{name}.mitm"),
                "-w",
                str(out),
                "-s",
                str(ADDON_SCRIPT),
                *guard_options(tmp, guard_upstream=backend_received[0], guard_offline_revoke="false"),
            )
            judged = read_flows(out) if out.exists() else []
            cache[name] = Judged(
                read_flows(FLOWS / f"{name}.mitm"),
                judged,
                process,
                tmp / "sessions.sqlite",
                tmp / "audit.jsonl",
            )
        return cache[name]

    return judge


@pytest.mark.parametrize("name", NAMES)
def test_offline_rejudging_sends_and_revokes_nothing(
    name: str, offline: Callable[[str], Judged], backend_received: tuple[str, list[Received]]
) -> None:
    result = offline(name)
    output = result.process.stdout + result.process.stderr
    assert result.process.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    assert len(result.judged) == len(result.saved) == len(OFFLINE[name])
    assert backend_received[1] == []  # no logout, no probe
    assert store_rows(result.store) == []  # no session, revocation or score reached the store
    assert not result.audit.exists() or result.audit.read_text() == ""
    for f in result.judged:
        assert not f.live and record(f)["action"] == "none (offline)", f.request.path


@pytest.mark.parametrize(
    ("name", "index"),
    [pytest.param(name, i) for name in NAMES for i in range(len(OFFLINE[name]))],
)
def test_offline_verdict(name: str, index: int, offline: Callable[[str], Judged]) -> None:
    f = offline(name).judged[index]
    expect, verdict = OFFLINE[name][index], record(f)
    where = f"{name}.mitm flow {index} {f.request.method} {f.request.path}: {verdict.get('situation')}"
    assert expect.rules <= rule_ids(f), where
    if not expect.rules:
        assert verdict["matches"] == [], where
    if expect.category:
        assert expect.category in {m["category"] for m in verdict["matches"]}, where
    assert verdict["blocked"] is expect.blocked, where
    assert verdict["situation"] == expect.situation, where
    assert verdict["session"]["state"] == expect.state, where


@pytest.mark.parametrize("name", ["attack", "defective"])
def test_offline_rewritten_flow_is_judged_on_its_original_request(
    name: str, offline: Callable[[str], Judged]
) -> None:
    result = offline(name)
    rewritten = [
        (s, j) for s, j in zip(result.saved, result.judged, strict=True) if "original_request" in record(s)
    ]
    assert rewritten, f"{name}.mitm holds no flow rewritten into the logout"
    for _saved, judged in rewritten:
        assert judged.request.path == "/logout"  # the saved request is the logout ...
        verdict = record(judged)  # ... judged on the attack it replaced
        assert verdict["blocked"] and any(m["target"] == "ARGS:q" for m in verdict["matches"])
        assert {m["category"] for m in verdict["matches"]} & {"xss", "sqli"}


# -- live ---------------------------------------------------------------------------------------


@dataclass
class Replayed:
    saved: list[http.HTTPFlow]
    replayed: list[http.HTTPFlow]
    app: DemoApp


def replay_live(tmp: Path, names: tuple[str, ...], defective: bool) -> Replayed:
    """The saved files, prepared for a fresh demo app, client-replayed through the addon."""
    app = DemoApp(port=0, defective_logout=defective).start()
    try:
        saved = [f for name in names for f in read_flows(FLOWS / f"{name}.mitm")]
        prepared, out = tmp / "prepared.mitm", tmp / "replayed.mitm"
        write_flows(prepared, [prepare(f, app.host, app.port) for f in saved])
        process = mitmdump(
            "-n",
            "-C",
            str(prepared),
            "-w",
            str(out),
            "-s",
            str(TOKEN_SWAP),
            "-s",
            str(ADDON_SCRIPT),
            "--mode",
            f"reverse:{app.url}",
            *guard_options(tmp),
        )
        output = process.stdout + process.stderr
        assert process.returncode == 0 and "Traceback" not in output, output[-3000:]
        replayed = [f for f in read_flows(out) if LOGOUT_KEY not in f.metadata]  # not the logouts' own flows
        return Replayed(saved, replayed, app)
    except BaseException:
        app.stop()
        raise


def issued_sessions(flows: list[http.HTTPFlow], path: str) -> list[str]:
    """The JSESSIONID values the application issued in answer to requests for path."""
    return [
        f.response.cookies["JSESSIONID"][0]
        for f in flows
        if f.response is not None and f.request.path == path and "JSESSIONID" in f.response.cookies
    ]


def assert_same_outcomes(result: Replayed) -> None:
    """Every replayed flow got what the recorded one got: status, situation, action."""
    assert len(result.replayed) == len(result.saved)
    for saved, replayed in zip(result.saved, result.replayed, strict=True):
        was, now = record(saved), record(replayed)
        where = f"{saved.request.method} {saved.request.path[:60]}"
        assert replayed.is_replay == "request", where
        assert replayed.response is not None and saved.response is not None, where
        assert replayed.response.status_code == saved.response.status_code, where
        assert (now["situation"], now["action"]) == (was["situation"], was["action"]), where


def test_live_replay_through_the_addon(tmp_path: Path) -> None:
    """benign + attack + stolen against one fresh app: the same outcomes, and the sessions are dead."""
    result = replay_live(tmp_path, ("benign", "attack", "stolen"), defective=False)
    try:
        assert_same_outcomes(result)
        benign = result.replayed[: len(read_flows(FLOWS / "benign.mitm"))]
        assert not any(f.marked for f in benign) and all(record(f)["matches"] == [] for f in benign)
        csrf_logout = next(f for f in benign if f.request.path == "/logout")
        assert csrf_logout.response is not None and csrf_logout.response.status_code == 200  # token swapped
        logouts = [record(f) for f in result.replayed if record(f)["action"] == "logout"]
        assert [r["situation"] for r in logouts] == [
            "authenticated_over_threshold",  # attack: XSS
            "authenticated_over_threshold",  # attack: SQLi
            "cumulative_threshold",  # stolen: third use from another User-Agent
        ]
        for r in logouts:
            assert (r["logout"]["ok"], r["logout"]["cookie_replaced"], r["logout"]["probe"]) == (
                True,
                True,
                "dead",
            )
            assert r["logout"]["result"] == "ended" and r["logout"]["warning"] is False
        logins = issued_sessions(result.replayed, "/login")
        assert len(logins) == 4  # benign, attack x2, stolen: each replayed login made a new session ...
        assert not any(result.app.is_session_valid(s) for s in logins)  # ... now dead at the application
        recorded = set(issued_sessions(result.saved, "/login"))
        assert recorded and not recorded & set(logins)
    finally:
        result.app.stop()


def test_live_replay_of_the_defective_logout(tmp_path: Path) -> None:
    result = replay_live(tmp_path, ("defective",), defective=True)
    try:
        assert_same_outcomes(result)
        (logout,) = [record(f) for f in result.replayed if record(f)["action"] == "logout"]
        assert logout["logout"]["probe"] == "alive"  # the application kept the session ...
        (session,) = issued_sessions(result.replayed, "/login")
        assert result.app.is_session_valid(session)
        refused = result.replayed[-1]  # ... the proxy refuses it all the same
        assert record(refused)["situation"] == "revoked_session" and 945110 in rule_ids(refused)
        assert refused.response is not None and refused.response.headers["Location"] == "/login"
    finally:
        result.app.stop()
