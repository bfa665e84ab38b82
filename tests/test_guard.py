"""The mitmproxy addon: options, hooks, annotations, commands (taddons + tflow, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow, tutils

from logoutguard.engine.engine import Engine
from logoutguard.guard import META_KEY, LogoutGuard

RULES = """
category: test
rules:
  - id: 100001
    msg: union select
    phase: 2
    targets: [ARGS, REQUEST_BODY]
    transforms: [lowercase]
    operator: rx
    argument: "union\\\\s+select"
    examples: {match: ["union select"], no_match: ["union"]}
  - id: 100002
    msg: leaked SQL error
    phase: 4
    severity: critical
    targets: [RESPONSE_BODY]
    operator: contains
    argument: "You have an error in your SQL syntax"
    examples: {match: ["You have an error in your SQL syntax near"], no_match: ["fine"]}
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    return tmp_path


@pytest.fixture
def guard() -> LogoutGuard:
    return LogoutGuard()


def flow_for(
    path: str = "/", method: str = "GET", body: bytes = b"", headers: dict | None = None, live: bool = True
) -> http.HTTPFlow:
    req = tutils.treq(method=method.encode(), path=path.encode(), content=body)
    req.headers.clear()
    req.headers["Host"] = "app.test"
    for k, v in (headers or {}).items():
        req.headers[k] = v
    if body:
        req.headers["Content-Length"] = str(len(body))
    return tflow.tflow(req=req, live=live)


def test_attack_is_denied_in_enforce_mode(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)], guard_mode="enforce")
        f = flow_for("/search?q=1%20UNION%20SELECT%20password")
        guard.request(f)
        assert f.response is not None and f.response.status_code == 403
        assert b"union" not in f.response.content.lower()
        record = f.metadata[META_KEY]
        assert record["score"] == 5 and record["blocked"] is True and record["action"] == "deny"
        assert [m["id"] for m in record["matches"]] == [100001]
        assert record["matches"][0]["target"] == "ARGS:q"
        assert f.marked and "100001" in f.comment and "deny" in f.comment
        json.dumps(record)  # plain JSON-able data


def test_attack_passes_annotated_in_detect_mode(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)], guard_mode="detect")
        f = flow_for("/search?q=union select")
        guard.request(f)
        assert f.response is None
        assert f.metadata[META_KEY]["action"] == "log"
        assert f.marked and "log" in f.comment


def test_benign_request_is_untouched(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)])
        f = flow_for("/search?q=union station")
        guard.request(f)
        assert f.response is None and not f.marked and not f.comment
        assert f.metadata[META_KEY]["score"] == 0 and f.metadata[META_KEY]["action"] == "none"


def test_outbound_leak_is_replaced_in_enforce_mode(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)])
        f = flow_for("/item?id=1")
        guard.request(f)
        f.response = tutils.tresp(content=b"<p>You have an error in your SQL syntax near ''</p>")
        guard.response(f)
        assert f.response.status_code == 403 and b"SQL" not in f.response.content
        record = f.metadata[META_KEY]
        assert record["outbound_score"] == 5 and record["action"] == "deny (outbound)"


def test_saved_flow_is_judged_but_not_answered(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)], guard_mode="enforce")
        f = flow_for("/?q=union select", live=False)
        f.response = tutils.tresp(content=b"recorded answer")
        guard.request(f)
        guard.response(f)
        assert f.response.content == b"recorded answer"
        record = f.metadata[META_KEY]
        assert record["blocked"] is True and record["action"] == "none (offline)"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("guard_mode", "block", "guard_mode"),
        ("guard_paranoia", 5, "guard_paranoia"),
        ("guard_inbound_threshold", 0, "guard_inbound_threshold"),
        ("guard_body_limit", 0, "guard_body_limit"),
        ("guard_error_action", "explode", "guard_error_action"),
        ("guard_rules", ["/nonexistent/rules"], "/nonexistent/rules"),
    ],
)
def test_bad_options_are_refused(guard: LogoutGuard, option: str, value: object, message: str) -> None:
    with taddons.context(guard) as tctx, pytest.raises(exceptions.OptionsError, match=message):
        tctx.configure(guard, **{option: value})


def test_bad_rule_file_names_file_rule_and_field(guard: LogoutGuard, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(RULES.replace("[lowercase]", "[lowercas]"))
    with taddons.context(guard) as tctx, pytest.raises(exceptions.OptionsError) as info:
        tctx.configure(guard, guard_rules=[str(tmp_path)])
    text = str(info.value)
    assert "bad.yaml" in text and "100001" in text and "transforms[0]" in text and "'lowercase'" in text


def test_reload_with_a_broken_file_keeps_the_running_ruleset(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)])
        running = guard.engine
        (rules_dir / "rules.yaml").write_text(RULES.replace("operator: rx", "operator: rxx"))
        assert "refused" in guard.reload()
        assert guard.engine is running
        f = flow_for("/?q=union select")
        guard.request(f)
        assert f.response is not None and f.response.status_code == 403
        (rules_dir / "rules.yaml").write_text(RULES.replace("union", "onion"))
        assert "reloaded 2 rules" in guard.reload()
        f = flow_for("/?q=union select")
        guard.request(f)
        assert f.response is None


def test_explain_lists_rules_and_totals(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)])
        f = flow_for("/?q=union select")
        guard.request(f)
        text = guard.explain_flows([f, flow_for("/never-judged")])
        assert "100001" in text and "ARGS:q" in text and "total inbound 5" in text
        assert "not judged" in text


class FailingEngine(Engine):
    def inspect_request(self, tx):  # type: ignore[no-untyped-def]
        raise RuntimeError("engine failure for the test")


@pytest.mark.parametrize(("error_action", "status"), [("deny", 403), ("pass", None)])
def test_internal_error_still_gives_a_verdict(
    guard: LogoutGuard, rules_dir: Path, error_action: str, status: int | None
) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)], guard_error_action=error_action)
        assert guard.ruleset is not None
        guard.engine = FailingEngine(guard.ruleset)
        f = flow_for("/")
        guard.request(f)
        assert (f.response.status_code if f.response else None) == status
        assert "engine failure" in f.metadata[META_KEY]["error"]


BAD_INPUTS = {
    "invalid percent-encoding": dict(path="/a%zz%?q=%%41%u12&x=%"),
    "invalid utf-8": dict(
        path="/p",
        method="POST",
        body=b"name=\xff\xfe\xc3\x28&b=\xed\xa0\x80",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "binary body": dict(
        path="/upload",
        method="POST",
        body=bytes(range(256)) * 64,
        headers={"Content-Type": "application/octet-stream"},
    ),
    "multipart without boundary": dict(
        path="/u",
        method="POST",
        body=b"--x\r\n\r\nhello\r\n--x--",
        headers={"Content-Type": "multipart/form-data"},
    ),
    "multipart garbage": dict(
        path="/u",
        method="POST",
        body=b"\x00--b\r\nContent-Disposition: \xff\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ),
    "truncated json": dict(
        path="/api",
        method="POST",
        body=b'{"a": [1, {"b": "union select',
        headers={"Content-Type": "application/json"},
    ),
    "deep json": dict(
        path="/api",
        method="POST",
        body=b"[" * 100_000 + b"]" * 100_000,
        headers={"Content-Type": "application/json"},
    ),
    "10000 args": dict(path="/?" + "&".join(f"a{i}=v{i}" for i in range(10_000))),
    "5 MB body": dict(
        path="/big",
        method="POST",
        body=b"a=" + b"x" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "odd header bytes": dict(
        path="/", headers={"X-\x7fodd": "va\x00l\x1bue\xff", "Cookie": "=; ;a;==;\x00=1"}
    ),
    "gzip that is not gzip": dict(
        path="/",
        method="POST",
        body=b"not gzip",
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_a_verdict(guard: LogoutGuard, rules_dir: Path, name: str) -> None:
    spec = dict(BAD_INPUTS[name])
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)])
        f = flow_for(spec.pop("path"), **spec)
        guard.request(f)
        record = f.metadata[META_KEY]
        assert "error" not in record, record.get("error")
        assert isinstance(record["score"], int)
        json.dumps(record)


def test_truncated_json_is_still_inspected_raw(guard: LogoutGuard, rules_dir: Path) -> None:
    with taddons.context(guard) as tctx:
        tctx.configure(guard, guard_rules=[str(rules_dir)])
        f = flow_for(
            "/api",
            method="POST",
            body=b'{"a": "1 union select pass',
            headers={"Content-Type": "application/json"},
        )
        guard.request(f)
        assert f.metadata[META_KEY]["matches"][0]["target"] == "REQUEST_BODY"
