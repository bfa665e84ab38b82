"""Re-records the saved flows of tests/flows/ from the demo app through mitmdump with the addon.

Usage (from the repository root):

    .venv/bin/python tests/flows/record.py [--out DIR] [NAME ...]

NAME is one or more of benign, attack, stolen, defective (default: all four); each becomes
DIR/NAME.mitm (default DIR: tests/flows/). For every NAME a fresh demo app (with the defective
logout for `defective`) and a fresh mitmdump with the addon, the demo policy, a private session store
and `-w NAME.mitm` in front of it are started; a scripted client plays the scenario, then both stop.

- benign: login page, login, account, a plain search, the CSRF-protected POST /logout, home page.
- attack: login, account, a plain search, a reflected XSS on /search (the forced logout), the old
  session ID used again (refused by the proxy), a second login and an SQL injection on /search
  (a second forced logout).
- stolen: the victim logs in and opens the account page; a second client with another User-Agent
  uses the victim's cookies three times (945140 each time; the third is the cumulative threshold:
  the forced logout); then the victim's own next request carries the revoked ID (refused).
- defective: the demo app's logout leaves sessions alive; login, account, an XSS on /search (the
  forced logout, the verification probe finds the session still alive at the application), then the
  old session ID at the proxy (refused all the same).

User-Agents, paths and payloads are fixed; session IDs, CSRF tokens, ports and timestamps differ on
every run. The saved flows keep the addon's verdicts in `flow.metadata["logoutguard"]` and, for a
flow rewritten into the logout, the original request. LOGOUTGUARD_TEST_RULES, when set, names the
ruleset mitmdump loads (see tests/procs.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from e2e.browser import Browser  # noqa: E402

from logoutguard.demo.app import DemoApp  # noqa: E402
from procs import REPO, start_mitmdump  # noqa: E402

FLOWS = Path(__file__).resolve().parent
DEMO_POLICY = REPO / "addon" / "demo" / "policy.yaml"
USER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
THIEF_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
XSS = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"
SQLI = "/search?q=1%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--"

Scenario = Callable[[Callable[..., Browser]], None]


def expect(reply_status: int, wanted: int, what: str) -> None:
    if reply_status != wanted:
        raise RuntimeError(f"recording: {what}: status {reply_status}, expected {wanted}")


def benign(browser: Callable[..., Browser]) -> None:
    user = browser(user_agent=USER_UA)
    expect(user.get("/login").status, 200, "login page")
    user.login()
    expect(user.get("/account").status, 200, "account")
    expect(user.get("/search?q=blue+shoes").status, 200, "search")
    expect(user.post("/logout", {"csrf": user.cookies["csrftoken"]}).status, 200, "logout")
    expect(user.get("/").status, 200, "home after logout")


def attack(browser: Callable[..., Browser]) -> None:
    user = browser(user_agent=USER_UA)
    old = user.login()
    expect(user.get("/account").status, 200, "account")
    expect(user.get("/search?q=blue+shoes").status, 200, "search")
    expect(user.get(XSS).status, 302, "XSS: forced logout")
    expect(user.get("/account", cookies={"JSESSIONID": old}).status, 302, "old session ID refused")
    user.login()
    expect(user.get(SQLI).status, 302, "SQLi: forced logout")


def stolen(browser: Callable[..., Browser]) -> None:
    victim = browser(user_agent=USER_UA)
    victim.login()
    expect(victim.get("/account").status, 200, "victim's account")
    thief = browser(user_agent=THIEF_UA, cookies=dict(victim.cookies))
    expect(thief.get("/account").status, 200, "stolen ID, 1st use")
    expect(thief.get("/account").status, 200, "stolen ID, 2nd use")
    expect(thief.get("/account").status, 302, "stolen ID, 3rd use: cumulative forced logout")
    expect(victim.get("/account").status, 302, "victim's revoked ID refused")


def defective(browser: Callable[..., Browser]) -> None:
    user = browser(user_agent=USER_UA)
    old = user.login()
    expect(user.get("/account").status, 200, "account")
    expect(user.get(XSS).status, 302, "XSS: forced logout")
    expect(user.get("/account", cookies={"JSESSIONID": old}).status, 302, "old session ID refused")


SCENARIOS: dict[str, Scenario] = {
    "benign": benign,
    "attack": attack,
    "stolen": stolen,
    "defective": defective,
}


def record(name: str, out: Path) -> Path:
    """Play one scenario through a fresh demo app and mitmdump; the flows go to out/NAME.mitm."""
    target = out / f"{name}.mitm"
    with tempfile.TemporaryDirectory(prefix=f"record-{name}-") as tmp:
        work = Path(tmp)
        app = DemoApp(port=0, defective_logout=name == "defective").start()
        try:
            proxy = start_mitmdump(
                app.url,
                work,
                f"guard_policy={DEMO_POLICY}",
                f"guard_session_store={work / 'sessions.sqlite'}",
                "guard_audit_log=",
                "guard_mode=enforce",
                extra_args=("-w", str(work / "flows.mitm")),
            )
            try:
                SCENARIOS[name](lambda **kw: Browser(proxy.port, **kw))
            finally:
                code = proxy.stop()
            if code != 0:
                raise RuntimeError(f"recording {name}: mitmdump exited with {code}:\n{proxy.log()[-3000:]}")
            if "Traceback" in proxy.log():
                raise RuntimeError(f"recording {name}: mitmdump logged a traceback:\n{proxy.log()[-3000:]}")
        finally:
            app.stop()
        target.write_bytes((work / "flows.mitm").read_bytes())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"scenarios: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--out", type=Path, default=FLOWS, help="folder for NAME.mitm (default: %(default)s)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or list(SCENARIOS):
        path = record(name, args.out)
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
