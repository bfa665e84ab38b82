"""Django 5: start the test site (database sessions in a SQLite file) and read its django_session table."""

from __future__ import annotations

import secrets
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

from frameworks.process import MissingComponent, launch
from frameworks.profile import USER, AppProfile, Check, Csrf, LoginForm, Logout, TokenStore
from frameworks.running import RunningApp, StoredSession
from procs import free_port

SITE = Path(__file__).resolve().parent / "django_app"
SESSION_SALT = "django.contrib.sessions.SessionStore"  # SessionBase.key_salt of the db backend

_COMMON = dict(
    framework="Django 5 (django.contrib.auth + django.contrib.sessions, db backend, runserver)",
    session_cookies=("sessionid",),
    remember_cookie=None,
    login=LoginForm(page="/accounts/login/", username_field="username", password_field="password"),
    logout=Logout(method="POST", path="/accounts/logout/", form_page="/account/"),
    logged_in=Check(path="/account/", status=200, marker="Signed in as alice"),
    logged_out=Check(path="/account/", status=302, location="/accounts/login/?next=/account/"),
    public_path="/",
    session_id_changes_at_login=True,
    url_session_parameter=None,
    store="django_session table of the site's SQLite file (row per session; deleted by logout)",
)

PROFILE = AppProfile(
    name="django",
    csrf=Csrf(TokenStore.COOKIE, form_field="csrfmiddlewaretoken", cookie="csrftoken", header="X-CSRFToken"),
    session_before_login=False,
    notes=(
        "Logout is POST /accounts/logout/ with the CSRF token (GET: 405). Without the trailing slash the "
        "app answers 301 to the slashed path (CommonMiddleware, DEBUG off) and the POST is lost.",
        "The csrftoken cookie is set by the login page; the form field must match it (double submit), "
        "so whoever holds both cookies can mint a matching pair.",
    ),
    **_COMMON,  # type: ignore[arg-type]
)

PROFILE_CSRF_IN_SESSION = AppProfile(
    name="django-csrf-sessions",
    csrf=Csrf(TokenStore.SERVER_SESSION, form_field="csrfmiddlewaretoken", header="X-CSRFToken"),
    session_before_login=True,  # the login page stores its CSRF token in a (new, anonymous) session
    notes=(
        "CSRF_USE_SESSIONS=True: no csrftoken cookie; the token is only in the server-side session and "
        "in the page's forms, so a logout needs a page fetched with the session first.",
        "The login page already issues a sessionid (anonymous session holding the CSRF token).",
    ),
    **_COMMON,  # type: ignore[arg-type]
)


class DjangoApp(RunningApp):
    def __init__(self, *args: object, database: Path, secret_key: str, profile: AppProfile) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.database = database
        self.secret_key = secret_key
        self.profile = profile

    def _rows(self, where: str = "", params: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            return db.execute(
                f"SELECT session_key, session_data, expire_date FROM django_session {where}", params
            ).fetchall()

    def _decode(self, key: str, data: str) -> StoredSession:
        from django.core import signing

        payload = signing.loads(data, key=self.secret_key, salt=SESSION_SALT, fallback_keys=[])
        user = None
        if "_auth_user_id" in payload:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
                row = db.execute(
                    "SELECT username FROM auth_user WHERE id = ?", (payload["_auth_user_id"],)
                ).fetchone()
            user = row[0] if row else None
        return StoredSession(key, user, repr(payload))

    def session(self, session_id: str) -> StoredSession | None:
        """The row of django_session, when present and not expired (what Django's SessionStore accepts)."""
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        rows = self._rows("WHERE session_key = ? AND expire_date > ?", (session_id, now))
        return self._decode(rows[0][0], rows[0][1]) if rows else None

    def sessions(self) -> dict[str, StoredSession]:
        return {key: self._decode(key, data) for key, data, _ in self._rows()}


def start(folder: Path, csrf_use_sessions: bool = False) -> DjangoApp:
    try:
        import django  # noqa: F401
    except ImportError:
        raise MissingComponent("Django is not installed: pip install -e '.[test]'") from None
    profile = PROFILE_CSRF_IN_SESSION if csrf_use_sessions else PROFILE
    database = folder / f"{profile.name}.sqlite3"
    secret_key = secrets.token_urlsafe(40)
    port = free_port()
    env = {
        "DJANGO_SETTINGS_MODULE": "settings",
        "LG_DJANGO_SECRET_KEY": secret_key,
        "LG_DJANGO_DB": str(database),
        "LG_DJANGO_CSRF_USE_SESSIONS": "1" if csrf_use_sessions else "0",
        "LG_APP_USER": USER.username,
        "LG_APP_PASSWORD": USER.password,
    }
    process = launch(
        profile.name, [sys.executable, "serve.py", str(port)], log_dir=folder, ports=[port], cwd=SITE, env=env
    )
    return DjangoApp(process, port, folder, database=database, secret_key=secret_key, profile=profile)
