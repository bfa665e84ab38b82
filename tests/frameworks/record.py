"""Record a user's session with a framework app through real `mitmdump -w` (reverse mode), for `logoutguard learn`.

What the scripted browser does, as a user would: open the public page, log in through the login
form (the page first, its hidden fields kept), browse the login-only page, press the logout button
(the logout form's own fields), then open the login-only page once more (now logged out). The
flows file is what mitmdump wrote; nothing of it is made up here.

By hand: `cd tests && ../.venv/bin/python -m frameworks.record NAME FLOWS.mitm` (starts the app too).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: tests/ is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from frameworks.apps import NAMES, start_app
from frameworks.running import RunningApp
from procs import start_mitmdump


def record_session(app: RunningApp, flows: Path, folder: Path) -> Path:
    """Log in, browse, log out (and look once more) through `mitmdump -w FLOWS` in front of `app`."""
    folder.mkdir(parents=True, exist_ok=True)
    recorder = start_mitmdump(app.url, folder, addon=False, extra_args=("-w", str(flows)))
    try:
        browser = app.client(base_url=recorder.url)
        try:
            browser.get(app.profile.public_path)
            browser.login()  # the login page, the form's POST, then the login-only page
            browser.follow(browser.browse())
            browser.follow(browser.logout())
            after = browser.browse()
            if browser.is_logged_in():
                raise AssertionError(
                    f"{app.profile.name}: still logged in after the logout ({after.status_code})"
                )
        finally:
            browser.close()
    finally:
        code = recorder.stop()
    if code not in (0, None) or not flows.is_file():
        raise RuntimeError(f"mitmdump -w {flows} ended with {code}:\n{recorder.log()[-2000:]}")
    return flows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frameworks.record", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("flows", type=Path, help="the flows file to write (mitmdump -w)")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix=f"lg-record-{args.name}-") as tmp,
        start_app(args.name, Path(tmp) / "app") as app,
    ):
        record_session(app, args.flows, Path(tmp) / "proxy")
    print(f"recorded {args.name} to {args.flows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
