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


def tx_scores(verdict: Verdict, tx_vars: dict[str, str], inbound_var: str, outbound_var: str) -> None:
    """Take the anomaly totals from TX variables (imported CRS rules score there, not per match)."""
    verdict.inbound_score = max(verdict.inbound_score, _int(tx_vars.get(inbound_var, "0")))
    verdict.outbound_score = max(verdict.outbound_score, _int(tx_vars.get(outbound_var, "0")))
    for name, value in tx_vars.items():
        if name.endswith("_score") and "anomaly" not in name and _int(value) > 0:
            verdict.scores[name.removesuffix("_score")] = _int(value)
    reasons = [verdict.reason] if verdict.reason else []
    if verdict.inbound_score >= verdict.inbound_threshold and not verdict.inbound_blocked:
        verdict.inbound_blocked = True
        reasons.append(f"inbound score {verdict.inbound_score} >= threshold {verdict.inbound_threshold}")
    if verdict.outbound_score >= verdict.outbound_threshold and not verdict.outbound_blocked:
        verdict.outbound_blocked = True
        reasons.append(f"outbound score {verdict.outbound_score} >= threshold {verdict.outbound_threshold}")
    verdict.reason = "; ".join(reasons)


def _int(text: str) -> int:
    try:
        return int(text.strip() or 0)
    except ValueError:
        return 0
