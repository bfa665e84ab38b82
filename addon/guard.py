"""The LogoutGuard mitmproxy addon: options, their validation, the hooks and the guard.* commands."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from mitmproxy import command, ctx, exceptions, flow, http

from .engine.engine import Engine
from .engine.loader import DEFAULT_RULES_DIR, RulesetError, load_ruleset
from .engine.rules import Ruleset
from .engine.state import EvalState
from .engine.transaction import Transaction
from .engine.verdict import Match, Verdict
from .transactions import from_request, with_response

log = logging.getLogger("logoutguard")

META_KEY = "logoutguard"
MODES = ("detect", "enforce")
ERROR_ACTIONS = ("deny", "pass")
MARK_ACTED = ":no_entry:"
MARK_DETECTED = ":warning:"
MAX_PENDING_STATES = 10_000

DENY_PAGE = (
    b"<!doctype html><html><head><title>403 Forbidden</title></head>"
    b"<body><h1>Forbidden</h1><p>The request was refused.</p></body></html>\n"
)


def deny(flow_: http.HTTPFlow, status: int = 403) -> None:
    """Answer the flow with a small generic page that says nothing about why."""
    flow_.response = http.Response.make(
        status, DENY_PAGE, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    )


def summary(verdict: Verdict) -> str:
    """One line for flow comments and logs: score, categories, rule ids, action."""
    cats = ", ".join(f"{k} {v}" for k, v in sorted(verdict.scores.items()))
    ids = ",".join(str(i) for i in verdict.rule_ids[:12]) + ("..." if len(verdict.rule_ids) > 12 else "")
    text = f"LogoutGuard: inbound {verdict.inbound_score}/{verdict.inbound_threshold}"
    if verdict.outbound_score:
        text += f", outbound {verdict.outbound_score}/{verdict.outbound_threshold}"
    return text + (f" ({cats})" if cats else "") + (f" rules {ids}" if ids else "") + f" -> {verdict.action}"


def explain(verdict: dict[str, object]) -> str:
    """The scoring of one judged flow, rule by rule, from its metadata record."""
    lines = []
    for m in verdict.get("matches", []):  # type: ignore[union-attr]
        points = m["score"] if m.get("scoring", True) else 0
        lines.append(
            f"  {m['id']:>7} PL{m['paranoia']} +{points:<3} {m['category']:<16} {m['target']}: {m['msg']} [{m['excerpt']}]"
        )
    lines.append(
        f"  total inbound {verdict.get('inbound_score')} (threshold {verdict.get('inbound_threshold')}),"
        f" outbound {verdict.get('outbound_score')} (threshold {verdict.get('outbound_threshold')}),"
        f" PL{verdict.get('paranoia')}, mode {verdict.get('mode')}, action {verdict.get('action')}"
    )
    if verdict.get("reason"):
        lines.append(f"  reason: {verdict['reason']}")
    if verdict.get("error"):
        lines.append(f"  error: {verdict['error']}")
    return "\n".join(lines)


class LogoutGuard:
    """Scores every request with the rule engine and, in enforce mode, acts on the verdict."""

    def __init__(self) -> None:
        self.ruleset: Ruleset | None = None
        self.engine: Engine | None = None
        # request-phase state of flows waiting for their response (for the outbound phases)
        self._pending: OrderedDict[str, tuple[EvalState, list[Match]]] = OrderedDict()

    # -- options -------------------------------------------------------------------------------
    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "guard_rules",
            Sequence[str],
            [str(DEFAULT_RULES_DIR)],
            "Rule files or folders of *.yaml rules (repeatable). Default: the shipped rules/ folder.",
        )
        loader.add_option("guard_paranoia", int, 1, "Paranoia level 1-4: rules above it do not run.")
        loader.add_option(
            "guard_inbound_threshold", int, 5, "Inbound anomaly score at which a request is blocked (>= 1)."
        )
        loader.add_option(
            "guard_outbound_threshold",
            int,
            4,
            "Outbound anomaly score at which a response is blocked (>= 1).",
        )
        loader.add_option(
            "guard_mode",
            str,
            "enforce",
            "detect: score, annotate and log only; enforce: act on verdicts over threshold.",
            choices=MODES,
        )
        loader.add_option(
            "guard_body_limit",
            int,
            128 * 1024,
            "Bytes of a request or response body that are inspected; larger bodies are inspected up to "
            "this limit and score the oversized-body rule.",
        )
        loader.add_option(
            "guard_error_action",
            str,
            "deny",
            "What enforce mode does with a flow when judging it fails unexpectedly: deny (403) or pass.",
            choices=ERROR_ACTIONS,
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "guard_mode" in updated and opts.guard_mode not in MODES:
            raise exceptions.OptionsError(f"guard_mode: {opts.guard_mode!r} is not one of {', '.join(MODES)}")
        if "guard_error_action" in updated and opts.guard_error_action not in ERROR_ACTIONS:
            raise exceptions.OptionsError(
                f"guard_error_action: {opts.guard_error_action!r} is not one of {', '.join(ERROR_ACTIONS)}"
            )
        if "guard_paranoia" in updated and not 1 <= opts.guard_paranoia <= 4:
            raise exceptions.OptionsError(f"guard_paranoia: {opts.guard_paranoia} is not in 1-4")
        for name in ("guard_inbound_threshold", "guard_outbound_threshold", "guard_body_limit"):
            if name in updated and getattr(opts, name) < 1:
                raise exceptions.OptionsError(f"{name}: {getattr(opts, name)} must be at least 1")
        ruleset = self.ruleset
        if "guard_rules" in updated or ruleset is None:
            ruleset = self._load_rules(opts.guard_rules)
        if updated & {
            "guard_rules",
            "guard_paranoia",
            "guard_inbound_threshold",
            "guard_outbound_threshold",
        } or (self.engine is None):
            self.engine = Engine(
                ruleset,
                paranoia=opts.guard_paranoia,
                inbound_threshold=opts.guard_inbound_threshold,
                outbound_threshold=opts.guard_outbound_threshold,
            )
            self.ruleset = ruleset
            log.info(f"LogoutGuard: {len(ruleset)} rules, PL{opts.guard_paranoia}, mode {opts.guard_mode}")

    @staticmethod
    def _load_rules(paths: Sequence[str]) -> Ruleset:
        try:
            return load_ruleset([Path(p) for p in paths])
        except RulesetError as exc:
            raise exceptions.OptionsError(f"guard_rules: {exc}") from None

    # -- hooks ---------------------------------------------------------------------------------
    def request(self, flow_: http.HTTPFlow) -> None:
        if (flow_.response is not None and flow_.live) or flow_.error is not None or self.engine is None:
            return
        record: dict[str, object]
        try:
            verdict, state = self.engine.inspect_request(request_transaction(flow_))
            self._remember(flow_.id, state, verdict.matches)
            verdict.action = self._act(flow_, verdict) if flow_.live else "none (offline)"
            record = self._record(verdict)
        except Exception as exc:  # a hook must never raise: the flow still gets a verdict
            log.exception(f"LogoutGuard: judging {flow_.request.method} {flow_.request.path} failed")
            record = self._error_record(flow_, exc)
        self._annotate(flow_, record)

    def response(self, flow_: http.HTTPFlow) -> None:
        pending = self._pending.pop(flow_.id, None)
        record = flow_.metadata.get(META_KEY)
        if self.engine is None or flow_.response is None or not isinstance(record, dict):
            return
        if record.get("responded") or record.get("error"):
            return
        try:
            if pending is None:  # the request was judged by an earlier ruleset or process
                verdict, state = self.engine.inspect_request(request_transaction(flow_))
                pending = (state, verdict.matches)
            state, request_matches = pending
            tx = with_response(state.tx, flow_.response, ctx.options.guard_body_limit)
            verdict = self.engine.inspect_response(state, tx, request_matches)
            verdict.action = str(record.get("action", "none"))
            if verdict.outbound_blocked and flow_.live:
                if ctx.options.guard_mode == "enforce":
                    deny(flow_)
                    verdict.action = "deny (outbound)"
                elif verdict.action == "none":
                    verdict.action = "log"
            record = self._record(verdict)
        except Exception as exc:
            log.exception(f"LogoutGuard: judging the response to {flow_.request.path} failed")
            record = {**record, "error": f"{type(exc).__name__}: {exc}"}
        self._annotate(flow_, record)

    def error(self, flow_: http.HTTPFlow) -> None:
        self._pending.pop(flow_.id, None)

    # -- helpers -------------------------------------------------------------------------------
    def _act(self, flow_: http.HTTPFlow, verdict: Verdict) -> str:
        if not verdict.inbound_blocked:
            return "none"
        if ctx.options.guard_mode != "enforce":
            return "log"
        deny(flow_)
        return "deny"

    def _remember(self, flow_id: str, state: EvalState, matches: list[Match]) -> None:
        self._pending[flow_id] = (state, matches)
        while len(self._pending) > MAX_PENDING_STATES:
            self._pending.popitem(last=False)

    def _record(self, verdict: Verdict) -> dict[str, object]:
        record = verdict.to_json()
        record["mode"] = ctx.options.guard_mode
        record["responded"] = verdict.action not in ("none", "log", "none (offline)")
        return record

    def _error_record(self, flow_: http.HTTPFlow, exc: Exception) -> dict[str, object]:
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
        }

    @staticmethod
    def _annotate(flow_: http.HTTPFlow, record: dict[str, object]) -> None:
        flow_.metadata[META_KEY] = record
        if record.get("blocked") or record.get("error"):
            flow_.marked = MARK_ACTED if record.get("responded") else MARK_DETECTED
            flow_.comment = _comment(record)

    # -- commands ------------------------------------------------------------------------------
    @command.command("guard.explain")
    def explain_flows(self, flows: Sequence[flow.Flow]) -> str:
        """Explain the scoring of the given flows, rule by rule."""
        out = []
        for f in flows:
            if not isinstance(f, http.HTTPFlow):
                continue
            record = f.metadata.get(META_KEY)
            head = f"{f.request.method} {f.request.pretty_url}"
            out.append(head + ("\n" + explain(record) if record else "\n  not judged by LogoutGuard"))
        text = "\n".join(out)
        log.info(text)
        return text

    @command.command("guard.reload")
    def reload(self) -> str:
        """Reload the rule files; a bad file leaves the running ruleset in force."""
        try:
            ruleset = self._load_rules(ctx.options.guard_rules)
        except exceptions.OptionsError as exc:
            log.error(f"LogoutGuard: reload refused, the running ruleset stays in force: {exc}")
            return f"reload refused: {exc}"
        assert self.engine is not None
        self.ruleset = ruleset
        self.engine = Engine(
            ruleset,
            paranoia=self.engine.paranoia,
            inbound_threshold=self.engine.inbound_threshold,
            outbound_threshold=self.engine.outbound_threshold,
        )
        log.info(f"LogoutGuard: reloaded {len(ruleset)} rules")
        return f"reloaded {len(ruleset)} rules"


def _comment(record: dict[str, object]) -> str:
    matches = record.get("matches") or []
    ids = ",".join(str(m["id"]) for m in matches[:12])  # type: ignore[index, union-attr]
    text = f"LogoutGuard: score {record.get('inbound_score')}"
    if record.get("outbound_score"):
        text += f" out {record.get('outbound_score')}"
    if ids:
        text += f" rules {ids}"
    text += f" -> {record.get('action')}"
    if record.get("error"):
        text += f" (error: {record['error']})"
    return text


def request_transaction(flow_: http.HTTPFlow) -> Transaction:
    peer = flow_.client_conn.peername
    return from_request(flow_.request, peer[0] if peer else "", ctx.options.guard_body_limit)
