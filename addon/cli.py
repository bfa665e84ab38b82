"""The `logoutguard` command: sub-commands, and one clear line with exit status 2 for bad input.

Each sub-command is added by a function in COMMANDS (`add(sub)` registers its parser and sets `func`).
A command signals bad input by raising CliError, or one of the errors of BAD_INPUT (a bad rule,
policy or exclusions file, a missing or unreadable file, a bad flow file): `main` prints the
problems, then one line `logoutguard <command>: <what is wrong>`, and returns 2 — no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml
from mitmproxy.exceptions import FlowReadException

from . import __version__, logout_check, quickstart, what_if_report
from .engine.engine import Engine
from .engine.examples import check_ruleset
from .engine.exclusion_loader import ExclusionsError, load_exclusions
from .engine.exclusions import Exclusions
from .engine.loader import DEFAULT_RULES_DIR, RulesetError, lint, load_ruleset
from .engine.rules import Ruleset
from .engine.verdict import Verdict
from .policy import PolicyError, load_policy
from .progress import progress


class CliError(Exception):
    """Bad input to a command (a missing file, a bad value): reported as one line, exit status 2."""


BAD_INPUT: tuple[type[BaseException], ...] = (
    CliError,
    RulesetError,
    PolicyError,
    ExclusionsError,
    FlowReadException,
    OSError,
)
Adder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def existing_paths(paths: list[str], what: str) -> list[str]:
    """The paths, or CliError naming the first that does not exist."""
    for path in paths:
        if not Path(path).exists():
            raise CliError(f"{what} {path}: no such file or folder")
    return paths


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def exclusions_for(paths: list[str] | None, rulesets: dict[str, Ruleset]) -> Exclusions | None:
    """The exclusion files, loaded and checked against the rulesets; ExclusionsError lists every problem."""
    if not paths:
        return None
    return load_exclusions(existing_paths(paths, "--exclusions"), rulesets)


# -- rules ------------------------------------------------------------------------------------------
def cmd_rules_lint(args: argparse.Namespace) -> int:
    ruleset, problems = lint(existing_paths(args.paths, "rule path"))
    if ruleset is not None:  # a loadable ruleset: also look for regexes that backtrack catastrophically
        from .engine.regex_lint import lint_ruleset

        problems = lint_ruleset(ruleset, probe=not args.no_probe)
        if args.exclusions:
            problems += exclusion_problems(args.exclusions, ruleset)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    assert ruleset is not None
    print_off(ruleset)
    excluded = f"; exclusions ok: {', '.join(args.exclusions)}" if args.exclusions else ""
    print(f"ok: {len(ruleset)} rules in {len(ruleset.sources)} file(s){excluded}")
    return 0


def print_off(ruleset: Ruleset) -> None:
    """The rules left out because an optional package is missing (not a problem: a note)."""
    for _, why in ruleset.off:
        print(f"note: {why}")


def exclusion_problems(paths: list[str], ruleset: Ruleset) -> list[str]:
    try:
        exclusions_for(paths, {"ours": ruleset})
    except ExclusionsError as exc:
        return [str(p) for p in exc.problems]
    return []


def cmd_rules_test(args: argparse.Namespace) -> int:
    ruleset, problems = lint(existing_paths(args.paths, "rule path"))
    for problem in problems:
        print(problem)
    if ruleset is None:
        return 1
    print_off(ruleset)
    count, failures = check_ruleset(ruleset, each=lambda rules: progress(rules, "rule examples", len(rules), "rule"))
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"{count - len(failures)}/{count} examples passed in {len(ruleset)} rules")
    return 1 if failures else 0


def add_rules(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = sub.add_parser("rules", help="check rule files").add_subparsers(
        dest="rules_command", required=True
    )
    p = rules.add_parser(
        "lint",
        help="validate rule files (and exclusion files) and flag regexes that can backtrack "
        "catastrophically; exit 1 on any problem, 2 when a path does not exist",
    )
    p.add_argument("paths", nargs="*", default=[str(DEFAULT_RULES_DIR)], help="default: the shipped rules")
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the timed probe of the regexes (the static backtracking check still runs)",
    )
    p.add_argument(
        "--exclusions",
        action="append",
        metavar="FILE",
        help="also check this exclusions file against the rules (repeatable)",
    )
    p.set_defaults(func=cmd_rules_lint)
    p = rules.add_parser("test", help="run every rule's match/no_match examples; exit 1 on any failure")
    p.add_argument("paths", nargs="*", default=[str(DEFAULT_RULES_DIR)], help="default: the shipped rules")
    p.set_defaults(func=cmd_rules_test)


# -- scan -------------------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    from .flow_bridge import parse_raw_request  # imports mitmproxy's http: keep `rules` commands light

    from_file = args.file and args.file != "-"
    data = Path(args.file).read_bytes() if from_file else sys.stdin.buffer.read()  # OSError: main says it
    try:
        tx = parse_raw_request(data)
    except ValueError as exc:
        raise CliError(f"{args.file or 'stdin'}: not a valid HTTP request: {exc}") from None
    ruleset = load_ruleset(existing_paths(args.rules or [str(DEFAULT_RULES_DIR)], "--rules"))
    engine = Engine(
        ruleset,
        paranoia=args.paranoia,
        inbound_threshold=args.inbound_threshold,
        exclusions=exclusions_for(args.exclusions, {"ours": ruleset}),
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


def add_scan(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("scan", help="judge a raw HTTP request from FILE or stdin")
    p.add_argument("file", nargs="?", help="file holding a raw HTTP/1 request (default: stdin)")
    p.add_argument(
        "--rules", action="append", help="rule file or folder (repeatable; default: shipped rules)"
    )
    p.add_argument(
        "--exclusions", action="append", metavar="FILE", help="exclusions file (repeatable), as guard_exclusions"
    )
    p.add_argument("--paranoia", type=int, default=1, choices=[1, 2, 3, 4])
    p.add_argument("--inbound-threshold", type=positive_int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object (score, matches, blocked, ...)")
    p.set_defaults(func=cmd_scan)


# -- policy -----------------------------------------------------------------------------------------
def cmd_policy_lint(args: argparse.Namespace) -> int:
    """Every problem of every policy file (field and reason), from the policy loader's own checks."""
    count = 0
    for path in existing_paths(args.files, "policy file"):
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            lines = str(exc).splitlines()
            print("\n".join(lines))
            count += len(lines)
            continue
        print(f"ok: {path} ({policy.application or 'no application name'})")
    if count:
        print(f"{count} problem(s)", file=sys.stderr)
        return 1
    return 0


def add_policy(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    policy = sub.add_parser("policy", help="check policy files").add_subparsers(
        dest="policy_command", required=True
    )
    p = policy.add_parser(
        "lint",
        help="validate policy files: every problem with field and reason; exit 1 on any problem, "
        "2 when a file does not exist",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_policy_lint)


# -- learn ----------------------------------------------------------------------------------------
def cmd_learn(args: argparse.Namespace) -> int:
    """Read a recorded session, learn its policy, check it with the policy loader, write it."""
    from mitmproxy import http, io

    from . import policy_learner
    from .policy import parse_policy
    from .progress import ByteProgress

    path = Path(existing_paths([args.flows], "flows file")[0])
    exchanges: list[policy_learner.Exchange] = []
    with path.open("rb") as fh, ByteProgress(f"reading {path.name}", path.stat().st_size) as bar:
        try:
            for flow in io.FlowReader(fh).stream():
                bar.at(fh.tell())
                if isinstance(flow, http.HTTPFlow):
                    exchanges.append(policy_learner.exchange_of(len(exchanges) + 1, flow))
        except FlowReadException as exc:
            raise CliError(f"{path}: not a mitmproxy flow file ({exc})") from None
    if not exchanges:
        raise CliError(f"{path}: no HTTP flows in it (record with mitmdump -w FILE)")
    try:
        learned = policy_learner.learn(exchanges, args.application or f"learned from {path.name}")
    except policy_learner.LearnError as exc:
        raise CliError(f"{path}: {exc}") from None
    text = policy_learner.to_yaml(learned, path.name)
    parse_policy(yaml.safe_load(text), args.output or "(learned policy)")  # PolicyError: a learner defect
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        for note in learned.notes:
            print(f"  {note}", file=sys.stderr)
        print(f"wrote {args.output} (check it: logoutguard policy lint {args.output})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_learn(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "learn",
        help="write a policy from a recorded session (log in, browse, log out; recorded with mitmdump -w)",
        description="Read FLOWS (a session recorded through mitmproxy: log in, browse, log out, then open a "
        "login-only page once more) and write the policy it shows: session and remember-me cookies, the "
        "logout recipe with the source of its token, the check page and how to tell logged in from out. "
        "Exit 2 with one line when the recording shows no login or no logout.",
    )
    p.add_argument("flows", metavar="FLOWS.mitm", help="the recorded flows (mitmdump -w FLOWS.mitm)")
    p.add_argument("-o", "--output", metavar="POLICY.yaml", help="write the policy here (default: stdout)")
    p.add_argument("--application", help="the policy's application name (default: learned from FLOWS)")
    p.set_defaults(func=cmd_learn)


# -- the rest ---------------------------------------------------------------------------------------
def cmd_demo_app(args: argparse.Namespace) -> int:
    from .demo.app import serve  # only this command needs the demo app

    return serve(args.host, args.port, defective_logout=args.defective_logout, log_requests=not args.quiet)


def add_demo_app(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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


def add_crs(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def cmd_crs_report(args: argparse.Namespace) -> int:
        from .crs.loader import CrsError
        from .crs.report import cmd_crs_report as run  # imports the CRS importer only when asked

        try:
            return run(args)
        except CrsError as exc:
            raise CliError(str(exc)) from None

    crs = sub.add_parser("crs", help="the OWASP Core Rule Set on LogoutGuard's engine").add_subparsers(
        dest="crs_command", required=True
    )
    p = crs.add_parser("report", help="what of a CRS installation loads and what is skipped, and why")
    p.add_argument(
        "path",
        nargs="?",
        default=None,
        help="what guard_crs takes: 'debian' (Debian's modsecurity-crs package, the default), a "
        "crs-setup.conf, or a CRS folder holding crs-setup.conf",
    )
    p.add_argument("--rules-dir", help="the CRS rules folder (default: next to PATH, or Debian's)")
    p.add_argument("--conf", action="append", help="your own .conf (exclusions), repeatable")
    p.add_argument("--paranoia", type=int, choices=[1, 2, 3, 4], help="override crs-setup's paranoia level")
    p.add_argument("--notes", action="store_true", help="also list the parts dropped from loaded rules")
    p.add_argument(
        "--no-engine-rules", action="store_true", help="without Debian's engine rules 200000-200005"
    )
    p.set_defaults(func=cmd_crs_report)


def add_addon_path(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def cmd_addon_path(args: argparse.Namespace) -> int:
        print(quickstart.ADDON_SCRIPT)
        return 0

    p = sub.add_parser(
        "addon-path",
        help="print the path of the addon script for mitmdump/mitmweb -s (the installed package's main.py)",
        description='Example: mitmdump -s "$(logoutguard addon-path)" --mode reverse:http://127.0.0.1:8080',
    )
    p.set_defaults(func=cmd_addon_path)


# The sub-commands, in the order `logoutguard --help` lists them. A new one: a function that adds its
# parser (and sets `func`), appended here.
COMMANDS: list[Adder] = [
    add_rules,
    add_scan,
    add_policy,
    add_learn,
    add_demo_app,
    add_crs,
    logout_check.add_parser,
    quickstart.add_parsers,
    add_addon_path,
    what_if_report.add_parser,
]


def version_text() -> str:
    try:
        mitmproxy = version("mitmproxy")
    except PackageNotFoundError:  # pragma: no cover - mitmproxy is a dependency
        mitmproxy = "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"logoutguard {__version__} (mitmproxy {mitmproxy}, Python {python})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logoutguard", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a bad option: argparse's usage line and message, exit 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`logoutguard crs report | head`): stop quietly
        quiet_stdout()
        return 141  # as a shell reports a command ended by SIGPIPE
    except BAD_INPUT as exc:
        details, headline = explain(exc)
        for line in details:
            print(line, file=sys.stderr)
        print(f"logoutguard {args.command}: {headline}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def explain(exc: BaseException) -> tuple[list[str], str]:
    """Bad input as (lines of detail, the one line that ends the output)."""
    if isinstance(exc, RulesetError):
        return [str(p) for p in exc.problems], f"{len(exc.problems)} problem(s) in the rule files"
    if isinstance(exc, ExclusionsError):
        return [str(p) for p in exc.problems], f"{len(exc.problems)} problem(s) in the exclusions"
    if isinstance(exc, PolicyError):
        return str(exc).splitlines(), f"{len(exc.problems)} problem(s) in the policy file {exc.file}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return [], f"cannot read {exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip().splitlines() or [type(exc).__name__]
    return text[:-1], text[-1] if len(text) == 1 else f"{text[0]} ..."


if __name__ == "__main__":
    sys.exit(main())
