"""Readable tables of a yardstick result (the dict `run.run` returns and writes as results.json)."""

from __future__ import annotations

from collections import defaultdict

from .grading import OUTCOMES

ABBREV = {
    "boolean-based blind": "B",
    "error-based": "E",
    "UNION query": "U",
    "stacked queries": "S",
    "time-based blind": "T",
    "inline query": "I",
}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _add(into: dict, tally: dict) -> None:
    for key in ("sent", *OUTCOMES):
        into[key] = into.get(key, 0) + tally[key]


def _share(tally: dict, *keys: str) -> float | None:
    return sum(tally.get(k, 0) for k in keys) / tally["sent"] if tally.get("sent") else None


def tool_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    paths = list(results["paths"])
    proxies = [p for p in paths if p != "direct"]
    header = [
        "tool",
        "run",
        "class",
        *(f"found {p}" for p in paths),
        *(f"attacks {p}" for p in paths),
        *(f"refused {p}" for p in proxies),
        *(f"passed {p}" for p in proxies),
    ]
    rows = []
    first = results["paths"][paths[0]]
    for point in first.get("sqlmap", {}):
        entries = [results["paths"][p]["sqlmap"].get(point, {}) for p in paths]
        found = ["".join(sorted(ABBREV.get(t, "?") for t in e.get("techniques", []))) or "-" for e in entries]
        rows.append(
            [
                "sqlmap",
                point,
                "sqli",
                *found,
                *(str(e["attack"]["sent"]) for e in entries),
                *(pct(results["paths"][p]["sqlmap"][point]["attack"]["refused_share"]) for p in proxies),
                *(str(results["paths"][p]["sqlmap"][point]["attack"]["passed"]) for p in proxies),
            ]
        )
    for module in first.get("wapiti", {}):
        if module == "crawl":
            continue
        entries = [results["paths"][p]["wapiti"].get(module, {}) for p in paths]
        found = [str(len(e.get("findings", []))) if e.get("findings") else "-" for e in entries]
        rows.append(
            [
                "wapiti",
                module,
                entries[0].get("class", ""),
                *found,
                *(str(e["attack"]["sent"]) for e in entries),
                *(pct(results["paths"][p]["wapiti"][module]["attack"]["refused_share"]) for p in proxies),
                *(str(results["paths"][p]["wapiti"][module]["attack"]["passed"]) for p in proxies),
            ]
        )
    return header, rows


def class_totals(results: dict) -> dict[str, dict[str, dict]]:
    """class -> path -> tally over every attack request (tools and payload lists) of that class."""
    totals: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    for path, figures in results["paths"].items():
        for entry in figures.get("sqlmap", {}).values():
            _add(totals["sqli"][path], entry["attack"])
        for module, entry in figures.get("wapiti", {}).items():
            if module != "crawl":
                _add(totals[entry["class"]][path], entry["attack"])
        for entry in figures.get("wordlists", {}).values():
            _add(totals[entry["class"]][path], entry)
    return totals


def lines(results: dict) -> list[str]:
    paths = list(results["paths"])
    proxies = [p for p in paths if p != "direct"]
    out = [f"yardstick: {', '.join(paths)}; {results['seconds']}s; versions {results['versions']}", ""]
    if any(f.get("sqlmap") or f.get("wapiti") for f in results["paths"].values()):
        out.append(
            "Tools: what each finds (sqlmap techniques B/E/U/T, wapiti vulnerabilities), attack requests, "
            "share refused and number passed through each proxy"
        )
        out += _table(*tool_rows(results))
        out.append("")
    totals = class_totals(results)
    if totals:
        out.append("Attack requests per class (tools + payload lists): refused share (passed share)")
        header = ["class", "requests", *paths]
        rows = [
            [
                cls,
                str(by_path[paths[0]].get("sent", 0)),
                *(
                    f"{pct(_share(by_path[p], 'refused'))} ({pct(_share(by_path[p], 'passed'))})"
                    for p in paths
                ),
            ]
            for cls, by_path in sorted(totals.items())
        ]
        out += _table(header, rows)
        out.append("")
    first = results["paths"][paths[0]]
    if first.get("wordlists"):
        out.append(
            "Payload lists per class (wfuzz's lists and wapiti's payload files): refused share (passed share)"
        )
        by_class: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
        for p in paths:
            for entry in results["paths"][p]["wordlists"].values():
                _add(by_class[entry["class"]][p], entry)
        rows = [
            [
                cls,
                str(by_path[paths[0]]["sent"]),
                *(
                    f"{pct(_share(by_path[p], 'refused'))} ({pct(_share(by_path[p], 'passed'))})"
                    for p in paths
                ),
            ]
            for cls, by_path in sorted(by_class.items())
        ]
        out += _table(["class", "requests", *paths], rows)
        out.append("")
        out.append("Payload lists per injection point (all lists): refused share")
        by_point: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
        for p in paths:
            for entry in results["paths"][p]["wordlists"].values():
                for point, tally in entry["per_point"].items():
                    _add(by_point[point][p], tally)
        rows = [
            [point, str(by_path[paths[0]]["sent"]), *(pct(_share(by_path[p], "refused")) for p in paths)]
            for point, by_path in by_point.items()
        ]
        out += _table(["point", "requests", *paths], rows)
        out.append("")
        out.append("Payload lists into every point: refused share per path")
        header = ["list", "class", "requests", *paths]
        rows = [
            [
                source,
                entry["class"],
                str(entry["sent"]),
                *(pct(results["paths"][p]["wordlists"][source]["refused_share"]) for p in paths),
            ]
            for source, entry in first["wordlists"].items()
        ]
        out += _table(header, rows)
        out.append("")
    if first.get("benign"):
        out.append("Benign traffic: false positives (refused or answer blocked) per path")
        header = ["class", "requests", *(f"FP {p}" for p in paths)]
        rows = []
        overall: dict[str, dict] = defaultdict(dict)
        for cls in first["benign"]:
            for p in paths:
                _add(overall[p], results["paths"][p]["benign"][cls])
            rows.append(
                [
                    cls,
                    str(first["benign"][cls]["sent"]),
                    *(
                        pct(_share(results["paths"][p]["benign"][cls], "refused", "response-blocked"))
                        for p in paths
                    ),
                ]
            )
        rows.append(
            [
                "all",
                str(overall[paths[0]]["sent"]),
                *(pct(_share(overall[p], "refused", "response-blocked")) for p in paths),
            ]
        )
        out += _table(header, rows)
        out.append("")
    if first.get("handwritten"):
        out.append("Hand-written blind payload into /items?id= (true >100 / false >200)")
        for p in paths:
            entries = results["paths"][p]["handwritten"]
            verdicts = ", ".join(f"{e['payload'][-4:]}: {e['outcome']} ({e['status']})" for e in entries)
            differs = entries[0].get("true_and_false_answers_differ")
            readable = "" if differs is None else f"; answers differ (readable): {differs}"
            out.append(f"  {p}: {verdicts}{readable}")
        out.append("")
    for app, by_path in results.get("crawl_apps", {}).items():
        out.append(
            f"Crawl of {app}: "
            + ", ".join(
                f"{p} {t['sent']} requests, FP {pct(_share(t, 'refused', 'response-blocked'))}"
                for p, t in by_path.items()
            )
        )
    for p in paths:
        r = results["paths"][p]["requests"]
        out.append(
            f"{p}: {r['sent']} requests through the tap: " + ", ".join(f"{k} {r[k]}" for k in OUTCOMES)
        )
    for pair, counts in results.get("passed_guard_refused_crs", {}).items():
        out.append(
            f"passed {pair.split('/')[0]}, refused by {pair.split('/')[1]}: {counts['total']} {counts['by_class']}"
        )
    out += [f"{k}: {v}" for k, v in results.get("files", {}).items()]
    if proxies:
        out.append("")
    return out
