"""The `logoutguard` command: rules lint|test, scan, and the other sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import logout_check, quickstart, what_if_report
from .engine.engine import Engine
from .engine.examples import check_ruleset
from .engine.loader import DEFAULT_RULES_DIR, lint, load_ruleset
from .engine.verdict import Verdict
from .progress import progress


def cmd_rules_lint(args: argparse.Namespace) -> int:
    ruleset, problems = lint(args.paths)
    if ruleset is not None:  # a loadable ruleset: also look for regexes that backtrack catastrophically
        from .engine.regex_lint import lint_ruleset

        problems = lint_ruleset(ruleset, probe=not args.no_probe)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    assert ruleset is not None
    print(f"ok: {len(ruleset)} rules in {len(ruleset.sources)} file(s)")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    ruleset, problems = lint(args.paths)
    for problem in problems:
        print(problem)
    if ruleset is None:
        return 1
    count, failures = check_ruleset(ruleset, each=lambda rules: progress(rules, "rule examples", len(rules), "rule"))
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"{count - len(failures)}/{count} examples passed in {len(ruleset)} rules")
    return 1 if failures else 0


def cmd_scan(args: argparse.Namespace) -> int:
    from .flow_bridge import parse_raw_request  # imports mitmproxy: keep `rules` commands light

    data = Path(args.file).read_bytes() if args.file and args.file != "-" else sys.stdin.buffer.read()
    try:
        tx = parse_raw_request(data)
    except ValueError as exc:
        print(f"not a valid HTTP request: {exc}", file=sys.stderr)
        return 2
    engine = Engine(
        load_ruleset(args.rules or [DEFAULT_RULES_DIR]),
        paranoia=args.paranoia,
        inbound_threshold=args.inbound_threshold,
    )
    verdict = engine.inspect(tx)
    if args.json:
        print(json.dumps(verdict.to_json()))
    else:
        print(format_verdict(verdict))
    return 0


def format_verdict(verdict: Verdict) -> str:
    lines = [
        f"{m.id:>7}  +{m.score if m.scoring else 0:<2} {m.category:<18} {m.target:<32} {m.msg}  [{m.excerpt}]"
        for m in verdict.matches
    ]
    lines.append(
        f"score {verdict.inbound_score} (threshold {verdict.inbound_threshold}, PL{verdict.paranoia}): "
        + ("BLOCK" if verdict.blocked else "pass")
        + (f" - {verdict.reason}" if verdict.reason else "")
    )
    return "\n".join(lines)


def _rules_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = sub.add_parser("rules", help="check rule files").add_subparsers(
        dest="rules_command", required=True
    )
    p = rules.add_parser(
        "lint",
        help="validate rule files and flag regexes that can backtrack catastrophically; exit 1 on any problem",
    )
    p.add_argument("paths", nargs="*", default=[str(DEFAULT_RULES_DIR)])
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the timed probe of the regexes (the static backtracking check still runs)",
    )
    p.set_defaults(func=cmd_rules_lint)
    p = rules.add_parser("test", help="run every rule's match/no_match examples; exit 1 on any failure")
    p.add_argument("paths", nargs="*", default=[str(DEFAULT_RULES_DIR)])
    p.set_defaults(func=cmd_rules_test)


def _scan_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("scan", help="judge a raw HTTP request from FILE or stdin")
    p.add_argument("file", nargs="?", help="file holding a raw HTTP/1 request (default: stdin)")
    p.add_argument(
        "--rules", action="append", help="rule file or folder (repeatable; default: shipped rules)"
    )
    p.add_argument("--paranoia", type=int, default=1, choices=[1, 2, 3, 4])
    p.add_argument("--inbound-threshold", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object (score, matches, blocked, ...)")
    p.set_defaults(func=cmd_scan)


def cmd_demo_app(args: argparse.Namespace) -> int:
    from .demo.app import serve  # only this command needs the demo app

    return serve(args.host, args.port, defective_logout=args.defective_logout, log_requests=not args.quiet)


def _demo_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo-app",
        help="run the demo web application (login, JSESSIONID cookie, logout) until SIGINT/SIGTERM",
    )
    p.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: 8080)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--defective-logout",
        action="store_true",
        help="logouts only send a new cookie and leave the old session valid on the server",
    )
    p.add_argument("--quiet", action="store_true", help="no access log on stderr")
    p.set_defaults(func=cmd_demo_app)


def _crs_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def cmd_crs_report(args: argparse.Namespace) -> int:
        from .crs.report import cmd_crs_report as run  # imports the CRS importer only when asked

        return run(args)

    crs = sub.add_parser("crs", help="the OWASP Core Rule Set on LogoutGuard's engine").add_subparsers(
        dest="crs_command", required=True
    )
    p = crs.add_parser("report", help="what of a CRS installation loads and what is skipped, and why")
    p.add_argument(
        "path",
        nargs="?",
        default=None,
        help="crs-setup.conf or a CRS folder (default: Debian's /etc/modsecurity/crs/crs-setup.conf)",
    )
    p.add_argument("--rules-dir", help="the CRS rules folder (default: next to PATH, or Debian's)")
    p.add_argument("--conf", action="append", help="your own .conf (exclusions), repeatable")
    p.add_argument("--paranoia", type=int, choices=[1, 2, 3, 4], help="override crs-setup's paranoia level")
    p.add_argument("--notes", action="store_true", help="also list the parts dropped from loaded rules")
    p.add_argument(
        "--no-engine-rules", action="store_true", help="without Debian's engine rules 200000-200005"
    )
    p.set_defaults(func=cmd_crs_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logoutguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _rules_parser(sub)
    _scan_parser(sub)
    _demo_parser(sub)
    _crs_parser(sub)
    logout_check.add_parser(sub)
    quickstart.add_parsers(sub)
    what_if_report.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
