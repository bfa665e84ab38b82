"""Requests to the application: where they go (the configured upstream), sent bounded in time, never raising."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from logoutguard.upstream_http import ANSWER_BODY_KEPT, Delivery, Upstream, send, wire
from procs import free_port, start_backend


async def test_send_goes_to_the_upstream_with_only_the_given_headers() -> None:
    app = start_backend()
    app.response_headers = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Location", "/x")]
    try:
        upstream = Upstream("http", "127.0.0.1", app.port)
        headers = [("Host", "evil.test"), ("X-A", "1"), ("Content-Length", "999")]
        delivery = await send(upstream, "POST", "/logout?x=1", headers, b"csrf=t", 5)
        assert (delivery.status, delivery.error, delivery.set_cookies) == (200, "", ["a=1", "b=2"])
        assert delivery.header("location") == "/x" and delivery.body == app.response_body
        [got] = app.received
        sent = dict(got.headers)
        assert (got.method, got.path, got.body) == ("POST", "/logout?x=1", b"csrf=t")
        assert (
            sent["Host"] == f"127.0.0.1:{app.port}" and sent["X-A"] == "1" and sent["Content-Length"] == "6"
        )
        assert "Accept-Encoding" not in sent
    finally:
        app.stop()


async def test_a_big_answer_is_kept_bounded() -> None:
    app = start_backend()
    app.response_body = b"x" * (ANSWER_BODY_KEPT + 1000)
    try:
        delivery = await send(Upstream("http", "127.0.0.1", app.port), "GET", "/", [], b"", 5)
        assert delivery.status == 200 and len(delivery.body) == ANSWER_BODY_KEPT
    finally:
        app.stop()


async def test_no_answer_is_an_error_within_the_timeout() -> None:
    refused = await send(Upstream("http", "127.0.0.1", free_port()), "GET", "/", [], b"", 2)
    assert refused.status is None and refused.error
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        started = time.monotonic()
        hung = await send(Upstream("http", "127.0.0.1", silent.getsockname()[1]), "GET", "/", [], b"", 0.5)
        assert hung.status is None and "imeout" in hung.error and time.monotonic() - started < 2
    finally:
        silent.close()


async def test_a_busy_loop_is_no_application_timeout() -> None:
    """The application answers in time, but while its answer waits in the socket the proxy's loop is
    busy (blocked) past the deadline: that is the proxy's lateness, not a silent application."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = threading.Event()

    def app() -> None:  # reads the request, answers 0.2 s later (inside the loop's stall below)
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            received.set()
            time.sleep(0.2)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    threading.Thread(target=app, daemon=True).start()
    loop = asyncio.get_running_loop()

    def stall_once_the_request_is_out() -> None:
        if not received.is_set():
            loop.call_later(0.001, stall_once_the_request_is_out)
            return
        time.sleep(1.0)  # the loop is busy far past the 0.3 s deadline; the answer comes at 0.2 s

    try:
        loop.call_soon(stall_once_the_request_is_out)
        delivery = await send(Upstream("http", "127.0.0.1", listener.getsockname()[1]), "GET", "/", [], b"", 0.3)
        assert (delivery.status, delivery.error, delivery.body) == (200, "", b"ok")
        assert delivery.elapsed_ms > 1000  # the stall happened while the answer was on its way
    finally:
        listener.close()


def test_wire_keeps_the_original_bytes() -> None:
    assert wire("ab\udcffc").encode("latin-1") == b"ab\xffc"
    assert Delivery(200, headers=[("X-A", "1")]).header("x-a") == "1" and Delivery().header("x") == ""
