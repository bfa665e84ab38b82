"""The LogoutGuard mitmproxy addon: options, their validation, the hooks and the guard.* commands.

Thin by design: it builds Transactions, asks the session tracker, the engine and the policy, and
applies the decision with `responses`. Every decision is recorded in `flow.metadata["logoutguard"]`
as plain JSON-able data, flows over a threshold are marked and commented, and an audit line is
written for every flow that scored or got an action.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import command, ctx, exceptions, flow, http

from .audit_log import AuditLog, audit_record
from .crs.loader import CrsError, load_crs
from .engine.combined import CombinedEngine, CombinedState
from .engine.engine import Engine
from .engine.loader import DEFAULT_RULES_DIR, RulesetError, load_ruleset
from .engine.rules import REQUEST_PHASES, Ruleset
from .engine.state import EvalState
from .engine.transaction import Transaction
from .engine.verdict import Match, Verdict
from .flow_bridge import from_request, with_response
from .policy import Decision, Policy, PolicyError, TemplateValueError, decide, load_policy
from .responses import (
    Upstream,
    answer_after_logout,
    build_logout_request,
    confirms_logout,
    deny,
    drop,
    original_request_record,
    parse_upstream,
    probe_session,
    redirect,
    rewrite_to_logout,
    send_logout,
    status_ok,
    strip_cookies,
)
from .sessions.cookies import SessionCookieMatcher, request_session_ids
from .sessions.factory import open_store, parse_store_spec, resolve_key
from .sessions.hashing import SessionHasher
from .sessions.memory import MemoryStore
from .sessions.store import DEFAULT_MAX_SESSIONS, DEFAULT_TTL_S, SessionStore, StoreError
from .sessions.tracker import SessionFacts, SessionTracker

log = logging.getLogger("logoutguard")

META_KEY = "logoutguard"
MODES = ("detect", "enforce")
FAIL_MODES = ("closed", "open")
ERROR_ACTIONS = ("deny", "pass")
MARK_ACTED = ":no_entry:"
MARK_DETECTED = ":warning:"
MAX_PENDING = 10_000
MAX_RECENT_SESSIONS = 1_000
PURGE_EVERY_S = 300.0
DEFAULT_STORE = "~/.logoutguard/sessions.sqlite"
DEFAULT_AUDIT_LOG = "~/.logoutguard/audit.jsonl"
SESSION_STATE_TAG = "session-state"
ENGINE_OPTIONS = {
    "guard_rules",
    "guard_paranoia",
    "guard_inbound_threshold",
    "guard_outbound_threshold",
    "guard_crs",
    "guard_crs_confs",
}
STORE_OPTIONS = {"guard_session_store", "guard_session_key", "guard_session_ttl", "guard_max_sessions"}


def summary_comment(record: dict[str, Any]) -> str:
    """One line for flow comments: score, rule ids, situation, action."""
    ids = ",".join(str(m["id"]) for m in record.get("matches", [])[:12])
    text = f"LogoutGuard: score {record.get('inbound_score')}"
    if record.get("outbound_score"):
        text += f" out {record['outbound_score']}"
    if ids:
        text += f" rules {ids}"
    if record.get("situation") not in (None, "clean"):
        text += f" [{record['situation']}]"
    text += f" -> {record.get('action')}"
    if record.get("error"):
        text += f" (error: {record['error']})"
    return text


def explain(record: dict[str, Any]) -> str:
    """The scoring of one judged flow, rule by rule, from its metadata record."""
    lines = []
    for m in record.get("matches", []):
        points = m["score"] if m.get("scoring", True) else 0
        lines.append(
            f"  {m['id']:>7} PL{m['paranoia']} +{points:<3} {m['category']:<16} {m['target']}: {m['msg']} [{m['excerpt']}]"
        )
    lines.append(
        f"  total inbound {record.get('inbound_score')} (threshold {record.get('inbound_threshold')}),"
        f" outbound {record.get('outbound_score')} (threshold {record.get('outbound_threshold')}),"
        f" PL{record.get('paranoia')}, mode {record.get('mode')}"
    )
    session = record.get("session") or {}
    if session.get("state", "none") != "none":
        lines.append(f"  session {session.get('hash')} ({session.get('cookie')}): {session.get('state')}")
    lines.append(f"  situation {record.get('situation', 'clean')} -> action {record.get('action')}")
    if record.get("logout"):
        lines.append(f"  logout: {record['logout']}")
    for key in ("reason", "error"):
        if record.get(key):
            lines.append(f"  {key}: {record[key]}")
    return "\n".join(lines)


def score_without(verdict: Verdict, tag: str) -> int:
    return sum(
        m.score for m in verdict.matches if m.scoring and m.phase in REQUEST_PHASES and tag not in m.tags
    )


@dataclass
class Pending:
    """What the request hook knows that the response hook needs."""

    state: EvalState | CombinedState
    matches: list[Match]
    session_ids: list[tuple[str, str]]
    client: str
    user_agent: str | None
    live: bool
    audited: bool = False


class LogoutGuard:
    """Scores every request, tracks sessions, and answers malicious ones the way the policy says."""

    def __init__(self) -> None:
        self.ruleset: Ruleset | None = None
        self.engine: Engine | CombinedEngine | None = None
        self.policy = Policy()
        self.matcher = SessionCookieMatcher()
        self.store: SessionStore | None = None
        self.tracker: SessionTracker | None = None
        self.audit = AuditLog(None)
        self._offline: SessionTracker | None = None
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # session hash -> last facts
        self._background: set[asyncio.Task[Any]] = set()
        self._store_down = False

    # -- options -------------------------------------------------------------------------------
    def load(self, loader: Any) -> None:
        add = loader.add_option
        add(
            "guard_rules",
            Sequence[str],
            [str(DEFAULT_RULES_DIR)],
            "Rule files or folders of *.yaml rules (repeatable). Default: the shipped rules/ folder.",
        )
        add("guard_paranoia", int, 1, "Paranoia level 1-4: rules above it do not run.")
        add(
            "guard_inbound_threshold",
            int,
            5,
            "Inbound anomaly score at which a request is over threshold (>= 1).",
        )
        add(
            "guard_outbound_threshold",
            int,
            4,
            "Outbound anomaly score at which a response is blocked (>= 1).",
        )
        add(
            "guard_mode",
            str,
            "enforce",
            "detect: score, annotate and log only; enforce: act on decisions.",
            choices=MODES,
        )
        add(
            "guard_body_limit",
            int,
            128 * 1024,
            "Bytes of a body that are inspected; larger bodies are inspected up to this limit and score "
            "the oversized-body rule.",
        )
        add(
            "guard_error_action",
            str,
            "deny",
            "What enforce mode does with a flow when judging it fails unexpectedly: deny (403) or pass.",
            choices=ERROR_ACTIONS,
        )
        add(
            "guard_policy",
            str,
            "",
            "Policy file (YAML) of the protected application; empty: built-in defaults.",
        )
        add(
            "guard_session_store",
            str,
            DEFAULT_STORE,
            "Session store: a SQLite file path or sqlite:///path (default), 'memory', or "
            "redis://host:port/db (also rediss://, unix://; shared by several proxies, needs guard_session_key).",
        )
        add(
            "guard_session_key",
            str,
            "",
            "File with the key that hashes session IDs (created 0600 when missing); empty: <store file>.key. "
            "Every proxy on one Redis store must use the same file.",
        )
        add(
            "guard_session_ttl", int, int(DEFAULT_TTL_S), "Seconds a session may stay idle before it expires."
        )
        add(
            "guard_max_sessions",
            int,
            DEFAULT_MAX_SESSIONS,
            "Most sessions kept; the oldest non-revoked go first.",
        )
        add(
            "guard_audit_log",
            str,
            DEFAULT_AUDIT_LOG,
            "JSON-lines audit log of every flow that scored or got an action; empty: off.",
        )
        add(
            "guard_upstream",
            str,
            "",
            "The application's base URL for logout requests (e.g. http://127.0.0.1:8080); empty: the "
            "reverse-mode upstream from --mode.",
        )
        add(
            "guard_crs",
            str,
            "",
            "Also run the OWASP Core Rule Set: 'debian' (Debian's modsecurity-crs package), a "
            "crs-setup.conf, or a CRS folder. Empty: off. Our paranoia level and thresholds apply to it.",
        )
        add(
            "guard_crs_confs",
            Sequence[str],
            [],
            "Your own SecLang .conf files loaded with the CRS (exclusions: SecRuleRemoveById, "
            "SecRuleUpdateTargetById, ctl rules); REQUEST-900-* style names load before the rules.",
        )
        add(
            "guard_fail_mode",
            str,
            "closed",
            "When the session store cannot be reached: closed = requests carrying a session ID are "
            "refused (503); open = they pass, judged by the rules alone.",
            choices=FAIL_MODES,
        )
        add(
            "guard_offline_revoke",
            bool,
            False,
            "When re-judging saved flows (mitmdump -nr), revoke in the live store the sessions the "
            "verdicts would log out. Off: offline judging changes nothing live.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        self._validate(updated)
        if "guard_policy" in updated or self.tracker is None:
            self.policy = self._load_policy(opts.guard_policy)
            self.matcher = SessionCookieMatcher(self.policy.cookie_pattern, self.policy.session_cookies)
        if updated & ENGINE_OPTIONS or self.engine is None:
            ruleset = (
                self._load_rules(opts.guard_rules)
                if "guard_rules" in updated or self.ruleset is None
                else self.ruleset
            )
            self.engine = self._build_engine(ruleset)
            self.ruleset = ruleset
        if updated & STORE_OPTIONS or "guard_policy" in updated or self.tracker is None:
            self._open_store()
        if "guard_audit_log" in updated:
            self.audit.close()
            try:
                self.audit = AuditLog(opts.guard_audit_log or None)
            except OSError as exc:
                raise exceptions.OptionsError(
                    f"guard_audit_log: cannot open {opts.guard_audit_log!r}: {exc}"
                ) from None
        if (
            "guard_upstream" in updated
            and opts.guard_upstream
            and parse_upstream(f"reverse:{opts.guard_upstream}") is None
        ):
            raise exceptions.OptionsError(f"guard_upstream: {opts.guard_upstream!r} is not an http(s) URL")
        log.info(
            f"LogoutGuard: {len(self.ruleset or ())} rules, PL{opts.guard_paranoia}, mode {opts.guard_mode}, "
            f"policy {self.policy.source}, store {opts.guard_session_store}"
        )

    @staticmethod
    def _validate(updated: set[str]) -> None:
        opts = ctx.options
        for name, allowed in (
            ("guard_mode", MODES),
            ("guard_error_action", ERROR_ACTIONS),
            ("guard_fail_mode", FAIL_MODES),
        ):
            if name in updated and getattr(opts, name) not in allowed:
                raise exceptions.OptionsError(
                    f"{name}: {getattr(opts, name)!r} is not one of {', '.join(allowed)}"
                )
        if "guard_paranoia" in updated and not 1 <= opts.guard_paranoia <= 4:
            raise exceptions.OptionsError(f"guard_paranoia: {opts.guard_paranoia} is not in 1-4")
        for name in (
            "guard_inbound_threshold",
            "guard_outbound_threshold",
            "guard_body_limit",
            "guard_session_ttl",
            "guard_max_sessions",
        ):
            if name in updated and getattr(opts, name) < 1:
                raise exceptions.OptionsError(f"{name}: {getattr(opts, name)} must be at least 1")

    @staticmethod
    def _load_rules(paths: Sequence[str]) -> Ruleset:
        try:
            return load_ruleset([Path(p) for p in paths])
        except RulesetError as exc:
            raise exceptions.OptionsError(f"guard_rules: {exc}") from None

    @staticmethod
    def _build_engine(ruleset: Ruleset) -> Engine | CombinedEngine:
        """Our rules, and beside them the OWASP CRS when guard_crs names an installation."""
        opts = ctx.options
        engine = Engine(
            ruleset,
            paranoia=opts.guard_paranoia,
            inbound_threshold=opts.guard_inbound_threshold,
            outbound_threshold=opts.guard_outbound_threshold,
        )
        if not opts.guard_crs:
            return engine
        try:
            crs = load_crs(
                None if opts.guard_crs == "debian" else opts.guard_crs,
                extra_confs=list(opts.guard_crs_confs),
                paranoia=opts.guard_paranoia,
                inbound_threshold=opts.guard_inbound_threshold,
                outbound_threshold=opts.guard_outbound_threshold,
            )
        except (CrsError, OSError) as exc:
            raise exceptions.OptionsError(f"guard_crs: {exc}") from None
        log.info(
            f"LogoutGuard: OWASP CRS {crs.version}: {len(crs.ruleset)} rules from {crs.rules_dir} in "
            f"{crs.seconds:.1f}s; {len(crs.problems)} skipped or changed (see: logoutguard crs report)"
        )
        return CombinedEngine([engine, crs.engine()])

    @staticmethod
    def _load_policy(path: str) -> Policy:
        if not path:
            return Policy()
        try:
            return load_policy(Path(path).expanduser())
        except PolicyError as exc:
            raise exceptions.OptionsError(f"guard_policy: {exc}") from None

    def _open_store(self) -> None:
        opts = ctx.options
        try:
            spec = parse_store_spec(opts.guard_session_store)
            if spec.backend == "sqlite":
                Path(spec.location).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = resolve_key(opts.guard_session_store, opts.guard_session_key or None)
            store = open_store(
                opts.guard_session_store,
                ttl=opts.guard_session_ttl,
                max_sessions=opts.guard_max_sessions,
                key=key,
            )
        except (ValueError, OSError, StoreError) as exc:
            raise exceptions.OptionsError(f"guard_session_store: {exc}") from None
        old, self.store = self.store, store
        self.tracker = SessionTracker(
            store, SessionHasher(key), self.matcher, self.policy.grace_period, time.time()
        )
        self._offline = None
        if old is not None:
            self._spawn(old.close())

    # -- lifecycle -----------------------------------------------------------------------------
    def running(self) -> None:
        # Judge every request before any upstream connection exists: with mitmproxy's default eager
        # strategy a down upstream closes the client connection before the request hook runs, so a
        # forced logout could not even revoke the session.
        if getattr(ctx.options, "connection_strategy", "lazy") == "eager":
            ctx.options.connection_strategy = "lazy"
            log.info(
                "LogoutGuard: connection_strategy set to lazy (requests are judged before connecting upstream)"
            )
        self._spawn(self._purge_forever())

    async def done(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self.store is not None:
            await self.store.close()
        self.audit.close()

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(PURGE_EVERY_S)
            try:
                if self.store is not None:
                    purged = await self.store.purge_expired(time.time())
                    if purged:
                        log.info(f"LogoutGuard: purged {purged} expired session records")
            except StoreError as exc:
                log.error(f"LogoutGuard: purging the session store failed: {exc}")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop (configure during start-up in some tools): nothing to schedule
            coro.close()
            return None
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- hooks ---------------------------------------------------------------------------------
    async def request(self, flow_: http.HTTPFlow) -> None:
        if (flow_.response is not None and flow_.live) or flow_.error is not None or self.engine is None:
            return
        try:
            record = await self._judge_request(flow_)
        except Exception as exc:  # a hook must never raise: the flow still gets a verdict
            log.exception(f"LogoutGuard: judging {flow_.request.method} {flow_.request.path} failed")
            record = self._error_record(flow_, exc)
        self._annotate(flow_, record)

    async def response(self, flow_: http.HTTPFlow) -> None:
        pending = self._pending.pop(flow_.id, None)
        record = flow_.metadata.get(META_KEY)
        if self.engine is None or flow_.response is None or not isinstance(record, dict):
            return
        try:
            if pending is None:  # judged by another process or ruleset: judge the request again
                verdict, state = self.engine.inspect_request(self._transaction(flow_))
                pending = Pending(state, verdict.matches, [], state.tx.client_addr, None, flow_.live)
            if not record.get("responded"):  # the response came from the application
                await self._learn(flow_, pending)
                if not record.get("error"):
                    record = self._judge_response(flow_, pending, record)
        except Exception as exc:
            log.exception(f"LogoutGuard: judging the response to {flow_.request.path} failed")
            record = {**record, "error": f"{type(exc).__name__}: {exc}"}
        self._annotate(flow_, record)
        self._audit(flow_, record, pending)

    async def error(self, flow_: http.HTTPFlow) -> None:
        pending = self._pending.pop(flow_.id, None)
        record = flow_.metadata.get(META_KEY)
        if isinstance(record, dict):
            self._audit(flow_, record, pending)

    # -- request side --------------------------------------------------------------------------
    def _transaction(self, flow_: http.HTTPFlow, request: http.Request | None = None) -> Transaction:
        peer = flow_.client_conn.peername
        return from_request(
            request or judged_request(flow_), peer[0] if peer else "", ctx.options.guard_body_limit
        )

    def _tracker_for(self, flow_: http.HTTPFlow) -> SessionTracker:
        """Live flows use the store; saved flows a private in-memory tracker, so judging them changes nothing."""
        assert self.tracker is not None
        if flow_.live:
            return self.tracker
        if self._offline is None:
            self._offline = SessionTracker(
                MemoryStore(),
                self.tracker.hasher,
                self.matcher,
                self.policy.grace_period,
                flow_.request.timestamp_start,
            )
        return self._offline

    async def _judge_request(self, flow_: http.HTTPFlow) -> dict[str, Any]:
        assert self.engine is not None
        tracker = self._tracker_for(flow_)
        now = time.time() if flow_.live else flow_.request.timestamp_start
        request = judged_request(flow_)
        tx = self._transaction(flow_, request)
        user_agent = request.headers.get("user-agent")
        session_ids = request_session_ids(request.headers.get_all("cookie"), self.matcher)
        try:
            locked = self.policy.lockout.enabled and await tracker.is_locked_out(tx.client_addr, now)
            facts = await tracker.check_request(session_ids, tx.client_addr, user_agent, now)
            if session_ids or self.policy.lockout.enabled:  # only a store that answered is "reachable again"
                self._store_ok()
            store_error = ""
        except StoreError as exc:
            store_error = self._store_failed(exc)
            locked = False
            facts = unverified_facts(tracker, session_ids)
        self._remember_session(facts)
        verdict, state = self.engine.inspect_request(tx.with_session(facts.pairs()))
        cumulative = False
        if facts.state == "active" and verdict.inbound_score > 0 and self.policy.cumulative.scored_requests:
            try:
                count = await tracker.note_score(
                    facts.id_hash, verdict.inbound_score, now, self.policy.cumulative.window
                )
                cumulative = count >= self.policy.cumulative.scored_requests
            except StoreError as exc:
                store_error = self._store_failed(exc)
        decision = decide(
            self.policy,
            session_state=facts.state,
            over_threshold=verdict.inbound_blocked,
            over_threshold_without_session_state=score_without(verdict, SESSION_STATE_TAG)
            >= verdict.inbound_threshold,
            locked_out=locked,
            cumulative_reached=cumulative,
            store_unavailable=bool(store_error and session_ids) and ctx.options.guard_fail_mode == "closed",
        )
        pending = Pending(state, verdict.matches, session_ids, tx.client_addr, user_agent, flow_.live)
        self._pending[flow_.id] = pending
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        record = self._record(verdict, facts, decision)
        if store_error:
            record["store_error"] = store_error
        if not flow_.live:
            record["action"] = "none (offline)"
            if decision.action == "logout" and ctx.options.guard_offline_revoke:
                await self._revoke_all(
                    self.tracker, session_ids, f"offline re-judging: {decision.situation}", now
                )  # type: ignore[arg-type]
                record["action"] = "revoked (offline)"
        elif ctx.options.guard_mode != "enforce":
            record["action"] = "log" if decision.action != "none" or decision.strip_session else "none"
        else:
            record["action"] = await self._apply(flow_, decision, pending, tracker, record, now)
        record["responded"] = flow_.live and flow_.response is not None
        return record

    def _record(self, verdict: Verdict, facts: SessionFacts, decision: Decision) -> dict[str, Any]:
        record = verdict.to_json()
        record.update(
            mode=ctx.options.guard_mode,
            session=facts.to_json(),
            situation=decision.situation,
            decision=decision.action,
            blocked=verdict.blocked or decision.action not in ("none", "log"),
        )
        if decision.reason:
            record["reason"] = "; ".join(r for r in (verdict.reason, decision.reason) if r)
        return record

    async def _apply(
        self,
        flow_: http.HTTPFlow,
        decision: Decision,
        pending: Pending,
        tracker: SessionTracker,
        record: dict[str, Any],
        now: float,
    ) -> str:
        actions = self.policy.actions
        if decision.strip_session:
            strip_cookies(flow_.request, {name for name, _ in pending.session_ids})
            record["stripped_session"] = True
        if decision.action == "deny":
            deny(flow_, 503 if decision.situation == "store_unavailable" else actions.deny_status)
        elif decision.action == "redirect":
            redirect(flow_, actions.redirect_location)
        elif decision.action == "drop":
            drop(flow_)
        elif decision.action == "logout":
            return await self._logout(flow_, decision, pending, tracker, record, now)
        elif decision.action == "none":
            return "strip" if decision.strip_session else "none"
        return decision.action

    async def _revoke_all(
        self, tracker: SessionTracker, session_ids: list[tuple[str, str]], reason: str, now: float
    ) -> list[str]:
        """Revoke every session ID; a store failure is logged and the hashes are still returned."""
        try:
            hashes = [await tracker.revoke(value, reason, now) for _, value in session_ids]
            self._store_ok()
            return hashes
        except StoreError as exc:
            self._store_failed(exc)
            log.error(
                "LogoutGuard: could not record the revocation (store unavailable); the logout still goes on"
            )
            return [tracker.hasher.hash(value) for _, value in session_ids]

    def upstream(self) -> Upstream | None:
        """The configured application: guard_upstream, else the first reverse mode. Never the request's host."""
        if ctx.options.guard_upstream:
            return parse_upstream(f"reverse:{ctx.options.guard_upstream}")
        for spec in ctx.options.mode:
            upstream = parse_upstream(spec)
            if upstream is not None:
                return upstream
        return None

    async def _logout(
        self,
        flow_: http.HTTPFlow,
        decision: Decision,
        pending: Pending,
        tracker: SessionTracker,
        record: dict[str, Any],
        now: float,
    ) -> str:
        """The forced logout: revoke first (durably), then the application's own logout request."""
        logout = self.policy.logout
        hashes = await self._revoke_all(
            tracker, pending.session_ids, f"forced logout: {decision.situation}", now
        )
        info: dict[str, Any] = {"mode": logout.mode, "revoked": hashes}
        record["logout"] = info
        if self.policy.lockout.enabled:
            info["locked_out"] = await tracker.lockout(pending.client, now + self.policy.lockout.duration)
        upstream = self.upstream()
        cookies = dict(pending.session_ids)
        try:
            if upstream is None:
                raise ValueError(
                    "no reverse-proxy upstream is configured (guard_upstream or --mode reverse:URL)"
                )
            request = build_logout_request(self.policy, flow_.request, cookies, upstream)
        except (TemplateValueError, ValueError) as exc:
            info.update(ok=False, error=f"logout request not sent: {exc}")
            log.warning(f"LogoutGuard: forced logout: {info['error']}; the session stays revoked")
            deny(flow_, self.policy.actions.deny_status)
            return "deny (logout not sent)"
        info.update(method=request.method, path=request.path.split("?", 1)[0])
        rewrite = logout.mode == "rewrite"
        if rewrite:  # the malicious request itself becomes the logout request (kept in the flow)
            record["original_request"] = original_request_record(flow_.request)
            rewrite_to_logout(flow_, request, upstream)
        # Sent by the addon, bounded by the policy's timeout (mitmproxy has no upstream read timeout).
        outcome = await send_logout(request, upstream, logout.timeout)
        outcome.ok = outcome.status is not None and status_ok(outcome.status, logout)
        if outcome.status is not None:
            outcome.confirmed = confirms_logout(outcome.set_cookies, cookies)
            await self._learn_set_cookies(flow_, pending, outcome.set_cookies)
            outcome.probe = await probe_session(upstream, self.policy, _cookie_header(cookies))
        info.update(outcome.to_json())
        if not outcome.ok:
            reason = outcome.error or f"unexpected status {outcome.status}"
            log.warning(f"LogoutGuard: forced logout request failed ({reason}); the session stays revoked")
        answer_after_logout(flow_, logout.client_response, outcome)
        return "logout" if rewrite else "logout (out-of-band)"

    # -- response side -------------------------------------------------------------------------
    async def _learn(self, flow_: http.HTTPFlow, pending: Pending) -> None:
        assert flow_.response is not None
        await self._learn_set_cookies(flow_, pending, flow_.response.headers.get_all("set-cookie"))

    async def _learn_set_cookies(
        self, flow_: http.HTTPFlow, pending: Pending, set_cookies: list[str]
    ) -> None:
        """Record what the application's Set-Cookie headers did to the sessions (issued, ended)."""
        if not set_cookies:
            return
        if flow_.live:
            now = time.time()
        else:
            now = flow_.response.timestamp_start if flow_.response else flow_.request.timestamp_start
        tracker = self._tracker_for(flow_)
        try:
            await tracker.learn_from_response(
                set_cookies, pending.session_ids, pending.client, pending.user_agent, now
            )
            self._store_ok()
        except StoreError as exc:
            self._store_failed(exc)

    def _judge_response(
        self, flow_: http.HTTPFlow, pending: Pending, record: dict[str, Any]
    ) -> dict[str, Any]:
        assert self.engine is not None and flow_.response is not None
        tx = with_response(pending.state.tx, flow_.response, ctx.options.guard_body_limit)
        verdict = self.engine.inspect_response(pending.state, tx, pending.matches)
        action = str(record.get("action", "none"))
        if verdict.outbound_blocked and flow_.live:
            if ctx.options.guard_mode == "enforce":
                deny(flow_, self.policy.actions.deny_status)
                action = "deny (outbound)"
            elif action == "none":
                action = "log"
        new = verdict.to_json()
        keep = {k: v for k, v in record.items() if k not in new}
        return {**keep, **new, "action": action, "blocked": record.get("blocked") or verdict.blocked}

    # -- records -------------------------------------------------------------------------------
    def _error_record(self, flow_: http.HTTPFlow, exc: Exception) -> dict[str, Any]:
        action = "none"
        if flow_.live and ctx.options.guard_mode == "enforce" and ctx.options.guard_error_action == "deny":
            deny(flow_)
            action = "deny (error)"
        return {
            "score": 0,
            "inbound_score": 0,
            "outbound_score": 0,
            "scores": {},
            "matches": [],
            "blocked": action != "none",
            "action": action,
            "reason": "internal error while judging",
            "error": f"{type(exc).__name__}: {exc}",
            "mode": ctx.options.guard_mode,
            "paranoia": ctx.options.guard_paranoia,
            "responded": action != "none",
            "situation": "error",
        }

    @staticmethod
    def _annotate(flow_: http.HTTPFlow, record: dict[str, Any]) -> None:
        flow_.metadata[META_KEY] = record
        if (
            record.get("blocked")
            or record.get("error")
            or record.get("action") not in ("none", "none (offline)")
        ):
            flow_.marked = MARK_ACTED if record.get("responded") or record.get("logout") else MARK_DETECTED
            flow_.comment = summary_comment(record)
        elif flow_.comment.startswith("LogoutGuard:"):  # an earlier verdict of ours (a re-judged flow)
            flow_.comment = ""
            if flow_.marked in (MARK_ACTED, MARK_DETECTED):
                flow_.marked = ""

    def _audit(self, flow_: http.HTTPFlow, record: dict[str, Any], pending: Pending | None) -> None:
        if not flow_.live or (pending is not None and pending.audited):
            return
        if not record.get("matches") and record.get("action") in ("none", None) and not record.get("error"):
            return
        if pending is not None:
            pending.audited = True
        session = record.get("session") or {}
        peer = flow_.client_conn.peername
        self.audit.write(
            audit_record(
                client=peer[0] if peer else "",
                method=record.get("original_request", {}).get("method", flow_.request.method),
                path=record.get("original_request", {}).get("path", flow_.request.path),
                session_hash=session.get("hash") or None,
                verdict=record,
                logout=record.get("logout"),
            )
        )

    def _store_failed(self, exc: StoreError) -> str:
        """Log a store outage once (not per request) and return the error text."""
        if not self._store_down:
            log.error(
                f"LogoutGuard: session store unavailable ({exc}); fail mode {ctx.options.guard_fail_mode}"
            )
        self._store_down = True
        return str(exc)

    def _store_ok(self) -> None:
        if self._store_down:
            log.warning("LogoutGuard: session store reachable again")
        self._store_down = False

    def _remember_session(self, facts: SessionFacts) -> None:
        if not facts.id_hash:
            return
        self.recent[facts.id_hash] = {"cookie": facts.cookie, "state": facts.state, "seen": time.time()}
        self.recent.move_to_end(facts.id_hash)
        while len(self.recent) > MAX_RECENT_SESSIONS:
            self.recent.popitem(last=False)

    # -- commands ------------------------------------------------------------------------------
    @command.command("guard.explain")
    def explain_flows(self, flows: Sequence[flow.Flow]) -> str:
        """Explain the scoring and the decision of the given flows, rule by rule."""
        out = []
        for f in flows:
            if isinstance(f, http.HTTPFlow):
                record = f.metadata.get(META_KEY)
                head = f"{f.request.method} {f.request.pretty_url}"
                out.append(head + ("\n" + explain(record) if record else "\n  not judged by LogoutGuard"))
        text = "\n".join(out)
        log.info(text)
        return text

    @command.command("guard.reload")
    def reload(self) -> str:
        """Reload the rule files and the policy; a bad file leaves the running ones in force."""
        try:
            ruleset = self._load_rules(ctx.options.guard_rules)
            policy = self._load_policy(ctx.options.guard_policy)
            engine = self._build_engine(ruleset)
        except exceptions.OptionsError as exc:
            log.error(f"LogoutGuard: reload refused, the running ruleset and policy stay in force: {exc}")
            return f"reload refused: {exc}"
        self.ruleset, self.policy, self.engine = ruleset, policy, engine
        log.info(f"LogoutGuard: reloaded {len(ruleset)} rules and policy {policy.source}")
        return f"reloaded {len(ruleset)} rules"

    @command.command("guard.sessions")
    def sessions(self) -> str:
        """The sessions seen most recently (keyed hashes only), newest first."""
        lines = [
            f"{h}  {v['cookie']:<16} {v['state']:<8} {time.strftime('%H:%M:%S', time.localtime(v['seen']))}"
            for h, v in reversed(self.recent.items())
        ]
        text = "\n".join(lines) or "no sessions seen yet"
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
        if self.tracker is None or not hashes:
            return "no session to revoke"
        tracker = self.tracker

        async def run() -> None:
            for h in hashes:
                await tracker.revoke(f"hash:{h}", "revoked by an operator (guard.revoke)")
                if h in self.recent:
                    self.recent[h]["state"] = "revoked"
            log.info(f"LogoutGuard: revoked {len(hashes)} session(s): {', '.join(hashes)}")

        self._spawn(run())
        return f"revoking {len(hashes)} session(s): {', '.join(hashes)}"


def unverified_facts(tracker: SessionTracker, session_ids: list[tuple[str, str]]) -> SessionFacts:
    """Facts for a request whose sessions could not be looked up (store down, fail open): a request
    with a session cookie is taken as authenticated, so an attack still forces the app's logout."""
    if not session_ids:
        return SessionFacts()
    name, value = session_ids[0]
    return SessionFacts("active", cookie=name, id_hash=tracker.hasher.hash(value), count=len(session_ids))


def judged_request(flow_: http.HTTPFlow) -> http.Request:
    """The request to judge: a saved flow that was rewritten into a logout is judged on its original
    request (kept in its metadata; its secret headers were redacted and stay out)."""
    original = (flow_.metadata.get(META_KEY) or {}).get("original_request") if not flow_.live else None
    if not original:
        return flow_.request
    request = flow_.request.copy()
    request.method = original["method"]
    request.path = original["path"]
    # The secret headers were redacted in the record; the rewritten request carries exactly the
    # original's session cookies and credentials, so the session is judged as it was.
    secrets = [(k, v) for k, v in flow_.request.headers.fields if k.lower() in (b"cookie", b"authorization")]
    request.headers = http.Headers(
        [(k.encode(), v.encode()) for k, v in original["headers"] if v != "[redacted]"] + secrets
    )
    request.content = original["body"].encode("utf-8")
    return request


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())
