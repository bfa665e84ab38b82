"""End to end in mitmweb: the addon's marks, comments and metadata read back through mitmweb's own HTTP API.

mitmweb 12 runs the addon in reverse mode in front of the demo app, its web interface bound to
loopback with a password. The API takes the password as `Authorization: Bearer ...` (or `?token=`);
POSTs also need tornado's XSRF double submit, as the frontend does it: the `_mitmproxy_xsrf`
cookie (set by the login page) echoed in an `X-XSRFToken` header. GET /flows lists flows as JSON
(mark, comment; no metadata); GET /flows/dump returns them as a .mitm stream, metadata included.
"""

from __future__ import annotations

import http.client
import io
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from chromium import artefact_dir, browser_page, expect
from mitmproxy import http as mitmhttp
from mitmproxy import io as mitmio

from e2e.browser import Browser, Reply
from e2e.test_forced_logout import DEMO_POLICY, XSS
from logoutguard.demo.app import DemoApp
from logoutguard.logout_flow import LOGOUT_KEY
from procs import Mitmdump, free_port, start_mitmdump, wait_port

pytestmark = pytest.mark.e2e

XSRF_COOKIE = "_mitmproxy_xsrf"


@dataclass
class Web:
    """A client of mitmweb's HTTP API on loopback."""

    port: int
    password: str

    def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(
                method, path, body=body, headers={"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            )
            response = conn.getresponse()
            return Reply(response.status, response.getheaders(), response.read())
        finally:
            conn.close()

    def get(self, path: str) -> Reply:
        return self.call("GET", path, headers={"Authorization": f"Bearer {self.password}"})

    def xsrf_token(self) -> str:
        """The XSRF cookie, as a browser gets it: from the login page mitmweb shows without a password."""
        page = self.call("GET", "/")
        for name, value in page.headers:
            if name.lower() == "set-cookie" and value.startswith(f"{XSRF_COOKIE}="):
                return value.split(";", 1)[0].split("=", 1)[1]
        raise AssertionError(f"mitmweb set no {XSRF_COOKIE} cookie: {page.status} {page.headers}")

    def command(self, name: str, *arguments: str, xsrf: str | None) -> Reply:
        headers = {"Authorization": f"Bearer {self.password}", "Content-Type": "application/json"}
        if xsrf is not None:
            headers |= {"Cookie": f"{XSRF_COOKIE}={xsrf}", "X-XSRFToken": xsrf}
        return self.call(
            "POST", f"/commands/{name}", json.dumps({"arguments": list(arguments)}).encode(), headers
        )


@dataclass
class WebStack:
    app: DemoApp
    proxy: Mitmdump
    web: Web


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[WebStack]:
    app = DemoApp(port=0).start()
    web = Web(free_port(), secrets.token_urlsafe(16))
    try:
        proxy = start_mitmdump(
            app.url,
            tmp_path,
            f"guard_policy={DEMO_POLICY}",
            f"guard_session_store={tmp_path / 'sessions.sqlite'}",
            f"guard_audit_log={tmp_path / 'audit.jsonl'}",
            "guard_mode=enforce",
            "web_host=127.0.0.1",
            f"web_port={web.port}",
            "web_open_browser=false",
            f"web_password={web.password}",
            program="mitmweb",
        )
    except BaseException:
        app.stop()
        raise
    try:
        wait_port(web.port, proc=proxy.proc)
        yield WebStack(app, proxy, web)
    finally:
        proxy.stop()
        app.stop()


def test_mitmweb_shows_the_forced_logout(stack: WebStack) -> None:
    user = Browser(stack.proxy.port)
    old = user.login()
    assert user.get("/account").status == 200
    assert user.get(XSS).status == 302
    assert not stack.app.is_session_valid(old)

    assert stack.web.call("GET", "/flows").status == 403  # the API wants the password
    listed = json.loads(stack.web.get("/flows").body)
    # the attack is listed as the attacker sent it; the forced logout is a flow of its own beside it
    assert [f["request"]["path"] for f in listed] == ["/login", "/account", XSS, "/logout"]
    login, account, attack, logout = listed
    assert (login["marked"], login["comment"], account["marked"], account["comment"]) == ("", "", "", "")
    assert attack["marked"] and logout["marked"]
    comment = attack["comment"]
    assert comment.startswith("LogoutGuard: score") and "[authenticated_over_threshold]" in comment
    # the top rule by id and message, then the logout's typed result in words (issue 10's outcome)
    assert "941100 " in comment and comment.endswith("-> logout: ended")
    assert logout["comment"] == f"LogoutGuard: forced logout for flow {attack['id'][:8]} (GET {XSS}): ended"
    assert logout["request"]["method"] == "POST" and logout["response"]["status_code"] in (200, 302, 303)

    # flow metadata: not in the JSON list, but in the .mitm dump the API serves
    dump = stack.web.get(f"/flows/dump?filter={quote('~marked')}")
    assert dump.status == 200
    flows = [f for f in mitmio.FlowReader(io.BytesIO(dump.body)).stream() if isinstance(f, mitmhttp.HTTPFlow)]
    assert [f.id for f in flows] == [attack["id"], logout["id"]]
    record = flows[0].metadata["logoutguard"]
    assert record["action"] == "logout" and record["logout"]["probe"] == "dead"
    assert record["logout"]["result"] == "ended" and record["logout"]["cookie_replaced"] is True
    assert record["logout_flow"] == logout["id"] and "original_request" not in record
    assert flows[1].metadata[LOGOUT_KEY]["for flow"] == attack["id"]

    # the LogoutGuard contentview through mitmweb's content API (what the browser test clicks to)
    view = json.loads(stack.web.get(f"/flows/{attack['id']}/request/content/logoutguard.json").body)
    assert view["view_name"] == "LogoutGuard" and view["syntax_highlight"] == "yaml"
    assert "941100" in view["text"] and "situation: authenticated_over_threshold" in view["text"]

    # guard.explain through the command API (needs the XSRF double submit, like the frontend)
    assert stack.web.command("guard.explain", f"@{attack['id']}", xsrf=None).status == 403
    explained = stack.web.command("guard.explain", f"@{attack['id']}", xsrf=stack.web.xsrf_token())
    assert explained.status == 200, explained.body
    rows = json.loads(explained.body)["value"]
    assert rows[0][0] == "flow" and rows[0][1].startswith("GET ") and rows[0][1].endswith(XSS)
    assert "rule 941100" in [label for label, _ in rows]
    assert ["decision", "situation authenticated_over_threshold -> action logout"] in rows
    assert old not in json.dumps(rows)


def test_a_browser_finds_the_attack_and_reads_why(
    stack: WebStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Headless Chromium on mitmweb's own UI: filter LogoutGuard's flows, open the attack, pick the
    LogoutGuard view, read the rule messages; the logout's own flow; guard.explain in the command bar."""
    user = Browser(stack.proxy.port)
    old = user.login()
    assert user.get("/account").status == 200 and user.get(XSS).status == 302
    assert not stack.app.is_session_valid(old)
    listed = json.loads(stack.web.get("/flows").body)
    attack_id = next(f["id"] for f in listed if f["request"]["path"] == XSS)
    dump = stack.web.get(f"/flows/dump?filter={quote('~marked')}")
    saved = {f.id: f for f in mitmio.FlowReader(io.BytesIO(dump.body)).stream()}
    record = saved[attack_id].metadata["logoutguard"]
    messages = [m["msg"] for m in record["matches"]]
    assert len(messages) >= 2  # the rules the page must show, as the addon recorded them
    top = max(record["matches"], key=lambda m: m["score"])  # the first of the highest
    shots = artefact_dir(tmp_path, "mitmweb")
    with capsys.disabled():
        print(f"\nscreenshots of mitmweb: {shots}")

    with browser_page() as page:
        page.goto(f"http://127.0.0.1:{stack.web.port}/?token={stack.web.password}")
        rows = page.locator("table tbody tr", has_text="127.0.0.1")
        rows.first.wait_for()
        assert rows.count() == 4  # login, account, the attack, the forced logout
        # find LogoutGuard's flows as the README says: the filter ~comment LogoutGuard
        page.get_by_placeholder("Search").fill("~comment LogoutGuard")
        expect(page.locator("table tbody tr td.col-path")).to_have_count(2)  # (mitmweb's CSP forbids eval)
        found = [t.strip() for t in page.locator("table tbody tr td.col-path").all_inner_texts()]
        assert found[0].endswith(XSS) and found[1].endswith("/logout"), found
        page.screenshot(path=shots / "1-flows-filtered.png")

        page.locator("table tbody tr", has_text="/search?q=").click()
        page.locator(".flow-detail nav a", has_text="Request").click()
        page.get_by_text("View:").click()
        page.locator("ul.dropdown-menu a", has_text="logoutguard").click()
        view = page.locator(".flow-detail .contentview pre")
        view.get_by_text("situation: authenticated_over_threshold").wait_for()
        text = view.inner_text()
        for message in messages:
            assert f"message: {message}" in text, (message, text)
        assert "forced logout, ended" in text and "result: ended" in text and "probe: dead" in text
        assert f"inbound: {record['inbound_score']} of threshold 5 (over)" in text
        assert old not in text  # the session ID is never shown, only its keyed hash
        page.screenshot(path=shots / "2-attack-logoutguard-view.png", full_page=True)

        page.locator(".flow-detail nav a", has_text="Comment").click()
        comment = page.locator(".flow-detail section").inner_text()
        assert f"LogoutGuard: score {record['inbound_score']}, {top['id']} {top['msg']} (+" in comment, comment
        page.screenshot(path=shots / "3-attack-comment.png")

        page.locator("table tbody tr", has_text="/logout").click()
        page.locator(".flow-detail nav a", has_text="Request").click()
        view.get_by_text("for flow:").wait_for()
        logout_text = view.inner_text()
        assert f"for flow: {attack_id}" in logout_text and "result: ended" in logout_text
        assert "POST" in page.locator(".flow-detail .first-line").inner_text()
        page.screenshot(path=shots / "4-logout-flow.png")

        # the command bar (Options > Display Command Bar), guard.explain on the marked flows
        page.locator("nav a, header a", has_text="Options").first.click()
        page.get_by_text("Display Command Bar").click()
        command = page.get_by_placeholder("Enter command")
        command.fill("guard.explain @marked")
        command.press("Enter")
        result = page.locator(".command-result")
        result.get_by_text("rule 941100").wait_for()
        rows_shown = json.loads(result.inner_text().split("\n", 1)[1])
        assert ["decision", "situation authenticated_over_threshold -> action logout"] in rows_shown
        page.screenshot(path=shots / "5-command-bar-explain.png")
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-flows-filtered.png",
        "2-attack-logoutguard-view.png",
        "3-attack-comment.png",
        "4-logout-flow.png",
        "5-command-bar-explain.png",
    ]
