"""A fast local HTTP/1.1 backend for end-to-end benchmarks: asyncio, keep-alive, fixed answers.

`python -m tests.bench.backend PORT` serves 200 with a small HTML body to every request (the body of
a request is read and dropped); GET /login also sets the session cookie named on the command line.
It does not record requests (tests/procs.py has the recording backend); it only has to be faster
than the proxy in front of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

BODY = b"<html><body>backend ok</body></html>"
SESSION_COOKIE = "JSESSIONID"
SESSION_ID = "bench5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"


def response(set_cookie: bool) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Type: text/html", b"Content-Length: %d" % len(BODY)]
    if set_cookie:
        head.append(f"Set-Cookie: {SESSION_COOKIE}={SESSION_ID}; Path=/; HttpOnly".encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + BODY


PLAIN, LOGIN = response(False), response(True)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if length:
                await reader.readexactly(length)
            writer.write(LOGIN if head.startswith(b"GET /login ") else PLAIN)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(sys.argv[1])))
