"""`logoutguard crs report PATH`: what of a CRS installation loaded and what was skipped, per file and paranoia level."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ..progress import progress
from .importer import ImportProblem
from .loader import CrsLoad, crs_location, load_crs


def report_lines(load: CrsLoad, *, notes: bool = False) -> list[str]:
    """The report as text lines: header, per-file table, per-PL table, then every skipped rule."""
    skipped = [p for p in load.problems if p.skipped]
    lines = [
        f"CRS {load.version}.x from {load.rules_dir}: "
        f"{sum(i.loaded for i in load.infos.values())} rules loaded, {len(skipped)} skipped, "
        f"{sum(not p.skipped for p in load.problems)} notes; loaded in {load.seconds:.2f} s",
        f"paranoia level {load.blocking_paranoia} (executing {load.paranoia}), "
        f"inbound threshold {load.inbound_threshold}, outbound threshold {load.outbound_threshold}",
        "",
        f"{'file':<52} {'loaded':>6} {'skipped':>7}",
    ]
    loaded_by_file = Counter(i.file for i in load.infos.values() if i.loaded)
    skipped_by_file = Counter(p.file for p in skipped)
    for file in load.files:
        name = str(file)
        lines.append(f"{Path(name).name:<52} {loaded_by_file[name]:>6} {skipped_by_file[name]:>7}")
    lines += ["", f"{'paranoia level':<16} {'loaded':>6} {'skipped':>7}"]
    for level in sorted({i.paranoia for i in load.infos.values()}):
        infos = [i for i in load.infos.values() if i.paranoia == level]
        lines.append(f"PL{level:<14} {sum(i.loaded for i in infos):>6} {sum(not i.loaded for i in infos):>7}")
    if skipped:
        lines += ["", "skipped:"]
        lines += [f"  {_short(p)}" for p in skipped]
    if notes:
        shown = [p for p in load.problems if not p.skipped]
        if shown:
            lines += ["", "notes (rule loaded without the named part, which cannot change its verdict):"]
            lines += [f"  {_short(p)}" for p in shown]
    return lines


def _short(problem: ImportProblem) -> str:
    rule = f" rule {problem.rule_id}" if problem.rule_id is not None else ""
    return f"{Path(problem.file).name}:{problem.line}{rule}: {problem.reason}"


def cmd_crs_report(args: argparse.Namespace) -> int:
    """Print the report; CrsError (no installation) goes to the caller, which says it in one line."""
    load = load_crs(
        crs_location(args.path),
        rules_dir=args.rules_dir,
        extra_confs=args.conf or (),
        paranoia=args.paranoia,
        engine_rules=not args.no_engine_rules,
        each_file=lambda files: progress(files, "CRS files", len(files), "file"),
    )
    print("\n".join(report_lines(load, notes=args.notes)))
    return 0
