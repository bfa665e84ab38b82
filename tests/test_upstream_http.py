"""Requests to the application: where they go (the configured upstream), sent bounded in time, never raising."""

from __future__ import annotations

import asyncio
import socket
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
    """The application answers at once, but the proxy's loop is busy (blocked) past the deadline while
    the answer waits in the socket: that is the proxy's lateness, not a silent application."""
    app = start_backend()
    loop = asyncio.get_running_loop()

    def stall_once_the_app_has_answered() -> None:
        if not app.received:
            loop.call_later(0.001, stall_once_the_app_has_answered)
            return
        time.sleep(0.05)  # the answer is written right after the request is read
        time.sleep(1.0)  # the loop is busy far past the 0.3 s deadline

    try:
        loop.call_soon(stall_once_the_app_has_answered)
        delivery = await send(Upstream("http", "127.0.0.1", app.port), "GET", "/", [], b"", 0.3)
        assert (delivery.status, delivery.error) == (200, "")
        assert delivery.elapsed_ms > 1000  # the stall happened while the request was out
    finally:
        app.stop()


def test_wire_keeps_the_original_bytes() -> None:
    assert wire("ab\udcffc").encode("latin-1") == b"ab\xffc"
    assert Delivery(200, headers=[("X-A", "1")]).header("x-a") == "1" and Delivery().header("x") == ""
