"""Differential harness: the same requests through Apache + ModSecurity 2 + CRS and through LogoutGuard's engine.

Starts a private Apache (its own ServerRoot, PidFile, ErrorLog, audit log, in a temp folder; not
the system service) as a reverse proxy on a free loopback port, with Debian's engine rules
(modsecurity.conf-recommended: 200000-200005) and CRS 3.3.4 as Debian installs it, SecRuleEngine
On and SecAuditEngine On so every request's messages are logged (native format, parts ABHZ).
Behind it runs a tiny local backend. Each request is sent byte-exact over a socket; the rule ids
ModSecurity logged (`Message:` lines of part H) are compared with the ids of the rules that matched
in LogoutGuard, and the block decisions are compared too.

Compared ids: rules that would write a message (log or auditlog after the SecDefaultAction merge),
on both sides. Excluded on both sides, as bookkeeping: phase-5 correlation rules 980xxx
(LogoutGuard has no logging phase).

Where Apache itself, not ModSecurity, decides, the comparison follows what ModSecurity saw:
* requests Apache answers before ModSecurity sees them (e.g. HTTP/1.1 without Host, a raw NUL in
  the target) have no audit entry: listed apart, not compared;
* requests Apache refuses after phase 1 (a bad %-escape or %2F / %00 in the path: 400 / 404 while
  mapping the URL) got phase 1 only: compared with LogoutGuard's phase-1 matches, counted apart;
* framing: LogoutGuard is given the body as Apache hands it to ModSecurity (a chunked body
  de-chunked, Content-Length dropped when Transfer-Encoding: chunked is present);
* ModSecurity 2.9.7 answers 500 before its phase-2 rules when the JSON or XML body processor fails
  (its audit entry says "JSON/XML parser error"); that counts as a block by rule 200002, the engine
  rule written for bodies that fail to parse, which is how LogoutGuard reports it, and the
  response rules (95xxxx) that then judged ModSecurity's own error page are not counted.

Run: `python tests/crs/differential.py [--paranoia 1 2] [--limit N]` prints the figures and every
disagreement; tests/crs/test_differential.py asserts the targets.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from logoutguard.crs.loader import load_crs
from logoutguard.engine.engine import Engine
from logoutguard.engine.transaction import build_transaction

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
MODSEC_MODULE = MODULES / "mod_security2.so"
RECOMMENDED = Path("/etc/modsecurity/modsecurity.conf-recommended")
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
APT_LINE = "apt-get install -y apache2 libapache2-mod-security2 modsecurity-crs"
CLIENT = "127.0.0.1"
BOOKKEEPING = re.compile(r"^98\d{4}$")  # phase-5 correlation / reporting rules
BACKEND_BODY = b"<html><head><title>ok</title></head><body><p>Hello from the backend.</p></body></html>\n"
# Paths under /leak/ make the backend answer with what CRS's response rules (950-954) look for.
LEAKS = {
    "/leak/sql": b"<html><body>Warning: mysql_fetch_array() expects parameter 1 to be resource, "
    b"boolean given in /var/www/html/item.php on line 12<br>You have an error in your SQL syntax; "
    b"check the manual that corresponds to your MySQL server version</body></html>",
    "/leak/php": b"<html><body><?php echo $secret; ?> Fatal error: Uncaught Error: Call to undefined "
    b"function foo() in /var/www/index.php:3</body></html>",
    "/leak/java": b"<html><body>java.lang.NullPointerException\n\tat com.example.Foo.bar(Foo.java:42)\n"
    b"\tat javax.servlet.http.HttpServlet.service(HttpServlet.java:790)</body></html>",
    "/leak/iis": b"<html><body><h2>Server Error in '/' Application.</h2> Microsoft OLE DB Provider for "
    b"ODBC Drivers error '80004005'</body></html>",
    "/leak/dirlist": b"<html><head><title>Index of /backup</title></head><body><h1>Index of /backup</h1>"
    b'<a href="?C=N;O=D">Name</a> <a href="../">Parent Directory</a></body></html>',
}


def backend_body(path: str) -> bytes:
    """What the backend answers for a request path (the same on both sides of the comparison)."""
    return LEAKS.get(path.split("?", 1)[0], BACKEND_BODY)


_ID = re.compile(r'\[id "(\d+)"\]')


def missing_parts() -> list[str]:
    """What of Apache + ModSecurity 2 + CRS is not installed here (empty when everything is)."""
    wanted = (APACHE, MODSEC_MODULE, RECOMMENDED, CRS_SETUP, CRS_RULES)
    return [str(p) for p in wanted if not p.exists()]


@dataclass(frozen=True)
class Request:
    """One request exactly as sent: method, target, protocol, header pairs, body bytes."""

    id: str
    method: str
    uri: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    protocol: str = "HTTP/1.1"

    def wire(self) -> bytes:
        head = f"{self.method} {self.uri} {self.protocol}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        return head.encode("utf-8", "surrogateescape") + b"\r\n" + self.body


@dataclass
class Outcome:
    ids: set[int] = field(default_factory=set)
    blocked: bool = False
    status: int = 0
    seen: bool = True  # False: no audit entry (Apache answered before ModSecurity)
    phase1_only: bool = False  # Apache refused the request after phase 1 (400/404)
    entry: str = ""  # the audit-log entry (ModSecurity side)


@dataclass
class Comparison:
    request: Request
    modsec: Outcome
    ours: Outcome

    @property
    def ids_agree(self) -> bool:
        return self.modsec.ids == self.ours.ids

    @property
    def block_agrees(self) -> bool:
        return self.modsec.blocked == self.ours.blocked

    def describe(self) -> str:
        only_m = sorted(self.modsec.ids - self.ours.ids)
        only_o = sorted(self.ours.ids - self.modsec.ids)
        parts = [f"{self.request.id}:"]
        if only_m:
            parts.append(f"ModSecurity only {only_m}")
        if only_o:
            parts.append(f"LogoutGuard only {only_o}")
        if not self.block_agrees:
            parts.append(f"block ModSecurity={self.modsec.blocked} LogoutGuard={self.ours.blocked}")
        return " ".join(parts)


# --------------------------------------------------------------------------------------------
# backend and Apache


class _Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = backend_body(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


def free_port() -> int:
    with socket.socket() as s:
        s.bind((CLIENT, 0))
        return s.getsockname()[1]


def apache_config(
    root: Path, port: int, backend_port: int, paranoia: int, audit: str = "On", keep_alive: bool = False
) -> str:
    """httpd.conf of the private Apache. `audit`: SecAuditEngine (On: every transaction, which the
    differential reads; RelevantOnly for a benchmark). `keep_alive`: connections kept open (benchmark)."""
    modules = "\n".join(
        f"LoadModule {name}_module {MODULES}/mod_{name}.so"
        for name in ("mpm_event", "authz_core", "unique_id", "proxy", "proxy_http", "security2")
    )
    return f"""
ServerRoot "{root}"
DefaultRuntimeDir "{root}"
PidFile "{root}/httpd.pid"
ErrorLog "{root}/error.log"
LogLevel warn
ServerName localhost
Listen {CLIENT}:{port}
{modules}
User www-data
Group www-data
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
KeepAlive {"On" if keep_alive else "Off"}
ProxyPass "/" "http://{CLIENT}:{backend_port}/"
ProxyPassReverse "/" "http://{CLIENT}:{backend_port}/"
Include "{RECOMMENDED}"
SecRuleEngine On
SecAuditEngine {audit}
SecAuditLogParts ABHZ
SecAuditLogType Serial
SecAuditLog "{root}/audit.log"
SecTmpDir "{root}"
SecDataDir "{root}/data"
SecDebugLogLevel 0
Include "{CRS_SETUP}"
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={paranoia}"
Include "{CRS_RULES}/*.conf"
"""


class Apache:
    """A private Apache + ModSecurity reverse proxy in front of a local backend (context manager)."""

    def __init__(self, paranoia: int, audit: str = "On", keep_alive: bool = False) -> None:
        self.paranoia = paranoia
        self.audit = audit
        self.keep_alive = keep_alive
        self.root = Path(tempfile.mkdtemp(prefix="lg-modsec-"))
        self.port = free_port()
        self.backend = ThreadingHTTPServer((CLIENT, 0), _Backend)
        self.backend.daemon_threads = True
        self._thread = threading.Thread(target=self.backend.serve_forever, daemon=True)

    def __enter__(self) -> Apache:
        self._thread.start()
        conf = self.root / "httpd.conf"
        backend_port = self.backend.server_address[1]
        conf.write_text(
            apache_config(self.root, self.port, backend_port, self.paranoia, self.audit, self.keep_alive)
        )
        os.chmod(self.root, 0o755)
        (self.root / "audit.log").touch()
        shutil.chown(self.root / "audit.log", "www-data", "www-data")
        (self.root / "data").mkdir()  # ModSecurity's collections (IP, GLOBAL), written by the workers
        shutil.chown(self.root / "data", "www-data", "www-data")
        env = {**os.environ, "APACHE_RUN_DIR": str(self.root), "APACHE_LOG_DIR": str(self.root)}
        started = subprocess.run(
            [str(APACHE), "-f", str(conf), "-k", "start"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            raise RuntimeError(f"apache2 did not start: {started.stderr or started.stdout}{self.errors()}")
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((CLIENT, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"apache2 did not listen on {self.port}{self.errors()}")

    def errors(self) -> str:
        log = self.root / "error.log"
        return "\n" + log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def __exit__(self, *exc: object) -> None:
        pid_file = self.root / "httpd.pid"
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and pid_file.exists():
                time.sleep(0.05)
        except (OSError, ValueError):
            pass
        self.backend.shutdown()
        self.backend.server_close()
        shutil.rmtree(self.root, ignore_errors=True)

    def send(self, request: Request) -> Outcome:
        """Send one request, wait for its audit entry, and read ModSecurity's ids and decision."""
        log = self.root / "audit.log"
        offset = log.stat().st_size
        status = _exchange(self.port, request.wire())
        entry = _wait_entry(log, offset)
        if entry is None:
            return Outcome(status=status, seen=False)
        ids, intercepted = parse_entry(entry)
        outcome = Outcome({i for i in ids if not BOOKKEEPING.match(str(i))}, intercepted, status)
        outcome.entry = entry
        if re.search(r"^Message: (JSON|XML) parser error", entry, re.M):
            # phase-2 rules never ran; drop what the response rules found in ModSecurity's own 500 page
            outcome.ids = {i for i in outcome.ids if not 950000 <= i < 960000} | {200002}
            outcome.blocked = True
        elif not intercepted and status in (400, 404):
            outcome.phase1_only = True
        return outcome


def _exchange(port: int, data: bytes) -> int:
    with socket.create_connection((CLIENT, port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    m = re.match(rb"HTTP/\d\.\d (\d{3})", response)
    return int(m.group(1)) if m else 0


def _wait_entry(log: Path, offset: int, timeout: float = 1.0) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("latin-1")
        if re.search(r"^--[0-9a-f]+-Z--$", text, re.M):
            return text
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def parse_entry(entry: str) -> tuple[set[int], bool]:
    """Native audit-log entry -> (ids in `Message:` lines of part H, intercepted?)."""
    ids: set[int] = set()
    intercepted = False
    section = ""
    for line in entry.splitlines():
        m = re.match(r"^--[0-9a-f]+-([A-Z])--$", line)
        if m:
            section = m.group(1)
            continue
        if section != "H":
            continue
        if line.startswith("Message:"):
            ids.update(int(i) for i in _ID.findall(line))
        elif line.startswith("Action: Intercepted"):
            intercepted = True
    return ids, intercepted


# --------------------------------------------------------------------------------------------
# LogoutGuard side


def apache_framing(request: Request) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body as Apache hands them to ModSecurity (chunked bodies de-chunked)."""
    headers = list(request.headers)
    chunked = any(k.lower() == "transfer-encoding" and v.strip().lower() == "chunked" for k, v in headers)
    if not chunked:
        return headers, request.body
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    body, rest = b"", request.body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    return headers, body


def judge(engine: Engine, request: Request, logged: set[int], phase1_only: bool = False) -> Outcome:
    headers, body = apache_framing(request)
    tx = build_transaction(
        method=request.method,
        uri=request.uri,
        protocol=request.protocol,
        headers=headers,
        body=body,
        client_addr=CLIENT,
    )
    verdict, state = engine.inspect_request(tx)
    matches = verdict.matches
    if phase1_only:
        matches = [m for m in matches if m.phase == 1]
        blocked = any(m.disruptive == "deny" for m in matches)
    else:
        if not state.interrupted and not state.engine_off:
            body = backend_body(request.uri)
            response_headers = (("Content-Type", "text/html"), ("Content-Length", str(len(body))))
            response_tx = tx.with_response(200, response_headers, body.decode("latin-1"))
            verdict = engine.inspect_response(state, response_tx, matches)
            matches = verdict.matches
        blocked = state.interrupted or verdict.blocked
    ids = {m.id for m in matches if m.id in logged and not BOOKKEEPING.match(str(m.id))}
    return Outcome(ids, blocked, phase1_only=phase1_only)


# --------------------------------------------------------------------------------------------
# corpus and run


def corpus_requests() -> list[Request]:
    """Our attack and benign corpora plus the extra requests below, as exact wire requests."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from corpus.loader import load_attacks, load_benign  # tests/corpus: written by the corpus helper

    out = []
    for entry in [*load_attacks(), *load_benign()]:
        headers = [(k, v) for k, v in entry.wire_headers() if k.lower() != "connection"]
        headers.append(("Connection", "close"))
        out.append(
            Request(entry.id, entry.method, entry.uri, tuple(headers), entry.body or b"", entry.protocol)
        )
    return out + extra_requests()


def _req(
    rid: str, method: str, uri: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
) -> Request:
    base = [
        ("Host", "www.example.com"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"),
        ("Accept", "*/*"),
    ]
    hs = base + list(headers)
    if body or method in ("POST", "PUT", "PATCH"):
        hs.append(("Content-Length", str(len(body))))
    hs.append(("Connection", "close"))
    return Request(rid, method, uri, tuple(hs), body)


def extra_requests() -> list[Request]:
    """Requests aimed at the importer's semantics: bodies, JSON naming, XML, cookies, chains."""
    form = ("Content-Type", "application/x-www-form-urlencoded")
    js = ("Content-Type", "application/json")
    return [
        _req(
            "x-json-nested",
            "POST",
            "/api",
            [js],
            b'{"a":{"b":"1 union select password from users"},"c":[1,2]}',
        ),
        _req("x-json-array", "POST", "/api", [js], b'[{"q":"<script>alert(1)</script>"}]'),
        _req("x-json-bad", "POST", "/api", [js], b'{"a": '),
        _req(
            "x-json-benign",
            "POST",
            "/api",
            [js],
            b'{"name":"Ann","tags":["x","y"],"n":1.50,"ok":true,"z":null}',
        ),
        _req(
            "x-xml-attack",
            "POST",
            "/soap",
            [("Content-Type", "text/xml")],
            b"<a><b>1' or '1'='1</b><c x=\"<script>alert(1)</script>\"/></a>",
        ),
        _req(
            "x-xml-benign",
            "POST",
            "/soap",
            [("Content-Type", "application/xml")],
            b"<order><id>7</id><note>hello</note></order>",
        ),
        _req("x-xml-bad", "POST", "/soap", [("Content-Type", "application/xml")], b"<a><b></a>"),
        _req("x-form-2k", "POST", "/form", [form], b"comment=" + b"lorem+ipsum+" * 170 + b"&name=Ann"),
        _req("x-text-plain-attack", "POST", "/x", [("Content-Type", "text/plain")], b"cmd=;cat /etc/passwd"),
        _req("x-cookie-spaces", "GET", "/", [("Cookie", "a=1 ; __utma=' or 1=1-- ; b=<script>")]),
        _req("x-utm-excluded", "GET", "/", [("Cookie", "__utmz=1' union select 1--")]),
        _req(
            "x-content-type-charset",
            "POST",
            "/f",
            [("Content-Type", "application/x-www-form-urlencoded; charset=utf-7")],
            b"a=b",
        ),
        _req("x-ext-restricted", "GET", "/backup/site.bak"),
        _req("x-dollar-end", "GET", "/index.php?x=%0a"),
        _req("x-multi-args", "GET", "/?a=<script>alert(1)</script>&b=<script>alert(2)</script>"),
        _req("x-percent-u", "GET", "/?a=%u0027%20or%201=1"),
        _req("x-bad-urlenc", "GET", "/?a=%zz"),
        _req("x-range", "GET", "/", [("Range", "bytes=0-1,2-3,4-5,6-7,8-9,10-11")]),
        _req("x-method", "PROPFIND", "/dav/"),
        _req("x-dup-cookie", "GET", "/", [("Cookie", "a=1"), ("Cookie", "b=1' union select 1-- -")]),
        _req("x-dup-header", "GET", "/", [("X-Note", "a"), ("X-Note", "<script>alert(1)</script>")]),
        _req("x-dup-ua", "GET", "/", [("User-Agent", "nikto")]),
        *(_req(f"x-leak-{path.rsplit('/', 1)[1]}", "GET", path) for path in LEAKS),
        _req(
            "x-multipart",
            "POST",
            "/up",
            [("Content-Type", "multipart/form-data; boundary=XyZ")],
            b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.php"\r\nContent-Type: text/plain\r\n\r\n<?php system($_GET[\'c\']); ?>\r\n--XyZ\r\nContent-Disposition: form-data; name="t"\r\n\r\nhello\r\n--XyZ--\r\n',
        ),
    ]


@dataclass
class Summary:
    paranoia: int
    comparisons: list[Comparison]
    unseen: list[Request]

    @property
    def block_agreement(self) -> float:
        return sum(c.block_agrees for c in self.comparisons) / max(1, len(self.comparisons))

    @property
    def id_agreement(self) -> float:
        return sum(c.ids_agree for c in self.comparisons) / max(1, len(self.comparisons))

    def disagreements(self) -> list[Comparison]:
        return [c for c in self.comparisons if not (c.ids_agree and c.block_agrees)]

    def lines(self) -> list[str]:
        blocked = sum(c.modsec.blocked for c in self.comparisons)
        with_ids = sum(bool(c.modsec.ids) for c in self.comparisons)
        distinct = len(set().union(*(c.modsec.ids for c in self.comparisons)))
        out = [
            f"PL{self.paranoia}: {len(self.comparisons)} requests compared, "
            f"block decisions agree {self.block_agreement:.2%}, rule-id sets agree {self.id_agreement:.2%}, "
            f"{len(self.unseen)} answered by Apache before ModSecurity (not compared), "
            f"{sum(c.modsec.phase1_only for c in self.comparisons)} refused by Apache after phase 1 "
            "(compared on phase 1)",
            f"  ModSecurity blocked {blocked}, logged rule ids for {with_ids}, {distinct} distinct rule ids",
        ]
        out += [f"  {c.describe()}" for c in self.disagreements()]
        out += [f"  not seen by ModSecurity: {r.id}" for r in self.unseen]
        return out


def run(paranoia: int, requests: list[Request]) -> Summary:
    load = load_crs(CRS_SETUP, CRS_RULES, paranoia=paranoia)
    logged = {i for i, info in load.infos.items() if info.logged}
    engine = load.engine()
    comparisons: list[Comparison] = []
    unseen: list[Request] = []
    with Apache(paranoia) as apache:
        for request in requests:
            modsec = apache.send(request)
            if not modsec.seen:
                unseen.append(request)
                continue
            comparisons.append(
                Comparison(request, modsec, judge(engine, request, logged, modsec.phase1_only))
            )
    return Summary(paranoia, comparisons, unseen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paranoia", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--limit", type=int, default=0, help="only the first N requests")
    parser.add_argument("--only", help="only requests whose id contains this text")
    parser.add_argument("--show", action="store_true", help="print ModSecurity's audit entries")
    args = parser.parse_args(argv)
    missing = missing_parts()
    if missing:
        print(f"missing: {', '.join(missing)}; install with: {APT_LINE}", file=sys.stderr)
        return 2
    requests = corpus_requests()
    if args.only:
        requests = [r for r in requests if args.only in r.id]
    if args.limit:
        requests = requests[: args.limit]
    for paranoia in args.paranoia:
        summary = run(paranoia, requests)
        if args.show:
            for c in summary.comparisons:
                print(
                    c.request.wire()[:2000].decode("latin-1"),
                    "\n",
                    c.modsec.entry,
                    "\nours:",
                    sorted(c.ours.ids),
                )
        for line in summary.lines():
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
