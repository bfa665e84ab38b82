"""End to end, no way around the rules (issue 11): bodies over the inspection limit, counts over the
limits, the client's Host, and attacks where the rules did not look (headers, XML, WebSocket messages).

A real mitmdump in reverse mode with the addon in front of a real backend on 127.0.0.1; each flow's
record is read from the flows mitmdump saved (-w).
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import io as mitmio

from procs import Backend, Mitmdump, start_backend, start_mitmdump

pytestmark = pytest.mark.e2e

LIMIT = 128 * 1024
XSS = "<script>alert(document.cookie)</script>"


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = start_backend()
    yield b
    b.stop()


_started: list[Mitmdump] = []


@pytest.fixture(autouse=True)
def _stop_proxies() -> Iterator[None]:
    """Every mitmdump a test started is stopped, also when the test failed before `records()` (a proxy
    that stopped answering would otherwise run on after the test)."""
    yield
    while _started:
        _started.pop().stop()


class Proxy:
    """mitmdump with the addon saving its flows; `records()` stops it and reads LogoutGuard's records."""

    def __init__(self, backend: Backend, tmp: Path, *options: str) -> None:
        self.flows = tmp / f"flows-{len(list(tmp.glob('flows-*')))}.mitm"
        self.mitmdump: Mitmdump = start_mitmdump(
            backend.url, tmp, "guard_session_store=memory", *options, extra_args=("-w", str(self.flows))
        )
        _started.append(self.mitmdump)

    def send(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.mitmdump.port, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def records(self) -> list[dict[str, Any]]:
        self.mitmdump.stop()
        with open(self.flows, "rb") as fh:
            return [f.metadata["logoutguard"] for f in mitmio.FlowReader(fh).stream()]


def rule_ids(record: dict[str, Any]) -> list[int]:
    return [m["id"] for m in record["matches"]]


def padded_json(size: int) -> bytes:
    """An XSS at the start of a JSON body padded past the limit."""
    return json.dumps({"comment": XSS, "padding": "a" * size}).encode()


def padded_form(size: int) -> bytes:
    """A form whose XSS field comes after the padding (past the limit)."""
    return f"comment=ok&padding={'a' * size}&later={XSS}".encode()


def test_bodies_over_the_limit_are_refused_with_413(backend: Backend, tmp_path: Path) -> None:
    """Padded JSON and form bodies get 413 and never reach the application; an attack in the part
    kept is still judged as an attack first (the cut JSON body was parsed: 403 for its XSS)."""
    proxy = Proxy(backend, tmp_path)
    as_json = {"Content-Type": "application/json"}
    clean_json = json.dumps({"comment": "fine", "padding": "a" * LIMIT}).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    statuses = [
        proxy.send("POST", "/api", as_json, clean_json)[0],
        proxy.send("POST", "/form", form, padded_form(LIMIT))[0],
        proxy.send("POST", "/api", as_json, padded_json(LIMIT))[0],
        proxy.send("POST", "/form", form, b"comment=hello&name=Ana")[0],
    ]
    records = proxy.records()
    assert statuses == [413, 413, 403, 200]
    situations = ["body_over_limit", "body_over_limit", "anonymous_over_threshold", "clean"]
    assert [r["situation"] for r in records] == situations
    assert 941100 in rule_ids(records[2])
    assert [b.path for b in backend.received] == ["/form"]


def test_inspect_mode_judges_the_part_kept(backend: Backend, tmp_path: Path) -> None:
    """guard_body_limit_action=inspect: an attack at the start of a padded JSON body or in a form
    field before the cut is caught; a clean padded body passes (its rest unread)."""
    proxy = Proxy(backend, tmp_path, "guard_body_limit_action=inspect")
    statuses = [
        proxy.send("POST", "/api", {"Content-Type": "application/json"}, padded_json(LIMIT))[0],
        proxy.send(
            "POST",
            "/form",
            {"Content-Type": "application/x-www-form-urlencoded"},
            f"comment={XSS}&padding={'a' * LIMIT}".encode(),
        )[0],
        proxy.send(
            "POST",
            "/api",
            {"Content-Type": "application/json"},
            json.dumps({"comment": "fine", "padding": "a" * LIMIT}).encode(),
        )[0],
    ]
    records = proxy.records()
    assert statuses == [403, 403, 200]
    assert all(941100 in rule_ids(r) for r in records[:2])
    assert 920460 in rule_ids(records[2]) and records[2]["situation"] == "clean"


def test_a_cut_json_body_with_odd_blanks_gets_its_verdict(backend: Backend, tmp_path: Path) -> None:
    """A JSON body over the limit whose literal holds a form feed (or a no-break space) once held the
    proxy's event loop for ever (the cut body's reader stood still on it): each gets its answer, the
    next request too, and each flow its record."""
    proxy = Proxy(backend, tmp_path)
    statuses = []
    for blank in ("\x0c", "\xa0"):
        body = ('{"name": "x", "n": 1' + blank + '2, "tags": [1, {"a": "' + "b" * LIMIT + '"}]}').encode("latin-1")
        statuses.append(proxy.send("POST", "/api", {"Content-Type": "application/json"}, body)[0])
    statuses.append(proxy.send("GET", "/after")[0])
    records = proxy.records()
    assert statuses == [413, 413, 200]
    assert [r["situation"] for r in records] == ["body_over_limit", "body_over_limit", "clean"]


def test_ten_thousand_cookies_and_a_hundred_thousand_args_are_refused_unread(
    backend: Backend, tmp_path: Path
) -> None:
    """Over a count limit only rule 920395 is evaluated (the XSS in the same request is not even
    looked at) and the request is refused; under the limits the same XSS is caught as usual."""
    proxy = Proxy(backend, tmp_path)
    cookies = "; ".join(f"sessionid=s{n:06d}" for n in range(10_000))
    cookie_status, _ = proxy.send("GET", f"/?q={XSS}", {"Cookie": cookies})
    args = "&".join(f"a{n}=1" for n in range(100_000))
    args_status, _ = proxy.send("GET", f"/search?q={XSS}&{args}")
    plain_status, _ = proxy.send("GET", f"/?q={XSS}", {"Cookie": "sessionid=s1"})
    records = proxy.records()
    assert (cookie_status, args_status, plain_status) == (403, 403, 403)
    assert rule_ids(records[0]) == [920395] and records[0]["matches"][0]["excerpt"].endswith("10000 > 200")
    assert rule_ids(records[1]) == [920395] and records[1]["matches"][0]["excerpt"].endswith("100001 > 1000")
    assert 920395 not in rule_ids(records[2]) and 941100 in rule_ids(records[2])
    assert backend.received == []


def test_limits_are_options(backend: Backend, tmp_path: Path) -> None:
    proxy = Proxy(backend, tmp_path, "guard_max_cookies=3", "guard_max_headers=1000")
    status_over, _ = proxy.send("GET", "/", {"Cookie": "a=1; b=2; c=3; d=4"})
    status_under, _ = proxy.send("GET", "/", {"Cookie": "a=1; b=2; c=3"})
    records = proxy.records()
    assert (status_over, status_under) == (403, 200)
    assert rule_ids(records[0]) == [920395] and 920395 not in rule_ids(records[1])


def test_the_rules_see_the_host_the_client_sent(backend: Backend, tmp_path: Path) -> None:
    """At PL2 the numeric-IP Host rule (920350) is quiet for a host name and for `localhost:PORT`, and
    fires for a Host that is a numeric IP; the application still gets the upstream's Host."""
    proxy = Proxy(backend, tmp_path, "guard_paranoia=2")
    port = proxy.mitmdump.port
    statuses = [
        proxy.send("GET", "/", {"Host": f"localhost:{port}"})[0],
        proxy.send("GET", "/", {"Host": "shop.example.test"})[0],
        proxy.send("GET", "/", {"Host": "203.0.113.9"})[0],
    ]
    records = proxy.records()
    assert statuses[:2] == [200, 200]  # (the numeric one may also score missing client headers)
    assert [920350 in rule_ids(r) for r in records] == [False, False, True]
    upstream = f"127.0.0.1:{backend.port}"
    assert [dict(r.headers)["Host"] for r in backend.received][:2] == [upstream] * 2


def test_attacks_in_headers_cookie_names_xml_and_split_arguments_are_caught(
    backend: Backend, tmp_path: Path
) -> None:
    proxy = Proxy(backend, tmp_path)
    sqli = "1' UNION SELECT password FROM users--"
    xml = {"Content-Type": "application/xml"}
    attacks = [
        ("GET", "/", {"X-Tenant-Id": sqli}, b""),
        ("GET", "/", {"Accept-Language": XSS}, b""),
        ("GET", "/", {"X-Forwarded-For": "10.0.0.1; cat /etc/passwd"}, b""),
        ("GET", "/", {"Cookie": "<img src=x onerror=alert(1)>=1"}, b""),
        ("POST", "/api", xml, f"<order><id>{sqli}</id></order>".encode()),
        ("POST", "/api", xml, b'<order note="&lt;script&gt;alert(1)&lt;/script&gt;"/>'),
        ("GET", "/s?q=1%26%2339%3B%20OR%20%26%2339%3B1%26%2339%3B%3D%26%2339%3B1", {}, b""),
        ("GET", "/s?id=1%20UNION/*&id=*/SELECT%20password%20FROM%20users", {}, b""),
    ]
    statuses = [proxy.send(method, path, headers, body)[0] for method, path, headers, body in attacks]
    benign = [
        ("GET", "/", {"Accept-Language": "en-US,en;q=0.9", "X-Forwarded-For": "10.0.0.1, 10.0.0.2"}, b""),
        (
            "POST",
            "/api",
            xml,
            b"<order><note>Tom &amp; Jerry's order</note><item qty='2'>shoes</item></order>",
        ),
        ("GET", "/s?tag=red&tag=blue&tag=o%27brien", {}, b""),
    ]
    benign_statuses = [proxy.send(method, path, headers, body)[0] for method, path, headers, body in benign]
    records = proxy.records()
    assert statuses == [403] * len(attacks), [rule_ids(r) for r in records]
    assert benign_statuses == [200] * len(benign), [rule_ids(r) for r in records[len(attacks) :]]
    targets = [m["target"] for r in records[: len(attacks)] for m in r["matches"]]
    assert any(t == "REQUEST_HEADERS_TEXT:X-Tenant-Id" for t in targets)
    assert any(t == "ARGS:order/id" for t in targets)
    assert any(t == "ARGS_JOINED:id" for t in targets)


class EchoServer:
    """A WebSocket application on 127.0.0.1 that records every message it gets and echoes it."""

    def __init__(self) -> None:
        self.received: list[str | bytes] = []
        self.port = 0
        self._server: Any = None

    async def __aenter__(self) -> EchoServer:
        from websockets.asyncio.server import serve

        async def echo(connection: Any) -> None:
            async for message in connection:
                self.received.append(message)
                await connection.send(message)

        self._server = await serve(echo, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


def test_websocket_messages_are_judged_with_the_request_rules(tmp_path: Path) -> None:
    """A client's messages after the handshake meet the request rules: a benign one reaches the
    application and comes back; an attack (as text or in a JSON message) is dropped and the
    connection closed, and never reaches the application."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def scenario(payload: str) -> tuple[list[str | bytes], list[str | bytes], bool]:
        async with EchoServer() as app:
            proxy = start_mitmdump(f"http://127.0.0.1:{app.port}", tmp_path, "guard_session_store=memory")
            try:
                answers: list[str | bytes] = []
                closed = False
                async with connect(f"ws://127.0.0.1:{proxy.port}/chat", open_timeout=30) as ws:
                    await ws.send('{"text": "hello, it\'s Ana"}')
                    answers.append(await asyncio.wait_for(ws.recv(), 30))
                    await ws.send(payload)
                    try:
                        answers.append(await asyncio.wait_for(ws.recv(), 30))
                    except ConnectionClosed:
                        closed = True
                return app.received, answers, closed
            finally:
                proxy.stop()

    for payload in (
        '{"text": "<script>alert(document.cookie)</script>"}',
        "1' UNION SELECT password FROM users--",
    ):
        received, answers, closed = asyncio.run(scenario(payload))
        assert received == ['{"text": "hello, it\'s Ana"}'], payload
        assert answers == ['{"text": "hello, it\'s Ana"}'] and closed, payload
