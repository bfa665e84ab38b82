"""A deliberately vulnerable web application for the outside yardstick (listens on 127.0.0.1 only).

Every flaw is real: the SQL runs in SQLite, the shell runs (confined: no network, user nobody), files
are read, templates evaluated, XML entities resolved from local files. Never run it anywhere but on
loopback for the yardstick. Injection points:

| class | where | context |
|---|---|---|
| sqli | GET /items?id= | numeric, SQLite error text shown (error/boolean/UNION) |
| sqli | GET /search?q= | string in LIKE '%...%', errors shown |
| sqli | POST /login username, password (form) | string, blind (errors hidden, welcome vs refused) |
| sqli | POST /api/items {"category": ...} (JSON) | string, error shown as JSON |
| sqli | GET /greeting, cookie lang | string (percent-decoded, as PHP does), blind |
| sqli | GET /report, header X-Tenant-Id | numeric (`... AND 1 = {value}`), blind |
| cmdi | GET /ping?host= | `ping -c 1 {host}` through /bin/sh |
| cmdi | POST /tools/lookup name (form) | `grep -i {name} .../hosts.txt` through /bin/sh |
| traversal | GET /download?file= | open(files/ + file) |
| xss | GET /hello?name= | reflected, unescaped |
| xss | POST /guestbook author, message | stored, unescaped on GET /guestbook |
| ssti | GET /preview?template= | Jinja2 from the string (sandboxed: expressions evaluate, no Python escape) |
| xxe | POST /xml/import xml= (form) or an XML body | lxml, entities resolved, local files only |
| ssrf | GET /fetch?url= | fetched only when the host is loopback, body echoed |
| upload | POST /upload (multipart) | any name and type kept, served back under /uploads/ |

Safe endpoints for benign traffic: POST /contact (form), GET /docs?q=, POST /api/notes (JSON), all
parameterised and escaped.

Every response carries `X-Yardstick-Served: 1` (added by a WSGI wrapper, so Flask's own error pages
carry it too): a response without it was made by a proxy in front. When `--log` is given, every request
the application handles is appended as a JSON line with its `X-Yardstick-Req` header (set by the
harness's tap), so the harness knows which requests reached the application.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shlex
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree
from werkzeug.serving import make_server

from .confine import confined_child, forbid_outside_network, is_loopback_host, sandbox_works

SERVED_HEADER = "X-Yardstick-Served"
REQUEST_ID_HEADER = "X-Yardstick-Req"
HOST = "127.0.0.1"
MAX_READ = 64 * 1024
USERS = [
    (1, "admin", "s3cr3t-Admin!", "admin"),
    (2, "alice", "wonderland", "user"),
    (3, "bob", "builder", "user"),
]
ITEMS = [
    (1, "hammer", "tools", 12.5),
    (2, "screwdriver", "tools", 4.2),
    (3, "teapot", "kitchen", 19.0),
    (4, "kettle", "kitchen", 25.0),
    (5, "notebook", "office", 3.1),
]
GREETINGS = [("en", "Hello"), ("de", "Hallo"), ("fr", "Bonjour")]
HOSTS_TXT = "127.0.0.1 localhost\n127.0.1.1 yardstick.test\n::1 ip6-localhost\n"
FILES = {"readme.txt": "Welcome to the yardstick target.\n", "manual.txt": "Read the manual.\n"}


def page(title: str, body: str) -> Response:
    text = (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
        f'<p><a href="/">home</a></p><h1>{html.escape(title)}</h1>{body}</body></html>'
    )
    return Response(text, mimetype="text/html")


INDEX = """
<ul>
<li><a href="/items?id=1">item 1</a> <a href="/items?id=3">item 3</a></li>
<li><a href="/search?q=tea">search "tea"</a></li>
<li><a href="/greeting">greeting</a> (cookie lang) <a href="/report">report</a> (header X-Tenant-Id)</li>
<li><a href="/ping?host=127.0.0.1">ping localhost</a></li>
<li><a href="/download?file=readme.txt">readme</a></li>
<li><a href="/hello?name=visitor">hello</a></li>
<li><a href="/guestbook">guestbook</a></li>
<li><a href="/preview?template=Hello+%7B%7B+name+%7D%7D">template preview</a></li>
<li><a href="/fetch?url=http%3A%2F%2F127.0.0.1%2Fstatus">status via fetch</a></li>
<li><a href="/docs?q=manual">documentation</a> <a href="/contact">contact</a></li>
<li><a href="/openapi.json">API description</a></li>
</ul>
<form action="/login" method="post"><input name="username" value="alice">
<input type="password" name="password" value="wonderland"><input type="submit" value="log in"></form>
<form action="/tools/lookup" method="post"><input name="name" value="localhost"><input type="submit"></form>
<form action="/xml/import" method="post"><textarea name="xml">&lt;item&gt;&lt;name&gt;lamp&lt;/name&gt;&lt;/item&gt;</textarea>
<input type="submit" value="import"></form>
<form action="/upload" method="post" enctype="multipart/form-data"><input type="file" name="file">
<input type="submit" value="upload"></form>
"""

OPENAPI = {
    "openapi": "3.0.0",
    "info": {"title": "yardstick target", "version": "1"},
    "servers": [{"url": "/"}],
    "paths": {
        "/api/items": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"category": {"type": "string", "example": "tools"}},
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "items"}},
            }
        },
        "/api/notes": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "title": {"type": "string", "example": "shopping"},
                                    "text": {"type": "string", "example": "milk"},
                                },
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "stored"}},
            }
        },
    },
}


class Store:
    """The SQLite file of the target (one connection per request; a lock serialises writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        with self.connect() as db:
            db.executescript(
                "DROP TABLE IF EXISTS users; DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS greetings;"
                "DROP TABLE IF EXISTS comments; DROP TABLE IF EXISTS notes; DROP TABLE IF EXISTS messages;"
                "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, pw TEXT, role TEXT);"
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);"
                "CREATE TABLE greetings (lang TEXT, text TEXT);"
                "CREATE TABLE comments (id INTEGER PRIMARY KEY, author TEXT, message TEXT);"
                "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, text TEXT);"
                "CREATE TABLE messages (id INTEGER PRIMARY KEY, name TEXT, email TEXT, subject TEXT, body TEXT);"
            )
            db.executemany("INSERT INTO users VALUES (?,?,?,?)", USERS)
            db.executemany("INSERT INTO items VALUES (?,?,?,?)", ITEMS)
            db.executemany("INSERT INTO greetings VALUES (?,?)", GREETINGS)

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run attacker-shaped SQL read-only (the flaw is the string building in the callers)."""
        with self.connect() as db:
            db.execute("PRAGMA query_only = ON")
            return db.execute(sql).fetchall()

    def write(self, sql: str, params: Iterable[Any], keep: int = 0, table: str = "") -> None:
        with self.lock, self.connect() as db:
            db.execute(sql, tuple(params))
            if keep and table:
                db.execute(
                    f"DELETE FROM {table} WHERE id NOT IN (SELECT id FROM {table} ORDER BY id DESC LIMIT {keep})"
                )


def sql_error(exc: Exception) -> str:
    return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"


def run_shell(command: str) -> str:
    """/bin/sh -c COMMAND in the confined child (no network, user nobody), 10 s at most."""
    try:
        done = subprocess.run(
            command,
            shell=True,  # the flaw under test
            preexec_fn=confined_child,
            capture_output=True,
            timeout=10,
            cwd="/tmp",
        )
    except subprocess.TimeoutExpired:
        return "(timed out)"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(shell failed: {exc})"
    return (done.stdout + done.stderr)[:MAX_READ].decode("utf-8", "replace")


def _local_only_parser() -> etree.XMLParser:
    parser = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=True, huge_tree=False)

    class LocalFiles(etree.Resolver):
        def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
            if url and urllib.parse.urlsplit(url).scheme not in ("", "file"):
                raise ValueError(f"only local files: {url}")
            return None  # libxml2 reads the local file itself

    parser.resolvers.add(LocalFiles())
    return parser


def fetch_loopback(url: str) -> tuple[int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not is_loopback_host(parts.hostname or ""):
        return 400, "only http(s) URLs on loopback are fetched"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return 200, answer.read(MAX_READ).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return 200, f"upstream said {exc.code}"
    except (OSError, ValueError) as exc:
        return 502, f"fetch failed: {exc}"


def create_app(data_dir: Path) -> Flask:
    data_dir.mkdir(parents=True, exist_ok=True)
    files_dir = data_dir / "files"
    uploads = data_dir / "uploads"
    files_dir.mkdir(exist_ok=True)
    uploads.mkdir(exist_ok=True)
    for name, text in FILES.items():
        (files_dir / name).write_text(text)
    (data_dir / "hosts.txt").write_text(HOSTS_TXT)
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "hosts.txt", 0o644)
    store = Store(data_dir / "target.sqlite")
    templates = SandboxedEnvironment(autoescape=False)
    shell_ok = sandbox_works()
    app = Flask("yardstick-target")
    app.config["MAX_CONTENT_LENGTH"] = 8 * 1024 * 1024

    @app.get("/")
    def index() -> Response:
        return page("Yardstick target", INDEX)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return Response(json.dumps(OPENAPI), mimetype="application/json")

    @app.get("/health")
    def health() -> Response:
        return Response(json.dumps({"ok": True, "shell_sandbox": shell_ok}), mimetype="application/json")

    # -- SQL injection ------------------------------------------------------------------------
    @app.get("/items")
    def items() -> Response:
        item_id = request.args.get("id", "1")
        try:
            rows = store.query(f"SELECT id, name, category, price FROM items WHERE id = {item_id}")
        except sqlite3.Error as exc:
            return page("Database error", f"<pre>{html.escape(sql_error(exc))}</pre>")
        listing = "".join(f"<li>{r[1]} ({r[2]}) {r[3]}</li>" for r in rows)
        return page("Item", f"<ul>{listing}</ul>")

    @app.get("/search")
    def search() -> Response:
        q = request.args.get("q", "")
        try:
            rows = store.query(f"SELECT name, price FROM items WHERE name LIKE '%{q}%' ORDER BY id")
        except sqlite3.Error as exc:
            return page("Database error", f"<pre>{html.escape(sql_error(exc))}</pre>")
        listing = "".join(f"<li>{r[0]} {r[1]}</li>" for r in rows)
        return page("Search", f"<p>{len(rows)} results</p><ul>{listing}</ul>")

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        form = (
            '<form method="post"><input name="username"><input type="password" name="password">'
            '<input type="submit" value="log in"></form>'
        )
        if request.method == "GET":
            return page("Log in", form)
        user, pw = request.form.get("username", ""), request.form.get("password", "")
        try:
            rows = store.query(f"SELECT name, role FROM users WHERE name = '{user}' AND pw = '{pw}'")
        except sqlite3.Error:
            rows = []  # blind: errors look like a failed login
        if rows:
            return page("Welcome", f"<p>Welcome back, {html.escape(str(rows[0][0]))}.</p>")
        return page("Log in", "<p>Invalid user name or password.</p>" + form)

    @app.post("/api/items")
    def api_items() -> Response:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return Response(json.dumps({"error": "JSON object expected"}), 400, mimetype="application/json")
        category = str(data.get("category", ""))
        try:
            rows = store.query(f"SELECT id, name, price FROM items WHERE category = '{category}'")
        except sqlite3.Error as exc:
            return Response(json.dumps({"error": sql_error(exc)}), 500, mimetype="application/json")
        return Response(
            json.dumps({"items": [{"id": r[0], "name": r[1], "price": r[2]} for r in rows]}),
            mimetype="application/json",
        )

    @app.get("/greeting")
    def greeting() -> Response:
        lang = urllib.parse.unquote(request.cookies.get("lang", "en"))  # as PHP decodes cookies
        try:
            rows = store.query(f"SELECT text FROM greetings WHERE lang = '{lang}'")
        except sqlite3.Error:
            rows = []
        text = rows[0][0] if rows else "Hi"
        response = page("Greeting", f"<p>{html.escape(str(text))}, guest.</p>")
        if "lang" not in request.cookies:
            response.set_cookie("lang", "en")
        return response

    @app.get("/report")
    def report() -> Response:
        tenant = request.headers.get("X-Tenant-Id", "1")
        try:
            rows = store.query(f"SELECT count(*) FROM items WHERE price > 0 AND 1 = {tenant}")
        except sqlite3.Error:
            rows = [(0,)]
        return page("Report", f"<p>{rows[0][0]} items for your tenant.</p>")

    # -- OS command injection -----------------------------------------------------------------
    @app.get("/ping")
    def ping() -> Response:
        if not shell_ok:
            return page("Ping", "<p>shell sandbox unavailable: not run</p>")
        host = request.args.get("host", "127.0.0.1")
        return page("Ping", f"<pre>{html.escape(run_shell(f'ping -c 1 -W 1 {host}'))}</pre>")

    @app.post("/tools/lookup")
    def lookup() -> Response:
        if not shell_ok:
            return page("Lookup", "<p>shell sandbox unavailable: not run</p>")
        name = request.form.get("name", "")
        hosts = shlex.quote(str(data_dir / "hosts.txt"))
        return page("Lookup", f"<pre>{html.escape(run_shell(f'grep -i {name} {hosts}'))}</pre>")

    # -- path traversal -------------------------------------------------------------------------
    @app.get("/download")
    def download() -> Response:
        name = request.args.get("file", "readme.txt")
        try:
            with open(os.path.join(files_dir, name), "rb") as handle:
                content = handle.read(MAX_READ)
        except OSError as exc:
            return Response(f"cannot read {name}: {exc.strerror}", 404, mimetype="text/plain")
        return Response(content, mimetype="text/plain")

    # -- XSS -----------------------------------------------------------------------------------
    @app.get("/hello")
    def hello() -> Response:
        return page("Hello", f"<p>Hello {request.args.get('name', 'visitor')}!</p>")

    @app.route("/guestbook", methods=["GET", "POST"])
    def guestbook() -> Response:
        if request.method == "POST":
            author, message = request.form.get("author", ""), request.form.get("message", "")
            store.write(
                "INSERT INTO comments (author, message) VALUES (?, ?)", (author, message), 30, "comments"
            )
        with store.connect() as db:
            rows = db.execute("SELECT author, message FROM comments ORDER BY id").fetchall()
        entries = "".join(f"<li><b>{a}</b>: {m}</li>" for a, m in rows)
        form = (
            '<form method="post"><input name="author" value="guest"><textarea name="message">hi</textarea>'
            '<input type="submit" value="sign"></form>'
        )
        return page("Guestbook", f"<ul>{entries}</ul>{form}")

    # -- SSTI, XXE, SSRF, upload ------------------------------------------------------------------
    @app.get("/preview")
    def preview() -> Response:
        source = request.args.get("template", "Hello {{ name }}")
        try:
            text = templates.from_string(source).render(name="visitor", site="yardstick")
        except Exception as exc:
            text = f"template error: {type(exc).__name__}: {exc}"
        return page("Preview", f"<div>{text}</div>")

    @app.post("/xml/import")
    def xml_import() -> Response:
        if request.mimetype in ("application/xml", "text/xml"):
            raw = request.get_data()[:MAX_READ]
        else:
            raw = request.form.get("xml", "").encode("utf-8")
        try:
            root = etree.fromstring(raw, _local_only_parser())
        except (etree.XMLSyntaxError, ValueError) as exc:
            return page("XML import", f"<p>cannot parse: {html.escape(str(exc))}</p>")
        text = "".join(root.itertext())[:MAX_READ]
        return page("XML import", f"<p>imported {html.escape(root.tag)}:</p><pre>{html.escape(text)}</pre>")

    @app.get("/fetch")
    def fetch() -> Response:
        status, text = fetch_loopback(request.args.get("url", ""))
        return page("Fetch", f"<pre>{html.escape(text)}</pre>") if status == 200 else Response(text, status)

    @app.get("/status")
    def status() -> Response:
        return Response("status: ok\n", mimetype="text/plain")

    @app.route("/upload", methods=["GET", "POST"])
    def upload() -> Response:
        if request.method == "POST" and "file" in request.files:
            sent = request.files["file"]
            name = os.path.basename(sent.filename or "upload.bin") or "upload.bin"
            sent.save(uploads / name)
            return page("Upload", f'<p>stored <a href="/uploads/{name}">{name}</a></p>')
        return page(
            "Upload",
            '<form method="post" enctype="multipart/form-data"><input type="file" name="file">'
            '<input type="submit"></form>',
        )

    @app.get("/uploads/<name>")
    def uploaded(name: str) -> Response:
        path = uploads / os.path.basename(name)
        if not path.is_file():
            return Response("no such upload", 404)
        kind = "text/html" if path.suffix in (".html", ".htm") else "application/octet-stream"
        return Response(path.read_bytes()[:MAX_READ], mimetype=kind)

    # -- safe endpoints for benign traffic ------------------------------------------------------------
    @app.route("/contact", methods=["GET", "POST"])
    def contact() -> Response:
        form = (
            '<form method="post"><input name="name"><input name="email"><input name="subject">'
            '<textarea name="message"></textarea><input type="submit" value="send"></form>'
        )
        if request.method == "POST":
            fields = [request.form.get(k, "") for k in ("name", "email", "subject", "message")]
            store.write(
                "INSERT INTO messages (name, email, subject, body) VALUES (?,?,?,?)", fields, 30, "messages"
            )
            return page("Contact", f"<p>Thank you, {html.escape(fields[0])}.</p>")
        return page("Contact", form)

    @app.get("/docs")
    def docs() -> Response:
        q = request.args.get("q", "")
        with store.connect() as db:
            rows = db.execute("SELECT name FROM items WHERE name LIKE ?", (f"%{q}%",)).fetchall()
        return page("Docs", f"<p>{len(rows)} pages mention {html.escape(q)}</p>")

    @app.post("/api/notes")
    def notes() -> Response:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return Response(json.dumps({"error": "JSON object expected"}), 400, mimetype="application/json")
        store.write(
            "INSERT INTO notes (title, text) VALUES (?, ?)",
            (str(data.get("title", "")), str(data.get("text", ""))),
            30,
            "notes",
        )
        return Response(json.dumps({"stored": True}), mimetype="application/json")

    return app


class Marked:
    """WSGI wrapper: the served header on every response, and a JSON line per handled request."""

    def __init__(self, app: Callable[..., Any], log: Path | None) -> None:
        self.app = app
        self.log = log.open("a", buffering=1) if log else None
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        tag = environ.get("HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_"), "")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if self.log is not None:
                line = json.dumps(
                    {
                        "req": tag,
                        "method": environ.get("REQUEST_METHOD"),
                        "status": status[:3],
                        "path": environ.get("PATH_INFO", ""),
                    }
                )
                with self.lock:
                    self.log.write(line + "\n")
            return start_response(status, [*headers, (SERVED_HEADER, "1")], exc_info)

        return self.app(environ, start)


def serve(port: int, data_dir: Path, log: Path | None) -> None:
    forbid_outside_network()
    app = create_app(data_dir)
    server = make_server(HOST, port, Marked(app.wsgi_app, log), threaded=True)
    print(f"yardstick target on http://{HOST}:{server.server_port}/", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True, help="folder for the SQLite file and files")
    parser.add_argument("--log", type=Path, help="JSON lines of handled requests")
    args = parser.parse_args(argv)
    serve(args.port, args.data, args.log)


if __name__ == "__main__":
    main()
