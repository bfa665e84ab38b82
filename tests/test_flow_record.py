"""The flow record: metadata JSON (same keys, round trip), mark and comment, explanation, audit line."""

from __future__ import annotations

import json

import pytest
from mitmproxy.test import tflow

from logoutguard.engine.verdict import Match, Verdict
from logoutguard.flow_record import (
    MARK_ACTED,
    MARK_DETECTED,
    META_KEY,
    ActionTaken,
    FlowRecord,
    logout_result,
)
from logoutguard.forced_logout import Delivery, LogoutOutcome, LogoutResult, Probe
from logoutguard.judge import Judgement, Situation
from logoutguard.policy import Action, LogoutMode
from logoutguard.sessions.state import SessionState
from logoutguard.sessions.tracker import SessionFacts

MATCH = Match(
    942100, "SQL injection", 2, "sqli", "critical", 5, 1, "ARGS:q", "1 union select", tags=("attack-sqli",)
)
VERDICT = Verdict(
    inbound_score=5,
    scores={"sqli": 5},
    matches=[MATCH],
    inbound_blocked=True,
    reason="inbound score 5 >= threshold 5",
)
FACTS = SessionFacts(SessionState.ACTIVE, cookie="JSESSIONID", id_hash="abc123", count=1)
JUDGEMENT = Judgement(
    Situation.AUTHENTICATED_OVER_THRESHOLD,
    Action.LOGOUT,
    reasons=("inbound score 5 >= threshold 5", "inbound score over threshold on an authenticated session"),
)
TODAYS_KEYS = {
    "score", "inbound_score", "outbound_score", "scores", "matches", "paranoia", "inbound_threshold",
    "outbound_threshold", "blocked", "inbound_blocked", "outbound_blocked", "reason", "mode", "session",
    "situation", "decision", "action", "responded",
}  # fmt: skip


def logged_out() -> FlowRecord:
    record = FlowRecord.judged(VERDICT, FACTS, JUDGEMENT, "enforce")
    record.action = ActionTaken.LOGOUT
    record.responded = True
    record.logout = LogoutOutcome(
        LogoutMode.REWRITE,
        ["abc123"],
        method="GET",
        path="/logout",
        delivery=Delivery(200),
        accepted=True,
        cookie_replaced=True,
        probe=Probe.DEAD,
        result=LogoutResult.ENDED,
        reason="GET /logout answered 200; the check page looks logged out",
    )
    record.original_request = {"method": "GET", "path": "/search?q=1 union select", "headers": []}
    return record


def defective() -> FlowRecord:
    record = logged_out()
    assert record.logout is not None
    record.logout.probe, record.logout.result = Probe.ALIVE, LogoutResult.DEFECTIVE
    record.logout.reason = "GET /logout answered 200, but the session is still alive at the application"
    return record


def test_metadata_has_todays_keys_and_values() -> None:
    data = logged_out().to_json()
    assert TODAYS_KEYS | {"logout", "original_request"} == set(data)
    assert (data["action"], data["decision"], data["situation"]) == (
        "logout",
        "logout",
        "authenticated_over_threshold",
    )
    assert data["blocked"] is True and data["score"] == 5 and data["matches"][0]["tags"] == ["attack-sqli"]
    assert (
        data["reason"]
        == "inbound score 5 >= threshold 5; inbound score over threshold on an authenticated session"
    )
    assert data["session"]["state"] == "active" and data["session"]["hash"] == "abc123"
    assert data["logout"]["probe"] == "dead"
    json.dumps(data)  # plain JSON-able data, no sets, no enums needed


def test_a_record_reads_back_from_metadata_unchanged() -> None:
    data = json.loads(json.dumps(logged_out().to_json()))
    again = FlowRecord.from_json(data)
    assert again.to_json() == data
    assert again.action is ActionTaken.LOGOUT and again.decision is Action.LOGOUT
    assert again.session is not None and again.session.state is SessionState.ACTIVE
    assert again.logout is not None and again.logout.probe is Probe.DEAD


def test_keys_of_another_version_are_kept_and_gaps_filled() -> None:
    record = FlowRecord.from_json({"action": "something new", "future_key": [1], "matches": []})
    assert record.action is ActionTaken.NONE and record.to_json()["future_key"] == [1]
    assert FlowRecord.from_json({}).to_json()["situation"] == "clean"


def test_an_error_record() -> None:
    record = FlowRecord.failed(RuntimeError("boom"), ActionTaken.DENY_ERROR, "enforce", Verdict(paranoia=2))
    data = record.to_json()
    assert (data["situation"], data["action"], data["error"]) == (
        "error",
        "deny (error)",
        "RuntimeError: boom",
    )
    assert (
        data["blocked"] is True
        and data["responded"] is True
        and "session" not in data
        and "decision" not in data
    )
    assert data["paranoia"] == 2 and data["score"] == 0


def test_response_verdict_replaces_the_requests_and_keeps_blocked() -> None:
    record = logged_out()
    record.add_response_verdict(
        Verdict(outbound_score=4, outbound_blocked=True, reason="outbound score 4 >= threshold 4")
    )
    data = record.to_json()
    assert (
        data["outbound_score"] == 4
        and data["blocked"] is True
        and data["reason"] == "outbound score 4 >= threshold 4"
    )


@pytest.mark.parametrize(
    ("record", "marked", "comment"),
    [
        (
            logged_out(),
            MARK_ACTED,
            "LogoutGuard: score 5, 942100 SQL injection [authenticated_over_threshold] -> logout: ended",
        ),
        (
            defective(),
            MARK_ACTED,
            "LogoutGuard: score 5, 942100 SQL injection [authenticated_over_threshold] -> logout: app defective"
            " WARNING: application logout defective: GET /logout answered 200, but the session is still"
            " alive at the application",
        ),
        (
            FlowRecord.judged(
                VERDICT, FACTS, Judgement(Situation.ANONYMOUS_OVER_THRESHOLD, Action.DENY), "detect"
            ),
            MARK_DETECTED,
            "LogoutGuard: score 5, 942100 SQL injection [anonymous_over_threshold] -> none",
        ),
        (
            FlowRecord.judged(Verdict(), SessionFacts(), Judgement(Situation.CLEAN, Action.NONE), "enforce"),
            "",
            "",
        ),
    ],
)
def test_mark_and_comment(record: FlowRecord, marked: str, comment: str) -> None:
    flow = tflow.tflow()
    record.write_to(flow)
    assert (flow.marked, flow.comment) == (marked, comment)
    assert flow.metadata[META_KEY] == record.to_json()


def test_a_rejudged_clean_flow_loses_our_old_mark_but_keeps_a_users_comment() -> None:
    clean = FlowRecord.judged(Verdict(), SessionFacts(), Judgement(Situation.CLEAN, Action.NONE), "enforce")
    ours = tflow.tflow()
    ours.marked, ours.comment = MARK_ACTED, "LogoutGuard: score 5 -> logout"
    clean.write_to(ours)
    assert (ours.marked, ours.comment) == ("", "")
    theirs = tflow.tflow()
    theirs.marked, theirs.comment = ":star:", "look at this"
    clean.write_to(theirs)
    assert (theirs.marked, theirs.comment) == (":star:", "look at this")


def test_comment_names_outbound_score_and_error() -> None:
    record = FlowRecord.failed(ValueError("x"), ActionTaken.NONE, "enforce", Verdict(outbound_score=3))
    assert record.comment() == "LogoutGuard: score 0 out 3 [error] -> none (error: ValueError: x)"


def test_the_comment_names_the_top_rule_by_message_and_the_others_by_id() -> None:
    weak = Match(920100, "odd request line", 1, "protocol", "notice", 2, 1, "REQUEST_LINE", "GET /x")
    strong = Match(941100, "XSS script tag", 2, "xss", "critical", 5, 1, "ARGS:q", "<script>")
    also = Match(941160, "XSS tag handler", 2, "xss", "critical", 5, 1, "ARGS:q", "<script>")
    verdict = Verdict(inbound_score=12, matches=[weak, strong, also], inbound_blocked=True)
    record = FlowRecord.judged(verdict, FACTS, JUDGEMENT, "detect")
    record.action = ActionTaken.LOG
    assert record.top_match() is strong
    assert record.comment() == (
        "LogoutGuard: score 12, 941100 XSS script tag (+2: 920100,941160) [authenticated_over_threshold] -> log"
    )
    many = Verdict(inbound_score=5, matches=[strong] + [weak] * 20, inbound_blocked=True)
    assert "(+20: " + ",".join(["920100"] * 11) + "...)" in FlowRecord.judged(many, FACTS, JUDGEMENT, "x").comment()


ANSWERED = Delivery(200)


def outcome_of(result: LogoutResult, delivery: Delivery | None = ANSWERED) -> LogoutOutcome:
    return LogoutOutcome(LogoutMode.REWRITE, ["h"], result=result, method="GET", path="/logout", delivery=delivery)


@pytest.mark.parametrize(
    ("outcome", "result"),
    [
        (LogoutOutcome(LogoutMode.REWRITE, ["h"], error="logout request not sent: x"), "not sent"),
        (outcome_of(LogoutResult.FAILED, None), "not sent"),
        (outcome_of(LogoutResult.FAILED, Delivery(None, "refused")), "app failed"),
        (outcome_of(LogoutResult.FAILED, Delivery(500)), "app failed"),
        (outcome_of(LogoutResult.DEFECTIVE), "app defective"),
        (outcome_of(LogoutResult.ENDED), "ended"),
        (outcome_of(LogoutResult.UNVERIFIABLE), "not verifiable"),
        (outcome_of(LogoutResult.PROXY_ONLY), "proxy only"),  # kept_in cookie: sent, the copy still works
        (LogoutOutcome(LogoutMode.REWRITE, ["h"], result=LogoutResult.PROXY_ONLY), "proxy only"),  # bearer, Basic
    ],
)
def test_logout_result_words(outcome: LogoutOutcome, result: str) -> None:
    assert logout_result(outcome) == result


def test_explanation_rows() -> None:
    rows = logged_out().explanation()
    assert all(len(row) == 2 and all(isinstance(cell, str) for cell in row) for row in rows)
    labels = dict(rows)
    assert labels["verdict"] == "forced logout, ended (authenticated_over_threshold, over the threshold)"
    assert labels["rule 942100"] == "SQL injection | ARGS:q = '1 union select' | +5 sqli PL1"
    assert labels["scores"] == "inbound 5 of 5, outbound 0 of 4, PL1, mode enforce"
    assert labels["session"] == "abc123 (JSESSIONID) active"
    assert labels["decision"] == "situation authenticated_over_threshold -> action logout"
    assert labels["logout"].startswith("ended: mode rewrite, reason GET /logout answered 200;")
    assert "method GET, path /logout, sent True, status 200" in labels["logout"]
    assert "\n" not in logged_out().explain().replace("\n  ", "")  # one line per row


def test_document_for_the_contentview() -> None:
    record = logged_out()
    record.logout_flow = "f-123"
    doc = record.document()
    assert list(doc)[:7] == ["LogoutGuard", "situation", "decision", "action", "mode", "rules", "scores"]
    assert doc["rules"] == [
        {
            "id": 942100,
            "message": "SQL injection",
            "target": "ARGS:q",
            "matched": "1 union select",
            "score": 5,
            "category": "sqli (PL1, phase 2)",
        }
    ]
    assert doc["scores"]["inbound"] == "5 of threshold 5 (over)" and doc["scores"]["by category"] == {"sqli": 5}
    assert (doc["situation"], doc["decision"], doc["action"]) == ("authenticated_over_threshold", "logout", "logout")
    assert doc["logout"]["result"] == "ended" and doc["logout"]["shown in flow"] == "f-123"
    assert defective().document()["logout"]["result"] == "app defective"  # logout_result's words
    assert defective().document()["logout"]["warning"] is True
    assert doc["session"] == {"state": "active", "cookie": "JSESSIONID", "hash": "abc123"}
    clean = FlowRecord.judged(Verdict(), SessionFacts(), Judgement(Situation.CLEAN, Action.NONE), "enforce")
    assert clean.document()["rules"] == "none matched" and clean.headline() == "passed (clean, under the threshold)"
    json.dumps(doc)


def test_the_audit_path_is_the_recorded_one_with_path_parameters_redacted() -> None:
    flow = tflow.tflow()
    flow.request.path = "/account;jsessionid=SECRET0123?x=1"
    record = FlowRecord.judged(VERDICT, FACTS, Judgement(Situation.REVOKED_SESSION, Action.DENY), "enforce")
    record.request_path = "/account;jsessionid=[redacted]"
    line = record.audit_line(flow)
    assert line["path"] == "/account;jsessionid=[redacted]" and "SECRET" not in json.dumps(line)
    assert FlowRecord.from_json(record.to_json()).request_path == "/account;jsessionid=[redacted]"


def test_audit_line_names_the_original_request_and_no_secret() -> None:
    flow = tflow.tflow()
    flow.client_conn.peername = ("198.51.100.7", 4000)
    flow.request.path = "/logout"
    line = logged_out().audit_line(flow)
    assert line["client"] == "198.51.100.7" and (line["method"], line["path"]) == ("GET", "/search")
    assert (line["session"], line["rules"], line["targets"]) == ("abc123", [942100], ["ARGS:q"])
    assert (line["situation"], line["action"]) == ("authenticated_over_threshold", "logout")
    assert line["logout"]["ok"] is True and line["logout"]["result"] == "ended" and "warning" not in line
    warned = defective().audit_line(flow)
    assert warned["logout"]["result"] == "defective" and warned["logout"]["warning"] is True
    assert str(warned["warning"]).startswith("application logout defective: GET /logout answered 200")
    assert logged_out().worth_auditing
    clean = FlowRecord.judged(Verdict(), SessionFacts(), Judgement(Situation.CLEAN, Action.NONE), "enforce")
    assert not clean.worth_auditing and clean.audit_line(flow)["session"] is None
