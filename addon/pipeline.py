"""The pipeline: a flow through the stages once each: flow bridge, session check, rules, judge, actions, record.

    request  -> flow_bridge.read_request -> session check (tracker) -> engine -> cumulative window
             -> request signals (cross-site?) -> judge.judge -> actions (responses / forced_logout)
             -> FlowRecord -> flow metadata
    response -> learn sessions from Set-Cookie (a login's IDs authenticated) -> expire refused
             cookies in the browser -> outbound rules -> FlowRecord -> audit line

No mitmproxy options here: the adapter (guard.py) builds the parts and the Settings from them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from mitmproxy import http

from .assembly import identifier_rules
from .audit_log import AuditLog
from .engine.combined import CombinedEngine, CombinedState
from .engine.engine import Engine
from .engine.state import EvalState
from .engine.transaction import DEFAULT_LIMITS, Limits
from .engine.verdict import Match, Verdict
from .exchange import Exchange
from .flow_bridge import (
    DEFAULT_BODY_LIMIT,
    META_KEY,
    SeenRequest,
    client_address,
    from_websocket_message,
    read_request,
    set_cookie_values,
    with_response,
)
from .flow_record import ActionTaken, FlowRecord
from .forced_logout import LogoutResult, Upstream, force_logout, revoke_sessions
from .judge import Judgement, RequestSignals, SessionCheck, Situation, counts_toward_window, judge
from .logout_flow import logout_flow
from .observer import Observer
from .policy import Action, LogoutMode, Policy
from .request_signals import is_cross_site, is_login, is_logout
from .responses import add_set_cookies, deny, drop, redirect, signed_out, strip_identifiers
from .sessions.cookies import SessionCookieMatcher, expiring_set_cookie
from .sessions.health import StoreHealth
from .sessions.identifiers import IdentifierRules, SessionId, redact_path, redact_values
from .sessions.memory import MemoryStore
from .sessions.state import SessionState
from .sessions.store import StoreError
from .sessions.tracker import SessionFacts, SessionTracker

log = logging.getLogger("logoutguard")

MAX_PENDING = 10_000
WEBSOCKET_REFUSED = "websocket_refused"  # in a flow's record: a message was refused, drop all later ones
MAX_RECENT_SESSIONS = 1_000
PURGE_EVERY_S = 300.0


# The check of a request without session identifiers while no client is locked out (policy lockout
# off): what SessionTracker.lookup answers then without asking its store, the same but for the grace
# period; made once (frozen).
NO_SESSION_CHECKS = {in_grace: SessionCheck(SessionFacts(in_grace=in_grace)) for in_grace in (False, True)}


class Mode(StrEnum):
    DETECT = "detect"  # score, annotate and log only
    ENFORCE = "enforce"  # act on judgements


@dataclass(frozen=True)
class Settings:
    """The option values the stages read (set by the adapter from guard_* options)."""

    mode: Mode = Mode.ENFORCE
    fail_closed: bool = True  # a request with a session ID is refused while the store cannot answer
    deny_on_error: bool = True  # enforce mode denies a flow whose judging failed
    body_limit: int = DEFAULT_BODY_LIMIT
    # A body over body_limit: refused with 413 (True, ModSecurity's SecRequestBodyLimitAction Reject)
    # unless the rules' verdict on the part kept asks for more; False: the part kept is judged alone.
    reject_over_limit: bool = True
    limits: Limits = DEFAULT_LIMITS  # counts of args, cookies, headers, parts checked before any rule
    offline_revoke: bool = False
    paranoia: int = 1
    inbound_threshold: int = 5
    outbound_threshold: int = 4
    upstream: Upstream | None = None

    @property
    def enforce(self) -> bool:
        return self.mode is Mode.ENFORCE


@dataclass
class Pending:
    """What the request stage knows that the response stage needs."""

    state: EvalState | CombinedState
    matches: list[Match]
    seen: SeenRequest
    audited: bool = False
    authenticated: bool = False  # the request carried a session the application showed authenticated
    expire: tuple[str, ...] = ()  # Set-Cookie values deleting refused cookies, added to the response
    # The request's record and the metadata it wrote: while the flow still carries that very data the
    # response continues this record instead of reading it back from the JSON (see record_of).
    record: FlowRecord | None = None
    written: dict[str, Any] | None = None

    def record_of(self, data: dict[str, Any]) -> FlowRecord | None:
        """The request's record when `data` is still what it wrote (None: read `data` back). A forced
        logout's record is always read back, as before (its outcome is kept as its JSON says)."""
        if data is self.written and self.record is not None and self.record.logout is None:
            return self.record
        return None


class Pipeline:
    """The parts a flow passes through, and the little state kept between a request and its response."""

    def __init__(self) -> None:
        self.engine: Engine | CombinedEngine | None = None
        self.policy = Policy()
        self.rules = IdentifierRules()
        self.tracker: SessionTracker | None = None
        self.audit = AuditLog(None)
        self.settings = Settings()
        self.health = StoreHealth()
        self.pending: OrderedDict[str, Pending] = OrderedDict()
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # session hash -> last facts
        self._offline: SessionTracker | None = None
        self.observer = Observer()  # metrics.Metrics when the adapter serves metrics
        self._redirect_path = self.policy.actions.redirect_location.split("?", 1)[0].split("#", 1)[0]
        # The adapter hands flows the actions made (a forced logout's own flow) to mitmproxy.
        self.show_flow: Callable[[http.HTTPFlow], None] = lambda flow: None
        # The adapter closes a flow's client connection (a refused WebSocket message); False: it could not.
        self.close_connection: Callable[[http.HTTPFlow], bool] = lambda flow: False

    @property
    def matcher(self) -> SessionCookieMatcher:
        return self.rules.sessions

    def use_policy(self, policy: Policy) -> None:
        """The policy, and the identifier rules that follow from it (see assembly.identifier_rules)."""
        self.policy, self.rules = policy, identifier_rules(policy)
        # The page `redirect` sends to, as request paths are compared with it (see _signals).
        self._redirect_path = policy.actions.redirect_location.split("?", 1)[0].split("#", 1)[0]

    def use_tracker(self, tracker: SessionTracker) -> None:
        self.tracker, self._offline = tracker, None

    def use_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.health.fail_mode = "closed" if settings.fail_closed else "open"

    # -- request -----------------------------------------------------------------------------------
    async def on_request(self, flow: http.HTTPFlow) -> None:
        """Judge the request, act on it, record it; never raises (an error gets a record too)."""
        try:
            record = await self.judge_request(flow)
        except Exception as exc:  # a hook must never raise: the flow still gets a verdict
            log.exception(f"LogoutGuard: judging {flow.request.method} {self._path(flow)} failed")
            record = self._error_record(flow, exc)
        record.write_to(flow)
        pending = self.pending.get(flow.id)
        if pending is not None:
            pending.record, pending.written = record, flow.metadata[META_KEY]
        self.observer.request_judged(record)

    async def judge_request(self, flow: http.HTTPFlow) -> FlowRecord:
        assert self.engine is not None
        seen = read_request(flow, self.rules, self.settings.body_limit, self.settings.limits)
        tracker = self._tracker_for(flow)
        check = await self._check_session(tracker, seen)
        started = time.perf_counter()
        verdict, state = self.engine.inspect_request(seen.tx.with_session(check.facts.pairs()))
        self.observer.engine_time("request", time.perf_counter() - started)
        redact_matches(verdict, seen.session_ids)
        if counts_toward_window(check.facts, verdict, self.policy):
            check = await self._count_scored(tracker, seen, check, verdict)
        judgement = judge(
            verdict,
            check,
            self.policy,
            fail_closed=self.settings.fail_closed,
            signals=self._signals(flow, seen, verdict.inbound_blocked),
        )
        pending = self.pending[flow.id] = Pending(
            state, verdict.matches, seen, authenticated=check.facts.authenticated
        )
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        record = FlowRecord.judged(verdict, check.facts, judgement, str(self.settings.mode))
        record.store_error = check.store_error
        record.request_path = redact_path(seen.tx.uri, self.rules).split("?", 1)[0]
        record.action = await self._act(flow, seen, judgement, tracker, record, pending)
        record.responded = flow.live and flow.response is not None
        return record

    def _path(self, flow: http.HTTPFlow) -> str:
        """The request's path for a log line: session path parameters redacted, no query."""
        return redact_path(flow.request.path, self.rules).split("?", 1)[0]

    def _signals(self, flow: http.HTTPFlow, seen: SeenRequest, over_threshold: bool) -> RequestSignals:
        """What the request says about itself. Whether another site sent it is worked out only for a
        request over the inbound threshold: the judge reads it for no other (tests/test_judge.py
        holds it to that), and most requests are not."""
        cross_site = False
        if over_threshold:
            sockname = flow.client_conn.sockname
            listening = [f"{sockname[0]}:{sockname[1]}"] if sockname and len(sockname) >= 2 else []
            cross_site = is_cross_site(seen.tx, self.policy, listening)
        return RequestSignals(
            cross_site=cross_site,
            asks_redirect_target=seen.tx.path.split(";", 1)[0] == self._redirect_path,
            body_over_limit=seen.tx.body_truncated and self.settings.reject_over_limit,
        )

    def _tracker_for(self, flow: http.HTTPFlow) -> SessionTracker:
        """Live flows use the store; saved flows a private in-memory tracker, so judging them changes nothing."""
        assert self.tracker is not None
        if flow.live:
            return self.tracker
        if self._offline is None:
            self._offline = SessionTracker(
                MemoryStore(),
                self.tracker.hasher,
                self.rules,
                self.policy.grace_period,
                flow.request.timestamp_start,
            )
        return self._offline

    async def _check_session(self, tracker: SessionTracker, seen: SeenRequest) -> SessionCheck:
        """Ask the tracker about the request's identifiers and its client's lockout (one store read); a
        store failure is noted and the tracker's local cache answers (see SessionTracker.lookup_without_store)."""
        lockout = self.policy.lockout.enabled
        if not seen.session_ids and not lockout:  # nothing to ask: what the lookup gives without the store
            return NO_SESSION_CHECKS[tracker.in_grace(seen.at)]
        try:
            lookup = await tracker.lookup(
                seen.session_ids, seen.client, seen.user_agent, seen.at, lockout=lockout
            )
            locked = lookup.client_locked
            if seen.session_ids or lockout:  # only a store that answered is "reachable again"
                self.health.ok()
            store_error = ""
        except StoreError as exc:
            store_error = self.health.failed(exc)
            locked = False
            lookup = tracker.lookup_without_store(seen.session_ids, seen.at)
        self._remember_session(lookup.facts)
        return SessionCheck.of(lookup, locked_out=locked, store_error=store_error)

    async def _count_scored(
        self, tracker: SessionTracker, seen: SeenRequest, check: SessionCheck, verdict: Verdict
    ) -> SessionCheck:
        """Note a scored request of an authenticated session in its cumulative window (one that
        counts toward it: judge.counts_toward_window)."""
        try:
            count = await tracker.note_score(
                check.facts.id_hash, verdict.inbound_score, seen.at, self.policy.cumulative.window
            )
        except StoreError as exc:
            return replace(check, store_error=self.health.failed(exc))
        return replace(check, scored_in_window=count)

    async def _act(
        self,
        flow: http.HTTPFlow,
        seen: SeenRequest,
        judgement: Judgement,
        tracker: SessionTracker,
        record: FlowRecord,
        pending: Pending,
    ) -> ActionTaken:
        """Carry out the judgement as the mode allows: saved flows and detect mode change nothing.

        Refused identifiers (revoked, ended, unknown) are deleted in the browser with the refusal, or
        with the application's answer when they are stripped, so their owner is not locked out."""
        if not seen.live:
            if judgement.action is Action.LOGOUT and self.settings.offline_revoke:
                assert self.tracker is not None
                reason = f"offline re-judging: {judgement.situation}"
                await revoke_sessions(self.tracker, seen.session_ids, reason, seen.at, self.health)
                return ActionTaken.REVOKED_OFFLINE
            return ActionTaken.OFFLINE
        if not self.settings.enforce:
            asked = judgement.action is not Action.NONE or judgement.strip_session
            return ActionTaken.LOG if asked else ActionTaken.NONE
        actions = self.policy.actions
        expire = self._expiring(tracker, judgement.refused)
        if judgement.strip_session:
            strip_identifiers(flow.request, judgement.refused)
            record.stripped_session = True
            pending.expire = expire
        match judgement.action:
            case Action.DENY if judgement.situation is Situation.STORE_UNAVAILABLE:
                deny(flow, 503)
                return ActionTaken.DENY
            case Action.DENY if judgement.situation is Situation.BODY_OVER_LIMIT:
                deny(flow, 413)
                return ActionTaken.DENY
            case Action.DENY if judgement.situation in (Situation.REVOKED_SESSION, Situation.UNKNOWN_SESSION):
                signed_out(flow, actions.deny_status, actions.redirect_location, expire)
                return ActionTaken.DENY
            case Action.DENY:
                deny(flow, actions.deny_status)
                add_set_cookies(flow.response, expire)  # type: ignore[arg-type]
                return ActionTaken.DENY
            case Action.REDIRECT:
                redirect(flow, actions.redirect_location, expire)
                return ActionTaken.REDIRECT
            case Action.DROP:
                drop(flow)
                return ActionTaken.DROP
            case Action.LOGOUT:
                upstream = self.settings.upstream
                exchange = Exchange(flow, seen, judgement, tracker)
                outcome = await force_logout(exchange, self.policy, upstream, self.health)
                record.logout = outcome
                if outcome.request is not None and upstream is not None:
                    path = redact_path(flow.request.path, self.rules)
                    shown = logout_flow(
                        flow, outcome.request, upstream, outcome, record, outcome.sent_at, path
                    )
                    record.logout_flow = shown.id
                    self.show_flow(shown)
                if not outcome.sent:
                    proxy_only = outcome.result is LogoutResult.PROXY_ONLY
                    return ActionTaken.LOGOUT_PROXY_ONLY if proxy_only else ActionTaken.DENY_LOGOUT_NOT_SENT
                rewritten = outcome.mode is LogoutMode.REWRITE
                return ActionTaken.LOGOUT if rewritten else ActionTaken.LOGOUT_OUT_OF_BAND
            case Action.LOG:
                return ActionTaken.LOG
        return ActionTaken.STRIP if judgement.strip_session else ActionTaken.NONE

    def _expiring(self, tracker: SessionTracker, refused: tuple[SessionId, ...]) -> tuple[str, ...]:
        """Set-Cookie values deleting the refused identifier cookies where the browser keeps them."""
        if not refused:
            return ()
        names = dict.fromkeys(sid.cookie for sid in refused if sid.is_cookie)
        return tuple(expiring_set_cookie(name, tracker.cookie_scope(name)) for name in names)

    def _error_record(self, flow: http.HTTPFlow, exc: Exception) -> FlowRecord:
        settings = self.settings
        action = ActionTaken.NONE
        if flow.live and settings.enforce and settings.deny_on_error:
            deny(flow)
            action = ActionTaken.DENY_ERROR
        verdict = Verdict(
            paranoia=settings.paranoia,
            inbound_threshold=settings.inbound_threshold,
            outbound_threshold=settings.outbound_threshold,
        )
        return FlowRecord.failed(exc, action, str(settings.mode), verdict)

    def _remember_session(self, facts: SessionFacts) -> None:
        if not facts.id_hash:
            return
        self.recent[facts.id_hash] = {"cookie": facts.cookie, "state": str(facts.state), "seen": time.time()}
        self.recent.move_to_end(facts.id_hash)
        while len(self.recent) > MAX_RECENT_SESSIONS:
            self.recent.popitem(last=False)

    # -- WebSocket messages --------------------------------------------------------------------------
    def on_websocket_message(self, flow: http.HTTPFlow) -> None:
        """Judge the message a client just sent on an open WebSocket with the request rules. In
        enforce mode one over the threshold (or over the body limit, when such bodies are refused) is
        dropped and the connection closed; every later message of that WebSocket, either way, is
        dropped too. Never raises; a failure counts as a refusal when guard_error_action is deny."""
        if self.engine is None or flow.websocket is None or not flow.websocket.messages:
            return
        message = flow.websocket.messages[-1]
        record = flow.metadata.get(META_KEY)
        if isinstance(record, dict) and record.get(WEBSOCKET_REFUSED) and flow.live:
            message.drop()  # the connection is being closed: nothing more passes either way
            return
        if not message.from_client:
            return
        try:
            tx = from_websocket_message(
                flow.request,
                message.content,
                client_address(flow),
                self.settings.body_limit,
                self.settings.limits,
            )
            verdict, _ = self.engine.inspect_request(tx)
            refuse = verdict.inbound_blocked or (tx.body_truncated and self.settings.reject_over_limit)
            error = ""
        except Exception as exc:  # a hook must never raise
            log.exception(f"LogoutGuard: judging a WebSocket message on {self._path(flow)} failed")
            verdict, refuse, error = Verdict(), self.settings.deny_on_error, f"{type(exc).__name__}: {exc}"
        if not (refuse or verdict.matches or error):
            return
        action = "log" if refuse else "none"
        if refuse and self.settings.enforce and flow.live:
            message.drop()
            if isinstance(record, dict):
                record[WEBSOCKET_REFUSED] = True
            action = "drop_close" if self.close_connection(flow) else "drop"
        line = {
            "client": client_address(flow),
            "method": "WEBSOCKET",
            "path": self._path(flow),
            "rules": [m.id for m in verdict.matches],
            "targets": [m.target for m in verdict.matches],
            "inbound_score": verdict.inbound_score,
            "situation": "websocket_message_refused" if refuse else "websocket_message_scored",
            "action": action,
            "mode": str(self.settings.mode),
        }
        if error:
            line["error"] = error
        if isinstance(record, dict):
            record.setdefault("websocket", []).append(line)
        if flow.live:
            self.audit.write(line)

    # -- response ----------------------------------------------------------------------------------
    async def on_response(self, flow: http.HTTPFlow) -> None:
        """Learn sessions from the application's answer, judge it, record and audit the flow."""
        pending = self.pending.pop(flow.id, None)
        data = flow.metadata.get(META_KEY)
        if self.engine is None or flow.response is None or not isinstance(data, dict):
            return
        record = pending.record_of(data) if pending is not None else None
        if record is None:
            try:
                record = FlowRecord.from_json(data)
            except Exception:  # not a record we can read: leave it as it is
                log.exception(f"LogoutGuard: the record of {self._path(flow)} cannot be read")
                return
        # The request's record, continued: what its JSON (still the flow's metadata) was made from.
        written = _json_inputs(record) if pending is not None and record is pending.record else None
        try:
            if pending is None:  # judged by another process or ruleset: judge the request again
                pending = self._rejudged(flow)
            if not record.responded:  # the response came from the application
                set_cookies = set_cookie_values(flow.response)
                if set_cookies:  # what the application's Set-Cookie headers did to sessions
                    await self._learn(flow, pending, set_cookies)
                if pending.expire and flow.live:
                    add_set_cookies(flow.response, pending.expire)
                if not record.error:
                    self._judge_response(flow, pending, record)
        except Exception as exc:
            log.exception(f"LogoutGuard: judging the response to {self._path(flow)} failed")
            record.error = f"{type(exc).__name__}: {exc}"
        if written is not None and _json_inputs(record) == written:
            record.mark(flow)  # the response changed nothing the JSON says: the request's stays
        else:
            record.write_to(flow)
        self._audit(flow, record, pending)

    def on_error(self, flow: http.HTTPFlow) -> None:
        pending = self.pending.pop(flow.id, None)
        data = flow.metadata.get(META_KEY)
        if isinstance(data, dict):
            try:
                record = FlowRecord.from_json(data)
            except Exception:
                log.exception(f"LogoutGuard: the record of {self._path(flow)} cannot be read")
                return
            self._audit(flow, record, pending)

    def _rejudged(self, flow: http.HTTPFlow) -> Pending:
        assert self.engine is not None
        seen = read_request(flow, self.rules, self.settings.body_limit, self.settings.limits)
        seen = replace(seen, session_ids=(), user_agent=None)  # the request's own sessions are not known
        verdict, state = self.engine.inspect_request(seen.tx)
        return Pending(state, verdict.matches, seen)

    async def _learn(self, flow: http.HTTPFlow, pending: Pending, set_cookies: list[str]) -> None:
        """Record what the application's Set-Cookie headers did to the sessions (issued, ended)."""
        if not set_cookies:
            return
        if flow.live:
            now = time.time()
        else:
            now = flow.response.timestamp_start if flow.response else flow.request.timestamp_start
        seen = pending.seen
        await self.health.attempt(
            self._tracker_for(flow).learn_from_response(
                set_cookies,
                seen.session_ids,
                seen.client,
                seen.user_agent,
                now,
                login=is_login(seen.tx, self.policy),
                logout=is_logout(seen.tx, self.policy),
                carried_authenticated=pending.authenticated,
            )
        )

    def _judge_response(self, flow: http.HTTPFlow, pending: Pending, record: FlowRecord) -> None:
        assert self.engine is not None and flow.response is not None
        engine, state = self.engine, pending.state
        if isinstance(engine, Engine) and isinstance(state, EvalState) and not engine.needs_response(state):
            # No response rule can run: the verdict inspect_response would give, without reading the
            # response; the request's own when the record continues the request's (the same matches
            # and TX, scored alike).
            started = time.perf_counter()
            continued = record is pending.record and not record.error
            verdict = record.verdict if continued else engine.verdict([*pending.matches], state)
        else:
            tx = with_response(state.tx, flow.response, self.settings.body_limit)
            started = time.perf_counter()
            verdict = engine.inspect_response(state, tx, pending.matches)  # type: ignore[arg-type]
        self.observer.engine_time("response", time.perf_counter() - started)
        if verdict.outbound_blocked and flow.live:
            if self.settings.enforce:
                deny(flow, self.policy.actions.deny_status)
                record.action = ActionTaken.DENY_OUTBOUND
            elif record.action is ActionTaken.NONE:
                record.action = ActionTaken.LOG
        record.add_response_verdict(verdict)
        self.observer.response_judged(record, [m for m in verdict.matches if m.phase >= 3])

    def _audit(self, flow: http.HTTPFlow, record: FlowRecord, pending: Pending | None) -> None:
        if not flow.live or (pending is not None and pending.audited) or not record.worth_auditing:
            return
        if pending is not None:
            pending.audited = True
        self.audit.write(record.audit_line(flow))

    # -- store upkeep and operator commands --------------------------------------------------------
    async def purge_forever(self) -> None:
        while True:
            await asyncio.sleep(PURGE_EVERY_S)
            try:
                if self.tracker is not None:
                    purged = await self.tracker.store.purge_expired(time.time())
                    if purged:
                        log.info(f"LogoutGuard: purged {purged} expired session records")
            except StoreError as exc:
                log.error(f"LogoutGuard: purging the session store failed: {exc}")

    async def revoke_hashes(self, hashes: list[str]) -> None:
        """Revoke sessions by their keyed hashes (an operator's command)."""
        assert self.tracker is not None
        for h in hashes:
            await self.tracker.revoke(f"hash:{h}", "revoked by an operator (guard.revoke)")
            if h in self.recent:
                self.recent[h]["state"] = str(SessionState.REVOKED)
        log.info(f"LogoutGuard: revoked {len(hashes)} session(s): {', '.join(hashes)}")

    def recent_sessions(self) -> str:
        """The sessions seen most recently (keyed hashes only), newest first."""
        lines = [
            f"{h}  {v['cookie']:<16} {v['state']:<8} {time.strftime('%H:%M:%S', time.localtime(v['seen']))}"
            for h, v in reversed(self.recent.items())
        ]
        return "\n".join(lines) or "no sessions seen yet"


def _json_inputs(record: FlowRecord) -> tuple[object, ...]:
    """What the response may change of a record's JSON (FlowRecord.to_json): its verdict, reason,
    blocked flag, action and error; the rest was set by the request."""
    return (record.verdict, record.reason, record.blocked, record.action, record.error)


def redact_matches(verdict: Verdict, identifiers: tuple[SessionId, ...]) -> None:
    """Session identifier values never reach a record: excerpts that show one (a path parameter, a
    bearer token in a header rule) get it replaced by [redacted]."""
    if identifiers and verdict.matches:
        verdict.matches = [_redacted(m, identifiers) for m in verdict.matches]


def _redacted(match: Match, identifiers: tuple[SessionId, ...]) -> Match:
    """The match with its excerpt redacted; itself when the excerpt shows no identifier (most do not:
    a dataclasses.replace costs more than the search)."""
    excerpt = redact_values(match.excerpt, identifiers)
    return match if excerpt == match.excerpt else replace(match, excerpt=excerpt)
