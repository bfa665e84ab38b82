"""The forced logout as a flow of its own: the logout request LogoutGuard sent and the application's answer.

The attacker's flow keeps the request as the attacker sent it; the logout is shown beside it as a
second flow (a copy of the attacker's flow: same client connection, a new id) whose request is
the logout exactly as sent (method, path, headers with the session cookie, body) and whose
response is the application's answer (or an error when it gave none). Its metadata names the
attack flow and the outcome; it is marked and commented, so `~marked` and `~comment LogoutGuard`
find it next to the attack (a failed or defective logout says WARNING in the comment, as the
attack's does). The adapter hands it to mitmproxy like a loaded flow (mitmweb lists it, `-w` saves
it); LogoutGuard never judges it (see `is_logout_flow`). Shown in both logout modes.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import connection, http
from mitmproxy import flow as mflow

from .flow_record import COMMENT_PREFIX, MARK_ACTED, FlowRecord, logout_result
from .forced_logout import LogoutOutcome, LogoutRequest, Upstream, rewrite_to_logout

LOGOUT_KEY = "logoutguard_logout"  # flow.metadata[LOGOUT_KEY] on the flow that shows a forced logout
SHOWN_PATH = 80  # characters of the attack's path named in the comment


def is_logout_flow(flow: mflow.Flow) -> bool:
    return LOGOUT_KEY in flow.metadata


def logout_flow(
    attack: http.HTTPFlow,
    request: LogoutRequest,
    upstream: Upstream,
    outcome: LogoutOutcome,
    record: FlowRecord,
    sent_at: float,
    path: str,
) -> http.HTTPFlow:
    """The flow that shows the forced logout that `attack` got (sent at `sent_at`, wall clock); `path`
    is the attack's path as it may be shown (session path parameters redacted)."""
    shown = attack.copy()
    shown.response, shown.error, shown.websocket = None, None, None
    shown.server_conn = connection.Server(address=(upstream.host, upstream.port))
    rewrite_to_logout(shown, request, upstream)
    shown.request.timestamp_start = shown.request.timestamp_end = sent_at
    delivery = outcome.delivery
    if delivery is not None and delivery.status is not None:
        answered = sent_at + delivery.elapsed_ms / 1000
        shown.response = http.Response.make(
            delivery.status,
            delivery.body,
            [(k.encode("latin-1", "replace"), v.encode("latin-1", "replace")) for k, v in delivery.headers],
        )
        shown.response.timestamp_start = shown.response.timestamp_end = answered
    elif delivery is not None:
        shown.error = mflow.Error(f"LogoutGuard: the logout got no answer: {delivery.error}")
    attacked = f"{attack.request.method} {path}"
    result = logout_result(outcome)
    if outcome.warning:
        result += f" WARNING: {outcome.summary()}"
    shown.metadata = {LOGOUT_KEY: summary(attack.id, attacked, outcome, record)}
    shown.marked = MARK_ACTED
    shown.comment = (
        f"{COMMENT_PREFIX} forced logout for flow {attack.id[:8]} "
        f"({attacked[:SHOWN_PATH]}{'...' if len(attacked) > SHOWN_PATH else ''}): {result}"
    )
    return shown


def summary(attack_id: str, attacked: str, outcome: LogoutOutcome, record: FlowRecord) -> dict[str, Any]:
    """The logout flow's metadata (plain JSON-able data): what it was for and how it went."""
    top = record.top_match()
    return {
        "LogoutGuard": f"forced logout, {logout_result(outcome)}",
        "for flow": attack_id,
        "attack": attacked,
        "top rule": f"{top.id} {top.msg}" if top is not None else "none",
        "situation": str(record.situation),
        "session": record.session.id_hash if record.session is not None else "",
        "result": logout_result(outcome),
        "logout": outcome.to_json(),
    }
