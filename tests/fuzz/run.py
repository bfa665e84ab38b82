"""Run the atheris fuzz targets one after another: a short fixed-seed run for CI, or a long one.

    python tests/fuzz/run.py                         # CI: -seed=1 -runs=2000 per target
    python tests/fuzz/run.py --time 1800 --corpus ~/lg-corpus   # long run, keeps its corpus
    python tests/fuzz/run.py --targets cookies policy --runs 100000

Each target starts from its seeds (tests/fuzz/seeds/<name>/, read only) plus the corpus folder
(new inputs are written there; a temp folder unless --corpus). A crash leaves the input as
<artifacts>/crash-<sha1>; reproduce it with `python tests/fuzz/fuzz_<name>.py <that file>`.
Exit status: 0 when every target ran clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("transaction", "transformations", "cookies", "policy")
INPUT_TIMEOUT_S = 10  # libFuzzer's default is 1200 s


def libfuzzer_args(seed: int, runs: int | None, seconds: int | None, artifacts: Path) -> list[str]:
    # -timeout: an input that takes longer is a finding (a request the proxy would hang on), not a wait
    args = [f"-seed={seed}", f"-artifact_prefix={artifacts}/", "-print_final_stats=1", f"-timeout={INPUT_TIMEOUT_S}"]
    if runs is not None:
        args.append(f"-runs={runs}")
    if seconds is not None:
        args.append(f"-max_total_time={seconds}")
    return args


def run_target(name: str, args: list[str], corpus: Path) -> tuple[bool, str]:
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = HERE / "seeds" / name
    command = [sys.executable, str(HERE / f"fuzz_{name}.py"), *args, str(corpus)]
    if seeds.is_dir():
        command.append(str(seeds))
    done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    lines = done.stderr.splitlines()
    summary = next((line for line in reversed(lines) if "DONE" in line.split()), "") or next(
        (line for line in reversed(lines) if line.startswith("Done")), ""
    )
    return done.returncode == 0, summary if done.returncode == 0 else done.stderr[-4000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--runs", type=int, default=None, help="inputs per target (default 2000 unless --time)"
    )
    parser.add_argument("--time", type=int, default=None, help="seconds per target")
    parser.add_argument("--corpus", type=Path, default=None, help="folder for the corpora (kept)")
    parser.add_argument("--artifacts", type=Path, default=Path("."), help="where crash inputs go")
    opts = parser.parse_args(argv)
    runs = opts.runs if opts.runs is not None or opts.time is not None else 2000
    opts.artifacts.mkdir(parents=True, exist_ok=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="lg-fuzz-") as tmp:
        base = opts.corpus or Path(tmp)
        for name in opts.targets:
            started = time.monotonic()
            ok, text = run_target(
                name, libfuzzer_args(opts.seed, runs, opts.time, opts.artifacts.resolve()), base / name
            )
            print(f"fuzz_{name}: {'ok' if ok else 'CRASH'} in {time.monotonic() - started:.1f}s  {text}")
            if not ok:
                failed.append(name)
    if failed:
        print(f"crashed: {', '.join(failed)} (inputs in {opts.artifacts.resolve()})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
