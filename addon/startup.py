"""Start-up: no request passes unjudged before a whole configuration is in force, and a bad option value
stops the start with one line (option, value, reason) instead of leaving a proxy without the addon.

How mitmproxy 12 starts a script (mitmproxy/tools/main.py, master.py, addons/script.py):
- `--set` values of options nobody has declared yet are kept aside ("deferred") as unparsed text.
- The script loader loads the script in a task of its own, while the proxy server starts: the
  listening socket can exist (and the kernel accept connections) before the script is loaded. The load is
  synchronous (import, `load`, `configure` with every option), so connections accepted meanwhile wait
  for it; the first request is then judged by the configured addon. The "listening at" line follows
  the load.
- When the script declares its options (`load`), mitmproxy parses their deferred values
  (OptManager.process_deferred). A value that does not parse (`--set guard_paranoia=abc`) raises
  there, outside every handler that would report it: the script stays registered but is never
  configured, nothing is logged, and mitmdump runs on with an addon that judges nothing.

So: `take_bad_values` (called by the addon's `load`) takes such values out of mitmproxy's deferred
options before it parses them, one generic check per option type, and keeps them as problems; the
first `configure` raises them as one OptionsError line. An error logged while mitmdump starts makes it
exit non-zero (addons/errorcheck.py). Until a configuration is in force, and for good after the
first one failed, the `Gate` answers every request 503 itself, so nothing reaches the application
unjudged even where mitmproxy would keep running.

Before the gate opens, `rehearse` judges a few made-up requests and their responses as live ones are
judged, so the first real request does not pay what only a first time costs: Python specialising the
code it runs, first calls of the engine's parts, the store's first read (`SessionStore.warm`). It uses
the engine, policy and settings about to be put in force, with a session store, audit log and
observer of its own: no session, audit line or metric is left behind, and what the engine keeps
between requests are pure results (engine/memo.py), so no verdict changes. A rehearsal that fails
refuses the configuration like a bad option: the proxy does not start (or a change is refused).
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import time
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

# AsyncHTTPClient's implementation and tornado's asyncio loop: loaded now, not by the first forced logout
import tornado.platform.asyncio
import tornado.simple_httpclient  # noqa: F401
from mitmproxy import connection, exceptions, http
from mitmproxy.utils import typecheck

from . import request_signals
from .audit_log import AuditLog
from .engine.combined import CombinedEngine
from .engine.engine import Engine
from .flow_bridge import META_KEY
from .pipeline import Pipeline, Settings
from .policy import Policy
from .responses import deny
from .sessions.hashing import SessionHasher
from .sessions.memory import MemoryStore
from .sessions.store import SessionStore, StoreError
from .sessions.tracker import SessionTracker

log = logging.getLogger("logoutguard")

# Patterns tornado 6 compiles on first use, i.e. in the first forced logout: simple_httpclient's host
# check, iostream's end of a header block, httputil's end of a header line.
TORNADO_PATTERNS: tuple[str | bytes, ...] = (r"^\[.*\]$", b"\r?\n\r?\n", r"\r?\n$")
TYPE_WORDS = {int: "a whole number", bool: "true or false", str: "a text"}
# Rounds of the rehearsal, each with values of its own: every path a new value takes runs twice (CPython
# specialises code as it runs it), and the second round also meets header names and other values the
# first one left in the engine's memo, as later requests do.
REHEARSAL_ROUNDS = 2
REHEARSAL_CLIENT = ("192.0.2.1", 40000)  # TEST-NET-1 (RFC 5737): no real client has it
REHEARSAL_HOST = "rehearsal.invalid"  # RFC 2606: no real site has it


class GateState(StrEnum):
    STARTING = "starting"  # no configuration in force yet
    READY = "ready"
    FAILED = "failed"  # the configuration at start-up was refused: the addon never judges


class Gate:
    """Whether requests may be judged; refused (503) while starting and after a failed start."""

    def __init__(self) -> None:
        self.state = GateState.STARTING
        self.reason = "LogoutGuard is starting"
        self.refused = 0  # requests answered 503 by the gate

    @property
    def open(self) -> bool:
        return self.state is GateState.READY

    def ready(self) -> None:
        self.state, self.reason = GateState.READY, ""

    def fail(self, reason: str) -> None:
        self.state, self.reason = GateState.FAILED, f"LogoutGuard is not configured: {reason}"

    def refuses(self, flow: http.HTTPFlow) -> bool:
        """While not ready, answer a request that has no answer yet with 503 (True); False when ready."""
        if self.open or flow.response is not None or flow.error is not None:
            return False
        self.refuse(flow)
        return True

    def refuse(self, flow: http.HTTPFlow) -> None:
        """Answer 503 without asking the application; say why once."""
        if self.refused == 0:
            log.warning(f"LogoutGuard: refusing requests (503) until configured: {self.reason}")
        self.refused += 1
        deny(flow, 503)
        flow.comment = self.reason


def take_bad_values(options: Any, names: Iterable[str]) -> list[str]:
    """Remove from mitmproxy's deferred options the values of `names` that would not parse as their
    declared type (or not type-check, from a config.yaml), and say for each what is wrong.

    Generic per option type, so every declared option gets the check; call it after declaring the options
    and before mitmproxy processes the deferred values (the addon's `load`)."""
    deferred: dict[str, Any] = getattr(options, "deferred", {})
    problems = []
    for name in names:
        if name not in deferred or name not in options:
            continue
        option = options._options[name]
        value = deferred[name]
        text = getattr(value, "val", None)  # unparsed --set text (a list of strings), or a typed value
        try:
            if text is not None:
                options._parse_setval(option, list(text))
            else:
                typecheck.check_option_type(name, value, option.typespec)
        except (exceptions.OptionsError, TypeError, ValueError):
            del deferred[name]
            if text is not None and not text:
                problems.append(f"{name}: needs a value ({_type_words(option.typespec)})")
                continue
            shown = text[0] if text is not None and len(text) == 1 else (text if text is not None else value)
            problems.append(f"{name}: {shown!r} is not {_type_words(option.typespec)}")
    return problems


def _type_words(typespec: Any) -> str:
    return TYPE_WORDS.get(typespec, f"of type {getattr(typespec, '__name__', typespec)}")


def check_choices(options: Any, updated: Iterable[str]) -> None:
    """OptionsError for an updated option declared with `choices` whose value is not one of them
    (mitmproxy does not enforce `choices` for --set)."""
    declared = getattr(options, "_options", {})
    for name in updated:
        option = declared.get(name)
        if option is None or not option.choices:
            continue
        value = getattr(options, name)
        if value not in option.choices:
            raise exceptions.OptionsError(f"{name}: {value!r} is not one of {', '.join(option.choices)}")


def warm(policy: Policy) -> None:
    """Compile now what the request path would otherwise compile on first use (into `re`'s cache: call it
    after the rules are loaded, whose thousands of regexes pass through that cache too)."""
    request_signals.prepare(policy)
    for pattern in TORNADO_PATTERNS:
        re.compile(pattern)


def rehearse(
    engine: Engine | CombinedEngine,
    policy: Policy,
    settings: Settings,
    hasher: SessionHasher,
    store: SessionStore | None = None,
) -> None:
    """Judge made-up benign requests and their responses the way live ones are, so that what only a first
    time costs is paid now rather than by the first real request; `store` (newly opened) is warmed too.

    Side effects: none but pure results kept for later requests (the engine's memo, the session hashes'
    and the client networks' caches). The rehearsal's pipeline has its own in-memory session store, an
    audit log writing to os.devnull, an observer that counts nothing, and no upstream (no forced logout
    can be sent); the flows are made here and dropped. OptionsError when a request or response cannot
    be judged (the configuration would judge real ones no better) or the store cannot be read."""
    rehearsal = Pipeline()
    rehearsal.engine = engine
    rehearsal.use_policy(policy)
    rehearsal.use_settings(replace(settings, upstream=None, offline_revoke=False))
    rehearsal.audit = AuditLog(os.devnull)
    now = time.time()
    # Two sides of the session check: in the grace period after start-up (an unknown ID is adopted), and
    # after it (refused: a scored, audited request).
    trackers = [
        SessionTracker(MemoryStore(), hasher, rehearsal.rules, policy.grace_period, started)
        for started in (now, now - policy.grace_period - 1)
    ]
    try:
        for round_ in range(REHEARSAL_ROUNDS):
            for tracker in trackers:
                rehearsal.use_tracker(tracker)
                flows = rehearsal_flows(policy, round_)
                for flow, response in flows if tracker is trackers[0] else flows[:1]:
                    _rehearse_flow(rehearsal, flow, response)
        if store is not None:
            store.warm()
    except StoreError as exc:
        raise exceptions.OptionsError(f"guard_session_store: warming up: {exc}") from None
    except RehearsalFailed as exc:
        raise exceptions.OptionsError(f"LogoutGuard's warm-up failed: {exc}") from None
    except Exception as exc:  # anything else: refused in one line too, not a traceback and a start
        log.exception("LogoutGuard: the warm-up failed")
        raise exceptions.OptionsError(f"LogoutGuard's warm-up failed: {type(exc).__name__}: {exc}") from None
    finally:
        rehearsal.audit.close()


def _rehearse_flow(rehearsal: Pipeline, flow: http.HTTPFlow, response: http.Response) -> None:
    what = f"the made-up request {flow.request.method} {flow.request.path.split('?', 1)[0]}"
    _run_through(rehearsal.on_request(flow))
    _check(flow, what)
    if flow.response is None:
        flow.response = response
    _run_through(rehearsal.on_response(flow))
    _check(flow, f"the response to {what}")


def rehearsal_flows(policy: Policy, round_: int) -> list[tuple[http.HTTPFlow, http.Response]]:
    """Benign requests of the common kinds (query arguments and cookies with a session cookie, a form,
    JSON, multipart, XML) with values of their own in each round, each with an application's answer."""
    n = round_ + 1
    session = policy.session_cookies[0] if policy.session_cookies else "JSESSIONID"
    browser = {
        "User-Agent": f"Mozilla/5.0 (X11; Linux x86_64; rv:12{n}.0) Gecko/20100101 Firefox/12{n}.0",
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Accept-Language": "en-US,en;q=0.5",
        "Accept-Encoding": "gzip, deflate",
        "Referer": f"https://{REHEARSAL_HOST}/start?from=home{n}",
    }
    # Prose, names, addresses and numbers as forms carry them, and one value longer than the engine's memo
    # keeps (memo.MAX_TEXT): long values take paths of their own.
    comment = (
        f"Hello, I'd like to exchange order A-2024-{n}18734 (size 39, blue) for the next size up: is it "
        f"free of charge? I still have the box & the receipt. Best regards from Lisbon, Maria O'Neil. "
    ) * 4
    form = urlencode(
        {
            "name": f"Maria O'Neil {n}",
            "email": f"maria.oneil{n}@example.org",
            "phone": f"+351 912 345 67{n}",
            "address": f"Rua das Flores {n}, 3. esq, 1200-195 Lisboa",
            "comment": comment,
            "newsletter": "yes",
        }
    )
    boundary = f"rehearsal{n}"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nNotes {n}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="notes{n}.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nplain text {n}\r\n--{boundary}--\r\n"
    )
    requests: list[tuple[str, str, str, dict[str, str]]] = [
        (
            "GET",
            f"/shop/search?q=warm+socks+{n}&category=sport&page={n}&sort=price_asc&next=%2Faccount%2Forders",
            "",
            {
                **browser,
                "Cookie": f"{session}=rehearsal{n}0123456789abcdef0123456789; theme=dark{n}; lang=en-GB",
            },
        ),
        ("POST", "/account/contact", form, {**browser, "Content-Type": "application/x-www-form-urlencoded"}),
        (
            "POST",
            "/api/items",
            f'{{"id": {n}, "note": "size {n}", "tags": ["a", "b"], "gift": false}}',
            {**browser, "Content-Type": "application/json"},
        ),
        (
            "POST",
            "/upload",
            multipart,
            {**browser, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        ),
        (
            "POST",
            "/soap",
            f"<order><id>{n}</id><note>size {n}</note></order>",
            {**browser, "Content-Type": "application/xml"},
        ),
    ]
    flows = []
    for i, (method, path, body, headers) in enumerate(requests):
        client = connection.Client(
            peername=(REHEARSAL_CLIENT[0], REHEARSAL_CLIENT[1] + i),
            sockname=("127.0.0.1", 8080),
            timestamp_start=time.time(),
        )
        flow = http.HTTPFlow(client, connection.Server(address=(REHEARSAL_HOST, 80)), live=True)
        fields = {"Host": REHEARSAL_HOST, **headers}
        if body:
            fields["Content-Length"] = str(len(body.encode()))
        flow.request = http.Request.make(method, f"http://{REHEARSAL_HOST}{path}", body, fields)
        json_answer = "json" in headers.get("Content-Type", "")
        response = http.Response.make(
            200,
            f'{{"ok": true, "id": {n}}}'
            if json_answer
            else f"<html><body><p>Thank you ({n})</p></body></html>",
            {"Content-Type": "application/json" if json_answer else "text/html; charset=utf-8"},
        )
        flows.append((flow, response))
    return flows


def _run_through(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine of the rehearsal's pipeline to its end, here: nothing it awaits waits (its
    session store is in memory), so it never yields to an event loop (and needs none)."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RehearsalFailed("it waited for I/O, which it never should")


def _check(flow: http.HTTPFlow, what: str) -> None:
    """RehearsalFailed when judging failed (the pipeline logged why and wrote it in the record)."""
    record = flow.metadata.get(META_KEY)
    if not isinstance(record, dict):
        raise RehearsalFailed(f"{what} was not judged")
    if record.get("error"):
        raise RehearsalFailed(f"judging {what} failed: {record['error']}")


class RehearsalFailed(Exception):
    """A made-up request or response could not be judged."""


def settle_heap(replaced: bool) -> None:
    """Take what start-up or a reload built (the ruleset, the engine, mitmproxy's own objects: a few
    hundred thousand, alive for good) out of the garbage collector's way with gc.freeze(): its full
    collections walk every tracked object (tens of milliseconds here, again and again under load: a
    share of every request's CPU and a pause). Objects made later are collected as always.

    `replaced`: a reload or a change built a new engine; what it replaced is handed back to the
    collector first (unfreeze, then one full collection), so a frozen object is never kept alive by
    it. At start-up nothing is replaced and nothing is collected, so the start costs no pause (the
    little garbage of loading is frozen with the rest and goes at the first reload). Call it after
    building, never on the request path."""
    if replaced:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def report_start_failure(message: str) -> None:
    """The one line of a refused start: logged as an error (mitmdump then exits non-zero, after the line
    'Error logged during startup, exiting...') and written to stderr, where mitmdump's own log is not."""
    log.error(message)
    print(f"LogoutGuard: {message}", file=sys.stderr, flush=True)
