"""Rates: run the corpora through the engine and compute detection and false-positive rates per category."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from logoutguard.engine.engine import Engine
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset
from logoutguard.engine.rules import Ruleset
from logoutguard.engine.verdict import Match

from .loader import CorpusEntry, load_attacks, load_benign

LAST_RATES_FILE = Path(__file__).resolve().parent / "last-rates.json"
REPO_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Outcome:
    entry: CorpusEntry
    blocked: bool
    score: int
    matches: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class Tally:
    hits: int  # blocked requests
    total: int

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {"blocked": self.hits, "total": self.total, "rate": round(self.rate, 4)}


def judge(engine: Engine, entries: Iterable[CorpusEntry]) -> list[Outcome]:
    outcomes = []
    for entry in entries:
        verdict = engine.inspect(entry.transaction())
        outcomes.append(Outcome(entry, verdict.blocked, verdict.inbound_score, tuple(verdict.matches)))
    return outcomes


def tally(outcomes: list[Outcome]) -> tuple[Tally, dict[str, Tally]]:
    """(overall, per category) counts of blocked requests."""
    per: dict[str, list[int]] = {}
    for outcome in outcomes:
        counts = per.setdefault(outcome.entry.category, [0, 0])
        counts[0] += outcome.blocked
        counts[1] += 1
    overall = Tally(sum(o.blocked for o in outcomes), len(outcomes))
    return overall, {name: Tally(*per[name]) for name in sorted(per)}


@dataclass(frozen=True, slots=True)
class LevelResult:
    paranoia: int
    attacks: list[Outcome]
    benign: list[Outcome]

    @property
    def detection(self) -> tuple[Tally, dict[str, Tally]]:
        return tally(self.attacks)

    @property
    def false_positives(self) -> tuple[Tally, dict[str, Tally]]:
        return tally(self.benign)

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.attacks if not o.blocked]

    @property
    def false_positive_outcomes(self) -> list[Outcome]:
        return [o for o in self.benign if o.blocked]

    def to_json(self) -> dict[str, object]:
        det, det_per = self.detection
        fp, fp_per = self.false_positives
        return {
            "detection": {
                "overall": det.to_json(),
                "per_category": {k: v.to_json() for k, v in det_per.items()},
            },
            "false_positives": {
                "overall": fp.to_json(),
                "per_category": {k: v.to_json() for k, v in fp_per.items()},
            },
            "misses": [o.entry.id for o in self.misses],
            "false_positive_ids": [o.entry.id for o in self.false_positive_outcomes],
        }


def git_state() -> str:
    """Short commit of the repository, with '+dirty rules' when rules/ has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "rules"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" +uncommitted rules" if dirty else "")


@dataclass(frozen=True, slots=True)
class Measurement:
    levels: dict[int, LevelResult]
    rule_count: int
    rule_files: int
    commit: str
    measured_at: str

    def to_json(self) -> dict[str, object]:
        return {
            "measured_at": self.measured_at,
            "commit": self.commit,
            "rules": self.rule_count,
            "rule_files": self.rule_files,
            "levels": {str(pl): result.to_json() for pl, result in self.levels.items()},
        }


def measure(
    levels: Iterable[int] = (1, 2),
    ruleset: Ruleset | None = None,
    attacks: list[CorpusEntry] | None = None,
    benign: list[CorpusEntry] | None = None,
) -> Measurement:
    """Judge both corpora at each paranoia level with the default ruleset (or the one given)."""
    ruleset = ruleset if ruleset is not None else load_ruleset([DEFAULT_RULES_DIR])
    attacks = attacks if attacks is not None else load_attacks()
    benign = benign if benign is not None else load_benign()
    results = {}
    for pl in levels:
        engine = Engine(ruleset, paranoia=pl)
        results[pl] = LevelResult(pl, judge(engine, attacks), judge(engine, benign))
    return Measurement(
        results,
        len(ruleset),
        len(ruleset.sources),
        git_state(),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _cell(t: Tally | None) -> str:
    return f"{t.hits:>4}/{t.total:<4} {t.rate:7.1%}" if t else f"{'-':>17}"


def format_table(m: Measurement) -> str:
    """Detection (attacks blocked) and false positives (benign blocked) per category and level."""
    pls = sorted(m.levels)
    head = f"{'':24}" + "".join(f"{'PL' + str(pl):>18}" for pl in pls)
    lines = [
        f"LogoutGuard corpus rates — {m.rule_count} rules from {m.rule_files} files, "
        f"commit {m.commit}, {m.measured_at}",
        "",
        "DETECTION (attacks blocked)",
        head,
    ]

    def section(pick: str) -> None:
        per_level = {pl: getattr(m.levels[pl], pick) for pl in pls}
        categories = sorted({c for _, per in per_level.values() for c in per})
        for category in categories:
            cells = "".join(f" {_cell(per_level[pl][1].get(category))}" for pl in pls)
            lines.append(f"  {category:22}{cells}")
        lines.append(f"  {'OVERALL':22}" + "".join(f" {_cell(per_level[pl][0])}" for pl in pls))

    section("detection")
    lines += ["", "FALSE POSITIVES (benign blocked)", head]
    section("false_positives")
    return "\n".join(lines)


def printable(text: str) -> str:
    """Control characters shown as \\xNN so a raw NUL or CR in a request cannot garble the report."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def describe(outcome: Outcome) -> str:
    """One miss or false positive, with the rules that matched, for rule authors."""
    entry = outcome.entry
    request = printable(f"{entry.method} {entry.uri[:90]}")
    text = f"{entry.id:22} score {outcome.score:>3}  {request}\n{'':24}note: {entry.note}"
    for match in outcome.matches:
        text += f"\n{'':24}rule {match.id} [{match.category}, +{match.score}] {match.target}: {match.excerpt}"
    if not outcome.matches:
        text += f"\n{'':24}(no rule matched)"
    return text
