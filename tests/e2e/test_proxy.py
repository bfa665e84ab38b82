"""End to end: a real mitmdump with the addon in reverse mode in front of a real local backend."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import io as mitmio

from procs import Backend, Mitmdump, start_backend, start_mitmdump

pytestmark = pytest.mark.e2e

BOUNDARY = "----lgboundary7MA4YWxk"
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nHoliday photos\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="beach.jpg"\r\n'
    "Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0 JFIF fake jpeg bytes\r\n"
    f"--{BOUNDARY}--\r\n"
).encode("latin-1")

# (method, path, headers, body) of ordinary requests that must reach the backend unchanged
BENIGN = [
    ("GET", "/search?q=O%27Brien%20and%20sons&page=2&sort=price", {"Accept": "text/html"}, b""),
    (
        "GET",
        "/products?category=shoes&size=42&color=dark+blue",
        {"Cookie": "JSESSIONID=abc123; _ga=GA1.2.3"},
        b"",
    ),
    (
        "POST",
        "/comments",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"name=Ana+D%27Angelo&email=ana%40example.com&text=Great+article%2C+thanks%21+Price+was+%245.00",
    ),
    (
        "POST",
        "/api/orders",
        {"Content-Type": "application/json"},
        b'{"customer": {"name": "Jos\xc3\xa9", "email": "jose@example.org"}, "items": [{"sku": "A-1", "qty": 2}]}',
    ),
    ("POST", "/upload", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, MULTIPART),
    (
        "GET",
        "/static/app.js?v=1.2.3",
        {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
        b"",
    ),
]

ATTACKS = [
    ("GET", "/search?q=1%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--", {}, b""),
    (
        "POST",
        "/comments",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
    ),
    (
        "POST",
        "/api/orders",
        {"Content-Type": "application/json"},
        b'{"customer": {"name": "x\' OR 1=1 UNION SELECT password FROM users--"}}',
    ),
    (
        "POST",
        "/upload",
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        MULTIPART.replace(b"Holiday photos", b"<?php system($_GET['cmd']); ?>"),
    ),
    ("GET", "/download?file=..%2F..%2F..%2F..%2Fetc%2Fpasswd", {}, b""),
    ("GET", "/", {"Cookie": "pref=1%27%20or%20%271%27%3D%271%27%20union%20select%201%2C2--"}, b""),
    ("GET", "/", {"User-Agent": "sqlmap/1.7.2#stable (https://sqlmap.org)"}, b""),
]


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = start_backend()
    yield b
    b.stop()


def send(proxy: Mitmdump, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    try:
        conn.request(method, path, body=body or None, headers={"Host": "shop.test", **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def enforcing(backend: Backend, tmp_path: Path) -> Iterator[Mitmdump]:
    proxy = start_mitmdump(backend.url, tmp_path, "guard_mode=enforce")
    yield proxy
    proxy.stop()


def test_benign_requests_reach_the_backend_unchanged(enforcing: Mitmdump, backend: Backend) -> None:
    for method, path, headers, body in BENIGN:
        status, _ = send(enforcing, method, path, headers, body)
        assert status == 200, (path, enforcing.log()[-2000:])
        got = backend.received[-1]
        assert (got.method, got.path, got.body) == (method, path, body)
        for name, value in headers.items():
            assert (name, value) in got.headers
    assert len(backend.received) == len(BENIGN)


def test_attacks_get_403_and_never_reach_the_backend(enforcing: Mitmdump, backend: Backend) -> None:
    for method, path, headers, body in ATTACKS:
        status, content = send(enforcing, method, path, headers, body)
        assert status == 403, (method, path, headers)
        assert b"Request refused" in content
    assert backend.received == []


def test_detect_mode_passes_attacks_annotated(backend: Backend, tmp_path: Path) -> None:
    saved = tmp_path / "flows.mitm"
    proxy = start_mitmdump(backend.url, tmp_path, "guard_mode=detect", extra_args=("-w", str(saved)))
    try:
        for method, path, headers, body in ATTACKS[:3] + BENIGN[:2]:
            status, _ = send(proxy, method, path, headers, body)
            assert status == 200
    finally:
        proxy.stop()
    assert len(backend.received) == 5
    with saved.open("rb") as fh:
        flows = list(mitmio.FlowReader(fh).stream())
    records = [f.metadata["logoutguard"] for f in flows]
    assert [r["blocked"] for r in records] == [True, True, True, False, False]
    assert all(r["action"] == "log" for r in records[:3])
    assert all(f.marked and "LogoutGuard" in f.comment for f in flows[:3])
    assert all(not f.marked for f in flows[3:])
