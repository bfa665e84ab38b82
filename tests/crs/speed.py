"""Per-request engine cost with CRS 3.3.4 at PL1: a benign GET and a 2 KB form POST, in microseconds.

Run: `python tests/crs/speed.py [--rounds N] [--no-prefilter]`. Prints the load time too. (The
project's benchmark command comes later; this is the quick figure for the CRS importer.)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from logoutguard.crs.loader import load_crs
from logoutguard.engine.transaction import build_transaction

HEADERS = [
    ("Host", "www.example.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Cookie", "JSESSIONID=4F2A9C1B7D3E5F60; theme=dark"),
    ("Connection", "keep-alive"),
]
FORM = (
    "name=Ann+Example&email=ann%40example.com&subject=Order+question&message="
    + "Hello%2C+I+would+like+to+know+when+my+order+will+arrive.+Thanks+in+advance%21+" * 24
)[:2048]


def measure(engine, tx, rounds: int) -> float:
    """Median microseconds of engine.inspect over `rounds` runs (after one warm-up)."""
    engine.inspect(tx)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        engine.inspect(tx)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--no-prefilter", action="store_true")
    args = parser.parse_args()
    load = load_crs(paranoia=1)
    engine = load.engine()
    if args.no_prefilter:
        engine = dataclasses.replace(engine, prefilter=False)
    get = build_transaction(method="GET", uri="/shop/products?id=42&sort=price", headers=HEADERS)
    post = build_transaction(
        method="POST",
        uri="/contact",
        headers=[
            *HEADERS,
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", str(len(FORM))),
        ],
        body=FORM,
    )
    print(f"CRS load: {load.seconds * 1000:.0f} ms ({len(load.ruleset)} rules)")
    print(f"benign GET: {measure(engine, get, args.rounds):.0f} us per request")
    print(f"2 KB form POST: {measure(engine, post, args.rounds):.0f} us per request")


if __name__ == "__main__":
    main()
