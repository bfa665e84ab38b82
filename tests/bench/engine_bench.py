"""Engine benchmarks: CPU microseconds per request over the corpora, by phase, PL1/PL4, and with 4x rules.

Times are thread CPU time (time.thread_time_ns), the best of `repeat` runs of each request, so other
processes on a shared machine disturb them as little as possible; median and p99 are over requests.
Requests run in corpus order and the memo tables (memo.py) are reset before each repeat to what the
earlier requests left: values seen in earlier requests are warm (as repeated headers are in real
traffic), a request's own new values are not. Transactions are built once beforehand (parsing is
reported on its own line: `parse`).
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from logoutguard.engine import memo
from logoutguard.engine.engine import Engine
from logoutguard.engine.evaluator import run_phase
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset
from logoutguard.engine.rules import REQUEST_PHASES, Ruleset
from logoutguard.engine.transaction import Transaction
from tests.bench.variants import write_multiplied
from tests.corpus.loader import CorpusEntry, load_attacks, load_benign

Clock = Callable[[], int]


def best_of(fn: Callable[[], object], repeat: int, clock: Clock = time.thread_time_ns) -> float:
    """Microseconds of the fastest of `repeat` calls."""
    best = None
    for _ in range(repeat):
        start = clock()
        fn()
        elapsed = clock() - start
        best = elapsed if best is None or elapsed < best else best
    return (best or 0) / 1000


def summary(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p99_us": round(p99, 1),
        "mean_us": round(statistics.fmean(ordered), 1),
        "max_us": round(ordered[-1], 1),
        "requests": len(ordered),
    }


def phases_of(engine: Engine, tx: Transaction) -> dict[str, float]:
    """One request split as Engine.inspect_request runs it: state, each request phase, verdict (us)."""
    clock = time.thread_time_ns
    times: dict[str, float] = {}
    start = clock()
    state = engine.new_state(tx)
    times["state"] = clock() - start
    matches = []
    for phase in REQUEST_PHASES:
        start = clock()
        matches.extend(run_phase(engine._plans, state, phase))
        times[f"phase{int(phase)}"] = clock() - start
    start = clock()
    engine.verdict(matches, state)
    times["verdict"] = clock() - start
    return {k: v / 1000 for k, v in times.items()}


def measure(engine: Engine, txs: Sequence[Transaction], repeat: int) -> dict[str, object]:
    """Each request `repeat` times; before every run the memo tables (memo.py) are put back as the
    requests before it left them, so a run never profits from an earlier run of the same request."""
    totals: list[float] = []
    parts: dict[str, list[float]] = {}
    for tx in txs:
        saved = memo.snapshot()
        best_total = float("inf")
        best: dict[str, float] = {}
        for _ in range(repeat):
            memo.restore(saved)
            best_total = min(best_total, best_of(lambda tx=tx: engine.inspect_request(tx), 1))
            memo.restore(saved)
            for name, us in phases_of(engine, tx).items():
                best[name] = min(best.get(name, us), us)
        totals.append(best_total)
        for name, us in best.items():
            parts.setdefault(name, []).append(us)
    result: dict[str, object] = summary(totals)
    result["phases_median_us"] = {name: round(statistics.median(v), 1) for name, v in parts.items()}
    result["phases_mean_us"] = {name: round(statistics.fmean(v), 1) for name, v in parts.items()}
    return result


def parse_cost(entries: Sequence[CorpusEntry], repeat: int) -> dict[str, float]:
    return summary([best_of(entry.transaction, repeat) for entry in entries])


def build(ruleset: Ruleset, paranoia: int, prefilter: bool = True) -> tuple[Engine, float]:
    start = time.perf_counter()
    engine = Engine(ruleset, paranoia=paranoia, prefilter=prefilter)
    return engine, round(time.perf_counter() - start, 2)


def engine_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    repeat = 1 if smoke else 5
    benign, attacks = load_benign(), load_attacks()
    if smoke:
        benign, attacks = benign[:40], attacks[:40]
    corpora = {
        "benign": [e.transaction() for e in benign],
        "attacks": [e.transaction() for e in attacks],
    }
    ruleset = load_ruleset([DEFAULT_RULES_DIR])
    out: dict[str, object] = {
        "rules": len(ruleset),
        "repeat": repeat,
        "clock": "thread CPU time, best of `repeat` runs per request",
        "parse": parse_cost(benign, repeat),
    }
    configs = [("pl1", 1, True)] if smoke else [("pl1", 1, True), ("pl4", 4, True), ("pl1_re_only", 1, False)]
    for name, paranoia, prefilter in configs:
        engine, seconds = build(ruleset, paranoia, prefilter)
        gc.collect()
        gc.freeze()  # the long-lived ruleset is not traversed by every collection (as a server would do)
        stats = engine._prefilter.stats if engine._prefilter else None
        out[name] = {"build_s": seconds, "prefilter": asdict(stats) if stats else None}
        memo.clear_all()  # every configuration starts cold
        for label, txs in corpora.items():
            out[name][label] = measure(engine, txs, repeat)  # type: ignore[index]
            log(f"engine {name} {label}: median {out[name][label]['median_us']} us")  # type: ignore[index]
        gc.unfreeze()
    out["rules_4x"] = growth(corpora, ruleset, smoke, repeat, log)
    return out


def growth(
    corpora: dict[str, list[Transaction]],
    ruleset: Ruleset,
    smoke: bool,
    repeat: int,
    log: Callable[[str], None],
) -> dict[str, object]:
    """The same corpora with 4x the rules (generated variants) against the shipped rules, at PL1."""
    factor = 2 if smoke else 4
    with tempfile.TemporaryDirectory() as tmp:
        count = write_multiplied(DEFAULT_RULES_DIR, Path(tmp), factor)
        many = load_ruleset([tmp])
    txs = corpora["benign"][:20] if smoke else corpora["benign"]
    base, _ = build(ruleset, 1)
    bigger, seconds = build(many, 1)
    gc.collect()
    gc.freeze()
    memo.clear_all()
    shipped = measure(base, txs, repeat)
    memo.clear_all()
    multiplied = measure(bigger, txs, repeat)
    gc.unfreeze()
    ratio = round(multiplied["median_us"] / shipped["median_us"], 2)  # type: ignore[operator]
    log(f"engine {factor}x rules ({count}): median {multiplied['median_us']} us, {ratio}x the shipped rules")
    return {
        "factor": factor,
        "rules": count,
        "build_s": seconds,
        "corpus": "benign",
        "shipped": shipped,
        "multiplied": multiplied,
        "median_ratio": ratio,
        "mean_ratio": round(multiplied["mean_us"] / shipped["mean_us"], 2),  # type: ignore[operator]
    }
