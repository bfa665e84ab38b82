"""The demo application's HTTP server: routes, login, logout (correct or defective), and the DemoApp runner."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from . import pages
from .store import Session, SessionStore, new_token

SESSION_COOKIE = "JSESSIONID"
CSRF_COOKIE = "csrftoken"
USERS: dict[str, str] = {"guest": "guest", "admin": "admin"}
MAX_BODY_BYTES = 1 << 20
HTML = "text/html; charset=utf-8"
JSON = "application/json"


# ---------------------------------------------------------------- pure helpers


def parse_cookies(header: str | None) -> dict[str, str]:
    """Cookie header -> {name: value}; the first of repeated names wins; malformed pairs are skipped."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies.setdefault(name, value.strip().strip('"'))
    return cookies


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """`Authorization: Basic b64(user:password)` -> (user, password), or None when absent or malformed."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def check_password(user: str, password: str) -> bool:
    expected = USERS.get(user)
    return expected is not None and hmac.compare_digest(expected.encode(), password.encode())


def same_token(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def parse_form(body: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded body -> {name: first value}."""
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def session_cookie(session_id: str) -> str:
    return f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly"


def login_cookies(session_id: str, session: Session) -> tuple[str, ...]:
    return session_cookie(session_id), f"{CSRF_COOKIE}={session.csrf}; Path=/"


# ---------------------------------------------------------------- request, response, site


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""

    @classmethod
    def from_parts(cls, method: str, target: str, headers: Message, body: bytes = b"") -> Request:
        url = urlsplit(target)
        return cls(method, url.path or "/", parse_qs(url.query, keep_blank_values=True), headers, body)

    def arg(self, name: str) -> str:
        return self.query.get(name, [""])[0]


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = HTML
    headers: list[tuple[str, str]] = field(default_factory=list)
    cookies: list[str] = field(default_factory=list)
    keep_issued_cookies: bool = True  # False: drop the cookies of a Basic login made by this request


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who sent the request: a live session (from the cookie or a Basic login just made), or nobody."""

    session_id: str | None = None
    session: Session | None = None
    issued_cookies: tuple[str, ...] = ()


def html(status: int, page: str) -> Response:
    return Response(status, page.encode("utf-8"), HTML, [("Cache-Control", "no-store")])


def as_json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data).encode("utf-8"), JSON, [("Cache-Control", "no-store")])


def redirect(location: str, cookies: list[str] | None = None) -> Response:
    response = html(302, pages.message_page("Redirect", f"Redirecting to {location}"))
    response.headers.append(("Location", location))
    response.cookies.extend(cookies or [])
    return response


Route = Callable[[Request, Visitor], Response]


class DemoSite:
    """The application itself, without the network: Request -> Response, with sessions and items."""

    def __init__(self, defective_logout: bool = False, store: SessionStore | None = None) -> None:
        self.defective_logout = defective_logout
        self.store = store or SessionStore()
        self._items_lock = threading.Lock()
        self._items: list[dict[str, Any]] = [
            {"id": 1, "name": "WebGoat T-shirt", "price": 15.0, "owner": "admin"},
            {"id": 2, "name": "Security handbook", "price": 39.5, "owner": "admin"},
        ]
        self._routes: dict[tuple[str, str], Route] = {
            ("GET", "/"): self.home,
            ("GET", "/login"): self.login_form,
            ("POST", "/login"): self.login,
            ("GET", "/account"): self.protected(self.account),
            ("GET", "/search"): self.protected(self.search),
            ("GET", "/attack"): self.attack,
            ("POST", "/logout"): self.logout_post,
            ("GET", "/whoami"): self.whoami,
            ("GET", "/api/items"): self.list_items,
            ("POST", "/api/items"): self.add_item,
            ("GET", "/static/app.css"): self.stylesheet,
            ("GET", "/health"): self.health,
        }

    def handle(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        route = self._routes.get((method, request.path))
        if route is None:
            return self.no_route(request)
        visitor = self.identify(request)
        response = route(request, visitor)
        if response.keep_issued_cookies:
            response.cookies[:0] = visitor.issued_cookies
        return response

    def identify(self, request: Request) -> Visitor:
        """The session named by the cookie if live; else a Basic login if its credentials are right."""
        session_id = parse_cookies(request.headers.get("Cookie")).get(SESSION_COOKIE)
        session = self.store.get(session_id) if session_id else None
        if session is not None:
            return Visitor(session_id, session)
        credentials = basic_credentials(request.headers.get("Authorization"))
        if credentials is None or not check_password(*credentials):
            return Visitor()
        session_id, session = self.store.create(credentials[0])
        return Visitor(session_id, session, login_cookies(session_id, session))

    def no_route(self, request: Request) -> Response:
        allowed = sorted({m for m, p in self._routes if p == request.path})
        if not allowed:
            return html(404, pages.message_page("Not found", f"There is no page at {request.path}."))
        allow = ", ".join([*allowed, "HEAD"] if "GET" in allowed else allowed)
        response = html(405, pages.message_page("Method not allowed", f"{request.path} accepts {allow}."))
        response.headers.append(("Allow", allow))
        return response

    @staticmethod
    def protected(route: Route) -> Route:
        """Pages for logged-in users only: anyone else is sent to the login page."""

        def guarded(request: Request, visitor: Visitor) -> Response:
            return redirect("/login") if visitor.session is None else route(request, visitor)

        return guarded

    # -- pages

    def home(self, request: Request, visitor: Visitor) -> Response:
        session = visitor.session
        return html(200, pages.home_page(session and session.user, session and session.csrf))

    def login_form(self, request: Request, visitor: Visitor) -> Response:
        session = visitor.session
        return html(200, pages.login_page(None, session and session.user, session and session.csrf))

    def login(self, request: Request, visitor: Visitor) -> Response:
        form = parse_form(request.body)
        user = form.get("username", "")
        if not check_password(user, form.get("password", "")):
            return html(200, pages.login_page("Wrong user name or password."))
        session_id, session = self.store.create(user)
        return redirect("/account", list(login_cookies(session_id, session)))

    def account(self, request: Request, visitor: Visitor) -> Response:
        assert visitor.session is not None
        session = visitor.session
        return html(200, pages.account_page(session.user, session.csrf, session.created))

    def search(self, request: Request, visitor: Visitor) -> Response:
        assert visitor.session is not None
        return html(200, pages.search_page(request.arg("q"), visitor.session.user, visitor.session.csrf))

    def attack(self, request: Request, visitor: Visitor) -> Response:
        """WebGoat's lesson endpoint; `?Logout=true` is its logout link."""
        if request.arg("Logout").lower() == "true":
            return self.logout(visitor)
        if visitor.session is None:
            return redirect("/login")
        screen = request.arg("Screen")
        return html(
            200,
            pages.lessons_page(
                visitor.session.user,
                visitor.session.csrf,
                int(screen) if screen.isascii() and screen.isdigit() else None,
            ),
        )

    def logout_post(self, request: Request, visitor: Visitor) -> Response:
        """The CSRF-protected logout: the form field `csrf` must equal the session's token."""
        given = parse_form(request.body).get("csrf", "")
        if visitor.session is None or not same_token(given, visitor.session.csrf):
            page = pages.message_page("Forbidden", "Missing or wrong CSRF token: you are still logged in.")
            return html(403, page)
        return self.logout(visitor)

    def logout(self, visitor: Visitor) -> Response:
        """Send a fresh anonymous session id; delete the session on the server unless the logout is defective."""
        if visitor.session_id is not None and not self.defective_logout:
            self.store.delete(visitor.session_id)
        response = html(200, pages.logged_out_page())
        response.cookies.append(session_cookie(new_token()))
        response.keep_issued_cookies = False
        return response

    # -- machine-readable

    def whoami(self, request: Request, visitor: Visitor) -> Response:
        session = visitor.session
        return as_json(200, {"user": session and session.user, "session_valid": session is not None})

    def list_items(self, request: Request, visitor: Visitor) -> Response:
        with self._items_lock:
            return as_json(200, list(self._items))

    def add_item(self, request: Request, visitor: Visitor) -> Response:
        """POST a JSON object {"name": str, "price": number (optional)}; logged-in users only."""
        if visitor.session is None:
            response = as_json(401, {"error": "login required"})
            response.headers.append(("WWW-Authenticate", 'Basic realm="WebGoat Mini"'))
            return response
        try:
            data = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            return as_json(400, {"error": f"body is not JSON: {exc}"})
        problem = item_problem(data)
        if problem:
            return as_json(400, {"error": problem})
        with self._items_lock:
            item = {
                "id": len(self._items) + 1,
                "name": data["name"],
                "price": float(data.get("price", 0)),
                "owner": visitor.session.user,
            }
            self._items.append(item)
        return as_json(201, item)

    def stylesheet(self, request: Request, visitor: Visitor) -> Response:
        return Response(
            200, pages.APP_CSS.encode(), "text/css; charset=utf-8", [("Cache-Control", "max-age=3600")]
        )

    def health(self, request: Request, visitor: Visitor) -> Response:
        return Response(200, b"ok", "text/plain; charset=utf-8")


def item_problem(data: Any) -> str | None:
    """What is wrong with a posted item, or None."""
    if not isinstance(data, dict):
        return "expected a JSON object"
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        return "field 'name' must be a non-empty string"
    price = data.get("price", 0)
    if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
        return "field 'price' must be a number >= 0"
    return None


# ---------------------------------------------------------------- HTTP adapter


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_chunked(rfile: BinaryIO, limit: int) -> bytes:
    """Read a chunked request body (trailers skipped); BodyError when malformed or larger than `limit`."""
    body = bytearray()
    while True:
        size_line = rfile.readline(1024).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise BodyError(400, f"bad chunk size {size_line[:20]!r}") from None
        if size == 0:
            break
        if len(body) + size > limit:
            raise BodyError(413, f"request body larger than {limit} bytes")
        body += rfile.read(size)
        rfile.readline(1024)
    while rfile.readline(1024).strip():
        pass
    return bytes(body)


def read_body(headers: Message, rfile: BinaryIO, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read exactly the request's body (Content-Length or chunked) so the connection can be reused."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return read_chunked(rfile, limit)
    length_text = headers.get("Content-Length", "0").strip() or "0"
    if not (length_text.isascii() and length_text.isdigit()):
        raise BodyError(400, f"bad Content-Length {length_text[:20]!r}")
    length = int(length_text)
    if length > limit:
        raise BodyError(413, f"request body larger than {limit} bytes")
    return rfile.read(length)


class DemoHandler(BaseHTTPRequestHandler):
    """Reads one request, asks the DemoSite, writes the response with a Content-Length (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "WebGoatMini/0.1"
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    server: DemoServer

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self.serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def serve(self) -> None:
        try:
            body = read_body(self.headers, self.rfile)
        except BodyError as exc:
            self.close_connection = True
            self.write(html(exc.status, pages.message_page("Bad request", str(exc))))
            return
        request = Request.from_parts(self.command, self.path, self.headers, body)
        try:
            response = self.server.site.handle(request)
        except Exception:
            self.log_error("error handling %s %s:\n%s", self.command, self.path, traceback.format_exc())
            response = html(500, pages.message_page("Server error", "Something went wrong."))
        self.write(response)

    def write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        for cookie in response.cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)


class DemoServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its open connections, so stop() can close idle keep-alives."""

    daemon_threads = True

    def __init__(self, host: str, port: int, site: DemoSite, log_requests: bool) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.site = site
        self.log_requests = log_requests
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), DemoHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------- runners


class DemoApp:
    """The demo application on a real HTTP server in a background thread (for tests and the CLI).

    >>> app = DemoApp(port=0).start(); app.url  # doctest: +SKIP
    'http://127.0.0.1:41234'
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        defective_logout: bool = False,
        log_requests: bool = False,
    ) -> None:
        self.host = host
        self.site = DemoSite(defective_logout=defective_logout)
        self._requested_port = port
        self._log_requests = log_requests
        self._server: DemoServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> DemoApp:
        """Bind (OSError if the port is taken) and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("demo app already started")
        self._server = DemoServer(self.host, self._requested_port, self.site, self._log_requests)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-app", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and the listening socket; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("demo app not started: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def session_count(self) -> int:
        return self.site.store.count()

    def is_session_valid(self, session_id: str) -> bool:
        return self.site.store.get(session_id) is not None

    def __enter__(self) -> DemoApp:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(host: str, port: int, defective_logout: bool = False, log_requests: bool = True) -> int:
    """Run the demo app in the foreground until SIGINT or SIGTERM (the `logoutguard demo-app` command)."""
    app = DemoApp(port=port, host=host, defective_logout=defective_logout, log_requests=log_requests)
    try:
        app.start()
    except OSError as exc:
        print(f"demo app: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2  # bad input (a port in use): one line, status 2, as every command
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"demo app listening on {app.url}", flush=True)
        if defective_logout:
            print(
                "demo app: defective logout: logouts leave the old session valid", file=sys.stderr, flush=True
            )
        while not stopping.wait(1.0):
            pass
    finally:
        app.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
