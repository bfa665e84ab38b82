"""Tests of the demo application over real HTTP on 127.0.0.1: login, protected pages, logouts, keep-alive, CLI."""

from __future__ import annotations

import base64
import http.client
import json
import re
import selectors
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from email.message import Message
from urllib.parse import urlencode

import pytest

from logoutguard.demo.app import DemoApp, basic_credentials, parse_cookies
from procs import tool

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SESSION_COOKIE_RE = re.compile(r"^JSESSIONID=([A-Za-z0-9_-]{20,}); Path=/; HttpOnly$")
CSRF_COOKIE_RE = re.compile(r"^csrftoken=([A-Za-z0-9_-]{20,}); Path=/$")


class Reply:
    """One response: status, headers, body, and the Set-Cookie values in order."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers: Message = response.msg
        self.body = response.read()
        self.cookies = response.msg.get_all("Set-Cookie") or []

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def session_id(self) -> str:
        """The JSESSIONID this response sets (asserting the exact cookie format)."""
        found = [m.group(1) for c in self.cookies if (m := SESSION_COOKIE_RE.match(c))]
        assert len(found) == 1, self.cookies
        return found[0]


def call(
    app: DemoApp,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    session: str | None = None,
) -> Reply:
    headers = dict(headers or {})
    if session is not None:
        headers["Cookie"] = f"JSESSIONID={session}"
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers)
        return Reply(connection.getresponse())
    finally:
        connection.close()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def login(app: DemoApp, user: str = "guest", password: str | None = None) -> tuple[str, str]:
    """Log in with the form; returns (session id, csrf token)."""
    reply = call(app, "POST", "/login", urlencode({"username": user, "password": password or user}), FORM)
    assert reply.status == 302, reply.text
    csrf = [m.group(1) for c in reply.cookies if (m := CSRF_COOKIE_RE.match(c))]
    return reply.session_id(), csrf[0]


def whoami(app: DemoApp, session: str) -> dict[str, object]:
    return json.loads(call(app, "GET", "/whoami", session=session).body)


@pytest.fixture(scope="module")
def app() -> Iterator[DemoApp]:
    with DemoApp(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def defective_app() -> Iterator[DemoApp]:
    with DemoApp(port=0, defective_logout=True) as running:
        yield running


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, {}),
        ("JSESSIONID=abc", {"JSESSIONID": "abc"}),
        ("a=1; JSESSIONID=abc; csrftoken=x", {"a": "1", "JSESSIONID": "abc", "csrftoken": "x"}),
        ("JSESSIONID=first; JSESSIONID=second", {"JSESSIONID": "first"}),
        ('junk; =novalue; JSESSIONID="q"', {"JSESSIONID": "q"}),
    ],
)
def test_parse_cookies(header: str | None, expected: dict[str, str]) -> None:
    assert parse_cookies(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("guest", "guest")["Authorization"], ("guest", "guest")),
        (basic("a", "p:with:colons")["Authorization"], ("a", "p:with:colons")),
        ("basic " + base64.b64encode(b"u:p").decode(), ("u", "p")),
        ("Basic !!!notbase64", None),
        ("Basic " + base64.b64encode(b"nocolon").decode(), None),
        ("Bearer abc", None),
        (None, None),
    ],
)
def test_basic_credentials(header: str | None, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(header) == expected


# ---------------------------------------------------------------- pages and login


@pytest.mark.parametrize(
    ("path", "needles"),
    [
        ("/", ['href="/login"', 'href="/account"', 'href="/search"', 'href="/attack?Logout=true"']),
        ("/login", ['<form method="post" action="/login">', 'name="username"', 'name="password"']),
    ],
)
def test_public_pages(app: DemoApp, path: str, needles: list[str]) -> None:
    reply = call(app, "GET", path)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    for needle in needles:
        assert needle in reply.text


@pytest.mark.parametrize("user", ["guest", "admin"])
def test_form_login_issues_session_and_csrf_cookies(app: DemoApp, user: str) -> None:
    reply = call(app, "POST", "/login", urlencode({"username": user, "password": user}), FORM)
    assert reply.status == 302
    assert reply.headers["Location"] == "/account"
    assert len(reply.cookies) == 2
    assert CSRF_COOKIE_RE.match(reply.cookies[1])
    session = reply.session_id()
    assert app.is_session_valid(session)
    assert whoami(app, session) == {"user": user, "session_valid": True}
    assert login(app, user)[0] != session  # every login gets a fresh id


@pytest.mark.parametrize(
    "form", [{"username": "guest", "password": "wrong"}, {"username": "nobody", "password": "x"}, {}]
)
def test_wrong_credentials_show_the_form_with_an_error(app: DemoApp, form: dict[str, str]) -> None:
    before = app.session_count()
    reply = call(app, "POST", "/login", urlencode(form), FORM)
    assert reply.status == 200
    assert "Wrong user name or password." in reply.text
    assert reply.cookies == []
    assert app.session_count() == before


@pytest.mark.parametrize("path", ["/", "/account", "/search?q=x", "/whoami", "/attack"])
def test_basic_credentials_log_in_on_any_page(app: DemoApp, path: str) -> None:
    reply = call(app, "GET", path, headers=basic("admin", "admin"))
    assert reply.status == 200
    assert len(reply.cookies) == 2
    assert CSRF_COOKIE_RE.match(reply.cookies[1])
    assert whoami(app, reply.session_id())["user"] == "admin"


def test_wrong_basic_credentials_do_not_log_in(app: DemoApp) -> None:
    reply = call(app, "GET", "/account", headers=basic("admin", "guest"))
    assert (reply.status, reply.headers["Location"], reply.cookies) == (302, "/login", [])


def test_valid_session_cookie_wins_over_basic_credentials(app: DemoApp) -> None:
    session, _ = login(app, "guest")
    reply = call(app, "GET", "/whoami", headers=basic("admin", "admin"), session=session)
    assert reply.cookies == []
    assert json.loads(reply.body) == {"user": "guest", "session_valid": True}


def test_login_with_chunked_body(app: DemoApp) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        parts = iter([b"username=gu", b"est&password=guest"])
        connection.request("POST", "/login", body=parts, headers=FORM, encode_chunked=True)
        reply = Reply(connection.getresponse())
    finally:
        connection.close()
    assert reply.status == 302
    assert app.is_session_valid(reply.session_id())


# ---------------------------------------------------------------- protected pages


@pytest.mark.parametrize("path", ["/account", "/search?q=abc", "/attack", "/attack?Screen=3"])
@pytest.mark.parametrize("cookie", [None, "forged-or-expired-id"])
def test_protected_pages_redirect_to_login_without_a_session(
    app: DemoApp, path: str, cookie: str | None
) -> None:
    reply = call(app, "GET", path, session=cookie)
    assert reply.status == 302
    assert reply.headers["Location"] == "/login"
    assert int(reply.headers["Content-Length"]) == len(reply.body)


@pytest.mark.parametrize("user", ["guest", "admin"])
def test_account_shows_the_user(app: DemoApp, user: str) -> None:
    session, csrf = login(app, user)
    reply = call(app, "GET", "/account", session=session)
    assert reply.status == 200
    assert f"Welcome back, <b>{user}</b>" in reply.text
    assert f'name="csrf" value="{csrf}"' in reply.text  # the logout form carries the token


@pytest.mark.parametrize(
    ("query", "escaped"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('"><img src=x onerror=alert(1)>', "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        ("' OR 1=1--", "&#x27; OR 1=1--"),
    ],
)
def test_search_echoes_the_query_escaped(app: DemoApp, query: str, escaped: str) -> None:
    session, _ = login(app)
    reply = call(app, "GET", "/search?" + urlencode({"q": query}), session=session)
    assert reply.status == 200
    assert f"Results for <b>{escaped}</b>" in reply.text
    assert query not in reply.text


def test_search_finds_lessons(app: DemoApp) -> None:
    session, _ = login(app)
    reply = call(app, "GET", "/search?q=session", session=session)
    assert "Session Management Flaws" in reply.text


# ---------------------------------------------------------------- logout


def test_get_logout_deletes_the_session_and_sends_a_fresh_anonymous_id(app: DemoApp) -> None:
    session, _ = login(app)
    reply = call(app, "GET", "/attack?Logout=true", session=session)
    assert reply.status == 200
    assert "You have been logged out." in reply.text
    assert len(reply.cookies) == 1
    fresh = reply.session_id()
    assert fresh != session
    assert not app.is_session_valid(session)
    assert not app.is_session_valid(fresh)
    assert whoami(app, fresh) == {"user": None, "session_valid": False}
    assert call(app, "GET", "/account", session=session).status == 302


def test_get_logout_with_basic_credentials_leaves_no_session(app: DemoApp) -> None:
    before = app.session_count()
    reply = call(app, "GET", "/attack?Logout=true", headers=basic("guest", "guest"))
    assert len(reply.cookies) == 1
    assert not app.is_session_valid(reply.session_id())
    assert app.session_count() == before


@pytest.mark.parametrize(
    ("form", "status", "still_valid"),
    [("right", 200, False), ("wrong", 403, True), ("missing", 403, True), ("empty", 403, True)],
)
def test_post_logout_requires_the_csrf_token(app: DemoApp, form: str, status: int, still_valid: bool) -> None:
    session, csrf = login(app)
    body = {"right": {"csrf": csrf}, "wrong": {"csrf": csrf[::-1]}, "missing": {}, "empty": {"csrf": ""}}[
        form
    ]
    reply = call(app, "POST", "/logout", urlencode(body), FORM, session=session)
    assert reply.status == status
    assert app.is_session_valid(session) is still_valid
    assert whoami(app, session)["session_valid"] is still_valid
    if still_valid:
        assert reply.cookies == []
    else:
        assert reply.session_id() != session


def test_post_logout_without_a_session_is_forbidden(app: DemoApp) -> None:
    reply = call(app, "POST", "/logout", urlencode({"csrf": "x"}), FORM, session="no-such-session")
    assert (reply.status, reply.cookies) == (403, [])


@pytest.mark.parametrize("how", ["GET", "POST"])
def test_defective_logout_keeps_the_old_session_valid(defective_app: DemoApp, how: str) -> None:
    session, csrf = login(defective_app)
    if how == "GET":
        reply = call(defective_app, "GET", "/attack?Logout=true", session=session)
    else:
        reply = call(defective_app, "POST", "/logout", urlencode({"csrf": csrf}), FORM, session=session)
    assert reply.status == 200
    assert reply.session_id() != session  # the browser gets a new cookie ...
    assert defective_app.is_session_valid(session)  # ... but the server forgot to kill the old one
    assert call(defective_app, "GET", "/account", session=session).status == 200


def test_defective_logout_still_checks_csrf(defective_app: DemoApp) -> None:
    session, _ = login(defective_app)
    reply = call(defective_app, "POST", "/logout", urlencode({"csrf": "bad"}), FORM, session=session)
    assert reply.status == 403


# ---------------------------------------------------------------- JSON, static, health, errors


def test_whoami_without_session(app: DemoApp) -> None:
    reply = call(app, "GET", "/whoami")
    assert reply.headers["Content-Type"] == "application/json"
    assert json.loads(reply.body) == {"user": None, "session_valid": False}


def test_api_items_list_and_add(app: DemoApp) -> None:
    session, _ = login(app, "guest")
    item = {"name": "Lock picking kit", "price": 12.5}
    reply = call(app, "POST", "/api/items", json.dumps(item), {"Content-Type": "application/json"}, session)
    assert reply.status == 201
    created = json.loads(reply.body)
    assert created | item == created and created["owner"] == "guest"
    listed = json.loads(call(app, "GET", "/api/items").body)
    assert isinstance(listed, list) and created in listed


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        ('{"name": ""}', 400),
        ('{"name": "x", "price": "free"}', 400),
        ('{"name": "x", "price": -1}', 400),
    ],
)
def test_api_items_rejects_bad_bodies(app: DemoApp, body: str, status: int) -> None:
    session, _ = login(app)
    reply = call(app, "POST", "/api/items", body, {"Content-Type": "application/json"}, session)
    assert reply.status == status
    assert "error" in json.loads(reply.body)


def test_api_items_post_needs_login(app: DemoApp) -> None:
    reply = call(app, "POST", "/api/items", '{"name": "x"}', {"Content-Type": "application/json"})
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    ("method", "path", "status", "content_type", "body"),
    [
        ("GET", "/health", 200, "text/plain; charset=utf-8", b"ok"),
        ("GET", "/static/app.css", 200, "text/css; charset=utf-8", None),
        ("GET", "/nope", 404, "text/html; charset=utf-8", None),
        ("DELETE", "/login", 405, "text/html; charset=utf-8", None),
    ],
)
def test_misc_routes(
    app: DemoApp, method: str, path: str, status: int, content_type: str, body: bytes | None
) -> None:
    reply = call(app, method, path)
    assert (reply.status, reply.headers["Content-Type"]) == (status, content_type)
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    if body is not None:
        assert reply.body == body
    if status == 405:
        assert reply.headers["Allow"] == "GET, POST, HEAD"


def test_urllib_follows_login_redirect_to_account(app: DemoApp) -> None:
    session, _ = login(app, "admin")
    request = urllib.request.Request(f"{app.url}/account", headers={"Cookie": f"JSESSIONID={session}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert "admin" in response.read().decode()


# ---------------------------------------------------------------- connection handling


def test_keep_alive_serves_several_requests_on_one_connection(app: DemoApp) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        connection.request("POST", "/login", urlencode({"username": "guest", "password": "guest"}), FORM)
        first = connection.getresponse()
        login_reply = Reply(first)
        sock = connection.sock
        assert not first.will_close and sock is not None
        connection.request("GET", "/account", headers={"Cookie": f"JSESSIONID={login_reply.session_id()}"})
        second = connection.getresponse()
        assert Reply(second).status == 200
        assert not second.will_close
        assert connection.sock is sock  # same TCP connection, no reconnect
    finally:
        connection.close()


def test_stop_closes_idle_keep_alive_connections() -> None:
    app = DemoApp(port=0).start()
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        connection.request("GET", "/health")
        assert Reply(connection.getresponse()).body == b"ok"
        app.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("GET", "/health")
            connection.getresponse()
    finally:
        connection.close()
        app.stop()


# ---------------------------------------------------------------- the CLI


def read_line(stream: object, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
    try:
        assert selector.select(timeout), f"no output within {timeout}s"
    finally:
        selector.close()
    return stream.readline()  # type: ignore[attr-defined,no-any-return]


@pytest.mark.e2e
def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [str(tool("logoutguard")), "demo-app", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(process.stdout, timeout=15)
        match = re.fullmatch(r"demo app listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        with urllib.request.urlopen(f"{match.group(1)}/health", timeout=5) as response:
            assert response.read() == b"ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
