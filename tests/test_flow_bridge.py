"""The flow bridge: flows -> Transactions and the session IDs they carry; the original of a rewritten saved flow."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from logoutguard.engine.transaction import byte_text
from logoutguard.flow_bridge import (
    META_KEY,
    REDACTED,
    carried_session_ids,
    from_request,
    headers_named,
    original_request_record,
    parse_raw_request,
    read_request,
    request_body,
    request_to_judge,
    set_cookie_values,
    with_response,
)
from logoutguard.sessions.cookies import SessionCookieMatcher
from logoutguard.sessions.identifiers import IdentifierRules, IdKind, SessionId

MATCHER = SessionCookieMatcher(None, ("JSESSIONID",))
RULES = IdentifierRules(sessions=MATCHER)


def flow_with(
    path: str = "/", headers: dict[str, str] | None = None, body: bytes = b"", live: bool = True
) -> http.HTTPFlow:
    request = tutils.treq(method=b"POST" if body else b"GET", path=path.encode(), content=body)
    request.headers.clear()
    request.headers.update({"Host": "app.test", **(headers or {})})
    flow = tflow.tflow(req=request, live=live)
    flow.client_conn.peername = ("192.0.2.10", 40000)
    return flow


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], []),
        (["lang=en; theme=dark"], []),
        (["sid=abc; lang=en"], [("sid", "abc")]),
        (["sid=abc", "JSESSIONID=j1"], [("sid", "abc"), ("JSESSIONID", "j1")]),
        (["sid=a; sid=b; sid=a"], [("sid", "a"), ("sid", "b")]),  # cookie tossing: both kept, once each
        (["  sid = abc ;;; ; =x; junk"], [("sid", "abc")]),
        (['sid="quoted"'], [("sid", '"quoted"')]),  # as the browser sends what it was given
        (["sid=; lang=en"], []),
    ],
)
def test_carried_session_ids(headers: list[str], expected: list[tuple[str, str]]) -> None:
    assert carried_session_ids(headers, SessionCookieMatcher()) == expected


def test_the_tracker_and_the_rules_see_the_same_cookie_pairs() -> None:
    flow = flow_with("/", {"Cookie": " JSESSIONID = a b ;x=1;;JSESSIONID=c"})
    seen = read_request(flow, RULES, 1024)
    assert [(s.name, s.value) for s in seen.session_ids] == [
        (n, v) for n, v in seen.tx.cookies if n == "JSESSIONID"
    ]


def test_read_request() -> None:
    flow = flow_with("/a?q=1", {"Cookie": "JSESSIONID=S1", "User-Agent": "ua/1"}, b"x=2")
    seen = read_request(flow, RULES, 1024)
    assert (seen.client, seen.user_agent, seen.live, seen.session_ids) == (
        "192.0.2.10",
        "ua/1",
        True,
        (SessionId(IdKind.COOKIE, "JSESSIONID", "S1", "JSESSIONID"),),
    )
    assert (seen.tx.method, seen.tx.path, seen.tx.query_args, seen.tx.body) == (
        "POST",
        "/a",
        (("q", "1"),),
        "x=2",
    )
    saved = flow_with(live=False)
    assert read_request(saved, RULES, 1024).at == saved.request.timestamp_start


def test_headers_are_named_as_mitmproxy_gives_them() -> None:
    fields = (
        (b"User-Agent", b"ua/1"),
        (b"X-Other", b"x"),
        (b"user-agent", b"caf\xc3\xa9 \xff"),  # UTF-8 and a byte that is not
        (b"AUTHORIZATION", b"Bearer T"),
        (b"User-Agent", b""),
    )
    names = frozenset({b"user-agent", b"authorization", b"content-encoding"})
    headers = http.Headers(fields)
    assert headers_named(fields, names) == {
        name: headers[name.decode()] for name in names if name.decode() in headers
    }
    assert headers_named(fields, names)[b"user-agent"] == "ua/1, caf\u00e9 \udcff, "


def test_every_kind_of_identifier_is_read() -> None:
    flow = flow_with(
        "/account;jsessionid=P1/x;v=2?q=;jsessionid=NOT-IN-THE-QUERY",
        {"Cookie": "JSESSIONID=C1; remember_token=R1; theme=dark", "Authorization": "Bearer T1"},
    )
    assert read_request(flow, RULES, 1024).session_ids == (
        SessionId(IdKind.COOKIE, "JSESSIONID", "C1", "JSESSIONID"),
        SessionId(IdKind.REMEMBER, "remember_token", "R1", "remember_token"),
        SessionId(IdKind.PATH, "jsessionid", "P1", "JSESSIONID"),
        SessionId(IdKind.BEARER, "authorization", "T1"),
    )


def test_the_body_is_read_as_the_application_reads_it() -> None:
    request = tutils.treq(content=b"")
    request.headers["Content-Encoding"] = "gzip"
    request.content = b"a=union select"  # mitmproxy encodes it
    assert request.raw_content != b"a=union select" and request_body(request) == b"a=union select"
    request.headers["Content-Encoding"] = "gzip"
    request.raw_content = b"not gzip"
    assert request_body(request) == b"not gzip"
    assert from_request(request, "", 4).body_length == len(b"not gzip")


def test_with_response() -> None:
    tx = from_request(tutils.treq())
    response = tutils.tresp(content=b"0123456789")
    out = with_response(tx, response, body_limit=4)
    assert out.response_status == 200 and out.response_body == "0123"


def test_parse_raw_request_accepts_bare_lf_and_refuses_garbage() -> None:
    tx = parse_raw_request(b"GET /x?a=1 HTTP/1.1\nHost: h\n\nbody")
    assert (tx.method, tx.path, tx.body) == ("GET", "/x", "body")
    with pytest.raises(ValueError):
        parse_raw_request(b"not http at all")


def test_a_rewritten_saved_flow_is_judged_on_its_original_request() -> None:
    attack = flow_with(
        "/search?q=<script>", {"Cookie": "JSESSIONID=S1", "Authorization": "Basic eA==", "X-A": "1"}
    )
    original = original_request_record(attack.request)
    assert ["Cookie", REDACTED] in original["headers"] and ["Authorization", REDACTED] in original["headers"]
    with_parameter = original_request_record(flow_with("/a;jsessionid=SECRET1?x=1").request)
    assert with_parameter["path"] == "/a;jsessionid=[redacted]?x=1"
    saved = flow_with("/logout", {"Cookie": "JSESSIONID=S1", "Authorization": "Basic eA=="}, live=False)
    saved.metadata[META_KEY] = {"original_request": original}
    judged = request_to_judge(saved)
    assert judged.path == "/search?q=<script>" and judged.headers["X-A"] == "1"
    assert judged.headers["Cookie"] == "JSESSIONID=S1" and judged.headers["Authorization"] == "Basic eA=="
    assert saved.request.path == "/logout"  # the saved flow itself is not changed
    live = flow_with("/logout", live=True)
    live.metadata[META_KEY] = {"original_request": original}
    assert request_to_judge(live) is live.request  # a live flow is judged as it arrived


def test_original_request_body_is_bounded() -> None:
    record = original_request_record(tutils.treq(content=b"x" * 70_000))
    assert record["body_length"] == 70_000 and len(record["body"]) == 64 * 1024


def test_a_websocket_message_is_judged_as_a_body_on_the_handshakes_path() -> None:
    from logoutguard.flow_bridge import from_websocket_message

    handshake = tutils.treq(path=b"/chat?room=1")
    handshake.headers.clear()
    handshake.headers.update({"Host": "app.test", "User-Agent": "UA", "Cookie": "sid=secret"})
    as_json = from_websocket_message(handshake, b'{"text": "<script>"}', "192.0.2.1")
    assert (as_json.path, as_json.query, as_json.body_args) == ("/chat", "", (("text", "<script>"),))
    assert dict(as_json.headers) == {
        "Host": "app.test",
        "User-Agent": "UA",
    }  # no cookie: judged at the handshake
    as_text = from_websocket_message(handshake, b"1' or '1'='1")
    assert as_text.body_args == (("websocket_message", "1' or '1'='1"),) and as_text.body == "1' or '1'='1"
    assert from_websocket_message(handshake, b"").body_args == ()


@pytest.mark.parametrize("encoding", ["", "gzip", "br", "bogus"])
def test_the_response_is_read_as_mitmproxy_decodes_it(encoding: str) -> None:
    response = tutils.tresp(content=b"<p>You have an error in your SQL syntax</p>")
    response.headers["Set-Cookie"] = "a=1"
    response.headers.add("set-COOKIE", "b=\xe9; Path=/")
    if encoding == "bogus":  # mitmproxy cannot decode it: the body is read as it is
        response.headers["Content-Encoding"] = encoding
    elif encoding:
        response.encode(encoding)
    tx = with_response(from_request(tutils.treq()), response, 20)
    body = response.get_content(strict=False) or b""
    assert tx.response_body == byte_text(body[:20]) and tx.response_status == response.status_code
    assert tx.response_headers == tuple((byte_text(k), byte_text(v)) for k, v in response.headers.fields)
    assert set_cookie_values(response) == response.headers.get_all("set-cookie") == ["a=1", "b=\xe9; Path=/"]
    if encoding in ("gzip", "br"):
        assert (
            response.raw_content != response.content
            and tx.response_body == "<p>You have an error in your"[:20]
        )
    response.raw_content = None
    assert with_response(from_request(tutils.treq()), response).response_body == ""
