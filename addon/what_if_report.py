"""The what-if report: saved traffic as configurations judged it -> one self-contained HTML file.

Totals, what enforce mode would have done (actions and would-be forced logouts), situations, top
rules and paths, the score distribution and a timeline, and when two configurations are given the
flows whose outcome would change between them. Charts are inline SVG drawn here; the file needs
no network, no script and no other file to open. Every text from the traffic (paths, matched
values) is HTML-escaped: the report of an attack must not become one. Figures carry
`data-figure` attributes so a test (or a script) can read them back.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .engine.loader import DEFAULT_RULES_DIR
from .saved_traffic import Configuration, Judged, SavedTrafficError, judge_files

TOP = 15  # rows of the top rules and paths tables
LISTED = 200  # flows listed in full at most (flagged and changed ones)
SCORE_BUCKETS = ((0, 0), (1, 4), (5, 9), (10, 14), (15, 19), (20, 29), (30, 49), (50, None))
TIMELINE_COLUMNS = 48
OUTCOME_ORDER = ("logout", "deny", "redirect", "drop", "log", "none", "error")


@dataclass(frozen=True)
class Run:
    """One configuration and what it made of the flows."""

    name: str  # "A", "B"
    config: Configuration
    judged: list[Judged]

    @property
    def over_threshold(self) -> int:
        return sum(j.record.verdict.blocked for j in self.judged)

    @property
    def would_logout(self) -> int:
        return sum(j.would_logout for j in self.judged)

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(j.outcome for j in self.judged)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def changed(a: Run, b: Run) -> list[tuple[Judged, Judged]]:
    """The flows whose outcome (or over-threshold flag) differs between the two runs."""
    return [
        (x, y)
        for x, y in zip(a.judged, b.judged, strict=True)
        if x.outcome != y.outcome or x.record.verdict.blocked != y.record.verdict.blocked
    ]


def render(files: Sequence[str], runs: Sequence[Run]) -> str:
    """The whole HTML document."""
    a = runs[0]
    parts = [
        _head(files, runs),
        _totals(runs),
        _section("What enforce mode would have done", _bars(_outcome_rows(a), "outcomes")),
        _section(
            "Situations",
            _bars(
                [(k, v, "s") for k, v in Counter(str(j.record.situation) for j in a.judged).most_common()],
                "situations",
            ),
        ),
        _section("Score distribution (inbound)", _histogram(a.judged)),
        _section("Timeline", _timeline(a.judged)),
        _section("Top rules", _top_rules(a.judged)),
        _section("Top paths", _top_paths(a.judged)),
    ]
    if len(runs) == 2:
        parts.append(_section("Flows that would change from A to B", _changes(changed(runs[0], runs[1]))))
    parts.append(_section("Flows over the threshold or acted on (configuration A)", _flow_list(a.judged)))
    return "\n".join([*parts, "</main></body></html>"])


# -- the page's parts ------------------------------------------------------------------------------
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.sub{color:#5b6475;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:150px;box-shadow:0 1px 2px #0002}
.card .n{font-size:26px;font-weight:600}.card .l{color:#5b6475;font-size:12px}
section{background:#fff;border-radius:8px;padding:12px 16px;margin:14px 0;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{font-weight:600;color:#5b6475;font-size:12px}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
.logout{fill:#c0392b;color:#c0392b}.deny{fill:#e67e22}.redirect{fill:#8e44ad}.drop{fill:#34495e}.log{fill:#2980b9}
.none{fill:#95a5a6}.error{fill:#7f8c8d}.s{fill:#3f6fb5}.flag{fill:#e67e22}.clean{fill:#b8c4d6}
svg text{font:11px system-ui,sans-serif;fill:#1d2330}
.muted{color:#5b6475}
"""


def _head(files: Sequence[str], runs: Sequence[Run]) -> str:
    configs = "".join(f"<li><b>{esc(r.name)}</b>: {esc(r.config.describe())}</li>" for r in runs)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>LogoutGuard what-if report</title><style>{CSS}</style></head><body><main>"
        "<h1>LogoutGuard what-if report</h1>"
        f"<p class=sub>{esc(', '.join(files))} judged offline on {esc(time.strftime('%Y-%m-%d %H:%M'))}"
        " (nothing was sent, no session store was touched)</p>"
        f"<ul class=sub>{configs}</ul>"
    )


def _card(label: str, value: object, figure: str) -> str:
    return f"<div class=card><div class=n data-figure='{esc(figure)}'>{esc(value)}</div><div class=l>{esc(label)}</div></div>"


def _totals(runs: Sequence[Run]) -> str:
    a = runs[0]
    cards = [
        _card("flows judged", len(a.judged), "flows"),
        _card("over the threshold", a.over_threshold, "over-threshold"),
        _card("would-be forced logouts", a.would_logout, "would-logout"),
        _card("would be denied", a.outcomes["deny"], "outcome-deny"),
        _card("passed", a.outcomes["none"] + a.outcomes["log"], "passed"),
    ]
    if len(runs) == 2:
        b = runs[1]
        cards += [
            _card("B: over the threshold", b.over_threshold, "b-over-threshold"),
            _card("B: would-be forced logouts", b.would_logout, "b-would-logout"),
            _card("flows that would change", len(changed(a, b)), "changed"),
        ]
    return f"<div class=cards>{''.join(cards)}</div>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{body}</section>"


def _outcome_rows(run: Run) -> list[tuple[str, int, str]]:
    counts = run.outcomes
    order = [o for o in OUTCOME_ORDER if counts[o]] + sorted(o for o in counts if o not in OUTCOME_ORDER)
    return [(o, counts[o], o if o in OUTCOME_ORDER else "s") for o in order]


def _bars(rows: Sequence[tuple[str, int, str]], figure: str) -> str:
    """Horizontal bars: label, value, CSS class."""
    if not rows:
        return "<p class=muted>nothing</p>"
    top = max(v for _, v, _ in rows) or 1
    height, label_w, bar_w = 22, 220, 600
    out = [
        f"<svg role=img viewBox='0 0 {label_w + bar_w + 60} {height * len(rows)}' width='100%' data-chart='{esc(figure)}'>"
    ]
    for i, (label, value, css) in enumerate(rows):
        y, w = i * height, max(1.0, bar_w * value / top)
        out.append(
            f"<text x=0 y={y + 15}>{esc(label)}</text>"
            f"<rect class='{esc(css)}' x={label_w} y={y + 3} width={w:.1f} height={height - 6} rx=3></rect>"
            f"<text x={label_w + w + 6:.1f} y={y + 15} data-figure='{esc(figure)}-{esc(label)}'>{value}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def bucket_of(score: int) -> str:
    for low, high in SCORE_BUCKETS:
        if score >= low and (high is None or score <= high):
            return str(low) if low == high else f"{low}+" if high is None else f"{low}-{high}"
    return "?"


def _histogram(judged: Sequence[Judged]) -> str:
    counts = Counter(bucket_of(j.record.verdict.inbound_score) for j in judged)
    labels = [bucket_of(low) for low, _ in SCORE_BUCKETS]
    top = max(counts.values(), default=0) or 1
    col, chart_h, pad = 80, 140, 18
    out = [f"<svg role=img viewBox='0 -{pad} {col * len(labels)} {chart_h + 40 + pad}' width='100%' data-chart=scores>"]
    for i, label in enumerate(labels):
        n = counts[label]
        h = chart_h * n / top
        x = i * col
        css = "clean" if label == "0" else "flag"
        out.append(
            f"<rect class={css} x={x + 10} y={chart_h - h:.1f} width={col - 20} height={h:.1f} rx=3></rect>"
            f"<text x={x + col / 2} y={chart_h - h - 4:.1f} text-anchor=middle data-figure='score-{esc(label)}'>{n}</text>"
            f"<text x={x + col / 2} y={chart_h + 16} text-anchor=middle>{esc(label)}</text>"
        )
    out.append(f"<text x=0 y={chart_h + 34} class=muted>inbound score (flows per bucket)</text></svg>")
    return "".join(out)


def _timeline(judged: Sequence[Judged]) -> str:
    if not judged:
        return "<p class=muted>no flows</p>"
    start, end = min(j.at for j in judged), max(j.at for j in judged)
    span = max(end - start, 1e-6)
    columns = [[0, 0, 0] for _ in range(TIMELINE_COLUMNS)]  # clean, over the threshold, would-be logout
    for j in judged:
        i = min(TIMELINE_COLUMNS - 1, int((j.at - start) / span * TIMELINE_COLUMNS))
        columns[i][2 if j.would_logout else 1 if j.record.verdict.blocked else 0] += 1
    top = max(sum(c) for c in columns) or 1
    width, chart_h = 960, 140
    col = width / TIMELINE_COLUMNS
    out = [f"<svg role=img viewBox='0 0 {width} {chart_h + 40}' width='100%' data-chart=timeline>"]
    for i, counts in enumerate(columns):
        y = chart_h
        for n, css in zip(counts, ("clean", "flag", "logout"), strict=True):
            if n:
                h = chart_h * n / top
                y -= h
                out.append(
                    f"<rect class={css} x={i * col + 1:.1f} y={y:.1f} width={col - 2:.1f} height={h:.1f}><title>{n}</title></rect>"
                )
    first, last = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in (start, end))
    out.append(
        f"<text x=0 y={chart_h + 16}>{esc(first)}</text>"
        f"<text x={width} y={chart_h + 16} text-anchor=end>{esc(last)}</text>"
        f"<text x=0 y={chart_h + 34} class=muted>flows over time: grey passed under the threshold, orange over it, red would-be forced logouts (peak {top} per column)</text></svg>"
    )
    return "".join(out)


def _top_rules(judged: Sequence[Judged]) -> str:
    hits: Counter[int] = Counter()
    flows: Counter[int] = Counter()
    about: dict[int, tuple[str, str]] = {}
    for j in judged:
        for m in j.record.verdict.matches:
            hits[m.id] += 1
            about[m.id] = (m.msg, m.category)
        for rule in {m.id for m in j.record.verdict.matches}:
            flows[rule] += 1
    if not hits:
        return "<p class=muted>no rule matched</p>"
    rows = "".join(
        f"<tr><td data-figure='rule-{rule}'>{rule}</td><td>{esc(about[rule][0])}</td><td>{esc(about[rule][1])}</td>"
        f"<td class=num data-figure='rule-{rule}-flows'>{count}</td><td class=num>{hits[rule]}</td></tr>"
        for rule, count in flows.most_common(TOP)
    )
    return f"<table><tr><th>rule</th><th>message</th><th>category</th><th>flows</th><th>matches</th></tr>{rows}</table>"


def _top_paths(judged: Sequence[Judged]) -> str:
    by_path: dict[tuple[str, str], list[Judged]] = {}
    for j in judged:
        by_path.setdefault((j.host, j.path), []).append(j)
    ranked = sorted(
        by_path.items(),
        key=lambda kv: (-sum(j.record.verdict.blocked for j in kv[1]), -len(kv[1]), kv[0]),
    )[:TOP]
    rows = "".join(
        f"<tr><td><code>{esc(host)}{esc(path)}</code></td><td class=num>{len(js)}</td>"
        f"<td class=num>{sum(j.record.verdict.blocked for j in js)}</td><td class=num>{sum(j.would_logout for j in js)}</td>"
        f"<td class=num>{max(j.record.verdict.inbound_score for j in js)}</td></tr>"
        for (host, path), js in ranked
    )
    return (
        "<table><tr><th>path</th><th>flows</th><th>over the threshold</th><th>would-be logouts</th>"
        f"<th>highest score</th></tr>{rows}</table>"
    )


def _flow_row(j: Judged) -> str:
    top = j.record.top_match()
    when = time.strftime("%H:%M:%S", time.localtime(j.at))
    return (
        f"<td class=num>{j.index + 1}</td><td>{esc(when)}</td><td><code>{esc(j.method)} {esc(j.target[:160])}</code></td>"
        f"<td class=num>{j.record.verdict.inbound_score}</td><td>{esc(j.record.situation)}</td>"
        f"<td class='{esc(j.outcome)}'>{esc(j.outcome)}</td><td>{esc(f'{top.id} {top.msg}' if top else '')}</td>"
    )


def _flow_list(judged: Sequence[Judged]) -> str:
    flagged = [j for j in judged if j.record.verdict.blocked or j.outcome not in ("none", "log")]
    if not flagged:
        return "<p class=muted>none</p>"
    rows = "".join(f"<tr data-flow='{j.index}'>{_flow_row(j)}</tr>" for j in flagged[:LISTED])
    more = f"<p class=muted>{len(flagged) - LISTED} more not listed</p>" if len(flagged) > LISTED else ""
    return (
        "<table><tr><th>#</th><th>time</th><th>request</th><th>score</th><th>situation</th><th>would get</th>"
        f"<th>top rule</th></tr>{rows}</table>{more}"
    )


def _changes(pairs: Sequence[tuple[Judged, Judged]]) -> str:
    if not pairs:
        return "<p class=muted data-figure=changed-none>no flow would change</p>"
    rows = "".join(
        f"<tr data-changed='{a.index}'><td class=num>{a.index + 1}</td><td><code>{esc(a.method)} {esc(a.target[:140])}</code></td>"
        f"<td>{a.record.verdict.inbound_score} {esc(a.outcome)}</td><td>{b.record.verdict.inbound_score} {esc(b.outcome)}</td></tr>"
        for a, b in pairs[:LISTED]
    )
    more = f"<p class=muted>{len(pairs) - LISTED} more not listed</p>" if len(pairs) > LISTED else ""
    return f"<table><tr><th>#</th><th>request</th><th>A: score, outcome</th><th>B: score, outcome</th></tr>{rows}</table>{more}"


# -- the command ------------------------------------------------------------------------------------
def configuration(args: argparse.Namespace, prefix: str = "") -> Configuration:
    get = lambda name: getattr(args, prefix + name)  # noqa: E731
    return Configuration(
        rules=tuple(get("rules") or (str(DEFAULT_RULES_DIR),)),
        paranoia=get("paranoia"),
        inbound_threshold=get("inbound_threshold"),
        outbound_threshold=get("outbound_threshold"),
        policy=get("policy") or "",
        crs=get("crs") or "",
        exclusions=tuple(get("exclusions") or ()),
    )


def compared(args: argparse.Namespace, a: Configuration) -> Configuration | None:
    """Configuration B: A with every --compare-* given in its place; None without any."""
    given = {name: getattr(args, f"compare_{name}") for name in COMPARED}
    if all(v is None for v in given.values()):
        return None
    values = {k: (tuple(v) if k in ("rules", "exclusions") else v) for k, v in given.items() if v is not None}
    return replace(a, **values)


def cmd_report(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.flows]
    a = configuration(args)
    configs = [a] + [b for b in [compared(args, a)] if b is not None]
    runs = []
    try:
        for name, config in zip("AB", configs, strict=False):
            runs.append(Run(name, config, judge_files(paths, config)))
    except SavedTrafficError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    try:
        out.write_text(render([str(p) for p in paths], runs), encoding="utf-8")
    except OSError as exc:
        print(f"report: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    first = runs[0]
    line = (
        f"{out}: {len(first.judged)} flows, {first.over_threshold} over the threshold, "
        f"{first.would_logout} would-be forced logouts, {first.outcomes['deny']} would be denied"
    )
    if len(runs) == 2:
        line += f"; B: {runs[1].over_threshold} over, {runs[1].would_logout} logouts, {len(changed(*runs))} flows change"
    print(line)
    return 0


COMPARED = ("rules", "paranoia", "inbound_threshold", "outbound_threshold", "policy", "crs", "exclusions")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="judge saved flows (.mitm) offline and write a self-contained HTML what-if report",
        description="Judge saved traffic with a ruleset, paranoia level and policy (and, with --compare-*, a "
        "second configuration) and write one HTML file: totals, would-be actions and logouts, top rules and "
        "paths, score distribution, timeline, the flows that would change. Nothing is sent, no store is touched.",
    )
    p.add_argument("flows", nargs="+", help=".mitm files (mitmdump -w), judged in order")
    p.add_argument(
        "-o", "--output", default="report.html", help="the HTML file to write (default: report.html)"
    )
    for prefix, what in (("", "configuration A"), ("compare-", "configuration B (default: as A)")):
        dest = prefix.replace("-", "_")
        default = (lambda v: None) if prefix else (lambda v: v)  # B's values fall back to A's
        p.add_argument(
            f"--{prefix}rules",
            dest=f"{dest}rules",
            action="append",
            help=f"rule file or folder, repeatable ({what}; default: shipped rules)",
        )
        p.add_argument(
            f"--{prefix}paranoia",
            dest=f"{dest}paranoia",
            type=int,
            choices=[1, 2, 3, 4],
            default=default(1),
            help=f"paranoia level ({what})",
        )
        p.add_argument(
            f"--{prefix}inbound-threshold",
            dest=f"{dest}inbound_threshold",
            type=int,
            default=default(5),
            help=f"inbound threshold ({what})",
        )
        p.add_argument(
            f"--{prefix}outbound-threshold",
            dest=f"{dest}outbound_threshold",
            type=int,
            default=default(4),
            help=f"outbound threshold ({what})",
        )
        p.add_argument(
            f"--{prefix}policy",
            dest=f"{dest}policy",
            help=f"policy file ({what}; default: built-in defaults)",
        )
        p.add_argument(
            f"--{prefix}crs",
            dest=f"{dest}crs",
            help=f"also run the OWASP CRS: debian, a crs-setup.conf or a folder ({what})",
        )
        p.add_argument(
            f"--{prefix}exclusions",
            dest=f"{dest}exclusions",
            action="append",
            metavar="FILE",
            help=f"exclusions file, repeatable, as guard_exclusions ({what})",
        )
    p.set_defaults(func=cmd_report)
