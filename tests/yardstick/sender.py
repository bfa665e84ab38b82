"""Our own small sender: payload lists replayed into every injection point of the target, and benign text into its forms.

Payload lists: Debian's wfuzz injection wordlists (`/usr/share/wfuzz/wordlist/Injections/`; PyPI's
wfuzz does not run on Python 3.12) and wapiti's own payload files (`wapitiCore/data/attacks/*.ini`
in .venv-tools, wapiti's placeholders filled with fixed values: [TIME]=2, [VALUE]=1, the endpoint
= the loopback stand-in). Each payload goes into each point exactly once, encoded as a browser or
client would send it: percent-encoded in the query and in forms, JSON-escaped in JSON, percent-encoded
in the cookie (the target decodes it, as PHP does), raw in the header with control characters
percent-encoded. wfuzz's lines are written to be pasted into a URL as they are (`'%20or%201=1`): in
the query, forms and the cookie the application sees them percent-decoded, as wfuzz sending them raw
would make it see them. Every request goes through the path's tap with the browser User-Agent.
"""

from __future__ import annotations

import configparser
import http.client
import json
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote_plus, urlencode, urlsplit

from .paths import BROWSER_UA, HOST_NAME
from .target import REQUEST_ID_HEADER, SERVED_HEADER
from .tools import TOOLS_VENV

WFUZZ_DIR = Path("/usr/share/wfuzz/wordlist/Injections")
WFUZZ_LISTS = {  # file -> class
    "SQL.txt": "sqli",
    "XSS.txt": "xss",
    "Traversal.txt": "traversal",
    "XML.txt": "xxe",
    "bad_chars.txt": "bad-chars",
    "All_attack.txt": "mixed",
}
WAPITI_FILES = {
    "blindSQLPayloads.ini": "sqli",
    "execPayloads.ini": "cmdi",
    "fileHandlingPayloads.ini": "traversal",
    "xssPayloads.ini": "xss",
    "xxePayloads.ini": "xxe",
    "ldap.ini": "ldap",
}


@dataclass(frozen=True)
class Point:
    """An injection point of the target: where a payload goes, and the other values sent beside it."""

    name: str
    method: str
    route: str
    location: str  # query | form | json | cookie | header
    param: str
    vuln: str  # the class of the flaw behind this point
    extra: tuple[tuple[str, str], ...] = ()


POINTS = (
    Point("items-id", "GET", "/items", "query", "id", "sqli"),
    Point("search-q", "GET", "/search", "query", "q", "sqli"),
    Point("login-username", "POST", "/login", "form", "username", "sqli", (("password", "x"),)),
    Point("api-category", "POST", "/api/items", "json", "category", "sqli"),
    Point("greeting-lang", "GET", "/greeting", "cookie", "lang", "sqli"),
    Point("report-tenant", "GET", "/report", "header", "X-Tenant-Id", "sqli"),
    Point("ping-host", "GET", "/ping", "query", "host", "cmdi"),
    Point("lookup-name", "POST", "/tools/lookup", "form", "name", "cmdi"),
    Point("download-file", "GET", "/download", "query", "file", "traversal"),
    Point("hello-name", "GET", "/hello", "query", "name", "xss"),
    Point("guestbook-message", "POST", "/guestbook", "form", "message", "xss", (("author", "guest"),)),
    Point("preview-template", "GET", "/preview", "query", "template", "ssti"),
    Point("xml-import", "POST", "/xml/import", "form", "xml", "xxe"),
    Point("fetch-url", "GET", "/fetch", "query", "url", "ssrf"),
)
POINTS_BY_NAME = {p.name: p for p in POINTS}


@dataclass(frozen=True)
class Probe:
    """One request to send: what it carries (source, index, point) and its bytes."""

    source: str  # e.g. wfuzz:SQL.txt, wapiti:xssPayloads.ini, benign:prose
    cls: str
    index: int
    point: str
    payload: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def build(point: Point, payload: str, source: str, cls: str, index: int, raw_url: bool = False) -> Probe:
    """raw_url: the payload was written to be pasted into a URL as it is (wfuzz's lists: `'%20or%201=1`);
    in the query, a form and the cookie the application then sees it percent-decoded, as if wfuzz had
    sent it raw; JSON and the header get it as written."""
    headers: list[tuple[str, str]] = []
    body = b""
    target = point.route
    decoded = unquote_plus(payload) if raw_url else payload
    if point.location == "query":
        target += "?" + urlencode([(point.param, decoded), *point.extra])
    elif point.location == "form":
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        body = urlencode([(point.param, decoded), *point.extra]).encode()
    elif point.location == "json":
        headers.append(("Content-Type", "application/json"))
        body = json.dumps({point.param: payload, **dict(point.extra)}).encode()
    elif point.location == "cookie":
        headers.append(("Cookie", f"{point.param}={quote(decoded, safe='')}"))
    elif point.location == "header":
        raw = payload.encode("utf-8").decode("latin-1")
        headers.append((point.param, _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", raw)))
    else:
        raise ValueError(f"unknown location {point.location!r}")
    return Probe(source, cls, index, point.name, payload, point.method, target, tuple(headers), body)


def wfuzz_lists(root: Path = WFUZZ_DIR) -> dict[str, tuple[str, list[str]]]:
    """wfuzz's injection lists: source name -> (class, payloads); FileNotFoundError when not installed."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing: apt-get install -y wfuzz")
    out = {}
    for name, cls in WFUZZ_LISTS.items():
        lines = (root / name).read_bytes().decode("utf-8", "replace").splitlines()
        out[f"wfuzz:{name}"] = (cls, [line for line in lines if line.strip()])
    return out


def wapiti_payload_dir() -> Path:
    found = sorted(TOOLS_VENV.glob("lib/python3*/site-packages/wapitiCore/data/attacks"))
    if not found:
        raise FileNotFoundError(f"wapiti's payload files are missing under {TOOLS_VENV}: run bash .ci/setup")
    return found[0]


def fill_wapiti_placeholders(payload: str, endpoint: str) -> str:
    values = {
        "[TAB]": "\t",
        "[LF]": "\n",
        "[FF]": "\f",
        "[NULL]": "\0",
        "[TIME]": "2",
        "[VALUE]": "1",
        "[EXTERNAL_ENDPOINT]": endpoint,
        "[PROTO_ENDPOINT]": endpoint.split("://", 1)[-1],
        "[SESSION_ID]": "yardstick",
        "[PATH_ID]": "1",
        "[PARAM_AS_HEX]": "7061796c6f6164",
        "[FILE_NAME]": "index.php",
        "[DIRVALUE]": "files",
        "[EXTVALUE]": "txt",
        "[ATTR_SEP]": " ",
        "[VALUE_SEP]": "",
    }
    for key, value in values.items():
        payload = payload.replace(key, value)
    return payload


def wapiti_lists(endpoint: str) -> dict[str, tuple[str, list[str]]]:
    """wapiti's own payload files: source name -> (class, payloads with placeholders filled)."""
    root = wapiti_payload_dir()
    out = {}
    for name, cls in WAPITI_FILES.items():
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string((root / name).read_text(encoding="utf-8"))
        payloads = []
        for section in parser.sections():
            raw = parser[section].get("payload", "")
            if raw and raw != "None":
                payload = fill_wapiti_placeholders(raw.strip(" \n"), endpoint)
                if payload not in payloads:
                    payloads.append(payload)
        out[f"wapiti:{name}"] = (cls, payloads)
    return out


def list_probes(lists: dict[str, tuple[str, list[str]]], points: Iterable[Point]) -> list[Probe]:
    points = list(points)
    return [
        build(point, payload, source, cls, index, raw_url=source.startswith("wfuzz:"))
        for source, (cls, payloads) in lists.items()
        for index, payload in enumerate(payloads)
        for point in points
    ]


BENIGN_PLACES = ("contact", "docs", "notes")


def benign_probes(texts: dict[str, list[str]]) -> list[Probe]:
    """Each sample into one of the safe forms, in turn: contact form, docs search (first 200 chars), notes JSON."""
    probes = []
    for cls, samples in texts.items():
        for index, text in enumerate(samples):
            place = BENIGN_PLACES[index % len(BENIGN_PLACES)]
            if place == "contact":
                fields = [
                    ("name", "Alice Liddell"),
                    ("email", "alice@example.org"),
                    ("subject", "Question"),
                    ("message", text),
                ]
                probe = Probe(
                    f"benign:{cls}",
                    cls,
                    index,
                    "contact-message",
                    text,
                    "POST",
                    "/contact",
                    (("Content-Type", "application/x-www-form-urlencoded"),),
                    urlencode(fields).encode(),
                )
            elif place == "docs":
                short = text[:200]
                probe = Probe(
                    f"benign:{cls}",
                    cls,
                    index,
                    "docs-q",
                    short,
                    "GET",
                    "/docs?" + urlencode({"q": short}),
                    (),
                    b"",
                )
            else:
                body = json.dumps({"title": text[:40], "text": text}).encode()
                probe = Probe(
                    f"benign:{cls}",
                    cls,
                    index,
                    "notes-text",
                    text,
                    "POST",
                    "/api/notes",
                    (("Content-Type", "application/json"),),
                    body,
                )
            probes.append(probe)
    return probes


@dataclass
class Answer:
    probe: Probe
    status: int
    served: bool
    tag: str  # the tap's request tag (empty when the tap could not answer)
    error: str = ""
    content: bytes = b""  # the first 4 KiB of the answer


def send_one(base: str, probe: Probe, timeout: float = 30.0) -> Answer:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=timeout)
    headers = {
        "Host": f"{HOST_NAME}:{parts.port}",
        "User-Agent": BROWSER_UA,
        "Accept": "text/html,*/*",
        "Accept-Language": "en-US,en;q=0.5",
        "Connection": "close",
    }
    headers.update(probe.headers)
    try:
        conn.putrequest(probe.method, probe.target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1", "replace"))
        if probe.body or probe.method == "POST":
            conn.putheader("Content-Length", str(len(probe.body)))
        conn.endheaders(probe.body or None)
        response = conn.getresponse()
        content = response.read()
        return Answer(
            probe,
            response.status,
            response.getheader(SERVED_HEADER) is not None,
            response.getheader(REQUEST_ID_HEADER) or "",
            content=content[:4096],
        )
    except (OSError, http.client.HTTPException) as exc:
        return Answer(probe, 0, False, "", f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def send_all(base: str, probes: list[Probe], workers: int = 4) -> list[Answer]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: send_one(base, p), probes))
