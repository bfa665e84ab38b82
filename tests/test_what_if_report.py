"""The what-if report: one self-contained HTML file whose figures, read back in headless Chromium, match
what the real offline path (mitmdump -nr with the addon) judged; attacker text escaped; clean errors."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
from chromium import artefact_dir, browser_page
from mitmproxy import http, io

from logoutguard.cli import main
from logoutguard.logout_flow import LOGOUT_KEY
from logoutguard.saved_traffic import Configuration, judge_files
from logoutguard.what_if_report import Run, render
from procs import ADDON_SCRIPT, BIN, REPO

FLOWS = REPO / "tests" / "flows"
DEMO_POLICY = str(REPO / "addon" / "demo" / "policy.yaml")
SAVED = ("benign", "attack", "stolen", "defective")


def combined(tmp_path: Path) -> Path:
    """The saved traffic of tests/flows as one file (mitmdump reads one -r file)."""
    path = tmp_path / "saved.mitm"
    with path.open("wb") as out:
        writer = io.FlowWriter(out)
        for name in SAVED:
            with (FLOWS / f"{name}.mitm").open("rb") as fh:
                for flow in io.FlowReader(fh).stream():
                    writer.add(flow)
    return path


def mitmdump_records(saved: Path, tmp_path: Path, paranoia: int) -> list[dict]:
    """Each flow's record as the addon in a real mitmdump (-n -r, offline) judged it, in order."""
    out = tmp_path / f"judged-pl{paranoia}.mitm"
    subprocess.run(
        [str(BIN / "mitmdump"), "-n", "-q", "-r", str(saved), "-w", str(out), "-s", str(ADDON_SCRIPT),
         "--set", f"guard_policy={DEMO_POLICY}", "--set", f"guard_paranoia={paranoia}",
         "--set", "guard_session_store=memory", "--set", "guard_audit_log="],
        check=True, capture_output=True, timeout=240, cwd=REPO,
    )  # fmt: skip
    with out.open("rb") as fh:
        flows = [f for f in io.FlowReader(fh).stream() if isinstance(f, http.HTTPFlow)]
    return [f.metadata["logoutguard"] for f in flows if LOGOUT_KEY not in f.metadata]


def figures(page: object) -> dict[str, str]:
    cells = page.locator("[data-figure]")  # type: ignore[attr-defined]
    return {cells.nth(i).get_attribute("data-figure"): cells.nth(i).text_content() for i in range(cells.count())}


def test_the_report_shows_what_mitmdump_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = combined(tmp_path)
    report = tmp_path / "report.html"
    args = [str(saved), "-o", str(report), "--policy", DEMO_POLICY, "--compare-paranoia", "2"]
    assert main(["report", *args]) == 0
    headline = capsys.readouterr().out
    a, b = mitmdump_records(saved, tmp_path, 1), mitmdump_records(saved, tmp_path, 2)
    assert len(a) == len(b) == sum(1 for name in SAVED for _ in io.FlowReader((FLOWS / f"{name}.mitm").open("rb")).stream())

    def outcome(r: dict) -> str:
        return r.get("decision", "none")

    def over(r: dict) -> bool:  # over a threshold (the record's "blocked" also counts a cumulative logout)
        return bool(r["inbound_blocked"] or r["outbound_blocked"])

    expected = {
        "flows": len(a),
        "over-threshold": sum(over(r) for r in a),
        "would-logout": sum(outcome(r) == "logout" for r in a),
        "outcome-deny": sum(outcome(r) == "deny" for r in a),
        "passed": sum(outcome(r) in ("none", "log") for r in a),
        "b-over-threshold": sum(over(r) for r in b),
        "b-would-logout": sum(outcome(r) == "logout" for r in b),
        "changed": sum(
            (outcome(x), over(x)) != (outcome(y), over(y)) for x, y in zip(a, b, strict=True)
        ),
    }
    assert expected["would-logout"] >= 3 and expected["changed"] > 0  # the traffic has something to show
    rule_flows = Counter(rule for r in a for rule in {m["id"] for m in r["matches"]})
    shots = artefact_dir(tmp_path, "report")
    requests: list[str] = []
    with browser_page((1200, 900)) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri())
        page.locator("h1", has_text="LogoutGuard what-if report").wait_for()
        shown = figures(page)
        page.screenshot(path=shots / "report.png", full_page=True)
        assert page.locator("svg[data-chart=timeline] rect").count() > 0
        assert page.locator("svg[data-chart=scores] rect").count() == 8
        assert page.locator("[data-changed]").count() == expected["changed"]
    assert {k: int(shown[k]) for k in expected} == expected, shown
    for rule, count in rule_flows.most_common(15):
        if f"rule-{rule}-flows" in shown:
            assert int(shown[f"rule-{rule}-flows"]) == count, rule
    assert sum(int(v) for k, v in shown.items() if k.startswith("score-")) == len(a)
    assert requests == [report.as_uri()]  # self-contained: nothing else was fetched
    assert f"{len(a)} flows, {expected['over-threshold']} over the threshold" in headline
    with capsys.disabled():
        print(f"\nreport headline: {headline.strip()}\nreport screenshot: {shots / 'report.png'}")


def test_attacker_text_is_escaped(tmp_path: Path) -> None:
    judged = judge_files([FLOWS / "attack.mitm"], Configuration(policy=DEMO_POLICY))
    page = render(["<b>saved</b>.mitm"], [Run("A", Configuration(policy=DEMO_POLICY), judged)])
    assert "<script" not in page.lower() and "&lt;b&gt;saved&lt;/b&gt;.mitm" in page
    assert "%3Cscript%3Ealert" in page  # the attack's path, shown as sent (and escaped where it matters)


def test_bad_input_one_clear_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "none.mitm"), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("report: ") and "none.mitm: cannot read" in err[0]
    assert not (tmp_path / "r.html").exists()
    assert main(["report", str(FLOWS / "benign.mitm"), "-o", str(tmp_path / "no" / "r.html")]) == 2
    assert "cannot write" in capsys.readouterr().err
