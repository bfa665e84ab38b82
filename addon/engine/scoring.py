"""Scoring: anomaly totals per category and direction, compared with the thresholds in one place."""

from __future__ import annotations

from .rules import RESPONSE_PHASES
from .verdict import Match, Verdict


def score(matches: list[Match], *, paranoia: int, inbound_threshold: int, outbound_threshold: int) -> Verdict:
    """Sum the scoring matches per category and direction and decide whether a threshold is crossed."""
    verdict = Verdict(
        matches=list(matches),
        paranoia=paranoia,
        inbound_threshold=inbound_threshold,
        outbound_threshold=outbound_threshold,
    )
    denied_by: list[int] = []
    for match in matches:
        if match.disruptive == "deny":
            denied_by.append(match.id)
        if not match.scoring:
            continue
        verdict.scores[match.category] = verdict.scores.get(match.category, 0) + match.score
        if match.phase in RESPONSE_PHASES:
            verdict.outbound_score += match.score
        else:
            verdict.inbound_score += match.score
    verdict.inbound_blocked = verdict.inbound_score >= inbound_threshold or any(
        m.disruptive == "deny" and m.phase not in RESPONSE_PHASES for m in matches
    )
    verdict.outbound_blocked = verdict.outbound_score >= outbound_threshold or any(
        m.disruptive == "deny" and m.phase in RESPONSE_PHASES for m in matches
    )
    reasons = []
    if verdict.inbound_score >= inbound_threshold:
        reasons.append(f"inbound score {verdict.inbound_score} >= threshold {inbound_threshold}")
    if verdict.outbound_score >= outbound_threshold:
        reasons.append(f"outbound score {verdict.outbound_score} >= threshold {outbound_threshold}")
    if denied_by:
        reasons.append("denied by rule " + ", ".join(map(str, denied_by)))
    verdict.reason = "; ".join(reasons)
    return verdict
