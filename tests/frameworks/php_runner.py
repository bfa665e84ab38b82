"""PHP native sessions: start the test app under `php -S` and read its session files (save_path of ours)."""

from __future__ import annotations

import re
from pathlib import Path

from frameworks.process import launch, require_program
from frameworks.profile import USER, AppProfile, Check, Csrf, LoginForm, Logout, TokenStore
from frameworks.running import RunningApp, StoredSession
from procs import free_port

SITE = Path(__file__).resolve().parent / "php_app"
SESSION_ID = re.compile(r"[A-Za-z0-9,-]{22,256}")  # what PHP itself accepts as an ID
USER_ENTRY = re.compile(r'(?:^|;|\})user\|s:\d+:"([^"]*)";')

# Session settings on the command line, so the app does not depend on the machine's php.ini.
INI = {
    "session.name": "PHPSESSID",
    "session.use_strict_mode": "1",  # unknown IDs are replaced, never adopted
    "session.use_cookies": "1",
    "session.use_only_cookies": "1",
    "session.use_trans_sid": "0",
    "session.cookie_httponly": "1",
    "session.cookie_samesite": "Lax",
    "session.gc_probability": "0",  # files stay until the app deletes them (the tests look at them)
    "session.serialize_handler": "php",
    "display_errors": "stderr",
}

PROFILE = AppProfile(
    name="php",
    framework="PHP 8 native sessions (files handler), php -S",
    session_cookies=("PHPSESSID",),
    remember_cookie=None,
    csrf=Csrf(TokenStore.SERVER_SESSION, form_field="csrf"),
    login=LoginForm(page="/login.php", username_field="username", password_field="password"),
    logout=Logout(method="POST", path="/logout.php", form_page="/account.php"),
    logged_in=Check(path="/account.php", status=200, marker="Signed in as alice"),
    logged_out=Check(path="/account.php", status=302, location="/login.php"),
    public_path="/",
    session_before_login=True,  # login.php calls session_start() for its CSRF token
    session_id_changes_at_login=True,  # session_regenerate_id(true)
    url_session_parameter=None,
    store="session files sess_<ID> in the save_path the test chose (files handler)",
    notes=(
        "PHPSESSID is issued to anonymous visitors of the login page (pre-login session with the CSRF "
        "token); at login session_regenerate_id(true) issues a new ID and deletes the old file.",
        "Logout is POST /logout.php with the session's CSRF token (`csrf`, only in the page); it clears "
        "$_SESSION, expires the cookie and calls session_destroy() (file deleted). GET: 405.",
        "use_strict_mode: a request with an unknown or destroyed ID gets a fresh ID (new Set-Cookie) from "
        "any page that calls session_start().",
    ),
)


class PhpApp(RunningApp):
    profile = PROFILE

    def __init__(self, *args: object, save_path: Path) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.save_path = save_path

    def session_file(self, session_id: str) -> Path | None:
        """The file PHP keeps for this ID (None for a value PHP would never use as a file name)."""
        return self.save_path / f"sess_{session_id}" if SESSION_ID.fullmatch(session_id) else None

    @staticmethod
    def _stored(session_id: str, data: str) -> StoredSession:
        found = USER_ENTRY.search(data)
        return StoredSession(session_id, found.group(1) if found else None, data)

    def session(self, session_id: str) -> StoredSession | None:
        path = self.session_file(session_id)
        if path is None or not path.exists():
            return None
        return self._stored(session_id, path.read_text(errors="replace"))

    def sessions(self) -> dict[str, StoredSession]:
        return {
            p.name[5:]: self._stored(p.name[5:], p.read_text(errors="replace"))
            for p in self.save_path.glob("sess_*")
        }


def start(folder: Path) -> PhpApp:
    php = require_program("php", "apt-get install php-cli (Debian)")
    save_path = folder / "php-sessions"
    save_path.mkdir(exist_ok=True)
    port = free_port()
    args = [php, "-S", f"127.0.0.1:{port}", "-t", str(SITE)]
    for key, value in {**INI, "session.save_path": str(save_path)}.items():
        args += ["-d", f"{key}={value}"]
    env = {"LG_APP_USER": USER.username, "LG_APP_PASSWORD": USER.password, "PHP_CLI_SERVER_WORKERS": "2"}
    process = launch(PROFILE.name, args, log_dir=folder, ports=[port], cwd=SITE, env=env)
    return PhpApp(process, port, folder, save_path=save_path)
