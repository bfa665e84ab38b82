"""Worst cases: adversarial requests and the engine time each takes (parse + all request phases).

Bodies beyond the inspection limit (128 KiB by default, as in the addon) are inspected up to it.
Near-matches are fragments that look like attacks but stop short (so every prefilter "maybe" has to
be settled by the regexes), repeated to fill the body, a header or thousands of arguments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import quote

from logoutguard.engine.engine import Engine
from logoutguard.engine.loader import DEFAULT_RULES_DIR, load_ruleset
from logoutguard.engine.transaction import build_transaction

NEAR_MISSES = [
    "union selec",
    "select fro m",
    "<scrip",
    "javascrip :",
    "onerro r=",
    "../.. /",
    "/etc/passw",
    "${jndi:ldaq",
    "cmd.ex",
    "eval (",
    "sleep(",
    "' o r '",
    "{{7*",
    "<?ph",
    "wget htt",
    "&& cat",
    "%2e%2e%2",
    "\\x3cscrip",
    "1=1-",
    "char(",
]
MB = 1024 * 1024
HEADERS = [("Host", "app.example"), ("User-Agent", "bench/1.0"), ("Accept", "*/*")]


def near_misses(size: int, separator: str = " ") -> str:
    text = separator.join(NEAR_MISSES)
    return (text * (size // len(text) + 1))[:size]


def cases(smoke: bool) -> dict[str, dict[str, object]]:
    """name -> build_transaction keyword arguments."""
    big = MB // 8 if smoke else MB
    args = 1000 if smoke else 10_000
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    nested = 20_000 if not smoke else 2_000
    deep_ok = "[" * 400 + json.dumps(near_misses(2000)) + "]" * 400
    return {
        "body_1mb_near_misses_urlencoded": {
            "method": "POST",
            "headers": [*HEADERS, *form.items()],
            "body": "q=" + quote(near_misses(big)),
        },
        "body_1mb_near_misses_raw": {
            "method": "POST",
            "headers": [*HEADERS, ("Content-Type", "text/plain")],
            "body": near_misses(big),
        },
        "body_1mb_near_misses_json": {
            "method": "POST",
            "headers": [*HEADERS, ("Content-Type", "application/json")],
            "body": json.dumps({"comment": near_misses(big), "items": [near_misses(64)] * 200}),
        },
        "json_nested_20000_deep": {
            "method": "POST",
            "headers": [*HEADERS, ("Content-Type", "application/json")],
            "body": "[" * nested + "]" * nested,
        },
        "json_nested_400_deep_with_payload": {
            "method": "POST",
            "headers": [*HEADERS, ("Content-Type", "application/json")],
            "body": deep_ok,
        },
        "args_10000_query": {
            "method": "GET",
            "uri": "/search?" + "&".join(f"a{n}={quote(NEAR_MISSES[n % 20])}" for n in range(args)),
            "headers": HEADERS,
        },
        "args_10000_body": {
            "method": "POST",
            "headers": [*HEADERS, *form.items()],
            "body": "&".join(f"f{n}={quote(NEAR_MISSES[n % 20])}" for n in range(args)),
        },
        "headers_100_of_8kb": {
            "method": "GET",
            "headers": [*HEADERS, *((f"X-Pad-{n}", near_misses(8192)) for n in range(100))],
        },
        "header_user_agent_64kb": {
            "method": "GET",
            "headers": [
                ("Host", "app.example"),
                ("User-Agent", near_misses(65536)),
                ("Referer", near_misses(65536)),
            ],
        },
        "cookies_1000": {
            "method": "GET",
            "headers": [
                *HEADERS,
                ("Cookie", "; ".join(f"c{n}={quote(NEAR_MISSES[n % 20])}" for n in range(1000))),
            ],
        },
        # Issue 11's red-team requests: over the count limits (guard_max_cookies 200, guard_max_args
        # 1000) only rule 920395 runs; the cases at the limits show the most a request can cost.
        "cookies_10000_session_ids": {
            "method": "GET",
            "uri": "/?q=<script>alert(1)</script>",
            "headers": [*HEADERS, ("Cookie", "; ".join(f"sessionid=s{n:06d}" for n in range(10_000)))],
        },
        "args_100000_query": {
            "method": "GET",
            "uri": "/search?" + "&".join(f"a{n}=1" for n in range(100_000)),
            "headers": HEADERS,
        },
        "cookies_200_at_the_limit": {
            "method": "GET",
            "headers": [
                *HEADERS,
                ("Cookie", "; ".join(f"c{n}={quote(NEAR_MISSES[n % 20])}" for n in range(200))),
            ],
        },
        "args_1000_at_the_limit": {
            "method": "GET",
            "uri": "/search?" + "&".join(f"a{n}={quote(NEAR_MISSES[n % 20])}" for n in range(1000)),
            "headers": HEADERS,
        },
        "spaces_128kb_backtracking_bait": {
            "method": "POST",
            "headers": [*HEADERS, *form.items()],
            "body": "q='" + "%20" * 40_000 + "x&r=" + "a" * 20_000 + "!",
        },
    }


def run_case(engine: Engine, spec: dict[str, object]) -> dict[str, float]:
    clock = time.thread_time_ns
    start = clock()
    tx = build_transaction(
        method=str(spec["method"]),
        uri=str(spec.get("uri", "/submit")),
        headers=spec["headers"],  # type: ignore[arg-type]
        body=str(spec.get("body", "")).encode("latin-1", "replace"),
        client_addr="192.0.2.1",
    )
    parsed = clock()
    verdict, _ = engine.inspect_request(tx)
    done = clock()
    return {
        "parse_ms": round((parsed - start) / 1e6, 2),
        "engine_ms": round((done - parsed) / 1e6, 2),
        "total_ms": round((done - start) / 1e6, 2),
        "score": verdict.inbound_score,
        "body_bytes": tx.body_length,
        "args": len(tx.args),
    }


def worst_section(smoke: bool, log: Callable[[str], None]) -> dict[str, object]:
    ruleset = load_ruleset([DEFAULT_RULES_DIR])
    out: dict[str, object] = {}
    for paranoia in (1,) if smoke else (1, 4):
        engine = Engine(ruleset, paranoia=paranoia)
        results = {name: run_case(engine, spec) for name, spec in cases(smoke).items()}
        worst = max(results, key=lambda name: results[name]["total_ms"])
        out[f"pl{paranoia}"] = {
            "cases": results,
            "worst_case": worst,
            "worst_total_ms": results[worst]["total_ms"],
        }
        log(f"worst case PL{paranoia}: {worst} {results[worst]['total_ms']} ms")
    return out
