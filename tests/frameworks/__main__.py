"""Run one framework app by hand: `cd tests && ../.venv/bin/python -m frameworks NAME [FOLDER]`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: procs, frameworks

from frameworks.apps import NAMES, start_app
from frameworks.process import MissingComponent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m frameworks", description=__doc__)
    parser.add_argument("name", choices=NAMES)
    parser.add_argument(
        "folder", nargs="?", type=Path, help="for logs and session files (default: a temp dir)"
    )
    parser.add_argument("--profile", action="store_true", help="print the app's profile as JSON and exit")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix=f"lg-{args.name}-"))
    try:
        app = start_app(args.name, folder)
    except MissingComponent as exc:
        print(f"cannot start {args.name}: {exc}", file=sys.stderr)
        return 2
    with app:
        print(json.dumps({"url": app.url, "folder": str(folder), "profile": app.profile.as_dict()}, indent=2))
        if args.profile:
            return 0
        print(f"{args.name} on {app.url}; Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
