"""Run the outside yardstick: `python -m tests.yardstick [--quick] [--paths ...] [--out DIR]`.

Needs (Debian) apache2, libapache2-mod-security2, modsecurity-crs, wfuzz and the tools' venv
(`bash .ci/setup` makes .venv-tools). Writes results.json, the passed payloads (passed-*.jsonl) and
the tools' own output under --out, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import tools
from .report import lines
from .run import Config, quick_config, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.yardstick", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the bounded CI run (a few minutes)")
    parser.add_argument(
        "--paths",
        nargs="+",
        help="direct, logoutguard-plN, crs-plN (default: direct logoutguard-pl1 crs-pl1)",
    )
    parser.add_argument(
        "--parts", nargs="+", choices=["benign", "handwritten", "wordlists", "sqlmap", "wapiti"]
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="only the payload lists of these classes (sqli xss traversal xxe bad-chars mixed cmdi ldap)",
    )
    parser.add_argument("--out", type=Path, help="folder for results (default: a new folder in /tmp)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--crawl-app",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="also crawl an application already running on loopback through each path",
    )
    parser.add_argument(
        "--report", type=Path, metavar="RESULTS_JSON", help="only print the tables of a past run"
    )
    args = parser.parse_args(argv)
    if args.report:
        print("\n".join(lines(json.loads(args.report.read_text()))))
        return 0
    config = quick_config() if args.quick else Config()
    if args.paths:
        config.paths = args.paths
    if args.parts:
        config.parts = args.parts
    if args.classes:
        config.list_classes = args.classes
    config.seed = args.seed
    for item in args.crawl_app:
        name, _, url = item.partition("=")
        config.crawl_apps.append((name, url))
    try:
        for program in ("sqlmap", "wapiti"):
            tools.tool_program(program)
    except FileNotFoundError as exc:
        print(f"yardstick: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path(f"/tmp/logoutguard-yardstick-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        results = run(config, out)
    except FileExistsError as exc:
        print(exc, file=sys.stderr)
        return 2
    print("\n".join(lines(results)))
    print(f"results: {out / 'results.json'}")
    json.dumps(results)  # JSON-able, or fail loudly
    return 0


if __name__ == "__main__":
    sys.exit(main())
