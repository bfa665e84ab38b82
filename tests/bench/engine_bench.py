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
from tests.bench.machine import calibration_ms
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


def measure(
    engines: dict[str, Engine], txs: Sequence[Transaction], repeat: int
) -> dict[str, dict[str, object]]:
    """Every request through every engine in turn (so a busy moment of the machine hits all of them
    alike), `repeat` times each, keeping the best. Before every run the memo tables (memo.py) are put
    back as the earlier requests left them: a run never profits from another run of the same request."""
    totals: dict[str, list[float]] = {name: [] for name in engines}
    parts: dict[str, dict[str, list[float]]] = {name: {} for name in engines}
    for tx in txs:
        saved = memo.snapshot()
        for name, engine in engines.items():
            best_total = float("inf")
            best: dict[str, float] = {}
            for _ in range(repeat):
                memo.restore(saved)
                best_total = min(best_total, best_of(lambda e=engine, t=tx: e.inspect_request(t), 1))
                memo.restore(saved)
                for part, us in phases_of(engine, tx).items():
                    best[part] = min(best.get(part, us), us)
            totals[name].append(best_total)
            for part, us in best.items():
                parts[name].setdefault(part, []).append(us)
        memo.restore(saved)
        for engine in engines.values():  # move the memo tables past this request
            engine.inspect_request(tx)
    results: dict[str, dict[str, object]] = {}
    for name in engines:
        result: dict[str, object] = summary(totals[name])
        result["phases_median_us"] = {k: round(statistics.median(v), 1) for k, v in parts[name].items()}
        result["phases_mean_us"] = {k: round(statistics.fmean(v), 1) for k, v in parts[name].items()}
        results[name] = result
    return results


def parse_cost(entries: Sequence[CorpusEntry], repeat: int) -> dict[str, float]:
    return summary([best_of(entry.transaction, repeat) for entry in entries])


def build(ruleset: Ruleset, paranoia: int, prefilter: bool = True) -> tuple[Engine, float]:
    start = time.perf_counter()
    engine = Engine(ruleset, paranoia=paranoia, prefilter=prefilter)
    return engine, round(time.perf_counter() - start, 2)


def engine_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    repeat = 1 if smoke else 5
    factor = 2 if smoke else 4
    benign, attacks = load_benign(), load_attacks()
    if smoke:
        benign, attacks = benign[:40], attacks[:40]
    corpora = {
        "benign": [e.transaction() for e in benign],
        "attacks": [e.transaction() for e in attacks],
    }
    ruleset = load_ruleset([DEFAULT_RULES_DIR])
    with tempfile.TemporaryDirectory() as tmp:
        count = write_multiplied(DEFAULT_RULES_DIR, Path(tmp), factor)
        many = load_ruleset([tmp])
    configs = {"pl1": (ruleset, 1, True), f"pl1_rules_{factor}x": (many, 1, True)}
    if not smoke:
        configs |= {"pl4": (ruleset, 4, True), "pl1_re_only": (ruleset, 1, False)}
    out: dict[str, object] = {
        "rules": len(ruleset),
        "repeat": repeat,
        "clock": "thread CPU time, best of `repeat` runs per request; engines interleaved per request",
        "parse": parse_cost(benign, repeat),
    }
    engines: dict[str, Engine] = {}
    for name, (rules, paranoia, prefilter) in configs.items():
        engines[name], seconds = build(rules, paranoia, prefilter)
        stats = engines[name]._prefilter.stats if engines[name]._prefilter else None
        out[name] = {"rules": len(rules), "build_s": seconds, "prefilter": asdict(stats) if stats else None}
    gc.collect()
    gc.freeze()  # the long-lived rulesets are not traversed by every collection (as a server would do)
    for label, txs in corpora.items():
        memo.clear_all()  # each corpus starts cold
        out[f"calibration_ms_before_{label}"] = calibration_ms()
        for name, result in measure(engines, txs, repeat).items():
            out[name][label] = result  # type: ignore[index]
            log(f"engine {name} {label}: median {result['median_us']} us, p99 {result['p99_us']} us")
    gc.unfreeze()
    shipped, multiplied = out["pl1"]["benign"], out[f"pl1_rules_{factor}x"]["benign"]  # type: ignore[index]
    out["rules_4x"] = {
        "factor": factor,
        "rules": count,
        "corpus": "benign",
        "shipped_median_us": shipped["median_us"],
        "multiplied_median_us": multiplied["median_us"],
        "median_ratio": round(multiplied["median_us"] / shipped["median_us"], 2),
        "mean_ratio": round(multiplied["mean_us"] / shipped["mean_us"], 2),
    }
    return out
