"""The forced logout on every framework app, through real mitmdump in enforce mode with each app's policy (issue 10).

For each app (tests/frameworks) and each way an attacker may hold the stolen session (the full
cookie jar, the session cookie alone without the CSRF cookie, a garbled CSRF cookie, the remember-me
cookie alone, the session ID in the URL path), one scenario:

  1. the real user logs in through the proxy (a scripted browser with its own cookie jar);
  2. the attacker sends an attack with the stolen identifiers: the forced logout;
  3. ended at app: the application's OWN store is asked directly (Flask keeps none: the old cookie
     must still work directly at the app, and the outcome must say the proxy is the defence);
  4. old refused: the old jar, the session cookie alone, the remember-me cookie alone and the
     `;jsessionid=` form of the ID are each refused by the proxy (audited as revoked_session);
  5. re-login: the real user, same cookie jar, is refused once (the cookie deleted in the browser),
     then logs in again and is logged in;
  6. cross-site: a second login; the same attack sent cross-site (Sec-Fetch-Site, Referer) is denied
     without a logout: the session is still alive in the app's store and the user still logged in;
  7. outcome true: the audit line's result matches what the app's own store (or a direct request)
     shows, and the cross-site line says cross-site with no logout;
  8. pre-login denied (apps that issue a session before login): an attack on that anonymous session
     is denied, not logged out, and the anonymous session is still in the app's store.

Each scenario runs twice: with the hand-written policy (tests/frameworks/policies) and with the policy
`logoutguard learn` wrote from a session recorded through real `mitmdump -w` in front of the app
(frameworks/record.py: log in, browse, log out); the second table puts the two side by side.

Run by hand (prints the tables): `cd tests && ../.venv/bin/python -m e2e.framework_logout [APP...]`.
The test (tests/e2e/test_framework_logout.py) runs the same scenarios and asserts every cell.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: tests/ is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from frameworks.apps import NAMES, start_app
from frameworks.client import AppClient, matches
from frameworks.profile import AppProfile
from frameworks.record import record_session
from frameworks.running import NoServerStore, RunningApp

from procs import Mitmdump, start_mitmdump, tool

POLICIES = Path(__file__).resolve().parent.parent / "frameworks" / "policies"
XSS_QUERY = "?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"
CROSS_SITE = {
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Referer": "https://evil.example/",
}
GARBLED = "garbled-0000000000000000000000000000"
HAND, LEARNED = "hand", "learned"
KINDS = (HAND, LEARNED)


def learned_policy(app: RunningApp, folder: Path) -> Path:
    """Record a session with `app` through real `mitmdump -w`, then `logoutguard learn` it into a policy
    file (the command a user runs; it checks the policy with the loader) and lint it."""
    folder.mkdir(parents=True, exist_ok=True)
    flows = record_session(app, folder / f"{app.profile.name}.mitm", folder / "recorder")
    policy = folder / f"{app.profile.name}.learned.yaml"
    for args in (["learn", str(flows), "-o", str(policy)], ["policy", "lint", str(policy)]):
        done = subprocess.run(
            [str(tool("logoutguard")), *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"logoutguard {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return policy


@dataclass(frozen=True)
class Variant:
    """How the attacker holds the stolen session."""

    name: str
    steal: Callable[[RunningApp, dict[str, str]], dict[str, str]]  # victim's jar -> attacker's cookies
    in_path: bool = False  # the session ID travels as ;jsessionid= in the path, no cookie


def _session_only(app: RunningApp, jar: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in jar.items() if k in app.profile.session_cookies}


def _garbled_csrf(app: RunningApp, jar: dict[str, str]) -> dict[str, str]:
    return {**_session_only(app, jar), str(app.profile.csrf.cookie): GARBLED}


def _remember_only(app: RunningApp, jar: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in jar.items() if k == app.profile.remember_cookie}


FULL_JAR = Variant("full cookie jar", lambda app, jar: dict(jar))
SESSION_ONLY = Variant("session cookie only (no CSRF / remember-me cookie)", _session_only)
GARBLED_CSRF = Variant("session cookie + garbled CSRF cookie", _garbled_csrf)
REMEMBER_ONLY = Variant("remember-me cookie only", _remember_only)
PATH_PARAMETER = Variant(
    "session ID in the path (;jsessionid=), no cookie", lambda app, jar: {}, in_path=True
)


def variants(profile: AppProfile) -> list[Variant]:
    """The ways an attacker may hold this app's session."""
    found = [FULL_JAR, SESSION_ONLY]
    if profile.csrf.cookie:
        found.append(GARBLED_CSRF)
    if profile.remember_cookie:
        found.append(REMEMBER_ONLY)
    if profile.url_session_parameter:
        found.append(PATH_PARAMETER)
    return found


@dataclass
class Row:
    """One scenario's answers: each cell true, false, or None (does not apply), with the evidence."""

    app: str
    variant: str
    policy: str = HAND
    ended_at_app: bool | None = None
    old_refused: bool = False
    relogin: bool = False
    cross_site: bool = False
    outcome_true: bool = False
    pre_login_denied: bool | None = None
    result: str = ""
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[bool | None]:
        return [
            self.ended_at_app,
            self.old_refused,
            self.relogin,
            self.cross_site,
            self.outcome_true,
            self.pre_login_denied,
        ]

    @property
    def passed(self) -> bool:
        """Every cell that applies is true (ended at app is n/a only where the app keeps no store)."""
        return all(cell is not False for cell in self.cells())


class Stand:
    """One framework app and a mitmdump (enforce mode, the app's policy) in front of it."""

    def __init__(
        self,
        app: RunningApp,
        folder: Path,
        builtin: bool = False,
        policy: Path | None = None,
        kind: str = HAND,
    ) -> None:
        """`builtin`: no policy file (the built-in defaults) instead of the app's policy; `policy`: this
        file instead of the hand-written one (`kind` says which it is, for the table)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.app = app
        self.folder = folder
        self.kind = kind
        self.audit = folder / "audit.jsonl"
        self.policy = "" if builtin else policy or POLICIES / f"{app.profile.name}.yaml"
        self.proxy: Mitmdump = start_mitmdump(
            app.url,
            folder,
            f"guard_policy={self.policy}",
            f"guard_session_store={folder / 'sessions.sqlite'}",
            f"guard_audit_log={self.audit}",
            "guard_mode=enforce",
        )
        try:
            self.warm_up()
        except Exception:
            self.proxy.stop()
            raise

    def warm_up(self) -> None:
        """One anonymous visit of the public page through the new proxy before any scenario, allowed as
        long as a busy machine needs: the proxy listens before it has answered once, and the scripted
        browsers' own timeout is for the scenarios."""
        httpx.get(self.proxy.url + self.app.profile.public_path, timeout=180)

    def stop(self) -> None:
        self.proxy.stop()

    def browser(self, cookies: dict[str, str] | None = None) -> AppClient:
        return self.app.client(base_url=self.proxy.url, cookies=cookies)

    def direct(self, cookies: dict[str, str]) -> AppClient:
        return self.app.client(cookies=cookies)

    def lines(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def stored(self, session_id: str | None) -> bool | None:
        """Is the session in the app's own store? None: the app keeps none (Flask)."""
        if session_id is None:
            return False
        try:
            return self.app.session(session_id) is not None
        except NoServerStore:
            return None

    # -- the scenario ----------------------------------------------------------------------------
    def run(self, variant: Variant) -> Row:
        profile = self.app.profile
        row = Row(profile.name, variant.name, self.kind)
        victim = self.browser()
        victim.login()
        sid = victim.session_id()
        jar = victim.cookies()
        attacker = self.browser(variant.steal(self.app, jar))
        path = profile.logged_in.path + (f";jsessionid={sid}" if variant.in_path else "") + XSS_QUERY
        mark = len(self.lines())
        attack = attacker.get(path)
        logout = next((line for line in self.lines()[mark:] if line.get("logout")), None)
        if logout is None:
            row.notes.append(f"no forced logout audited (attack answered {attack.status_code})")
            return row
        outcome = logout["logout"]
        row.result = outcome["result"]
        row.notes.append(
            f"attack -> {attack.status_code}; audit {logout['situation']} {logout['action']}: {outcome['reason']}"
        )
        row.ended_at_app = self._ended(sid)
        row.old_refused = self._old_refused(jar, sid, row)
        row.outcome_true = self._outcome_true(outcome, sid, jar, row)
        row.relogin = self._relogin(victim, row)
        row.cross_site = self._cross_site(row)
        row.pre_login_denied = self._pre_login_denied(row) if profile.session_before_login else None
        return row

    def _ended(self, sid: str | None) -> bool | None:
        stored = self.stored(sid)
        return None if stored is None else not stored

    def _refused(self, response: httpx.Response, mark: int, what: str, row: Row) -> bool:
        """Refused by the proxy as a revoked session, and not logged in."""
        lines = self.lines()[mark:]
        situations = [line["situation"] for line in lines]
        ok = "revoked_session" in situations and not matches(response, self.app.profile.logged_in)
        if not ok:
            row.notes.append(f"{what}: {response.status_code}, audited {situations}")
        return ok

    def _old_refused(self, jar: dict[str, str], sid: str | None, row: Row) -> bool:
        profile = self.app.profile
        forms: dict[str, dict[str, str]] = {
            "old jar": dict(jar),
            "old session cookie": {k: v for k, v in jar.items() if k in profile.session_cookies},
        }
        if profile.remember_cookie and profile.remember_cookie in jar:
            forms["old remember-me cookie"] = {profile.remember_cookie: jar[profile.remember_cookie]}
        results = []
        for what, cookies in forms.items():
            mark = len(self.lines())
            results.append(self._refused(self.browser(cookies).browse(), mark, what, row))
        if profile.url_session_parameter and sid:
            mark = len(self.lines())
            response = self.browser().get(f"{profile.logged_in.path};{profile.url_session_parameter}={sid}")
            results.append(self._refused(response, mark, "old ID in the path", row))
        return all(results)

    def _outcome_true(self, outcome: dict, sid: str | None, jar: dict[str, str], row: Row) -> bool:
        """The audited result is what the application itself shows."""
        stored = self.stored(sid)
        if stored is None:  # the session is the cookie: the old cookie must still work at the app
            session = {k: v for k, v in jar.items() if k in self.app.profile.session_cookies}
            alive = self.direct(session).is_logged_in()
            truth = outcome["result"] == "proxy_only" and alive and outcome["probe"] == "alive"
            row.notes.append(f"no server store: old cookie directly at the app logged in = {alive}")
        else:
            truth = outcome["result"] == "ended" and not stored and outcome["probe"] == "dead"
        if not truth:
            row.notes.append(f"outcome {outcome} vs app store has the session = {stored}")
        return truth and outcome["warning"] is False

    def _relogin(self, victim: AppClient, row: Row) -> bool:
        """The real user, same cookie jar: the first request is refused and deletes the dead cookie(s)
        in the browser; then the login page works and the user is logged in again."""
        first = victim.browse()
        deleted = [c for c in self.app.profile.session_cookies if victim.cookie(c) is None]
        try:
            victim.login()
        except AssertionError as exc:
            row.notes.append(f"re-login failed after {first.status_code}: {exc}")
            return False
        sid = victim.session_id()
        stored = self.stored(sid)
        ok = bool(deleted) and victim.is_logged_in() and stored is not False
        if not ok:
            row.notes.append(f"re-login: first answer {first.status_code}, deleted {deleted}, store {stored}")
        return ok

    def _cross_site(self, row: Row) -> bool:
        profile = self.app.profile
        victim = self.browser()
        victim.login()
        sid = victim.session_id()
        mark = len(self.lines())
        response = victim.get(profile.logged_in.path + XSS_QUERY, headers=CROSS_SITE)
        line = next((li for li in self.lines()[mark:] if li["situation"] != "clean"), {})
        still_in = victim.is_logged_in() and self.stored(sid) is not False
        ok = (
            response.status_code == 403
            and line.get("situation") == "cross_site_over_threshold"
            and line.get("action") == "deny"
            and line.get("logout") is None
            and still_in
        )
        if not ok:
            row.notes.append(f"cross-site: {response.status_code}, audit {line}, still logged in {still_in}")
        return ok

    def _pre_login_denied(self, row: Row) -> bool:
        profile = self.app.profile
        anonymous = self.browser()
        anonymous.follow(anonymous.get(profile.login.page))
        sid = anonymous.session_id()
        if sid is None:
            row.notes.append("pre-login: the login page issued no session")
            return False
        mark = len(self.lines())
        response = anonymous.get(profile.login.page + XSS_QUERY)
        line = next((li for li in self.lines()[mark:] if li["situation"] != "clean"), {})
        stored = self.stored(sid)
        ok = (
            response.status_code == 403
            and line.get("situation") == "anonymous_over_threshold"
            and line.get("logout") is None
            and stored is not False
        )
        if not ok:
            row.notes.append(f"pre-login: {response.status_code}, audit {line}, still stored {stored}")
        return ok


def run_app(name: str, folder: Path, kinds: tuple[str, ...] = KINDS) -> list[Row]:
    """Start the app; for each kind of policy a proxy in front of it, every variant; stop them."""
    rows: list[Row] = []
    with start_app(name, folder / "app") as app:
        for kind in kinds:
            policy = learned_policy(app, folder / "learn") if kind == LEARNED else None
            stand = Stand(app, folder / kind, policy=policy, kind=kind)
            try:
                rows += [stand.run(variant) for variant in variants(app.profile)]
            finally:
                stand.stop()
    return rows


def mark(cell: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "n/a"}[cell]


def table(rows: list[Row]) -> str:
    lines = [
        "| app | policy | attacker holds | ended at app | old refused | re-login | cross-site denied | outcome true | pre-login denied | audited result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = " | ".join(mark(c) for c in row.cells())
        lines.append(f"| {row.app} | {row.policy} | {row.variant} | {cells} | {row.result or '-'} |")
    return "\n".join(lines)


def summary(row: Row | None) -> str:
    if row is None:
        return "-"
    applies = [c for c in row.cells() if c is not None]
    return f"{sum(c is True for c in applies)}/{len(applies)} {row.result or '-'}"


def comparison(rows: list[Row]) -> str:
    """Hand-written vs learned policy, scenario by scenario: cells that hold, the audited result, same?"""
    lines = ["| app | attacker holds | hand | learned | same |", "|---|---|---|---|---|"]
    keys = list(dict.fromkeys((row.app, row.variant) for row in rows))
    by = {(row.app, row.variant, row.policy): row for row in rows}
    for app, variant in keys:
        hand, learned = by.get((app, variant, HAND)), by.get((app, variant, LEARNED))
        same = (
            "n/a"
            if hand is None or learned is None
            else mark(hand.cells() == learned.cells() and hand.result == learned.result)
        )
        lines.append(f"| {app} | {variant} | {summary(hand)} | {summary(learned)} | {same} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.framework_logout", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("apps", nargs="*", metavar="APP", help=f"default: all ({', '.join(NAMES)})")
    parser.add_argument("--notes", action="store_true", help="print each scenario's evidence below the table")
    parser.add_argument(
        "--policy", choices=KINDS, action="append", help="only this kind of policy (default: both)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.apps if name not in NAMES]
    if unknown:
        parser.error(f"unknown app {', '.join(unknown)} (known: {', '.join(NAMES)})")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lg-frameworks-") as tmp:
        for name in args.apps or NAMES:
            rows.extend(run_app(name, Path(tmp) / name, tuple(args.policy or KINDS)))
    print(table(rows))
    print()
    print(comparison(rows))
    if args.notes:
        for row in rows:
            print(f"\n{row.app} / {row.policy} / {row.variant}:")
            for note in row.notes:
                print(f"  - {note}")
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
