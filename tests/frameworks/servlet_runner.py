"""Servlet container: Debian's Tomcat 10.1 with the FORM-auth test webapp; sessions read through JMX."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from string import Template
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx

from frameworks.process import launch, require_file, require_program
from frameworks.profile import USER, AppProfile, Check, Csrf, LoginForm, Logout, TokenStore
from frameworks.running import RunningApp, StoredSession
from procs import free_ports

SITE = Path(__file__).resolve().parent / "servlet_app"
CATALINA_HOME = Path(os.environ.get("LOGOUTGUARD_CATALINA_HOME", "/usr/share/tomcat10"))
TOMCAT_HINT = "apt-get install tomcat10-common (Debian), or set LOGOUTGUARD_CATALINA_HOME to a Tomcat 10.1"
MANAGER_MBEAN = "Catalina:type=Manager,host=localhost,context=/"
JVM_OPTIONS = ["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]

PROFILE = AppProfile(
    name="servlet",
    framework="Apache Tomcat 10.1 (Debian tomcat10-common): container FORM auth, MemoryRealm, JSESSIONID",
    session_cookies=("JSESSIONID",),
    remember_cookie=None,
    csrf=Csrf(TokenStore.NONE),
    login=LoginForm(page="/account/", username_field="j_username", password_field="j_password"),
    logout=Logout(method="POST", path="/logout", form_page="/account/"),
    logged_in=Check(path="/account/", status=200, marker="Signed in as alice"),
    logged_out=Check(path="/account/", status=200, marker="j_security_check"),
    public_path="/",
    session_before_login=True,  # FORM auth keeps the requested URL in a new session while showing the form
    session_id_changes_at_login=True,  # changeSessionIdOnAuthentication (the default)
    url_session_parameter="jsessionid",
    store="Tomcat's session Manager of the ROOT context, asked through JMXProxyServlet on a separate port",
    notes=(
        "Logged out, the protected page answers 200 with the login form (FORM auth forwards to it): the "
        "status alone cannot tell logged-in from logged-out; the body marker can.",
        "The container also takes the session from the path: /account/;jsessionid=<ID> (no cookie) is "
        "served as that session.",
        "Logout (POST /logout) calls request.logout() and session.invalidate(); the container sends no "
        "Set-Cookie for it, the browser keeps the dead JSESSIONID. No CSRF token on this app.",
        "The Manager does not show which user a session belongs to: StoredSession.user is None.",
    ),
)


class ServletApp(RunningApp):
    profile = PROFILE

    def __init__(self, *args: object, admin_port: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.admin_url = f"http://127.0.0.1:{admin_port}"

    def _invoke(self, op: str, *params: str) -> str:
        query = f"invoke={quote(MANAGER_MBEAN, safe=':=,/')}&op={op}"
        if params:
            query += "&ps=" + quote(",".join(params), safe=",")
        response = httpx.get(f"{self.admin_url}/jmxproxy?{query}", timeout=10)
        response.raise_for_status()
        if not response.text.startswith("OK"):
            raise RuntimeError(f"JMXProxyServlet {op}: {response.text.strip()}")
        # "OK - Operation listSessionIds returned:\n  id1 id2 ..."
        return response.text.split("returned:", 1)[1].strip() if "returned:" in response.text else ""

    def session_ids(self) -> list[str]:
        return self._invoke("listSessionIds").split()

    def session(self, session_id: str) -> StoredSession | None:
        if not re.fullmatch(r"[A-Za-z0-9.\-_]+", session_id):
            return None
        ids = self.session_ids()
        if session_id not in ids:
            return None
        created = self._invoke("getCreationTime", session_id)
        return StoredSession(session_id, None, f"created {created}")

    def sessions(self) -> dict[str, StoredSession]:
        return {sid: StoredSession(sid, None, "") for sid in self.session_ids()}


def start(folder: Path) -> ServletApp:
    java = require_program("java", "apt-get install default-jre-headless (Debian)")
    bootstrap = require_file(CATALINA_HOME / "bin" / "bootstrap.jar", TOMCAT_HINT)
    juli = require_file(CATALINA_HOME / "bin" / "tomcat-juli.jar", TOMCAT_HINT)
    base = folder / "tomcat-base"
    shutil.rmtree(base, ignore_errors=True)
    for sub in ("conf", "logs", "work", "temp"):
        (base / sub).mkdir(parents=True)
    port, admin_port = free_ports(2)  # distinct: the same port twice kept Tomcat from starting
    values = {
        "port": str(port),
        "admin_port": str(admin_port),
        "app_base": escape(str(SITE / "webapps")),
        "admin_base": escape(str(SITE / "admin")),
        "username": escape(USER.username, {'"': "&quot;"}),
        "password": escape(USER.password, {'"': "&quot;"}),
    }
    for name in ("server.xml", "tomcat-users.xml", "web.xml"):
        text = (SITE / "conf" / name).read_text()
        (base / "conf" / name).write_text(Template(text).safe_substitute(values))
    args = [
        java,
        *JVM_OPTIONS,
        f"-Dcatalina.home={CATALINA_HOME}",
        f"-Dcatalina.base={base}",
        f"-Djava.io.tmpdir={base / 'temp'}",
        "-cp",
        f"{bootstrap}:{juli}",
        "org.apache.catalina.startup.Bootstrap",
        "start",
    ]
    admin_url = f"http://127.0.0.1:{admin_port}/jmxproxy?qry={quote(MANAGER_MBEAN, safe='')}"

    def ready() -> bool:  # Tomcat binds its ports at init; the Admin service starts after the app's
        try:
            return httpx.get(admin_url, timeout=5).text.startswith("OK - Number of results: 1")
        except httpx.HTTPError:
            return False

    process = launch(
        PROFILE.name, args, log_dir=folder, ports=[port, admin_port], cwd=base, timeout=60, ready=ready
    )
    return ServletApp(process, port, folder, admin_port=admin_port)
