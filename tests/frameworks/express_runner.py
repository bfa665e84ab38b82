"""Express + express-session: start the test app (node) and ask its MemoryStore on the inspection port."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import quote, unquote

import httpx

from frameworks.process import MissingComponent, launch, require_file, require_program
from frameworks.profile import USER, AppProfile, Check, Csrf, LoginForm, Logout, TokenStore
from frameworks.running import RunningApp, StoredSession
from procs import free_port

SITE = Path(__file__).resolve().parent / "express_app"
NPM_HINT = "run `npm ci --prefix tests/frameworks/express_app` (bash .ci/setup does)"

PROFILE = AppProfile(
    name="express",
    framework="Express 5 + express-session 1.19 (MemoryStore) + csrf-sync 4, node",
    session_cookies=("connect.sid",),
    remember_cookie=None,
    csrf=Csrf(TokenStore.SERVER_SESSION, form_field="_csrf"),
    login=LoginForm(page="/login", username_field="username", password_field="password"),
    logout=Logout(method="POST", path="/logout", form_page="/account"),
    logged_in=Check(path="/account", status=200, marker="Signed in as alice"),
    logged_out=Check(path="/account", status=302, location="/login"),
    public_path="/",
    session_before_login=True,  # the login page stores its CSRF token in a new (anonymous) session
    session_id_changes_at_login=True,  # req.session.regenerate()
    url_session_parameter=None,
    store="express-session MemoryStore, read through store.all()/store.get() on a separate loopback port",
    notes=(
        "connect.sid is `s:<sid>.<HMAC>` (URL-encoded); the store is keyed by <sid>.",
        "The CSRF token (csrf-sync, synchroniser pattern) is only in the server-side session and in the "
        "page's forms (`_csrf`): a logout needs a page fetched with the session first; without it: 403.",
        "Logout (POST /logout) calls req.session.destroy() and clears the cookie; a request with the old "
        "cookie afterwards is anonymous (302 to /login), no new cookie is issued for it.",
    ),
)


def store_id(cookie_value: str) -> str:
    """The MemoryStore key in a connect.sid value (`s%3A<sid>.<signature>`); a bare sid is returned as is."""
    value = unquote(cookie_value)
    return value[2:].rsplit(".", 1)[0] if value.startswith("s:") else value


class ExpressApp(RunningApp):
    profile = PROFILE

    def __init__(self, *args: object, admin_port: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.admin_url = f"http://127.0.0.1:{admin_port}"

    @staticmethod
    def _stored(sid: str, data: dict[str, object]) -> StoredSession:
        user = data.get("user")
        return StoredSession(sid, user if isinstance(user, str) else None, json.dumps(data, sort_keys=True))

    def session(self, session_id: str) -> StoredSession | None:
        sid = store_id(session_id)
        response = httpx.get(f"{self.admin_url}/sessions/{quote(sid, safe='')}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return self._stored(sid, response.json())

    def sessions(self) -> dict[str, StoredSession]:
        response = httpx.get(f"{self.admin_url}/sessions", timeout=10)
        response.raise_for_status()
        return {sid: self._stored(sid, data) for sid, data in response.json().items()}


def start(folder: Path) -> ExpressApp:
    node = require_program("node", "apt-get install nodejs npm (Debian), or put node on PATH")
    require_file(SITE / "node_modules" / "express-session" / "package.json", NPM_HINT)
    port, admin_port = free_port(), free_port()
    env = {
        "LG_PORT": str(port),
        "LG_ADMIN_PORT": str(admin_port),
        "LG_SESSION_SECRET": secrets.token_urlsafe(32),
        "LG_APP_USER": USER.username,
        "LG_APP_PASSWORD": USER.password,
        "NODE_ENV": "production",
    }
    try:
        process = launch(
            PROFILE.name, [node, "server.js"], log_dir=folder, ports=[port, admin_port], cwd=SITE, env=env
        )
    except RuntimeError as exc:
        if "Cannot find module" in str(exc):
            raise MissingComponent(f"{exc}\n{NPM_HINT}") from None
        raise
    return ExpressApp(process, port, folder, admin_port=admin_port)
