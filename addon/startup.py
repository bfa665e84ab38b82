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
"""

from __future__ import annotations

import gc
import logging
import re
import sys
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

# AsyncHTTPClient's implementation and tornado's asyncio loop: loaded now, not by the first forced logout
import tornado.platform.asyncio
import tornado.simple_httpclient  # noqa: F401
from mitmproxy import exceptions, http
from mitmproxy.utils import typecheck

from . import request_signals
from .policy import Policy
from .responses import deny

log = logging.getLogger("logoutguard")

# Patterns tornado 6 compiles on first use, i.e. in the first forced logout: simple_httpclient's host
# check, iostream's end of a header block, httputil's end of a header line.
TORNADO_PATTERNS: tuple[str | bytes, ...] = (r"^\[.*\]$", b"\r?\n\r?\n", r"\r?\n$")
TYPE_WORDS = {int: "a whole number", bool: "true or false", str: "a text"}


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
