"""policy_learner: each finding on small recorded sessions, the policy it writes loads, and what it refuses.

The recordings here are written out by hand in the shape real applications answer (the framework apps'
own recordings through mitmdump -w are learned in tests/e2e/test_framework_logout.py).
"""

from __future__ import annotations

import base64
import json
import zlib

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from logoutguard.policy import SourceKind, TokenSource, parse_policy
from logoutguard.policy_learner import (
    Exchange,
    LearnError,
    checked_source,
    is_data_cookie,
    learn,
    to_yaml,
)

FORM = ("Content-Type", "application/x-www-form-urlencoded")
GONE = "Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"
ACCOUNT = b"<h1>Account</h1><p>Signed in as alice</p><form method=post action=/logout>%s<button>Log out</button></form>"
LOGIN_FORM = b"<h1>Log in</h1><form method=post action=/login><input name=username><input type=password name=password></form>"


class Recording:
    """Exchanges in order, written as a user's session goes."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def add(
        self,
        method: str,
        path: str,
        status: int | None,
        *,
        cookie: str = "",
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        answer: bytes = b"",
        set_cookies: tuple[str, ...] = (),
        location: str = "",
        answer_headers: tuple[tuple[str, str], ...] = (),
    ) -> Recording:
        request_headers = (("Host", "app.example"), *headers) + ((("Cookie", cookie),) if cookie else ())
        response_headers = tuple(("Set-Cookie", c) for c in set_cookies) + answer_headers
        if location:
            response_headers += (("Location", location),)
        self.exchanges.append(
            Exchange(
                len(self.exchanges) + 1,
                method,
                path,
                request_headers,
                body,
                status,
                response_headers,
                answer,
            )
        )
        return self


def server_session(
    token_form: bytes = b"<input type=hidden name=csrf value=TOKEN-after-login-1234>",
) -> Recording:
    """An app with a server-side session rotated at login, a CSRF token in the logout form, a deleting logout."""
    return (
        Recording()
        .add("GET", "/login", 200, answer=LOGIN_FORM, set_cookies=("SID=anon0001; Path=/",))
        .add(
            "POST",
            "/login",
            302,
            cookie="SID=anon0001",
            headers=(FORM,),
            body=b"username=alice&password=secret",
            set_cookies=("SID=auth0002; Path=/; HttpOnly",),
            location="/account",
        )
        .add("GET", "/account", 200, cookie="SID=auth0002", answer=ACCOUNT % token_form)
        .add(
            "POST",
            "/logout",
            302,
            cookie="SID=auth0002",
            headers=(FORM,),
            body=b"csrf=TOKEN-after-login-1234",
            set_cookies=(f"SID=; {GONE}",),
            location="/login",
        )
        .add("GET", "/login", 200, answer=LOGIN_FORM, set_cookies=("SID=anon0003; Path=/",))
        .add("GET", "/account", 302, cookie="SID=anon0003", location="/login?next=%2Faccount")
    )


def test_a_server_side_session_with_a_form_token() -> None:
    learned = learn(server_session().exchanges, "app")
    policy = learned.policy
    assert policy["session"] == {"cookies": ["SID"], "authenticated": {"login_paths": ["/login"]}}
    logout = policy["logout"]
    assert logout["steps"] == [
        {"path": "/account", "take": {"csrf": {"form_field": "csrf", "form_action": "/logout"}}}
    ]
    assert (logout["method"], logout["path"], logout["body"]) == ("POST", "/logout", "csrf={token:csrf}")
    assert logout["expect_status"] == [302]
    assert logout["client_response"] == {"type": "redirect", "location": "/login"}
    assert logout["verify"] == {
        "check_path": "/account",
        "logged_in": {"status": 200, "marker": "Signed in as"},  # the user's name left out
        "logged_out": {"status": 302, "location": "/login"},
    }
    assert policy["actions"] == {"revoked_session": "redirect", "redirect_location": "/login"}
    assert any("token csrf (body field csrf): form_field 'csrf' of GET /account" in n for n in learned.notes)
    loaded = parse_policy(yaml.safe_load(to_yaml(learned, "rec.mitm")))  # what the loader reads
    assert loaded.logout.steps[0].take == (("csrf", TokenSource(SourceKind.FORM_FIELD, "csrf", "/logout")),)


def test_the_written_file_names_its_evidence() -> None:
    text = to_yaml(learn(server_session().exchanges), "rec.mitm")
    assert text.startswith("# LogoutGuard policy learned from rec.mitm")
    assert "#   logout: POST /logout (flow 4, answered 302): its answer deleted the cookie(s) SID" in text


@pytest.mark.parametrize(
    ("answer", "answer_headers", "source"),
    [
        (b'<meta name="csrf-token" content="TOKEN-after-login-1234">', (), {"meta": "csrf-token"}),
        (b'{"data": {"csrf": "TOKEN-after-login-1234"}}', (), {"json": "data.csrf"}),
        (b"<p>hi</p>", (("X-CSRF-Token", "TOKEN-after-login-1234"),), {"header": "X-CSRF-Token"}),
        (
            b"<script>var token = 'TOKEN-after-login-1234';</script>",
            (),
            {"regex": r"<script>var\ token\ =\ '([^\"'<>\s&;]+)"},
        ),
    ],
)
def test_every_kind_of_token_source(
    answer: bytes, answer_headers: tuple[tuple[str, str], ...], source: dict
) -> None:
    rec = server_session()
    rec.exchanges[2] = Exchange(
        3, "GET", "/account", (("Cookie", "SID=auth0002"),), b"", 200, answer_headers, answer
    )
    step = learn(rec.exchanges).policy["logout"]["steps"][0]
    assert step == {"path": "/account", "take": {"csrf": source}}


def test_a_token_in_a_cookie_the_application_set_and_in_a_header() -> None:
    """Double submit: the logout's X-XSRF-TOKEN header carries the XSRF-TOKEN cookie's value."""
    rec = server_session()
    rec.exchanges[2] = Exchange(
        3,
        "GET",
        "/account",
        (("Cookie", "SID=auth0002"),),
        b"",
        200,
        (("Set-Cookie", "XSRF-TOKEN=xsrf-value-98765; Path=/"),),
        ACCOUNT % b"",
    )
    rec.exchanges[3] = Exchange(
        4,
        "POST",
        "/logout",
        (("Cookie", "SID=auth0002; XSRF-TOKEN=xsrf-value-98765"), ("X-XSRF-TOKEN", "xsrf-value-98765")),
        b"",
        204,
        (("Set-Cookie", f"SID=; {GONE}"),),
        b"",
    )
    logout = learn(rec.exchanges).policy["logout"]
    assert logout["steps"] == [{"path": "/account", "take": {"csrf": {"cookie": "XSRF-TOKEN"}}}]
    assert logout["headers"] == {"X-XSRF-TOKEN": "{token:csrf}"}
    assert "body" not in logout and logout["expect_status"] == [204]


def test_checked_source_gives_back_the_value_or_nothing() -> None:
    ex = Exchange(
        1, "GET", "/a", status=200, response_body=b"<form action=/x><input name=t value=abc12345></form>"
    )
    assert checked_source(ex, "abc12345", "/x") == TokenSource(SourceKind.FORM_FIELD, "t", "/x")
    assert checked_source(ex, "zzz99999", "/x") is None


def test_a_literal_field_stays_and_an_unexplained_token_is_refused() -> None:
    rec = server_session()
    rec.exchanges[3] = Exchange(
        4,
        "POST",
        "/logout",
        (FORM, ("Cookie", "SID=auth0002")),
        b"csrf=TOKEN-after-login-1234&next=%2Fhome",
        302,
        (("Set-Cookie", f"SID=; {GONE}"),),
    )
    learned = learn(rec.exchanges)
    assert learned.policy["logout"]["body"] == "csrf={token:csrf}&next=%2Fhome"
    assert "logout body field next: kept as recorded ('/home')" in learned.notes
    rec.exchanges[2] = Exchange(
        3, "GET", "/account", (("Cookie", "SID=auth0002"),), b"", 200, (), ACCOUNT % b""
    )
    with pytest.raises(LearnError, match="body field csrf carries a value no earlier answer issued"):
        learn(rec.exchanges)


def test_a_logout_that_deletes_nothing_is_found_by_its_path_and_told_by_the_body() -> None:
    """Servlet-like: the logout answer leaves the cookie; logged out, the check page shows the login form (200)."""
    login_page = b'<form method="post" action="j_security_check"><input name=j_username><input type=password name=j_password></form>'
    rec = (
        Recording()
        .add("GET", "/account/", 200, answer=login_page, set_cookies=("JSESSIONID=A1; Path=/",))
        .add(
            "POST",
            "/account/j_security_check",
            303,
            cookie="JSESSIONID=A1",
            headers=(FORM,),
            body=b"j_username=alice&j_password=x",
            set_cookies=("JSESSIONID=B2; Path=/",),
            location="/account/",
        )
        .add("GET", "/account/", 200, cookie="JSESSIONID=B2", answer=ACCOUNT % b"")
        .add("GET", "/help", 200, cookie="JSESSIONID=B2", answer=b"help")
        .add("POST", "/logout", 302, cookie="JSESSIONID=B2", location="/")
        .add(
            "GET", "/account/", 200, cookie="JSESSIONID=B2", answer=login_page, set_cookies=("JSESSIONID=C3",)
        )
    )
    learned = learn(rec.exchanges)
    policy = learned.policy
    assert policy["session"]["cookies"] == ["JSESSIONID"]
    assert policy["session"]["authenticated"] == {"login_paths": ["/account/j_security_check"]}
    assert (policy["logout"]["method"], policy["logout"]["path"]) == ("POST", "/logout")
    assert "steps" not in policy["logout"] and "body" not in policy["logout"]
    assert policy["logout"]["verify"] == {
        "check_path": "/account/",
        "logged_in": {"status": 200, "marker": "Signed in as"},
        "logged_out": {"status": 200, "marker": "j_security_check"},
    }
    assert policy["actions"] == {"revoked_session": "deny"}
    assert "its path looks like a logout (/logout)" in learned.notes[1]


def _itsdangerous(data: dict, compressed: bool) -> str:
    raw = json.dumps(data).encode()
    if compressed:
        raw = zlib.compress(raw)
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return ("." if compressed else "") + text + ".axQ-Yw.signature_part"


def test_a_signed_cookie_session_with_remember_me() -> None:
    """Flask-like: the session cookie is signed data (kept_in: cookie); remember_token is issued at the
    login and deleted at the logout, the session cookie replaced."""
    before, after = (
        _itsdangerous({"csrf": "x"}, False),
        _itsdangerous({"_user_id": "alice", "_fresh": True}, True),
    )
    rec = server_session()
    ex = rec.exchanges
    ex[1] = Exchange(
        2,
        "POST",
        "/login",
        (FORM, ("Cookie", f"session={before}")),
        b"username=alice&password=secret&remember=y",
        302,
        (
            ("Set-Cookie", "remember_token=alice|abc; Expires=Sun, 05 Dec 2100 16:40:04 GMT; Path=/"),
            ("Set-Cookie", f"session={after}; HttpOnly; Path=/"),
        ),
    )
    ex[2] = Exchange(3, "GET", "/account", (("Cookie", f"session={after}; remember_token=alice|abc"),), b"", 200, (),
                     ACCOUNT % b"<input type=hidden name=csrf value=TOKEN-after-login-1234>")  # fmt: skip
    ex[3] = Exchange(
        4,
        "POST",
        "/logout",
        (FORM, ("Cookie", f"session={after}; remember_token=alice|abc")),
        b"csrf=TOKEN-after-login-1234",
        302,
        (("Set-Cookie", f"remember_token=; {GONE}"), ("Set-Cookie", f"session={before}; Path=/")),
    )
    session = learn(ex).policy["session"]
    assert session == {
        "cookies": ["session"],
        "remember_cookies": ["remember_token"],
        "kept_in": "cookie",
        "authenticated": {"login_paths": ["/login"]},
    }


@pytest.mark.parametrize(
    ("value", "data"),
    [
        (_itsdangerous({"a": 1}, False), True),
        (_itsdangerous({"a": 1}, True), True),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl", True),  # a JWT
        ("s%3A2mnTJ9wQG01nldyHwJ-mLz8MJPBhUZls.dlEhnGXzsrYuF3F2bVbpbUxSpbFT%2BZfGYivX4XOvmKg", False),
        ("8nfus2tp7iqkr5p38ys03girmlfwb74t", False),
        ("DF9226FBDF6B7427BE50EE595ADBCC0E", False),
        ("", False),
    ],
)
def test_is_data_cookie(value: str, data: bool) -> None:
    assert is_data_cookie(value) is data


def test_no_login_no_logout() -> None:
    with pytest.raises(LearnError, match="no login in the recording"):
        learn(Recording().add("GET", "/", 200).exchanges)
    rec = server_session()
    del rec.exchanges[3:]
    with pytest.raises(LearnError, match="no logout after the login"):
        learn(rec.exchanges)


def test_a_refused_login_is_no_login() -> None:
    rec = server_session()
    first = rec.exchanges[1]
    rec.exchanges[1] = Exchange(2, "POST", "/login", first.request_headers, first.request_body, 403)
    with pytest.raises(LearnError, match="no login"):
        learn(rec.exchanges)


def test_without_a_visit_after_the_logout_the_check_page_is_compared_with_an_anonymous_answer() -> None:
    rec = server_session()
    del rec.exchanges[4:]
    learned = learn(rec.exchanges)
    assert learned.policy["logout"]["verify"] == {"check_path": "/account"}
    assert any("compares it with an anonymous answer" in n for n in learned.notes)
    parse_policy(learned.policy)


def test_a_login_after_the_logout_is_not_the_one_learned() -> None:
    """The user logs in again at the end of the recording: the login the logout follows is learned."""
    rec = server_session().add(
        "POST",
        "/login",
        302,
        cookie="SID=anon0003",
        headers=(FORM,),
        body=b"username=alice&password=secret",
        set_cookies=("SID=auth0004; Path=/",),
        location="/account",
    )
    learned = learn(rec.exchanges)
    assert learned.notes[0] == "login: POST /login (flow 2, answered 302)"
    assert learned.policy["logout"]["path"] == "/logout"


_TEXT = st.sampled_from(["/login", "/logout", "/account", "/", "/a?x=1"])
_BODY = st.sampled_from(
    [b"", b"username=a&password=b", b"csrf=TOKEN-after-login-1234", b"{", b"\xff\xfe", b"[[[[1]]]]"]
)
_COOKIES = st.sampled_from(["", "SID=a", "SID=; Max-Age=0", "SID=b; Expires=nonsense", "=x", "remember_me=1"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST"]),
            _TEXT,
            _BODY,
            st.one_of(st.none(), st.sampled_from([200, 302, 403, 500])),
            _COOKIES,
            _BODY,
        ),
        max_size=8,
    )
)
def test_any_recording_gives_a_policy_that_loads_or_a_learn_error(rows: list) -> None:
    rec = Recording()
    for method, path, body, status, set_cookie, answer in rows:
        rec.add(
            method,
            path,
            status,
            cookie="SID=a",
            headers=(FORM,) if body else (),
            body=body,
            answer=answer,
            set_cookies=(set_cookie,) if set_cookie else (),
            location="/login" if status == 302 else "",
        )
    try:
        learned = learn(rec.exchanges)
    except LearnError:
        return
    parse_policy(learned.policy)  # what it writes, the loader takes


def test_a_multipart_logout_form() -> None:
    rec = server_session()
    old = rec.exchanges[3]
    body = b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nTOKEN-after-login-1234\r\n--b--\r\n'
    rec.exchanges[3] = Exchange(
        4,
        "POST",
        "/logout",
        (("Content-Type", "multipart/form-data; boundary=b"), ("Cookie", "SID=auth0002")),
        body,
        302,
        old.response_headers,
    )
    logout = learn(rec.exchanges).policy["logout"]
    assert logout["steps"][0]["take"] == {"csrf": {"form_field": "csrf", "form_action": "/logout"}}
    assert "TOKEN" not in logout["body"] and "{token:csrf}" in logout["body"]
    assert logout["content_type"] == "multipart/form-data; boundary=b"
