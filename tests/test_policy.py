"""Policy files: loading, validation errors with file, field and reason, and template rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logoutguard.policy import (
    SCHEMA,
    SUCCESS_STATUSES,
    KeptIn,
    PageCheck,
    Policy,
    PolicyError,
    SourceKind,
    TemplateValueError,
    TokenSource,
    load_policy,
    parse_policy,
    render,
)

DEMO_POLICY = Path(__file__).resolve().parent.parent / "addon" / "demo" / "policy.yaml"


def test_demo_policy_loads() -> None:
    policy = load_policy(DEMO_POLICY)
    assert policy.session_cookies == ("JSESSIONID",)
    assert policy.logout.method == "POST" and policy.logout.path == "/logout" and policy.logout.from_policy
    [step] = policy.logout.steps
    assert (step.method, step.path, step.take) == (
        "GET",
        "/account",
        (("csrf", TokenSource(SourceKind.FORM_FIELD, "csrf", "/logout")),),
    )
    assert policy.logout.verify.logged_in == PageCheck((200,), "Signed in as")
    assert policy.actions.authenticated_over_threshold == "logout"
    assert policy.cumulative.scored_requests == 3 and policy.cumulative.window == 600


def test_empty_policy_gives_the_defaults() -> None:
    policy = parse_policy({})
    assert policy == Policy(source="(policy)")
    assert policy.actions.anonymous_over_threshold == "deny" and policy.logout.mode == "rewrite"
    # verification on, statuses that mean success, the built-in logout flagged as a guess
    assert policy.logout.verify.enabled and policy.logout.verify.check_path == "/"
    assert policy.logout.expect_status == SUCCESS_STATUSES == (200, 201, 202, 204, 302, 303)
    assert not policy.logout.from_policy and policy.actions.cross_site == "deny"
    assert policy.path_parameters == (("jsessionid", "JSESSIONID"),) and policy.kept_in is KeptIn.SERVER
    assert policy.lockout.credentials == 900


def test_the_recipe_and_everything_else_a_learner_writes_is_plain_data() -> None:
    data = {
        "session": {
            "cookies": ["sid"],
            "remember_cookies": ["keep_me"],
            "remember_pattern": None,
            "path_parameters": {},
            "kept_in": "cookie",
            "bearer": False,
            "authenticated": {"login_paths": ["/login"], "password_fields": None, "every_issued": True},
        },
        "logout": {
            "steps": [
                {
                    "method": "POST",
                    "path": "/api/csrf",
                    "expect_status": [200],
                    "take": {
                        "csrf": {"json": "data.token"},
                        "m": {"meta": "csrf-token"},
                        "h": {"header": "X-CSRF-Token"},
                        "c": {"cookie": "XSRF-TOKEN"},
                        "r": {"regex": "t=([a-z]+)"},
                    },
                }
            ],
            "method": "DELETE",
            "path": "/api/session",
            "headers": {"X-CSRF-Token": "{token:h}", "X-XSRF": "{cookie:XSRF-TOKEN}"},
            "body": '{"csrf": "{csrf}", "m": "{token:m}", "r": "{token:r}", "c": "{token:c}"}',
            "content_type": "application/json",
            "revocation_endpoint": {
                "path": "/oauth/revoke",
                "headers": {"Authorization": "Basic Y2xpZW50OnNlY3JldA=="},
            },
            "verify": {
                "check_path": "/api/me",
                "logged_in": {"status": 200, "marker": '"user"'},
                "logged_out": {"status": [401, 403]},
            },
        },
        "attribution": {"origins": ["https://Shop.Example"], "same_site": "foreign"},
        "actions": {"cross_site": "log"},
        "lockout": {"credentials": 0},
    }
    policy = parse_policy(json.loads(json.dumps(data)))
    assert [name for name, _ in policy.logout.steps[0].take] == ["csrf", "m", "h", "c", "r"]
    assert policy.logout.verify.logged_out == PageCheck((401, 403))
    assert (
        policy.logout.revocation_endpoint is not None
        and policy.logout.revocation_endpoint.path == "/oauth/revoke"
    )
    assert policy.attribution.origins == ("https://shop.example",) and not policy.attribution.same_site_is_own
    assert policy.authentication.password_fields is None and policy.kept_in is KeptIn.COOKIE
    assert policy.path_parameters == () and not policy.bearer and policy.lockout.credentials == 0


def test_the_old_verify_spelling_still_loads() -> None:
    verify = parse_policy(
        {"logout": {"verify": {"check_path": "/a", "alive_status": [200], "alive_body": "Hi"}}}
    )
    assert verify.logout.verify.logged_in == PageCheck((200,), "Hi")


def test_the_schema_documents_every_field() -> None:
    """Every property of the schema has a description or is self-explaining by its enum/type (for a learner)."""

    def walk(node: dict, where: str) -> list[str]:
        missing = []
        for name, sub in node.get("properties", {}).items():
            if sub.get("type") == "object" and "properties" in sub:
                missing += walk(sub, f"{where}.{name}")
        return missing

    assert SCHEMA["title"] == "LogoutGuard policy" and walk(SCHEMA, "") == []


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
            {"session": {"csrf_cookie": "csrftoken"}, "logout": {"body": "csrf={csrf}"}},
            "logout.body",
            "never from the attacking request",
        ),
        ({"logout": {"body": "t={token:x}"}}, "logout.body", "needs a step that takes it"),
        (
            {"logout": {"steps": [{"path": "/a", "take": {"x": {}}}]}},
            "logout.steps.0.take.x",
            "names 0 sources (none); exactly one of cookie",
        ),
        (
            {"logout": {"steps": [{"path": "/a", "take": {"x": {"cookie": "a", "meta": "b"}}}]}},
            "logout.steps.0.take.x",
            "exactly one of",
        ),
        (
            {"logout": {"steps": [{"path": "/a", "take": {"x": {"meta": "b", "form_action": "/l"}}}]}},
            "logout.steps.0.take.x",
            "form_action goes with form_field only",
        ),
        (
            {"logout": {"steps": [{"path": "/a", "take": {"x": {"regex": "no group"}}}]}},
            "logout.steps.0.take.x.regex",
            "needs a group",
        ),
        (
            {"logout": {"steps": [{"path": "/a", "take": {"x": {"regex": "("}}}]}},
            "logout.steps.0.take.x.regex",
            "bad regex",
        ),
        (
            {"logout": {"steps": [{"path": "/a", "take": {"bad name": {"meta": "m"}}}]}},
            "logout.steps.0.take.bad name",
            "not a token name",
        ),
        (
            {"logout": {"steps": [{"method": "DELETE", "path": "/a"}]}},
            "logout.steps.0.method",
            "is not one of",
        ),
        ({"logout": {"steps": [{"method": "GET"}]}}, "logout.steps.0", "'path' is a required property"),
        (
            {"logout": {"verify": {"logged_in": {"colour": "red"}}}},
            "logout.verify.logged_in",
            "Additional properties",
        ),
        (
            {"logout": {"revocation_endpoint": {"headers": {}}}},
            "logout.revocation_endpoint",
            "'path' is a required",
        ),
        ({"session": {"kept_in": "browser"}}, "session.kept_in", "is not one of"),
        ({"attribution": {"origins": ["shop.example"]}}, "attribution.origins.0", "does not match"),
        ({"session": {"remember_pattern": "(x"}}, "session.remember_pattern", "bad regex"),
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
