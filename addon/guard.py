"""The LogoutGuard mitmproxy addon (the adapter): options (guard_options.py), the hooks and the guard.* commands.

It decides nothing: `configure` builds the parts from the options (assembly.py), the hooks hand
each flow to the pipeline (pipeline.py), and the commands read flow records (flow_record.py) or
ask the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from mitmproxy import command, contentviews, ctx, exceptions, flow, http, types

from . import client_host, contentview, guard_options, startup
from .assembly import (
    Ruleset,
    SessionStore,
    build_engine,
    identifier_rules,
    load_rules,
    open_audit_log,
    open_session_store,
    read_policy,
)
from .flow_record import META_KEY, FlowRecord
from .forced_logout import configured_upstream
from .logout_flow import is_logout_flow
from .metrics import Metrics, MetricsServer, serve, untimed
from .observer import Observer
from .pipeline import Mode, Pipeline, Settings
from .sessions.identifiers import redact_path

__all__ = ["META_KEY", "LogoutGuard"]

log = logging.getLogger("logoutguard")


class LogoutGuard:
    """Scores every request, tracks sessions, and answers malicious ones the way the policy says."""

    def __init__(self) -> None:
        self.pipeline = Pipeline()
        self.ruleset: Ruleset | None = None  # the loaded rules (the engine is built from them)
        self.store: SessionStore | None = None  # the store of the pipeline's tracker
        self.gate = startup.Gate()  # requests are refused (503) until a configuration is in force
        self.bad_values: list[str] = []  # --set values that did not parse (startup.take_bad_values)
        self._applied: dict[str, Any] = {}  # the guard_* values in force
        self._refused: set[str] | None = None  # the options of a change just refused (rolled back next)
        self._background: set[asyncio.Task[Any]] = set()
        self.metrics: Metrics | None = None  # counting while guard_metrics serves them
        self.metrics_server: MetricsServer | None = None
        self.rewrites_host = False  # LogoutGuard, not mitmproxy, gives requests the upstream's Host
        self.pipeline.show_flow = self._show_flow
        self.pipeline.close_connection = self._close_connection

    # -- options -------------------------------------------------------------------------------
    def load(self, loader: Any) -> None:
        contentviews.add(contentview.view)
        guard_options.declare(loader)
        # A --set value that does not parse as its option's type would make mitmproxy leave this addon
        # loaded but never configured (see startup.py): take it out now, report it in configure.
        options = loader.master.options
        self.bad_values = startup.take_bad_values(
            options, [n for n in sorted(options.keys()) if n.startswith("guard_")]
        )
        # Judge every request before any upstream connection exists: with mitmproxy's default eager
        # strategy a down upstream closes the client connection before the request hook runs, so a
        # forced logout could not even revoke the session. Set here, before mitmproxy listens (and before
        # this addon is in its chain), not in `running`: each option set there made mitmproxy configure
        # every addon again after "listening at", in the way of the first request.
        if getattr(options, "connection_strategy", "lazy") == "eager":
            options.connection_strategy = "lazy"
            log.info(
                "LogoutGuard: connection_strategy set to lazy (requests are judged before connecting upstream)"
            )
        self.rewrites_host = client_host.take_over_host_rewrite(options)

    def configure(self, updated: set[str]) -> None:
        loading = updated >= ctx.options.keys()  # mitmproxy loading the script: every option at once
        if self._refused == updated and self._applied == self._guard_values():
            self._refused = None  # mitmproxy rolling back the refused change: the old values are in force
            return
        engine = self.pipeline.engine
        try:
            if loading and self.bad_values:
                raise exceptions.OptionsError("; ".join(self.bad_values))
            self._configure(updated)
        except exceptions.OptionsError as exc:
            if self.gate.open and not loading:  # a change while running: mitmproxy refuses it, rolls back
                log.warning(f"LogoutGuard: {exc}; the previous configuration stays in force")
                self._refused = updated
                raise
            self.gate.fail(str(exc))
            if not loading:
                raise
            # mitmproxy loading the script configures it inside an `except Exception` that logs a
            # traceback (addons/script.py, Script.loadscript): say it in one line instead. An error
            # logged during start-up stops mitmdump; the gate refuses every request meanwhile.
            startup.report_start_failure(str(exc))
            return
        startup.warm(self.pipeline.policy)
        self._applied = self._guard_values()
        if self.pipeline.engine is not engine:  # built at start-up, or anew by a change
            startup.settle_heap(replaced=engine is not None)
        self.gate.ready()

    def _guard_values(self) -> dict[str, Any]:
        return {
            name: getattr(ctx.options, name)
            for name in sorted(ctx.options.keys())
            if name.startswith("guard_")
        }

    def _configure(self, updated: set[str]) -> None:
        """Build every part the changed options need, then put them all in force; a part that cannot be
        built raises OptionsError with nothing changed (what was opened for it is closed)."""
        opts, pipeline = ctx.options, self.pipeline
        startup.check_choices(opts, updated)
        guard_options.validate(opts, updated)
        first = pipeline.tracker is None
        policy = read_policy(opts.guard_policy) if "guard_policy" in updated or first else pipeline.policy
        ruleset, engine = self.ruleset, pipeline.engine
        if updated & guard_options.ENGINE_OPTIONS or engine is None:
            if ruleset is None or "guard_rules" in updated:
                ruleset = load_rules(opts.guard_rules)
            engine = build_engine(ruleset, opts)
        settings = Settings(
            mode=Mode(opts.guard_mode),
            fail_closed=opts.guard_fail_mode == "closed",
            deny_on_error=opts.guard_error_action == "deny",
            body_limit=opts.guard_body_limit,
            reject_over_limit=opts.guard_body_limit_action == "reject",
            limits=guard_options.limits(opts),
            offline_revoke=opts.guard_offline_revoke,
            paranoia=opts.guard_paranoia,
            inbound_threshold=opts.guard_inbound_threshold,
            outbound_threshold=opts.guard_outbound_threshold,
            upstream=configured_upstream(opts.guard_upstream, opts.mode),
        )
        audit = open_audit_log(opts.guard_audit_log) if "guard_audit_log" in updated else None
        tracker = None
        try:
            if updated & guard_options.STORE_OPTIONS or "guard_policy" in updated or first:
                tracker = open_session_store(opts, policy, identifier_rules(policy))
            if engine is not pipeline.engine or policy is not pipeline.policy or tracker is not None:
                # What only a first request would pay, paid now (before the gate opens, or the parts change)
                hasher = tracker.hasher if tracker is not None else pipeline.tracker.hasher  # type: ignore[union-attr]
                store = tracker.store if tracker is not None else None
                startup.rehearse(engine, policy, settings, hasher, store)
            if "guard_metrics" in updated or first:
                self._serve_metrics(opts.guard_metrics)  # the last part that can fail: it keeps its own
        except exceptions.OptionsError:
            if audit is not None:
                audit.close()
            if tracker is not None:
                self._spawn(tracker.store.close())
            raise
        # Everything built: in force from here on, nothing below raises.
        pipeline.use_policy(policy)
        pipeline.engine, self.ruleset = engine, ruleset
        if tracker is not None:
            old, self.store = self.store, tracker.store
            pipeline.use_tracker(tracker)
            if old is not None:
                self._spawn(old.close())
        if self.metrics is not None and pipeline.tracker is not None:
            pipeline.tracker.store = self.metrics.timed(pipeline.tracker.store)
        if audit is not None:
            pipeline.audit.close()
            pipeline.audit = audit
        pipeline.use_settings(settings)
        log.info(
            f"LogoutGuard: {len(self.ruleset or ())} rules, PL{opts.guard_paranoia}, mode {opts.guard_mode}, "
            f"policy {pipeline.policy.source}, store {opts.guard_session_store}"
        )

    def _serve_metrics(self, listen: str) -> None:
        """Start, stop or move the metrics endpoint; the counts so far are kept, and an address that
        cannot be bound leaves the running endpoint as it was."""
        old = self.metrics_server
        if old is not None:
            old.close()
            self.metrics_server = None
        if not listen:
            self.metrics, self.pipeline.observer = None, Observer()
            if self.pipeline.tracker is not None:
                self.pipeline.tracker.store = untimed(self.pipeline.tracker.store)
            return
        metrics = self.metrics or Metrics()
        try:
            self.metrics_server = serve(metrics, listen)
        except OSError as exc:
            if old is not None:
                self.metrics_server = serve(metrics, old.listen)
            raise exceptions.OptionsError(f"guard_metrics: cannot listen on {listen!r}: {exc}") from None
        self.metrics = self.pipeline.observer = metrics
        log.info(f"LogoutGuard: metrics at {self.metrics_server.url}")

    # -- lifecycle -----------------------------------------------------------------------------
    def running(self) -> None:
        self._spawn(self.pipeline.purge_forever())

    async def done(self) -> None:
        contentview.unregister()
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        for task in list(self._background):
            task.cancel()
        if self.store is not None:
            await self.store.close()
        self.pipeline.audit.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop (configure during start-up in some tools): nothing to schedule
            coro.close()
            return None
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _show_flow(self, shown: http.HTTPFlow) -> None:
        """Hand a flow the actions made (a forced logout's) to mitmproxy as a loaded flow: every addon
        sees it (mitmweb lists it, -w saves it, mitmdump prints it); LogoutGuard's hooks skip it."""
        self._spawn(ctx.master.load_flow(shown))

    def _close_connection(self, shown: http.HTTPFlow) -> bool:
        """Close a flow's client connection (mitmproxy has no public call for it: flow.kill() does not
        end a WebSocket); False when this mitmproxy's connection handler is not where it was."""
        handler = getattr(ctx.master.addons.get("proxyserver"), "connections", {}).get(shown.client_conn.id)
        close = getattr(handler, "close_connection", None)
        if close is None:
            return False
        try:
            close(shown.client_conn)
        except Exception:  # already closed (KeyError), or the internals changed: the message is dropped anyway
            log.exception("LogoutGuard: closing the connection of a refused WebSocket message failed")
            return False
        return True

    # -- hooks ---------------------------------------------------------------------------------
    async def request(self, flow_: http.HTTPFlow) -> None:
        if self.gate.refuses(flow_):  # not configured (yet): answered 503, nothing passes unjudged
            return
        answered = flow_.response is not None and flow_.live
        if not (answered or flow_.error is not None or self.pipeline.engine is None or is_logout_flow(flow_)):
            await self.pipeline.on_request(flow_)  # judged on the Host the client sent
        if self.rewrites_host:
            client_host.to_upstream(flow_)

    async def response(self, flow_: http.HTTPFlow) -> None:
        await self.pipeline.on_response(flow_)

    def websocket_message(self, flow_: http.HTTPFlow) -> None:
        self.pipeline.on_websocket_message(flow_)

    def error(self, flow_: http.HTTPFlow) -> None:  # nothing to wait for: a plain hook (mitmproxy takes both)
        self.pipeline.on_error(flow_)

    # -- commands ------------------------------------------------------------------------------
    @command.command("guard.explain")
    def explain_flows(self, flows: Sequence[flow.Flow]) -> types.Data:
        """Explain the scoring and the decision of the given flows, rule by rule: rows of [label, text]."""
        rows: list[list[str]] = []
        for f in flows:
            if isinstance(f, http.HTTPFlow):
                url = redact_path(f.request.pretty_url, self.pipeline.rules)
                rows.append(["flow", f"{f.request.method} {url}"])
                data = f.metadata.get(META_KEY)
                if isinstance(data, dict):
                    rows += FlowRecord.from_json(data).explanation()
                elif is_logout_flow(f):
                    rows.append(["verdict", "the forced logout of another flow (see the LogoutGuard view)"])
                else:
                    rows.append(["verdict", "not judged by LogoutGuard"])
        log.info("\n".join(f"{label}: {text}" for label, text in rows))
        return rows

    @command.command("guard.reload")
    def reload(self) -> str:
        """Reload the rule files and the policy; a bad file leaves the running ones in force."""
        try:
            ruleset = load_rules(ctx.options.guard_rules)
            policy = read_policy(ctx.options.guard_policy)
            engine = build_engine(ruleset, ctx.options)
            if self.pipeline.tracker is not None:
                startup.rehearse(engine, policy, self.pipeline.settings, self.pipeline.tracker.hasher)
        except exceptions.OptionsError as exc:
            log.error(f"LogoutGuard: reload refused, the running ruleset and policy stay in force: {exc}")
            return f"reload refused: {exc}"
        self.ruleset, self.pipeline.engine = ruleset, engine
        self.pipeline.use_policy(policy)
        startup.settle_heap(replaced=True)
        log.info(f"LogoutGuard: reloaded {len(ruleset)} rules and policy {policy.source}")
        return f"reloaded {len(ruleset)} rules"

    @command.command("guard.sessions")
    def sessions(self) -> str:
        """The sessions seen most recently (keyed hashes only), newest first."""
        text = self.pipeline.recent_sessions()
        log.info(text)
        return text

    @command.command("guard.revoke")
    def revoke(self, flows: Sequence[flow.Flow]) -> str:
        """Revoke the sessions the given flows carried."""
        hashes = {f.metadata.get(META_KEY, {}).get("session", {}).get("hash") for f in flows}
        return self._revoke_hashes(sorted(h for h in hashes if h))

    @command.command("guard.revoke_session")
    def revoke_session(self, session_hash: str) -> str:
        """Revoke one session by its keyed hash (as shown by guard.sessions and in the audit log)."""
        return self._revoke_hashes([session_hash.removeprefix("hash:")])

    def _revoke_hashes(self, hashes: list[str]) -> str:
        if self.pipeline.tracker is None or not hashes:
            return "no session to revoke"
        self._spawn(self.pipeline.revoke_hashes(hashes))
        return f"revoking {len(hashes)} session(s): {', '.join(hashes)}"
