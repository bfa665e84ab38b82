"""Start-up: bad --set values taken out before mitmproxy parses them, choices enforced, the 503 gate, a
refused change that keeps the configuration in force, and nothing that compiles on the first requests."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import sys
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions, optmanager
from mitmproxy.test import taddons, tflow, tutils

from logoutguard import guard_options, startup
from logoutguard.engine import prefilter
from logoutguard.guard import META_KEY, LogoutGuard
from procs import start_backend


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
