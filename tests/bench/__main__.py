"""`python -m tests.bench [--smoke] [--out FILE] [--only SECTION,...]`: run the benchmarks, write JSON.

Sections: engine (corpora, PL1/PL4, by phase, 4x rules), e2e (mitmdump with the addon against bare
mitmdump, wrk), sessions (memory and SQLite stores), worst (adversarial requests), startup (the first
request after start-up against the hundredth), crs (the CRS on our engine against Apache + ModSecurity +
CRS, CPU per request in the same run), instructions (instructions per request under callgrind,
with the addon against bare mitmdump: the repeatable figure beside e2e's CPU time). The summary at
the end compares the figures with the targets of the performance issue, met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.machine import describe

SECTIONS = ("engine", "engine_instructions", "e2e", "instructions", "sessions", "worst", "startup", "crs")
TARGETS = {
    "engine_median_benign_pl1_us": ("<=", 100.0),
    "e2e_throughput_ratio": (">=", 0.85),
    "e2e_cpu_ratio": ("<=", 1.15),
    "engine_4x_rules_cost_ratio": ("<=", 1.5),
    "crs_post_cpu_vs_apache_modsecurity": ("<=", 0.333),
}


def run_section(name: str, smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    if name == "engine":
        from tests.bench.engine_bench import engine_section

        return engine_section(smoke, log)
    if name == "engine_instructions":
        from tests.bench.engine_instructions import engine_instructions_section

        return engine_instructions_section(smoke, log)
    if name == "e2e":
        from tests.bench.e2e import e2e_section

        return e2e_section(smoke, log)
    if name == "instructions":
        from tests.bench.instructions import instructions_section

        return instructions_section(smoke, log)
    if name == "crs":
        from tests.bench.crs_bench import crs_section

        return crs_section(smoke, log)
    if name == "sessions":
        from tests.bench.sessions_bench import sessions_section

        return sessions_section(smoke, log)
    if name == "startup":
        from tests.bench.startup_bench import startup_section

        return startup_section(smoke, log)
    from tests.bench.worst import worst_section

    return worst_section(smoke, log)


def targets(results: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Each target with the measured value and whether it is met (None when not measured)."""
    values: dict[str, float | None] = dict.fromkeys(TARGETS)
    engine = results.get("engine") or {}
    if "pl1" in engine:
        values["engine_median_benign_pl1_us"] = engine["pl1"]["benign"]["median_us"]  # type: ignore[index]
    if "rules_4x" in engine and engine["rules_4x"]["factor"] == 4:  # type: ignore[index]
        values["engine_4x_rules_cost_ratio"] = engine["rules_4x"]["median_ratio"]  # type: ignore[index]
    e2e = results.get("e2e") or {}
    ratios = [v["throughput_ratio"] for v in e2e.values() if isinstance(v, dict) and "throughput_ratio" in v]
    if ratios:
        values["e2e_throughput_ratio"] = min(ratios)
    post = (results.get("crs") or {}).get("post_2kb_urlencoded")
    if isinstance(post, dict) and "logoutguard_crs_vs_apache" in post:
        values["crs_post_cpu_vs_apache_modsecurity"] = post["logoutguard_crs_vs_apache"]
    cpu_ratios = [
        v["cpu_ratio"]["addon"] for v in e2e.values() if isinstance(v, dict) and "addon" in v.get("cpu_ratio", {})
    ]
    if cpu_ratios:
        values["e2e_cpu_ratio"] = max(cpu_ratios)
    out: dict[str, dict[str, object]] = {}
    for name, (op, limit) in TARGETS.items():
        value = values[name]
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out[name] = {"target": f"{op} {limit}", "value": value, "met": met}
    return out


def summary_lines(results: dict[str, dict[str, object]]) -> list[str]:
    lines = []
    machine = results["machine"]
    lines.append(
        f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"load {machine['load_average']}, calibration {machine['calibration_ms']} ms"
    )
    engine = results.get("engine") or {}
    for config in [k for k, v in engine.items() if isinstance(v, dict) and "benign" in v]:
        for corpus in ("benign", "attacks"):
            data = (engine.get(config) or {}).get(corpus)  # type: ignore[union-attr]
            if data:
                lines.append(
                    f"engine {config:<14} {corpus:<7} median {data['median_us']:>8} us  p99 {data['p99_us']:>8} us  "
                    f"phases {data['phases_median_us']}"
                )
    if "rules_4x" in engine:
        g = engine["rules_4x"]
        lines.append(
            f"engine {g['factor']}x rules ({g['rules']}): median {g['multiplied_median_us']} us vs "
            f"{g['shipped_median_us']} us -> {g['median_ratio']}x"
        )
    for name, data in (results.get("engine_instructions") or {}).items():
        if isinstance(data, dict) and "per_request" in data:
            lines.append(
                f"engine instructions {name}: {data['per_request']:,} per request (callgrind, {data['requests']} requests)"
            )
    for name, data in (results.get("e2e") or {}).items():
        if isinstance(data, dict) and "throughput_ratio" in data:
            lines.append(
                f"e2e {name}: bare {data['bare']['rps']} req/s (p50 {data['bare']['p50_ms']} ms, p99 "
                f"{data['bare']['p99_ms']} ms), addon {data['addon']['rps']} req/s (p50 {data['addon']['p50_ms']} ms, "
                f"p99 {data['addon']['p99_ms']} ms) -> {data['throughput_ratio']}"
                + (
                    f"; with the memory store {data['addon_memory_store']['rps']} req/s -> "
                    f"{data['throughput_ratio_memory_store']}"
                    if "addon_memory_store" in data
                    else ""
                )
            )
        if isinstance(data, dict) and "cpu_ratio" in data:
            cpu, ratio = data["cpu_ms_per_request"], data["cpu_ratio"]
            spread = data.get("cpu_ratio_spread", {})
            lines.append(
                f"e2e {name} CPU per request (least of the rounds): bare {cpu['bare']} ms, "  # type: ignore[index]
                + ", ".join(f"{kind} {cpu[kind]} ms" for kind in ratio)  # type: ignore[index, union-attr]
                + "; ratio to bare, median of the rounds (lowest-highest): "
                + ", ".join(
                    f"{kind} x{r}" + (f" ({spread[kind][0]}-{spread[kind][1]})" if kind in spread else "")  # type: ignore[index, union-attr]
                    for kind, r in ratio.items()  # type: ignore[union-attr]
                )
            )
    for name, data in (results.get("instructions") or {}).items():
        if isinstance(data, dict) and "ratio" in data:
            lines.append(
                f"instructions {name}: bare {data['bare']['per_request']:,}, addon {data['addon']['per_request']:,} "
                f"per request (callgrind, {data['addon']['requests']} requests) -> x{data['ratio']}"
            )
    sessions = results.get("sessions") or {}
    for backend in ("memory", "sqlite"):
        data = sessions.get(backend)  # type: ignore[assignment]
        if data:
            lines.append(
                f"sessions {backend}: {data['sessions']} sessions, issue {data['issue_per_s']}/s, get {data['get_per_s']}/s, "
                f"request (look_up + seen) {data.get('request_per_s')}/s then {data.get('request_again_per_s')}/s, "
                f"touch {data['touch_per_s']}/s, is_revoked {data['is_revoked_per_s']}/s, revoke {data['revoke_per_s']}/s"
                + (
                    f", {data['memory_mb']} MB"
                    if "memory_mb" in data
                    else f", file {data.get('db_file_mb')} MB"
                )
            )
    for backend in ("memory", "sqlite", "redis"):
        path = (sessions.get(backend) or {}).get("request_path")  # type: ignore[union-attr]
        if path:
            lines.append(
                f"sessions {backend} per request with a session: get+touch {path['get_touch']['cpu_us']} us CPU "
                f"({path['get_touch']['wall_us']} us wall), look_up+seen {path['look_up_seen']['cpu_us']} us CPU "
                f"({path['look_up_seen']['wall_us']} us wall) -> x{path['cpu_ratio_new_to_old']}"
            )
    for config, data in (results.get("worst") or {}).items():
        if not isinstance(data, dict):
            continue
        lines.append(f"worst case {config}: {data['worst_case']} {data['worst_total_ms']} ms")  # type: ignore[index]
    for kind, data in (results.get("startup") or {}).items():
        if not isinstance(data, dict):
            continue
        for shape, figures in data.items():
            if isinstance(figures, dict):
                lines.append(
                    f"startup {kind} {shape}: first request {figures['first_ms']} ms, median of 2-100 "
                    f"{figures['median_2_100_ms']} ms, 100th {figures['hundredth_ms']} ms -> first/median "
                    f"{figures['first_to_median']}, first/100th {figures['first_to_hundredth']}"
                )
        if "held_s" in data:
            lines.append(f"startup {kind}: a request sent as soon as the port accepted waited {data['held_s']} s")
    for name, data in (results.get("crs") or {}).items():
        if isinstance(data, dict) and "crs_engine_us" in data:
            lines.append(
                f"crs {name}: engine {data['crs_engine_us']} us; CPU per request (ms) {data.get('cpu_ms_per_request')}"
                f" -> LogoutGuard+CRS / Apache+ModSecurity+CRS {data.get('logoutguard_crs_vs_apache')}"
            )
    for name, data in results["targets"].items():
        state = {True: "met", False: "NOT met", None: "not measured"}[data["met"]]  # type: ignore[index]
        lines.append(f"target {name} {data['target']}: {data['value']} -> {state}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs and short runs: checks it works")
    parser.add_argument(
        "--out", default="bench-results.json", help="JSON file to write (default: %(default)s)"
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.time()
    results: dict[str, dict[str, object]] = {"machine": describe()}
    results["run"] = {"smoke": args.smoke, "sections": chosen, "command": " ".join(sys.argv)}
    for name in chosen:
        log(f"--- {name}")
        section_start = time.perf_counter()
        results[name] = run_section(name, args.smoke, log)
        results[name]["seconds"] = round(time.perf_counter() - section_start, 1)
    results["targets"] = targets(results)
    results["run"]["seconds"] = round(time.time() - started, 1)
    results["run"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(summary_lines(results)))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
