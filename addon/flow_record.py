"""The flow record: what LogoutGuard found and did for one flow -> flow.metadata, mark + comment, explanation, audit line.

The record is typed here and turned into text and plain JSON-able data only at these edges:
`flow.metadata["logoutguard"]` (kept in saved flows, read back by `from_json`), the flow's mark and
comment (mitmweb filters `~marked`, `~comment LogoutGuard`), `guard.explain` (rows of label and
text), the LogoutGuard contentview (contentview.py reads `document()`), and the audit line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mitmproxy import http

from .engine.verdict import Match, Verdict
from .flow_bridge import META_KEY, client_address
from .forced_logout import LogoutOutcome, LogoutResult
from .judge import Judgement, Situation
from .policy import Action
from .sessions.state import SessionState
from .sessions.tracker import SessionFacts

__all__ = ["META_KEY", "ActionTaken", "FlowRecord"]

MARK_ACTED = ":no_entry:"
MARK_DETECTED = ":warning:"
COMMENT_PREFIX = "LogoutGuard:"
COMMENT_RULES = 12  # rule ids named in a comment at most


class ActionTaken(StrEnum):
    """What was done with the flow (the judgement's action as carried out, or why not)."""

    NONE = "none"
    LOG = "log"  # detect mode: the judgement asked for something, nothing was done
    STRIP = "strip"  # the session cookie was removed, the request passed on as anonymous
    DENY = "deny"
    REDIRECT = "redirect"
    DROP = "drop"
    LOGOUT = "logout"  # logout.mode rewrite: the request was answered as the application's logout
    LOGOUT_OUT_OF_BAND = "logout (out-of-band)"  # the request was refused; the logout went beside it
    DENY_LOGOUT_NOT_SENT = "deny (logout not sent)"  # revoked, but no logout request could be built
    LOGOUT_PROXY_ONLY = "logout (proxy only)"  # revoked at the proxy; nothing the application can log out
    DENY_OUTBOUND = "deny (outbound)"  # the response was over the outbound threshold
    DENY_ERROR = "deny (error)"  # judging failed (guard_error_action deny)
    OFFLINE = "none (offline)"  # a saved flow, judged only
    REVOKED_OFFLINE = "revoked (offline)"  # a saved flow whose sessions were revoked (guard_offline_revoke)


_QUIET = (ActionTaken.NONE, ActionTaken.OFFLINE)  # actions that leave a clean flow unmarked


@dataclass
class FlowRecord:
    verdict: Verdict
    mode: str  # detect | enforce
    session: SessionFacts | None = None  # None: not judged that far (an internal error)
    situation: Situation = Situation.CLEAN
    decision: Action | None = None  # the judgement's action (None: no judgement)
    action: ActionTaken = ActionTaken.NONE
    blocked: bool = False  # over a threshold, or the judgement acts on the flow
    reason: str = ""
    responded: bool = False  # LogoutGuard answered the flow itself (no response from the application)
    logout: LogoutOutcome | None = None
    original_request: dict[str, Any] | None = None  # of flows saved by older versions, which rewrote the flow
    logout_flow: str = ""  # id of the flow that shows the forced logout request and the app's answer
    stripped_session: bool = False
    store_error: str = ""
    error: str = ""
    request_path: str = ""  # the request's path as recorded (session path parameters redacted)
    extra: dict[str, Any] = field(default_factory=dict)  # keys of another version, kept as they were

    @classmethod
    def judged(cls, verdict: Verdict, facts: SessionFacts, judgement: Judgement, mode: str) -> FlowRecord:
        return cls(
            verdict,
            mode,
            session=facts,
            situation=judgement.situation,
            decision=judgement.action,
            blocked=verdict.blocked or judgement.acts,
            reason=judgement.reason or verdict.reason,
        )

    @classmethod
    def failed(cls, exc: Exception, action: ActionTaken, mode: str, verdict: Verdict) -> FlowRecord:
        """The record of a flow whose judging raised: no match, the error, what was done about it."""
        return cls(
            verdict,
            mode,
            situation=Situation.ERROR,
            action=action,
            blocked=action is not ActionTaken.NONE,
            reason="internal error while judging",
            responded=action is not ActionTaken.NONE,
            error=f"{type(exc).__name__}: {exc}",
        )

    def add_response_verdict(self, verdict: Verdict) -> None:
        """The verdict of the whole exchange (request and response phases) replaces the request's."""
        self.verdict = verdict
        self.reason = verdict.reason
        self.blocked = self.blocked or verdict.blocked

    # -- JSON (flow.metadata) ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = {**self.extra}
        data.update(self.verdict.to_json())  # (it has no "action": that key is the record's)
        data.update(blocked=self.blocked, reason=self.reason, mode=self.mode)
        if self.session is not None:
            data["session"] = self.session.to_json()
        data["situation"] = str(self.situation)
        if self.decision is not None:
            data["decision"] = str(self.decision)
        data.update(action=str(self.action), responded=self.responded)
        if self.logout is not None:
            data["logout"] = self.logout.to_json()
        if self.original_request is not None:
            data["original_request"] = self.original_request
        if self.logout_flow:
            data["logout_flow"] = self.logout_flow
        if self.stripped_session:
            data["stripped_session"] = True
        if self.store_error:
            data["store_error"] = self.store_error
        if self.error:
            data["error"] = self.error
        if self.request_path:
            data["request_path"] = self.request_path
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FlowRecord:
        """A record back from flow metadata (ours, or another version's: unknown keys are kept)."""
        verdict = Verdict(
            inbound_score=int(data.get("inbound_score") or 0),
            outbound_score=int(data.get("outbound_score") or 0),
            scores=dict(data.get("scores") or {}),
            matches=[match_from_json(m) for m in data.get("matches") or []],
            paranoia=int(data.get("paranoia") or 1),
            inbound_threshold=int(data.get("inbound_threshold") or 5),
            outbound_threshold=int(data.get("outbound_threshold") or 4),
            inbound_blocked=bool(data.get("inbound_blocked")),
            outbound_blocked=bool(data.get("outbound_blocked")),
            reason=str(data.get("reason") or ""),
        )
        session, logout = data.get("session"), data.get("logout")
        return cls(
            verdict,
            str(data.get("mode", "")),
            session=SessionFacts.from_json(session) if isinstance(session, dict) else None,
            situation=_enum(Situation, data.get("situation"), Situation.CLEAN),
            decision=_enum(Action, data.get("decision"), None),
            action=_enum(ActionTaken, data.get("action"), ActionTaken.NONE),
            blocked=bool(data.get("blocked")),
            reason=verdict.reason,
            responded=bool(data.get("responded")),
            logout=LogoutOutcome.from_json(logout) if isinstance(logout, dict) else None,
            original_request=data.get("original_request"),
            logout_flow=str(data.get("logout_flow") or ""),
            stripped_session=bool(data.get("stripped_session")),
            store_error=str(data.get("store_error") or ""),
            error=str(data.get("error") or ""),
            request_path=str(data.get("request_path") or ""),
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )

    # -- the flow's mark and comment -------------------------------------------------------------
    def write_to(self, flow: http.HTTPFlow) -> None:
        """Keep the record in the flow's metadata; mark and comment it when it scored or got an action."""
        flow.metadata[META_KEY] = self.to_json()
        self.mark(flow)

    def mark(self, flow: http.HTTPFlow) -> None:
        """Mark and comment the flow when the record scored or got an action (write_to without the metadata)."""
        if self.blocked or self.error or self.action not in _QUIET:
            flow.marked = MARK_ACTED if self.responded or self.logout is not None else MARK_DETECTED
            flow.comment = self.comment()
        elif flow.comment.startswith(COMMENT_PREFIX):  # an earlier verdict of ours (a re-judged flow)
            flow.comment = ""
            if flow.marked in (MARK_ACTED, MARK_DETECTED):
                flow.marked = ""

    def comment(self) -> str:
        """One line for flow comments: score, the top rule by id and message, the others by id,
        situation, action and the logout's result."""
        v = self.verdict
        text = f"{COMMENT_PREFIX} score {v.inbound_score}"
        if v.outbound_score:
            text += f" out {v.outbound_score}"
        top = self.top_match()
        if top is not None:
            text += f", {top.id} {top.msg}"
            others = [str(m.id) for m in v.matches if m is not top]
            if others:
                more = ",".join(others[: COMMENT_RULES - 1]) + ("..." if len(others) >= COMMENT_RULES else "")
                text += f" (+{len(others)}: {more})"
        if self.situation is not Situation.CLEAN:
            text += f" [{self.situation}]"
        text += f" -> {self.action}"
        if self.logout is not None:
            text += f": {logout_result(self.logout)}"
            if self.logout.warning:
                text += f" WARNING: {self.logout.summary()}"
        if self.error:
            text += f" (error: {self.error})"
        return text

    def top_match(self) -> Match | None:
        """The match that weighed most (the first of equals): the rule a comment names by message."""
        scored = [(m.score if m.scoring else 0, -i, m) for i, m in enumerate(self.verdict.matches)]
        return max(scored, key=lambda t: t[:2])[2] if scored else None

    def headline(self) -> str:
        """What happened to the flow, in a few words (the first line of the contentview)."""
        if self.error:
            return f"judging failed ({self.error}); action {self.action}"
        words = f"{self.action}" if self.action not in _QUIET else "passed"
        if self.logout is not None:
            words = f"forced logout, {logout_result(self.logout)}"
        elif self.action is ActionTaken.LOG and self.decision is not None:
            words = f"logged only ({self.mode} mode), enforce would {self.decision}"
        elif self.action is ActionTaken.OFFLINE and self.decision not in (None, Action.NONE):
            words = f"saved flow judged only, live it would get {self.decision}"
        over = "over the threshold" if self.verdict.blocked else "under the threshold"
        return f"{words} ({self.situation}, {over})"

    def document(self) -> dict[str, Any]:
        """The record as a readable document: what happened, the rules, totals against thresholds,
        session, logout. Plain data in display order (the contentview dumps it as YAML)."""
        v = self.verdict
        doc: dict[str, Any] = {"LogoutGuard": self.headline()}
        doc["situation"] = str(self.situation)
        doc["decision"] = str(self.decision) if self.decision is not None else "none"
        doc["action"] = str(self.action)
        doc["mode"] = self.mode
        doc["rules"] = [
            {
                "id": m.id,
                "message": m.msg,
                "target": m.target,
                "matched": m.excerpt,
                "score": m.score if m.scoring else 0,
                "category": f"{m.category} (PL{m.paranoia}, phase {m.phase})",
            }
            for m in v.matches
        ] or "none matched"
        doc["scores"] = {
            "inbound": f"{v.inbound_score} of threshold {v.inbound_threshold} ("
            + ("over" if v.inbound_blocked else "under")
            + ")",
            "outbound": f"{v.outbound_score} of threshold {v.outbound_threshold} ("
            + ("over" if v.outbound_blocked else "under")
            + ")",
            "by category": dict(v.scores) or "none",
            "paranoia level": v.paranoia,
        }
        doc["session"] = _session_document(self.session)
        if self.stripped_session:
            doc["session"]["cookie stripped"] = "the request went on as anonymous"
        if self.logout is not None:
            outcome = {k: v for k, v in self.logout.to_json().items() if k != "result"}
            doc["logout"] = {"result": logout_result(self.logout), **outcome}
            if self.logout_flow:
                doc["logout"]["shown in flow"] = self.logout_flow
        for key, text in (("reason", self.reason), ("store error", self.store_error), ("error", self.error)):
            if text:
                doc[key] = text
        return doc

    def explanation(self) -> list[list[str]]:
        """The record as rows of [label, text] (guard.explain's answer: a table in mitmproxy's
        console, one short JSON array per row in mitmweb's command bar)."""
        v = self.verdict
        rows = [["verdict", self.headline()]]
        rows += [
            [
                f"rule {m.id}",
                f"{m.msg} | {m.target} = {m.excerpt!r} | +{m.score if m.scoring else 0} "
                f"{m.category} PL{m.paranoia}",
            ]
            for m in v.matches
        ]
        rows.append(
            [
                "scores",
                f"inbound {v.inbound_score} of {v.inbound_threshold}, outbound {v.outbound_score} of "
                f"{v.outbound_threshold}, PL{v.paranoia}, mode {self.mode}",
            ]
        )
        if self.session is not None and self.session.state is not SessionState.NONE:
            s = self.session
            rows.append(["session", f"{s.id_hash} ({s.cookie}) {s.state}"])
        rows.append(["decision", f"situation {self.situation} -> action {self.action}"])
        if self.logout is not None:
            outcome = self.logout.to_json()
            details = ", ".join(f"{k} {v}" for k, v in outcome.items() if k not in ("revoked", "result"))
            rows.append(["logout", f"{logout_result(self.logout)}: {details}"])
        for key, text in (("reason", self.reason), ("store error", self.store_error), ("error", self.error)):
            if text:
                rows.append([key, text])
        return rows

    def explain(self) -> str:
        """The explanation as text lines (for the event log)."""
        return "\n".join(f"  {label}: {text}" for label, text in self.explanation())

    # -- the audit line --------------------------------------------------------------------------
    @property
    def worth_auditing(self) -> bool:
        """Flows that scored, got an action or failed are audited; clean ones are not."""
        return bool(self.verdict.matches or self.action is not ActionTaken.NONE or self.error)

    def audit_line(self, flow: http.HTTPFlow) -> dict[str, object]:
        """The audit line of the flow: no cookie, no Authorization, no session ID, only its keyed hash."""
        original = self.original_request or {}
        path = str(original.get("path") or self.request_path or flow.request.path)
        line: dict[str, object] = {
            "client": client_address(flow),
            "method": original.get("method", flow.request.method),
            "path": path.split("?", 1)[0],
            "session": (self.session.id_hash if self.session else "") or None,
            "rules": [m.id for m in self.verdict.matches],
            "targets": [m.target for m in self.verdict.matches],
            "inbound_score": self.verdict.inbound_score,
            "outbound_score": self.verdict.outbound_score,
            "scores": dict(self.verdict.scores),
            "situation": str(self.situation),
            "action": str(self.action),
            "mode": self.mode,
            "logout": self.logout.to_json() if self.logout is not None else None,
        }
        if self.logout is not None and self.logout.warning:
            line["warning"] = self.logout.summary()
        return line


_MATCH_FIELDS = {f.name for f in dataclasses.fields(Match)}
_KNOWN_KEYS = frozenset(
    (
        *("score", "inbound_score", "outbound_score", "scores", "matches", "paranoia"),
        *("inbound_threshold", "outbound_threshold", "blocked", "inbound_blocked", "outbound_blocked"),
        *("reason", "mode", "session", "situation", "decision", "action", "responded", "logout"),
        *("original_request", "logout_flow", "stripped_session", "store_error", "error", "request_path"),
    )
)


def _session_document(facts: SessionFacts | None) -> dict[str, Any]:
    if facts is None:
        return {"state": "not looked up"}
    doc: dict[str, Any] = {"state": str(facts.state)}
    if facts.cookie:
        doc.update(cookie=facts.cookie, hash=facts.id_hash)
    notes = [
        note
        for note, on in (
            ("in the grace period", facts.in_grace),
            ("User-Agent changed", facts.ua_changed),
            ("network changed", facts.network_changed),
            ("adopted", facts.adopted),
        )
        if on
    ]
    if notes:
        doc["notes"] = ", ".join(notes)
    if facts.count > 1:
        doc["session IDs carried"] = facts.count
    return doc


_RESULT_WORDS = {
    LogoutResult.ENDED: "ended",
    LogoutResult.FAILED: "app failed",
    LogoutResult.DEFECTIVE: "app defective",
    LogoutResult.UNVERIFIABLE: "not verifiable",
    LogoutResult.PROXY_ONLY: "proxy only",
}


def logout_result(outcome: LogoutOutcome) -> str:
    """A forced logout's typed result in a few words, the one place they are made (comment, views,
    logout flow, metrics): ended | app failed | app defective | not verifiable | proxy only | not sent
    (a failed logout whose request was never sent)."""
    if outcome.result is LogoutResult.FAILED and not outcome.sent:
        return "not sent"
    return _RESULT_WORDS[outcome.result]


def match_from_json(data: dict[str, Any]) -> Match:
    values = {k: v for k, v in data.items() if k in _MATCH_FIELDS}
    values["tags"] = tuple(values.get("tags", ()))
    return Match(**values)


def _enum(kind: Any, value: object, default: Any) -> Any:
    try:
        return kind(value)
    except (ValueError, TypeError):
        return default
