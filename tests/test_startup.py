"""Start-up: bad --set values taken out before mitmproxy parses them, choices enforced, the 503 gate, a
refused change that keeps the configuration in force, and nothing that compiles on the first requests."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions, optmanager
from mitmproxy.test import taddons, tflow, tutils

from logoutguard import guard_options, startup
from logoutguard.engine import memo, prefilter
from logoutguard.engine.engine import Engine
from logoutguard.guard import META_KEY, LogoutGuard
from logoutguard.sessions.sqlite import SqliteStore
from procs import free_port, start_backend


def declared(*specs: str) -> optmanager.OptManager:
    """Options as mitmdump has them when the script declares them: --set values deferred, unparsed."""
    options = optmanager.OptManager()
    options.set(*specs, defer=True)
    guard_options.declare(options)  # OptManager.add_option: what the addon's `load` does
    return options


GUARD_NAMES = sorted(filter(lambda name: name.startswith("guard_"), declared().keys()))


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        ("guard_inbound_threshold=abc", "guard_inbound_threshold: 'abc' is not a whole number"),
        ("guard_paranoia=abc", "guard_paranoia: 'abc' is not a whole number"),
        ("guard_body_limit=1e6", "guard_body_limit: '1e6' is not a whole number"),
        ("guard_offline_revoke=maybe", "guard_offline_revoke: 'maybe' is not true or false"),
        ("guard_inbound_threshold", "guard_inbound_threshold: needs a value (a whole number)"),
    ],
)
def test_a_value_that_does_not_parse_is_taken_out_and_said_in_one_line(spec: str, line: str) -> None:
    options = optmanager.OptManager()
    options.set(spec, "guard_paranoia=2" if "paranoia" not in spec else "guard_mode=detect", defer=True)
    # declare without processing the deferred values yet, as mitmproxy's Loader does before process_deferred
    guard_options.declare(_NoProcessing(options))
    assert startup.take_bad_values(options, GUARD_NAMES) == [line]
    options.process_deferred()  # mitmproxy's next step: it no longer raises
    assert spec.split("=")[0] not in options.deferred
    assert options.guard_paranoia == 2 or options.guard_mode == "detect"  # the good value is applied


class _NoProcessing:
    """A loader whose add_option declares without applying deferred values (mitmproxy applies them after
    the whole `load`, in AddonManager.register)."""

    def __init__(self, options: optmanager.OptManager) -> None:
        self.options = options

    def add_option(self, name: str, typespec: Any, default: Any, help: str, choices: Any = None) -> None:
        self.options._options[name] = optmanager._Option(name, typespec, default, help, choices)


def test_a_typed_value_of_the_wrong_type_from_a_config_file_is_taken_out() -> None:
    options = optmanager.OptManager()
    options.update_defer(guard_paranoia="high", guard_rules=["rules"])  # config.yaml values are typed
    guard_options.declare(_NoProcessing(options))
    assert startup.take_bad_values(options, GUARD_NAMES) == ["guard_paranoia: 'high' is not a whole number"]
    assert "guard_rules" in options.deferred


def test_without_the_check_mitmproxy_raises_while_processing_the_deferred_value() -> None:
    """Why take_bad_values exists: mitmproxy's own processing raises, outside any handler at start-up."""
    options = declared("guard_inbound_threshold=abc")
    with pytest.raises(exceptions.OptionsError, match="not an integer: abc"):
        options.process_deferred()  # what AddonManager.register does after the addon's `load`


def test_choices_are_enforced_for_every_option_declared_with_them() -> None:
    options = declared()
    with_choices = [n for n in GUARD_NAMES if options._options[n].choices]
    assert {"guard_mode", "guard_fail_mode", "guard_error_action"} <= set(with_choices)
    for name in with_choices:
        options._options[name].value = "nonsense"
        with pytest.raises(exceptions.OptionsError, match=f"^{name}: 'nonsense' is not one of "):
            startup.check_choices(options, {name})
        options._options[name].reset()
    startup.check_choices(options, set(GUARD_NAMES))


def test_the_gate_refuses_with_503_until_ready_and_for_good_after_a_failed_start() -> None:
    gate = startup.Gate()
    f = tflow.tflow()
    gate.refuse(f)
    assert f.response is not None and f.response.status_code == 503 and "starting" in f.comment
    gate.ready()
    assert gate.open
    gate.fail("guard_paranoia: 'abc' is not a whole number")
    assert not gate.open and gate.refused == 1


def flow_for(path: str, method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    req = tutils.treq(method=method.encode(), path=path.encode(), content=body)
    req.headers.clear()
    req.headers["Host"] = "app.test"
    for name, value in (headers or {}).items():
        req.headers[name] = value
    if body:
        req.headers["Content-Length"] = str(len(body))
    return tflow.tflow(req=req, live=True)


ATTACK = "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E"


async def test_a_request_before_the_addon_is_configured_is_refused_not_passed() -> None:
    guard = LogoutGuard()
    with taddons.context(guard):
        f = flow_for(ATTACK)
        await guard.request(f)
        assert f.response is not None and f.response.status_code == 503
        assert META_KEY not in f.metadata  # refused by the gate, not judged


async def test_a_failed_start_refuses_every_request(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """mitmproxy loading the script configures it with every option; a --set value that did not parse
    fails that configure in one line, and the addon (left registered by mitmproxy) refuses everything."""
    guard = LogoutGuard()
    with taddons.context(guard) as tctx:
        tctx.options.update(guard_session_store="memory", guard_audit_log="")
        guard.bad_values = ["guard_paranoia: 'abc' is not a whole number"]  # as `load` took it out
        guard.configure(set(tctx.options.keys()))
        assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
            "guard_paranoia: 'abc' is not a whole number"
        ]
        f = flow_for("/search?q=shoes")
        await guard.request(f)
        assert f.response is not None and f.response.status_code == 503
        assert "guard_paranoia: 'abc'" in f.comment


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[LogoutGuard, Any]]:
    guard = LogoutGuard()
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_session_store="memory", guard_audit_log=str(tmp_path / "audit.jsonl"))
        yield guard, tctx


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("guard_paranoia", 9, "guard_paranoia: 9 is not in 1-4"),
        ("guard_mode", "block", "guard_mode: 'block' is not one of detect, enforce"),
        ("guard_rules", ["/nonexistent/rules"], "/nonexistent/rules"),
        ("guard_policy", "/nonexistent/policy.yaml", "guard_policy: "),
        ("guard_crs", "/nonexistent/crs", "guard_crs: /nonexistent/crs: no such file or folder"),
    ],
)
async def test_a_refused_change_keeps_the_configuration_in_force_and_says_so(
    running: tuple[LogoutGuard, Any], option: str, value: Any, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    guard, tctx = running
    engine, policy, tracker = guard.pipeline.engine, guard.pipeline.policy, guard.pipeline.tracker
    with pytest.raises(exceptions.OptionsError, match=re.escape(words)):
        tctx.options.update(**{option: value})  # mitmproxy refuses it and rolls the option back
    assert getattr(tctx.options, option) != value
    assert (guard.pipeline.engine, guard.pipeline.policy, guard.pipeline.tracker) == (engine, policy, tracker)
    assert guard.gate.open
    assert any("the previous configuration stays in force" in r.getMessage() for r in caplog.records)
    f = flow_for(ATTACK)
    await guard.request(f)
    assert f.response is not None and f.response.status_code == 403  # still judged and blocked


def test_a_refused_store_change_closes_what_it_opened_and_keeps_the_old_store(
    running: tuple[LogoutGuard, Any], tmp_path: Path
) -> None:
    guard, tctx = running
    store = guard.store
    with pytest.raises(exceptions.OptionsError, match="guard_metrics"):
        tctx.options.update(guard_session_store=str(tmp_path / "new.sqlite"), guard_metrics="not a port")
    assert (
        guard.store is store and guard.pipeline.tracker is not None and guard.pipeline.tracker.store is store
    )


@contextlib.contextmanager
def counting_compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every regex `re` compiles (its cache misses) while inside, in any thread."""
    compiled: list[str] = []
    real_compile = re._compiler.compile  # type: ignore[attr-defined]

    def counting(pattern: Any, flags: int = 0) -> Any:
        compiled.append(str(pattern)[:80])
        return real_compile(pattern, flags)

    with monkeypatch.context() as patch:
        patch.setattr(re._compiler, "compile", counting)  # type: ignore[attr-defined]
        yield compiled


SHAPES = [
    ("GET", "/search?q=running+shoes&page=2", b"", {}),
    ("GET", "/account", b"", {"Cookie": "JSESSIONID=0123456789abcdef0123; theme=dark"}),
    (
        "POST",
        "/login",
        b"username=guest&password=guest",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    (
        "POST",
        "/api/orders",
        b'{"items": [{"id": 1, "note": "it\'s fine"}]}',
        {"Content-Type": "application/json"},
    ),
    (
        "POST",
        "/upload",
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nhello\r\n--b--\r\n',
        {"Content-Type": "multipart/form-data; boundary=b"},
    ),
    ("POST", "/soap", b"<a><b>hello</b></a>", {"Content-Type": "application/xml"}),
    ("GET", ATTACK, b"", {}),
    ("GET", "/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--", b"", {}),
    ("GET", "/ping?host=127.0.0.1;cat%20/etc/passwd", b"", {}),
]
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"}


async def test_nothing_compiles_or_imports_on_the_first_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warm at start: with the shipped rules and the SQLite store, the first request of every shape (query,
    cookie, login form, JSON, multipart, XML, attacks that score and are refused) compiles no regex, builds
    no prefilter database and imports no module: all of that happened in configure."""
    guard = LogoutGuard()
    with taddons.context(guard) as tctx:
        tctx.configure(
            guard,
            guard_session_store=str(tmp_path / "sessions.sqlite"),
            guard_audit_log=str(tmp_path / "audit.jsonl"),
        )
        databases = dict(prefilter._compiled)
        modules = set(sys.modules)
        statuses = []
        with counting_compiles(monkeypatch) as compiled:
            for method, path, body, headers in SHAPES:
                f = flow_for(path, method, body, {**BROWSER, **headers})
                await guard.request(f)
                if f.response is None:
                    f.response = tutils.tresp()
                    await guard.response(f)
                statuses.append(f.response.status_code)
            assert compiled == []
            re.compile("a regex compiled on purpose: the hook counts")
            assert compiled == ["a regex compiled on purpose: the hook counts"]
        assert prefilter._compiled == databases
        assert set(sys.modules) - modules == set()
        assert statuses[-3:] == [403, 403, 403] and statuses[0] == 200  # judged for real


async def test_nothing_compiles_or_imports_on_the_first_forced_logout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first forced logout (recipe step, logout request, verification against the application)
    compiles no regex and imports no module either."""
    from test_guard import AUTH, RULES, login, session_options

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yaml").write_text(RULES)
    app = start_backend()
    app.response_body = b'<form method="post" action="/logout"><input name="csrf" value="T1"></form>'
    app.response_headers = [("Set-Cookie", "JSESSIONID=NEW; Path=/; HttpOnly")]
    try:
        urllib.request.urlopen(app.url + "/warm", timeout=10).read()  # the backend's own first request
        guard = LogoutGuard()
        with taddons.context(guard) as tctx:
            tctx.configure(guard, **session_options(rules_dir, tmp_path, mode=[f"reverse:{app.url}"]))
            with counting_compiles(monkeypatch) as compiled:
                modules = set(sys.modules)
                await login(guard)
                f = flow_for("/search?q=1 union select pass", headers=AUTH)
                await guard.request(f)
                await asyncio.gather(*guard._background)
                assert f.metadata[META_KEY]["action"] == "logout"  # the forced logout ran
                assert any(r.path == "/logout" for r in app.received)
                assert compiled == [] and set(sys.modules) - modules == set(), (compiled, sorted(set(sys.modules) - modules))
    finally:
        app.stop()


class _Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_settle_heap_freezes_what_is_built_and_hands_back_what_a_reload_replaced() -> None:
    built = _Cycle()
    alive = weakref.ref(built)
    try:
        startup.settle_heap(replaced=False)  # start-up: what is there now is out of the collector's way
        assert gc.get_freeze_count() > 0
        del built  # replaced by a reload
        gc.collect()
        assert alive() is not None  # frozen: collections do not look at it
        startup.settle_heap(replaced=True)  # after the reload's build
        assert alive() is None  # given back to the collector first, and freed
    finally:
        gc.unfreeze()


# -- the rehearsal (warm at start) ------------------------------------------------------------------
def sqlite_options(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "guard_session_store": str(tmp_path / "sessions.sqlite"),
        "guard_audit_log": str(tmp_path / "audit.jsonl"),
        **extra,
    }


def counted(metrics: Any) -> dict[str, float]:
    """Every count the metrics hold that is not zero (counters' totals, histograms' counts)."""
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name.endswith(("_total", "_count")) and sample.value
    }


async def test_the_rehearsal_leaves_no_trace(tmp_path: Path) -> None:
    """Start-up judges made-up requests (sessions among them) with the parts about to be in force: no
    audit line, no session (no row, no write, nothing cached), no metric, nothing in the pipeline's own
    state. The same checks then see what one real request leaves."""
    memo.clear_all()
    guard = LogoutGuard()
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **sqlite_options(tmp_path, guard_metrics=f"127.0.0.1:{free_port()}"))
        assert guard.gate.open and guard.store is not None and guard.metrics is not None
        assert sum(map(len, memo._tables)) > 0  # the rehearsal ran: the engine kept pure results of it
        audit = tmp_path / "audit.jsonl"
        assert audit.read_text() == ""
        assert await guard.store.count() == 0 and len(guard.store.cache) == 0
        with contextlib.closing(sqlite3.connect(tmp_path / "sessions.sqlite")) as db:
            assert db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchall() == [("0",)]
        assert counted(guard.metrics) == {}
        pipeline, tracker = guard.pipeline, guard.pipeline.tracker
        assert tracker is not None and not tracker._known and not tracker._adoptions
        assert not pipeline.recent and not pipeline.pending and not guard._background
        assert not pipeline.health.down

        f = flow_for(ATTACK, headers={"Cookie": "JSESSIONID=0123456789abcdef0123"})  # one real request
        await guard.request(f)
        assert f.response is not None and f.response.status_code == 403
        await guard.response(f)  # mitmproxy calls it with the refusal
        assert len(audit.read_text().splitlines()) == 1
        assert await guard.store.count() == 1  # adopted in the grace period after start-up
        assert counted(guard.metrics) and tracker._known and pipeline.recent
        await guard.done()


async def test_the_rehearsal_changes_no_verdict(tmp_path: Path) -> None:
    """What the engine keeps from the rehearsal are pure results: the corpus inputs (every third, and
    responses) get the same verdicts with them as with nothing kept."""
    from engine.verdict_snapshot import corpus_inputs, judge, record

    memo.clear_all()
    guard = LogoutGuard()
    with taddons.context(guard) as tctx:
        tctx.configure(guard, **sqlite_options(tmp_path))
        engine = guard.pipeline.engine
        assert engine is not None and sum(map(len, memo._tables)) > 0
        inputs = list(corpus_inputs())[::3]
        after_rehearsal = [record(judge(engine, tx, response)) for _, tx, response in inputs]
        memo.clear_all()
        with_nothing_kept = [record(judge(engine, tx, response)) for _, tx, response in inputs]
        assert after_rehearsal == with_nothing_kept
        assert any(r["blocked"] for r in after_rehearsal) and not all(r["blocked"] for r in after_rehearsal)
        await guard.done()


class FailingEngine(Engine):
    def inspect_request(self, tx):  # type: ignore[no-untyped-def]
        raise RuntimeError("engine failure for the test")


async def test_a_rehearsal_that_fails_refuses_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An engine that cannot judge a plain request at start-up would fail every real one (or pass them
    unjudged with guard_error_action=pass): the start is refused in one line, the gate answers 503."""
    monkeypatch.setattr("logoutguard.guard.build_engine", lambda ruleset, opts: FailingEngine(ruleset))
    guard = LogoutGuard()
    with taddons.context() as tctx:
        tctx.options.set(*(f"{k}={v}" for k, v in sqlite_options(tmp_path).items()), defer=True)  # --set
        tctx.master.addons.add(guard)  # load: the options declared, the --set values applied
        guard.configure(set(tctx.options.keys()))  # as mitmproxy loading the script does
        assert guard.gate.state is startup.GateState.FAILED
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert errors[-1] == (
            "LogoutGuard's warm-up failed: judging the made-up request GET /shop/search failed: "
            "RuntimeError: engine failure for the test"
        )
        f = flow_for("/search?q=shoes")
        await guard.request(f)
        assert f.response is not None and f.response.status_code == 503
        assert (tmp_path / "audit.jsonl").read_text() == ""
        await guard.done()


async def test_a_rehearsal_that_fails_refuses_a_change_and_keeps_the_configuration(
    running: tuple[LogoutGuard, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    guard, tctx = running
    engine = guard.pipeline.engine
    monkeypatch.setattr("logoutguard.guard.build_engine", lambda ruleset, opts: FailingEngine(ruleset))
    with pytest.raises(
        exceptions.OptionsError, match="warm-up failed: judging the made-up request GET /shop"
    ):
        tctx.options.update(guard_paranoia=2)
    assert guard.pipeline.engine is engine and guard.gate.open
    assert "reload refused: LogoutGuard's warm-up failed" in guard.reload()
    assert guard.pipeline.engine is engine


def test_a_store_that_cannot_be_read_at_start_up_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(store: SqliteStore) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteStore, "_warm", unreadable)
    guard = LogoutGuard()
    with taddons.context(guard) as tctx:
        with pytest.raises(
            exceptions.OptionsError, match=r"^guard_session_store: warming up: session store .*disk I/O error"
        ):
            tctx.configure(guard, **sqlite_options(tmp_path))
        assert not guard.gate.open and guard.store is None


@contextlib.contextmanager
def first_runs() -> Iterator[tuple[list[Any], list[bool]]]:
    """The code objects that start running for the first time since entering, while recording is on
    (sys.monitoring: each code object reports its first start once, then no more)."""
    monitoring = sys.monitoring
    tool = next(t for t in (3, 4) if monitoring.get_tool(t) is None)
    new: list[Any] = []
    recording = [False]

    def started(code: Any, offset: int) -> Any:
        if recording[0]:
            new.append(code)
        return monitoring.DISABLE

    monitoring.use_tool_id(tool, "logoutguard first runs")
    try:
        monitoring.register_callback(tool, monitoring.events.PY_START, started)
        monitoring.set_events(tool, monitoring.events.PY_START)
        yield new, recording
    finally:
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.PY_START, None)
        monitoring.free_tool_id(tool)
        monitoring.restart_events()


# What the first request may still run for the first time: the adapter's hooks (a few lines each), and
# the SQLite store's own code (its cache, its sightings written behind, the record helpers it calls): its
# first read of a new session and the adoption's write wait on the store's thread anyway, the rehearsal
# must not use the real store, and warm() compiles its statements.
FIRST_RUN_ALLOWED = (
    "guard.py",
    "startup.py:Gate.",
    "logout_flow.py",
    "sessions/sqlite.py",
    "sessions/record_cache.py",
    "sessions/sightings.py",
    "sessions/store.py:effective_state",
)


# A support form of 2 KB (the end-to-end benchmark's POST): values longer than the engine's memo keeps.
LONG_FORM = (
    "POST",
    "/account/support",
    urllib.parse.urlencode(
        {"name": "Maria O'Neil", "order": "A-2024-118734", "comment": "Hello, the shoes are too small. " * 60}
    ).encode(),
    {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "JSESSIONID=0123456789abcdef0123"},
)


async def first_runs_of_benign_requests(folder: str) -> list[str]:
    """LogoutGuard's functions that the first request of each benign shape (query and cookies with a
    session, form, JSON, multipart, XML, a 2 KB form) and its response run for the first time since the
    start."""
    package = Path(startup.__file__).parent
    with first_runs() as (new, recording):
        guard = LogoutGuard()
        with taddons.context(guard) as tctx:
            tctx.configure(guard, **sqlite_options(Path(folder)))
            for method, path, body, headers in [*SHAPES[:6], LONG_FORM]:
                f = flow_for(path, method, body, {**BROWSER, **headers})
                recording[0] = True
                await guard.request(f)
                recording[0] = False
                assert f.response is None  # benign: passed on
                f.response = tutils.tresp()
                recording[0] = True
                await guard.response(f)
                recording[0] = False
            await guard.done()
    return [
        f"{Path(code.co_filename).relative_to(package).as_posix()}:{code.co_qualname}"
        for code in new
        if Path(code.co_filename).is_relative_to(package)
    ]


def test_the_first_benign_requests_run_no_judging_code_for_the_first_time(tmp_path: Path) -> None:
    """Warm at start, the other half: Python specialises code as it runs, and the engine's parts do
    their own first-time work, so the first requests run no function of LogoutGuard's judging that
    start-up (the rehearsal) did not run. In a new process: one that judged before (these tests) has
    run them all, or keeps results (memo, lru_cache) that spare the rehearsal running them."""
    code = "import asyncio, json, sys, test_startup as t; print(json.dumps(asyncio.run(t.first_runs_of_benign_requests(sys.argv[1]))))"
    tests = Path(__file__).resolve().parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=tests,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ours = json.loads(done.stdout.strip().splitlines()[-1])
    assert ours and [name for name in ours if not name.startswith(FIRST_RUN_ALLOWED)] == []
