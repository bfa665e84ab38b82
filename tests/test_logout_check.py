"""`logoutguard audit-logout` against the real demo app (correct and defective logout), and its helpers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from frameworks.apps import PROFILES
from frameworks.fixtures import AppPool, framework_apps  # noqa: F401  (the fixture)
from frameworks.profile import USER

from logoutguard.cli import main
from logoutguard.demo.app import DemoApp
from logoutguard.logout_check import (
    FormToken,
    LogoutCheckError,
    Reply,
    Target,
    check_form_template,
    find_session_cookie,
    missing_cookies,
    parse_basic,
    parse_target,
    parse_token,
    take_tokens,
    update_jar,
)
from logoutguard.policy import SourceKind, TokenSource
from procs import BIN, free_port

GET_LOGOUT = ["--logout-path", "/attack?Logout=true"]
POST_LOGOUT = [
    "--logout-method",
    "POST",
    "--logout-path",
    "/logout",
    "--logout-form",
    "csrf={cookie:csrftoken}",
]
GUEST = ["--username", "guest", "--password", "guest"]


@pytest.fixture
def app() -> Iterator[DemoApp]:
    with DemoApp(port=0) as running:
        yield running


@pytest.fixture
def defective_app() -> Iterator[DemoApp]:
    with DemoApp(port=0, defective_logout=True) as running:
        yield running


def audit(url: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["audit-logout", url, *args])
    out, err = capsys.readouterr()
    return status, out, err


# -- helpers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://127.0.0.1:8080", Target("http", "127.0.0.1", 8080, "")),
        ("http://127.0.0.1", Target("http", "127.0.0.1", 80, "")),
        ("https://app.test/shop/", Target("https", "app.test", 443, "/shop")),
        ("http://[::1]:9000/a", Target("http", "::1", 9000, "/a")),
    ],
)
def test_parse_target(url: str, target: Target) -> None:
    assert parse_target(url) == target


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/", "expected http"),
        ("127.0.0.1:8080", "expected http"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1/?a=1", r"without \?query"),
    ],
)
def test_parse_target_refuses(url: str, reason: str) -> None:
    with pytest.raises(LogoutCheckError, match=reason):
        parse_target(url)


def test_target_authority_and_paths() -> None:
    assert Target("http", "::1", 9000, "/a").authority == "[::1]:9000"
    assert Target("https", "h", 443, "/shop").path("/login") == "/shop/login"


@pytest.mark.parametrize(("text", "pair"), [("guest:guest", ("guest", "guest")), ("u:p:q", ("u", "p:q"))])
def test_parse_basic(text: str, pair: tuple[str, str]) -> None:
    assert parse_basic(text) == pair


@pytest.mark.parametrize("text", ["guest", ":pw", ""])
def test_parse_basic_refuses(text: str) -> None:
    with pytest.raises(LogoutCheckError, match="USER:PASSWORD"):
        parse_basic(text)


OLD_JAR = {"JSESSIONID": "old", "csrftoken": "old"}


@pytest.mark.parametrize(
    ("jar", "headers", "expected"),
    [
        (
            {},
            ["JSESSIONID=abc; Path=/; HttpOnly", "csrftoken=t; Path=/"],
            {"JSESSIONID": "abc", "csrftoken": "t"},
        ),
        (OLD_JAR, ["JSESSIONID=new"], {"JSESSIONID": "new", "csrftoken": "old"}),
        (OLD_JAR, ["JSESSIONID=; Max-Age=0"], {"csrftoken": "old"}),
        (OLD_JAR, ["JSESSIONID=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"], {"csrftoken": "old"}),
        (
            OLD_JAR,
            ["JSESSIONID=x; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"],
            {"JSESSIONID": "x", "csrftoken": "old"},
        ),
        (OLD_JAR, ["garbage-without-equals; Path=/"], OLD_JAR),
    ],
)
def test_update_jar(jar: dict[str, str], headers: list[str], expected: dict[str, str]) -> None:
    jar = dict(jar)
    update_jar(jar, headers)
    assert jar == expected


@pytest.mark.parametrize(
    ("headers", "name", "found"),
    [
        (["csrftoken=t", "JSESSIONID=abc; Path=/"], None, "JSESSIONID"),
        (["PHPSESSID=abc"], None, "PHPSESSID"),
        (["theme=dark", "csrftoken=t"], None, None),
        (["JSESSIONID=; Max-Age=0"], None, None),
        (["JSESSIONID=abc", "auth=xyz"], "auth", "auth"),
        (["JSESSIONID=abc"], "auth", None),
    ],
)
def test_find_session_cookie(headers: list[str], name: str | None, found: str | None) -> None:
    assert find_session_cookie(headers, name) == found


@pytest.mark.parametrize(
    "template",
    ["csrf={csrf}", "x={cookie}", "x={header:Referer}", "x={session_cookie:JSESSIONID}", "x={nope}"],
)
def test_check_form_template_refuses(template: str) -> None:
    with pytest.raises(LogoutCheckError, match="not supported"):
        check_form_template(template)


def test_check_form_template_and_missing_cookies() -> None:
    template = "csrf={cookie:csrftoken}&s={session_cookie}&a={authorization}&x={cookie:xsrf}"
    check_form_template(template)
    assert missing_cookies(template, {"csrftoken": "t"}) == ["xsrf"]


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("csrf", FormToken("csrf")),
        ("csrf=meta:csrf-token", FormToken("csrf", TokenSource(SourceKind.META, "csrf-token"))),
        ("_token=cookie:XSRF-TOKEN", FormToken("_token", TokenSource(SourceKind.COOKIE, "XSRF-TOKEN"))),
        ("t=regex:token=(\\w+)", FormToken("t", TokenSource(SourceKind.REGEX, "token=(\\w+)"))),
    ],
)
def test_parse_token(text: str, token: FormToken) -> None:
    assert parse_token("--login-token", text) == token


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected FIELD or FIELD=KIND:NAME"),
        ("a=b", "KIND one of cookie, form_field, meta, header, json, regex"),
        ("a=nope:x", "KIND one of"),
        ("a=regex:(", "bad regex"),
        ("a=regex:x", "needs a group"),
    ],
)
def test_parse_token_refuses(text: str, reason: str) -> None:
    with pytest.raises(LogoutCheckError, match=reason):
        parse_token("--login-token", text)


LOGIN_PAGE = (
    b'<form action="/other"><input name="csrf" value="wrong"></form>'
    b'<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="T1">'
    b'<input name="username"><input type="password" name="password"><input name="next" value="/"></form>'
    b'<meta name="csrf-token" content="M1">'
)


def test_take_tokens_from_the_login_form_or_as_asked() -> None:
    reply = Reply(200, (("Set-Cookie", "XSRF=C1; Path=/"),), LOGIN_PAGE)

    def login_form(action: str, fields: dict[str, str]) -> bool:
        return "password" in fields

    # Unasked: the fields named like a token of the login form (not the other form's, not `next`).
    assert take_tokens(reply, "/login", (), login_form) == ([("csrfmiddlewaretoken", "T1")], [])
    asked = (
        parse_token("-", "a=meta:csrf-token"),
        parse_token("-", "b=cookie:XSRF"),
        parse_token("-", 'c=regex:name="csrfmiddlewaretoken" value="(\\w+)'),
        FormToken("missing"),
    )
    assert take_tokens(reply, "/login", asked, login_form) == (
        [("a", "M1"), ("b", "C1"), ("c", "T1")],
        ["missing"],
    )


# -- against the real framework apps (issue 10 item 10: login forms with CSRF tokens, pre-login cookies) --
def framework_audit(name: str, apps: AppPool, *extra: str) -> tuple[int, dict]:
    profile = PROFILES[name]
    app = apps.get(name)
    args = [
        "audit-logout",
        app.url,
        "--username",
        USER.username,
        "--password",
        USER.password,
        "--login-page",
        profile.login.page,
        "--login-path",
        profile.login.page,
        "--logout-method",
        profile.logout.method,
        "--logout-path",
        profile.logout.path,
        "--check-path",
        profile.logged_in.path,
        "--alive-text",
        str(profile.logged_in.marker),
        "--json",
        *extra,
    ]
    status = main(args)
    return status, app


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("django", "invalidated"),
        ("django-csrf-sessions", "invalidated"),
        ("express", "invalidated"),
        ("php", "invalidated"),
        ("flask", "still-valid"),  # the signed cookie is the session: the old one still works (true)
    ],
)
def test_login_forms_with_csrf_tokens_on_real_frameworks(
    framework_apps: AppPool,  # noqa: F811
    name: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The login page first (its cookies kept: a pre-login session, Django's csrftoken), the login form's
    token sent with the login, the logout form's token with the logout: the check completes, and its
    verdict is what the app's own store shows."""
    profile = PROFILES[name]
    status, app = framework_audit(name, framework_apps)
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == expected, result
    steps = {step["name"]: step for step in result["steps"]}
    field = str(profile.csrf.form_field)
    assert steps["page"]["note"].endswith(f"token(s) {field}"), steps["page"]
    assert f"with {field}" in steps["login"]["note"] and steps["logout"]["note"].startswith(
        f"token(s) {field}"
    )
    assert status == (0 if expected == "invalidated" else 1)
    if profile.store is not None:  # the app's own store: no session of the user left
        assert not any(s.user == USER.username for s in app.sessions().values())


def test_a_token_that_is_not_there_is_named(
    framework_apps: AppPool,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, _ = framework_audit("express", framework_apps, "--login-token", "_csrf=meta:csrf-token")
    assert status == 2
    result = json.loads(capsys.readouterr().out)
    assert result["message"].startswith("login: the token field(s) _csrf are not in GET /login (200)")


def test_without_the_token_the_login_is_refused(
    framework_apps: AppPool,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the login page's token is for: the same login, with a token the page did not issue, fails."""
    status, _ = framework_audit(
        "django", framework_apps, "--login-token", 'csrfmiddlewaretoken=regex:name="(csrfmiddlewaretoken)"'
    )
    assert status == 2
    assert json.loads(capsys.readouterr().out)["message"].startswith("login failed")


# -- against the demo app -----------------------------------------------------------------------------
@pytest.mark.parametrize("logout", [GET_LOGOUT, POST_LOGOUT], ids=["GET", "POST+CSRF"])
def test_correct_logout_passes(app: DemoApp, logout: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = audit(app.url, *GUEST, *logout, capsys=capsys)
    assert status == 0, out
    assert "verdict: PASS (session invalidated)" in out
    assert "6. replay" in out and "302 -> /login" in out
    assert app.session_count() == 0  # the one session the audit made is gone


@pytest.mark.parametrize("logout", [GET_LOGOUT, POST_LOGOUT], ids=["GET", "POST+CSRF"])
def test_defective_logout_fails(
    defective_app: DemoApp, logout: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = audit(defective_app.url, *GUEST, *logout, capsys=capsys)
    assert status == 1, out
    assert "verdict: FAIL (old session still works)" in out
    assert defective_app.session_count() == 1  # the session the audit logged out is still on the server


@pytest.mark.parametrize(("fixture", "status"), [("app", 0), ("defective_app", 1)])
def test_http_basic_login(
    fixture: str, status: int, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    target: DemoApp = request.getfixturevalue(fixture)
    code, out, _ = audit(target.url, "--basic", "guest:guest", *GET_LOGOUT, "--json", capsys=capsys)
    result = json.loads(out)
    assert code == status == result["exit_status"]
    assert result["steps"][1]["note"].startswith("HTTP Basic as guest")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--username", "guest", "--password", "wrong", *GET_LOGOUT],
            "login failed: the login response set no",
        ),
        (["--basic", "guest:wrong", *GET_LOGOUT], "login failed"),
        (
            [*GUEST, "--logout-method", "POST", "--logout-path", "/logout", "--logout-form", "csrf=x"],
            "logout request was refused: POST /logout answered 403",
        ),
        (
            [
                *GUEST,
                "--logout-method",
                "POST",
                "--logout-path",
                "/logout",
                "--logout-form",
                "csrf={cookie:xsrf}",
            ],
            "needs the cookie(s) xsrf",
        ),
        ([*GUEST, *GET_LOGOUT, "--check-path", "/health"], "/health answers 200 without any session too"),
        ([*GUEST, *GET_LOGOUT, "--cookie-name", "sid"], "looked for the cookie 'sid'"),
        (
            [*GUEST, *GET_LOGOUT, "--alive-text", "not on the page"],
            "login failed: /account with the new session",
        ),
        (["--username", "guest", *GET_LOGOUT], "give --username and --password"),
        ([*GUEST, "--basic", "guest:guest"], "not both"),
        ([*GUEST, "--check-path", "account"], "--check-path 'account': expected a path"),
        ([*GUEST, "--logout-form", "csrf=x"], "needs a --logout-method that sends a body"),
    ],
)
def test_check_not_completed(
    app: DemoApp, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = audit(app.url, *args, capsys=capsys)
    assert status == 2
    assert "verdict: ERROR (could not complete the check)" in err and message in err


def test_nothing_listening(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    status, out, _ = audit(f"http://127.0.0.1:{port}", *GUEST, "--json", "--timeout", "2", capsys=capsys)
    result = json.loads(out)
    assert status == 2 and result["verdict"] == "error"
    assert result["message"] == f"GET http://127.0.0.1:{port}/account failed: Connection refused"


def test_json_names_the_verdict_and_keeps_the_id_secret(
    defective_app: DemoApp, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = audit(defective_app.url, *GUEST, *POST_LOGOUT, "--json", capsys=capsys)
    result = json.loads(out)  # one JSON object, nothing else on stdout
    assert status == 1
    assert result["verdict"] == "still-valid" and result["exit_status"] == 1
    assert result["session_cookie"] == "JSESSIONID" and result["logout_replaced_cookie"] is True
    steps = [(s["name"], s["status"]) for s in result["steps"]]
    assert steps == [
        ("anonymous", 302),
        ("page", 200),  # the login page first (its cookies kept, its form's token sent)
        ("login", 302),
        ("confirm", 200),
        ("logout", 200),
        ("replay", 200),
    ]
    assert len(result["session_id_sha256"]) == 16
    assert "JSESSIONID=" not in out and "csrftoken=" not in out  # no cookie value is printed


# -- the installed command, as a real process ---------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("defective", "status", "verdict"), [(False, 0, "invalidated"), (True, 1, "still-valid")]
)
def test_installed_command_json(defective: bool, status: int, verdict: str) -> None:
    with DemoApp(port=0, defective_logout=defective) as target:
        done = subprocess.run(
            [str(BIN / "logoutguard"), "audit-logout", target.url, *GUEST, *POST_LOGOUT, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == status, done.stderr
    assert json.loads(done.stdout)["verdict"] == verdict


@pytest.mark.e2e
def test_installed_command_human_output_and_bad_arguments(app: DemoApp) -> None:
    done = subprocess.run(
        [str(BIN / "logoutguard"), "audit-logout", app.url, "--basic", "guest:guest", *GET_LOGOUT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"audit-logout {app.url}: does the logout invalidate the session on the server?"
    assert lines[-1].startswith("verdict: PASS (session invalidated): the logout invalidated the session")
    unknown = subprocess.run(
        [str(BIN / "logoutguard"), "audit-logout", app.url, "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "unrecognized arguments: --no-such-option" in unknown.stderr
