"""End to end: real mitmdump with guard_metrics in front of the demo app; /metrics scraped over HTTP matches the traffic sent."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from test_metrics import scrape

from e2e.browser import Browser
from e2e.test_forced_logout import DEMO_POLICY, XSS
from logoutguard.demo.app import DemoApp
from procs import free_port, start_mitmdump, wait_port

pytestmark = pytest.mark.e2e

BENIGN = ["/", "/search?q=garden+hose", "/search?q=O%27Brien", "/account"]
ANONYMOUS_SQLI = "/search?q=1%27%20union%20select%20password%20from%20users--"


def test_scrape_after_real_traffic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = DemoApp(port=0).start()
    port = free_port()
    proxy = start_mitmdump(
        app.url,
        tmp_path,
        f"guard_policy={DEMO_POLICY}",
        f"guard_session_store={tmp_path / 'sessions.sqlite'}",
        f"guard_audit_log={tmp_path / 'audit.jsonl'}",
        "guard_mode=enforce",
        f"guard_metrics={port}",
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_port(port, proc=proxy.proc)  # the proxy port opens before the addon has loaded
        before = scrape(url)
        assert ("logoutguard_requests_judged_total", (("mode", "enforce"),)) not in before
        anonymous = Browser(proxy.port)
        for path in BENIGN[:3]:
            assert anonymous.get(path).status in (200, 302)  # the app's own answer (the search wants a login)
        assert anonymous.get(ANONYMOUS_SQLI).status == 403  # anonymous over threshold: deny
        user = Browser(proxy.port)
        old = user.login()  # 1 request
        for path in BENIGN:
            assert user.get(path).status == 200
        assert user.get(XSS).status == 302  # authenticated over threshold: forced logout
        assert not app.is_session_valid(old)
        sent = 3 + 1 + 1 + len(BENIGN) + 1

        got = scrape(url)
        assert f"LogoutGuard: metrics at {url}" in proxy.log()
        assert got[("logoutguard_requests_judged_total", (("mode", "enforce"),))] == sent
        actions = {labels: v for (name, labels), v in got.items() if name == "logoutguard_actions_total"}
        assert actions == {
            (("action", "none"), ("situation", "clean")): sent - 2,
            (("action", "deny"), ("situation", "anonymous_over_threshold")): 1,
            (("action", "logout"), ("situation", "authenticated_over_threshold")): 1,
        }
        assert got[("logoutguard_forced_logouts_total", (("result", "ended"),))] == 1
        hits = {
            dict(labels)["rule"]: v
            for (name, labels), v in got.items()
            if name == "logoutguard_rule_hits_total"
        }
        # every rule hit, as the audit log recorded each flow's matches (request and response rules)
        audited = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert hits == Counter(str(rule) for line in audited for rule in line["rules"])
        assert "941100" in hits and any(rule.startswith("942") for rule in hits)
        assert got[("logoutguard_engine_seconds_count", (("phase", "request"),))] == sent
        assert (
            got[("logoutguard_engine_seconds_count", (("phase", "response"),))] == sent - 2
        )  # not our answers
        store_calls = sum(v for (name, _), v in got.items() if name == "logoutguard_store_seconds_count")
        assert store_calls >= sent and not any(n == "logoutguard_store_errors_total" for n, _ in got)
        with capsys.disabled():
            print("\nscrape excerpt:")
            raw = urllib.request.urlopen(url, timeout=10).read().decode()
            for line in raw.splitlines():
                if "_created" not in line and line.startswith(
                    (
                        "logoutguard_requests",
                        "logoutguard_actions",
                        "logoutguard_forced",
                        'logoutguard_rule_hits_total{category="xss"',
                        "logoutguard_engine_seconds_count",
                        "logoutguard_engine_seconds_sum",
                        'logoutguard_store_seconds_count{call="get"',
                    )
                ):
                    print("  " + line)
    finally:
        proxy.stop()
        app.stop()
