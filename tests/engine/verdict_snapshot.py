"""Verdict snapshot: every verdict the engines give on our fixed inputs, dumped deterministically as JSON.

A test aid for changes that must not change detection (a redesign, a faster path): take a snapshot
before the change, one after, and compare them. Per input it records the matched rules (id and
target, in order), the inbound and outbound scores, the scores per category, the blocked flags and
the reason.

Sections (each a mapping input id -> record):
* `examples`: every rule example of `rules/`, run against its rule alone at PL4 (as `logoutguard rules
  test` does), and every example request run through the whole ruleset at PL2;
* `ours-pl1` .. `ours-pl4`: the attack, benign and held-out corpora (`tests/corpus/`), the differential
  harness's extra requests and a few responses, with our rules;
* `crs-pl1`, `crs-pl2`: the same inputs through the OWASP CRS (Debian's, as `guard_crs=debian` loads it,
  with our default thresholds); left out, with a note, when Debian's CRS is not installed;
* `combined-pl1`, `combined-pl2`: our rules and the CRS together (what the addon runs with `guard_crs`).

Run: `python tests/engine/verdict_snapshot.py --out before.json`, change the code, run again with
`--out after.json`, then `python tests/engine/verdict_snapshot.py --compare before.json after.json`
lists every input whose record changed (exit 1 when any did). `--every N` keeps every N-th input only
(a quick subset); `--sections crs-pl1 ...` limits the sections; `--no-prefilter` judges with plain `re`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from corpus.loader import CORPUS_DIR, load_corpus  # noqa: E402
from crs.differential import LEAKS, apache_framing, extra_requests  # noqa: E402

from logoutguard.crs.loader import CrsError, load_crs  # noqa: E402
from logoutguard.engine.combined import CombinedEngine  # noqa: E402
from logoutguard.engine.engine import Engine  # noqa: E402
from logoutguard.engine.examples import example_transaction  # noqa: E402
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset  # noqa: E402
from logoutguard.engine.rules import Ruleset  # noqa: E402
from logoutguard.engine.transaction import Transaction, build_transaction, byte_text  # noqa: E402
from logoutguard.engine.verdict import Verdict  # noqa: E402

CORPUS_FILES = (
    ("attacks", "attacks.jsonl", True),
    ("benign", "benign.jsonl", False),
    ("holdout-attacks", "holdout-attacks.jsonl", True),
    ("holdout-benign", "holdout-benign.jsonl", False),
)
INBOUND_THRESHOLD, OUTBOUND_THRESHOLD = 5, 4  # the addon's defaults (guard_inbound/outbound_threshold)
SECTIONS = (
    "examples",
    *(f"ours-pl{pl}" for pl in (1, 2, 3, 4)),
    *(f"crs-pl{pl}" for pl in (1, 2)),
    *(f"combined-pl{pl}" for pl in (1, 2)),
)

# An input: an id, the request, and optionally a response (status, headers, body) judged after it.
Response = tuple[int, tuple[tuple[str, str], ...], str]
Input = tuple[str, Transaction, Response | None]
AnyEngine = Engine | CombinedEngine


def record(verdict: Verdict) -> dict[str, Any]:
    """What the snapshot keeps of a verdict."""
    return {
        "matches": [f"{m.id}@{m.target}" for m in verdict.matches],
        "inbound": verdict.inbound_score,
        "outbound": verdict.outbound_score,
        "scores": dict(sorted(verdict.scores.items())),
        "inbound_blocked": verdict.inbound_blocked,
        "outbound_blocked": verdict.outbound_blocked,
        "blocked": verdict.blocked,
        "reason": verdict.reason,
    }


def judge(engine: AnyEngine, tx: Transaction, response: Response | None) -> Verdict:
    """The request phases, then (when there is a response) the response phases, as the addon runs them."""
    verdict, state = engine.inspect_request(tx)
    if response is None:
        return verdict
    return engine.inspect_response(state, tx.with_response(*response), verdict.matches)


def corpus_inputs() -> Iterator[Input]:
    for name, file, attack in CORPUS_FILES:
        for entry in load_corpus(CORPUS_DIR / file, attack=attack):
            yield f"{name}/{entry.id}", entry.transaction(), None
    for request in extra_requests():
        headers, body = apache_framing(request)
        tx = build_transaction(
            method=request.method, uri=request.uri, headers=headers, body=body, client_addr="192.0.2.10"
        )
        yield f"extra/{request.id}", tx, None
    yield from response_inputs()


def response_inputs() -> Iterator[Input]:
    """A plain request answered by each leaking page of the differential harness, and by clean pages."""
    request = build_transaction(
        method="GET", uri="/page?id=7", headers=[("Host", "www.example.com"), ("Accept", "*/*")]
    )
    pages = {
        **{path.rsplit("/", 1)[1]: body for path, body in LEAKS.items()},
        "clean": b"<html><body><p>Hello.</p></body></html>",
    }
    for name, body in pages.items():
        headers = (("Content-Type", "text/html"), ("Content-Length", str(len(body))))
        yield f"response/{name}", request, (200, headers, byte_text(body))
    yield "response/500", request, (500, (("Content-Type", "text/plain"),), "Internal Server Error")
    yield (
        "response/set-cookie",
        request,
        (200, (("Set-Cookie", "sid=abc; Path=/"), ("Content-Type", "text/html")), "<p>ok</p>"),
    )


def example_inputs(ruleset: Ruleset) -> Iterator[tuple[str, Any, Transaction]]:
    """(id, rule, transaction) for every example of every rule."""
    for rule in ruleset.rules:
        for kind, examples in (("match", rule.examples.match), ("no_match", rule.examples.no_match)):
            for n, example in enumerate(examples):
                yield f"{rule.id}/{kind}/{n}", rule, example_transaction(rule, example)


def every(items: Iterator[Any], step: int) -> Iterator[Any]:
    for n, item in enumerate(items):
        if n % step == 0:
            yield item


def snapshot(sections: tuple[str, ...] = SECTIONS, step: int = 1, prefilter: bool = True) -> dict[str, Any]:
    ruleset = load_ruleset([DEFAULT_RULES_DIR])
    inputs = list(every(corpus_inputs(), step))
    out: dict[str, Any] = {"notes": []}

    def run(name: str, make: Callable[[], AnyEngine]) -> None:
        if name in sections:
            engine = make()
            out[name] = {key: record(judge(engine, tx, response)) for key, tx, response in inputs}

    if "examples" in sections:
        alone: dict[str, Any] = {}
        whole = Engine(ruleset, paranoia=2, prefilter=prefilter)
        for key, rule, tx in every(example_inputs(ruleset), step):
            engine = Engine(Ruleset.build([rule]), paranoia=4, prefilter=prefilter)
            alone[key] = record(engine.inspect(tx))
            alone[key + "/ruleset-pl2"] = record(whole.inspect(tx))
        out["examples"] = alone
    for pl in (1, 2, 3, 4):
        run(f"ours-pl{pl}", lambda pl=pl: Engine(ruleset, paranoia=pl, prefilter=prefilter))
    for pl in (1, 2):
        wanted = {f"crs-pl{pl}", f"combined-pl{pl}"} & set(sections)
        if not wanted:
            continue
        try:
            crs = load_crs(
                None, paranoia=pl, inbound_threshold=INBOUND_THRESHOLD, outbound_threshold=OUTBOUND_THRESHOLD
            )
        except CrsError as exc:
            out["notes"].append(f"PL{pl}: CRS not loaded ({exc}); sections {sorted(wanted)} left out")
            continue

        def crs_engine(crs: Any = crs) -> Engine:
            engine = crs.engine()
            if not prefilter:
                engine = Engine(
                    engine.ruleset,
                    paranoia=engine.paranoia,
                    inbound_threshold=engine.inbound_threshold,
                    outbound_threshold=engine.outbound_threshold,
                    tx_defaults=engine.tx_defaults,
                    prepare=engine.prepare,
                    score_vars=engine.score_vars,
                    quiet_ids=engine.quiet_ids,
                    prefilter=False,
                )
            return engine

        run(f"crs-pl{pl}", crs_engine)
        run(
            f"combined-pl{pl}",
            lambda pl=pl, crs_engine=crs_engine: CombinedEngine(
                [Engine(ruleset, paranoia=pl, prefilter=prefilter), crs_engine()]
            ),
        )
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One block of lines per input whose record differs (or that exists on one side only)."""
    lines: list[str] = []
    for section in sorted(set(before) | set(after)):
        if section == "notes":
            continue
        old, new = before.get(section), after.get(section)
        if old is None or new is None:
            lines.append(f"{section}: only in {'after' if old is None else 'before'}")
            continue
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                lines.append(f"{section} {key}:")
                for field in sorted(set(old.get(key) or {}) | set(new.get(key) or {})):
                    a, b = (old.get(key) or {}).get(field), (new.get(key) or {}).get(field)
                    if a != b:
                        lines.append(f"    {field}: {json.dumps(a)} -> {json.dumps(b)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the snapshot here (default: stdout)")
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--every", type=int, default=1, help="keep every N-th input only")
    parser.add_argument("--no-prefilter", action="store_true", help="judge without the hyperscan prefilter")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        lines = compare(before, after)
        counts = {s: len(v) for s, v in after.items() if s != "notes"}
        print("\n".join(lines) if lines else f"identical: {counts}")
        return 1 if lines else 0
    data = snapshot(tuple(args.sections), args.every, not args.no_prefilter)
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text)
        for note in data["notes"]:
            print(note, file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
