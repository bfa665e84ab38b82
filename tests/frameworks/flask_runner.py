"""Flask + Flask-Login: start the test app; its session lives in the signed cookie (no server store)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from frameworks.process import MissingComponent, launch
from frameworks.profile import USER, AppProfile, Check, Csrf, LoginForm, Logout, TokenStore
from frameworks.running import NoServerStore, RunningApp, StoredSession
from procs import free_port

SITE = Path(__file__).resolve().parent / "flask_app"
NO_STORE = (
    "flask: no server-side session store, the signed `session` cookie is the session (see decode_cookie)"
)

PROFILE = AppProfile(
    name="flask",
    framework="Flask 3 + Flask-Login 0.6 (remember-me) + Flask-WTF CSRFProtect, werkzeug server",
    session_cookies=("session",),
    remember_cookie="remember_token",
    csrf=Csrf(TokenStore.SIGNED_SESSION_COOKIE, form_field="csrf_token", header="X-CSRFToken"),
    login=LoginForm(
        page="/login", username_field="username", password_field="password", extra_fields={"remember": "y"}
    ),
    logout=Logout(method="POST", path="/logout", form_page="/account"),
    logged_in=Check(path="/account", status=200, marker="Signed in as alice"),
    logged_out=Check(path="/account", status=302, location="/login?next=%2Faccount"),
    public_path="/",
    session_before_login=True,  # the login page puts Flask-WTF's CSRF secret into the session cookie
    session_id_changes_at_login=True,  # the cookie is the session: its value changes with its content
    url_session_parameter=None,
    store=None,
    notes=(
        "No server-side session store: the session is the signed `session` cookie itself; logout_user() "
        "only sends a new cookie, so a copy of the old cookie stays valid (until its signature's key changes).",
        "remember_token (login with remember=y) alone logs back in and mints a new session cookie; logout "
        "clears it in the browser only, a copied value keeps working.",
        "CSRF (Flask-WTF): the secret is in the signed session cookie, the form field `csrf_token` is a signed "
        "timestamped derivation of it; a POST without a valid field is refused 400.",
    ),
)


class FlaskApp(RunningApp):
    profile = PROFILE

    def __init__(self, *args: object, secret_key: str) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.secret_key = secret_key

    def session(self, session_id: str) -> StoredSession | None:
        raise NoServerStore(NO_STORE)

    def sessions(self) -> dict[str, StoredSession]:
        raise NoServerStore(NO_STORE)

    def decode_cookie(self, value: str) -> dict[str, object]:
        """What a `session` cookie value carries (verified with the app's key, as the app would)."""
        from flask import Flask
        from flask.sessions import SecureCookieSessionInterface

        shadow = Flask("session-decoder")
        shadow.secret_key = self.secret_key
        serializer = SecureCookieSessionInterface().get_signing_serializer(shadow)
        assert serializer is not None
        return dict(serializer.loads(value))


def start(folder: Path) -> FlaskApp:
    try:
        import flask_login  # noqa: F401
        import flask_wtf  # noqa: F401
    except ImportError:
        raise MissingComponent("Flask-Login / Flask-WTF not installed: pip install -e '.[test]'") from None
    port = free_port()
    secret_key = secrets.token_urlsafe(40)
    env = {"LG_FLASK_SECRET_KEY": secret_key, "LG_APP_USER": USER.username, "LG_APP_PASSWORD": USER.password}
    process = launch(
        PROFILE.name, [sys.executable, "app.py", str(port)], log_dir=folder, ports=[port], cwd=SITE, env=env
    )
    return FlaskApp(process, port, folder, secret_key=secret_key)
