"""Scoring: anomaly totals per category and direction, and the one place that compares them with thresholds.

A verdict is decided once, on its totals: inbound (phases 1-2) over the inbound threshold, outbound
(phases 3-4) over the outbound threshold, or a match of a rule that denies (SecLang `deny`). The same
decision serves one engine, an imported CRS (whose totals live in TX variables) and several engines
combined (decided on the merged totals).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .rules import RESPONSE_PHASES
from .verdict import Match, Verdict


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The anomaly scores at which a request (inbound) or a response (outbound) is over threshold."""

    inbound: int = 5
    outbound: int = 4

    def inbound_over(self, score: int) -> bool:
        return score >= self.inbound

    def outbound_over(self, score: int) -> bool:
        return score >= self.outbound


def score(
    matches: list[Match],
    *,
    paranoia: int,
    thresholds: Thresholds,
    tx_vars: dict[str, str] | None = None,
    score_vars: tuple[str, str] | None = None,
) -> Verdict:
    """Sum the scoring matches per category and direction and decide the verdict.

    With `score_vars` (the TX variables holding the inbound and outbound totals, where imported CRS
    rules score), a total is the larger of the summed matches and that variable, and the TX variables
    `<category>_score` give the scores per category.
    """
    verdict = Verdict(matches=list(matches), paranoia=paranoia)
    for match in matches:
        if not match.scoring:
            continue
        verdict.scores[match.category] = verdict.scores.get(match.category, 0) + match.score
        if match.phase in RESPONSE_PHASES:
            verdict.outbound_score += match.score
        else:
            verdict.inbound_score += match.score
    if score_vars is not None and tx_vars is not None:
        inbound_var, outbound_var = score_vars
        verdict.inbound_score = max(verdict.inbound_score, _int(tx_vars.get(inbound_var, "0")))
        verdict.outbound_score = max(verdict.outbound_score, _int(tx_vars.get(outbound_var, "0")))
        for name, value in tx_vars.items():
            if name.endswith("_score") and "anomaly" not in name and _int(value) > 0:
                verdict.scores[name.removesuffix("_score")] = _int(value)
    return decide(verdict, thresholds)


def merge(verdicts: Iterable[Verdict], thresholds: Thresholds) -> Verdict:
    """Several engines' verdicts on one transaction -> one verdict, decided on the merged totals."""
    merged: Verdict | None = None
    for verdict in verdicts:
        if merged is None:
            merged = Verdict(paranoia=verdict.paranoia)
        merged.matches.extend(verdict.matches)
        merged.inbound_score += verdict.inbound_score
        merged.outbound_score += verdict.outbound_score
        for category, points in verdict.scores.items():
            merged.scores[category] = merged.scores.get(category, 0) + points
    if merged is None:
        raise ValueError("merge needs at least one verdict")
    return decide(merged, thresholds)


def decide(verdict: Verdict, thresholds: Thresholds) -> Verdict:
    """Set the thresholds, the blocked flags and the reason of `verdict` from its totals and matches."""
    verdict.inbound_threshold = thresholds.inbound
    verdict.outbound_threshold = thresholds.outbound
    inbound_over = thresholds.inbound_over(verdict.inbound_score)
    outbound_over = thresholds.outbound_over(verdict.outbound_score)
    denied_by = [m.id for m in verdict.matches if m.disruptive == "deny"]
    verdict.inbound_blocked = inbound_over or any(
        m.disruptive == "deny" and m.phase not in RESPONSE_PHASES for m in verdict.matches
    )
    verdict.outbound_blocked = outbound_over or any(
        m.disruptive == "deny" and m.phase in RESPONSE_PHASES for m in verdict.matches
    )
    reasons = []
    if inbound_over:
        reasons.append(f"inbound score {verdict.inbound_score} >= threshold {thresholds.inbound}")
    if outbound_over:
        reasons.append(f"outbound score {verdict.outbound_score} >= threshold {thresholds.outbound}")
    if denied_by:
        reasons.append("denied by rule " + ", ".join(map(str, denied_by)))
    verdict.reason = "; ".join(reasons)
    return verdict


def inbound_blocked_without(verdict: Verdict, tag: str) -> bool:
    """Would the request be over threshold without the matches of rules tagged `tag`? (Scoring
    request-phase matches lacking the tag, or a request-phase match lacking it that denies.)"""
    kept = [m for m in verdict.matches if m.phase not in RESPONSE_PHASES and tag not in m.tags]
    total = sum(m.score for m in kept if m.scoring)
    thresholds = Thresholds(verdict.inbound_threshold, verdict.outbound_threshold)
    return thresholds.inbound_over(total) or any(m.disruptive == "deny" for m in kept)


def _int(text: str) -> int:
    try:
        return int(text.strip() or 0)
    except ValueError:
        return 0
