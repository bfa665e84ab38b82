"""Print the corpus rates table and, for rule authors, every miss and false positive with its rule matches.

python tests/corpus/report.py [--paranoia N] [--json FILE] [--category NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `corpus` importable from tests/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus.rates import describe, format_table, measure


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--paranoia",
        type=int,
        choices=range(1, 5),
        metavar="N",
        help="paranoia level (1-4) to measure and detail; default: table for 1 and 2, details for 1",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument("--category", help="only detail misses / false positives of this category")
    parser.add_argument("--no-details", action="store_true", help="print the table only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = (args.paranoia,) if args.paranoia else (1, 2)
    measurement = measure(levels)
    print(format_table(measurement))
    if args.json:
        args.json.write_text(json.dumps(measurement.to_json(), indent=2) + "\n")
    if args.no_details:
        return 0
    result = measurement.levels[levels[0]]
    for title, outcomes in (
        (f"MISSES at PL{result.paranoia} (attacks not blocked)", result.misses),
        (f"FALSE POSITIVES at PL{result.paranoia} (benign blocked)", result.false_positive_outcomes),
    ):
        shown = [o for o in outcomes if args.category in (None, o.entry.category)]
        print(f"\n{title}: {len(shown)}")
        for outcome in shown:
            print(describe(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
