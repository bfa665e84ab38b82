"""Policy files: loading, validation errors with file, field and reason, and template rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from logoutguard.policy import Policy, PolicyError, TemplateValueError, load_policy, parse_policy, render

DEMO_POLICY = Path(__file__).resolve().parent.parent / "addon" / "demo" / "policy.yaml"


def test_demo_policy_loads() -> None:
    policy = load_policy(DEMO_POLICY)
    assert policy.session_cookies == ("JSESSIONID",)
    assert policy.logout.method == "POST" and policy.logout.path == "/logout"
    assert policy.actions.authenticated_over_threshold == "logout"
    assert policy.cumulative.scored_requests == 3 and policy.cumulative.window == 600


def test_empty_policy_gives_the_defaults() -> None:
    policy = parse_policy({})
    assert policy == Policy(source="(policy)")
    assert policy.actions.anonymous_over_threshold == "deny" and policy.logout.mode == "rewrite"


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (
            {"actions": {"authenticated_over_threshold": "explode"}},
            "actions.authenticated_over_threshold",
            "is not one of",
        ),
        ({"logout": {"path": "logout"}}, "logout.path", "does not match"),
        ({"logout": {"methd": "GET"}}, "logout", "Additional properties"),
        ({"logout": {"body": "x={cookie}"}}, "logout.body", "needs a name"),
        ({"logout": {"body": "x={secret:y}"}}, "logout.body", "unknown placeholder"),
        ({"logout": {"body": "csrf={csrf}"}}, "logout.body", "csrf_cookie"),
        (
            {"logout": {"headers": {"Bad Header": "x"}}},
            "logout.headers.Bad Header",
            "not a valid header name",
        ),
        ({"logout": {"headers": {"X-A": "a\r\nInjected: 1"}}}, "logout.headers.X-A", "CR, LF and NUL"),
        ({"session": {"cookie_pattern": "(unclosed"}}, "session.cookie_pattern", "bad regex"),
        ({"cumulative": {"scored_requests": 0}}, "cumulative.scored_requests", "minimum"),
    ],
)
def test_bad_policy_names_field_and_reason(data: dict, field: str, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(data, "app.yaml")
    text = str(info.value)
    assert text.startswith("app.yaml") and f"field '{field}'" in text and reason in text


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("logout: [unclosed\n")
    with pytest.raises(PolicyError, match=r"bad.yaml: not valid YAML"):
        load_policy(bad)


def test_render_fills_cookies_headers_and_csrf() -> None:
    text = render(
        "csrf={csrf}&s={session_cookie}&u={header:X-User}&a={authorization}",
        {"csrftoken": "t0k", "JSESSIONID": "abc"},
        {"x-user": "ana", "authorization": "Basic eA=="},
        "JSESSIONID=abc",
        "csrftoken",
    )
    assert text == "csrf=t0k&s=JSESSIONID=abc&u=ana&a=Basic eA=="


@pytest.mark.parametrize("evil", ["a\r\nX-Injected: 1", "a\nb", "a\x00b"])
def test_render_refuses_values_that_would_inject(evil: str) -> None:
    with pytest.raises(TemplateValueError):
        render("Cookie: {cookie:sid}", {"sid": evil}, {})
