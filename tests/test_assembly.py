"""Assembly: option values -> parts; every failure names its option."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from mitmproxy import exceptions

from logoutguard.assembly import (
    DEFAULT_RULES_DIR,
    build_engine,
    cookie_matcher,
    load_rules,
    open_audit_log,
    open_session_store,
    read_policy,
)
from logoutguard.engine.engine import Engine
from logoutguard.policy import Policy, parse_policy


def options(tmp_path: Path, **values: object) -> SimpleNamespace:
    defaults: dict[str, object] = {
        "guard_paranoia": 2,
        "guard_inbound_threshold": 7,
        "guard_outbound_threshold": 3,
        "guard_crs": "",
        "guard_crs_confs": [],
        "guard_exclusions": [],
        "guard_session_store": str(tmp_path / "new" / "dir" / "sessions.sqlite"),
        "guard_session_key": "",
        "guard_session_ttl": 60,
        "guard_max_sessions": 10,
    }
    return SimpleNamespace(**{**defaults, **values})


def test_the_shipped_rules_load_and_the_engine_takes_the_options(tmp_path: Path) -> None:
    ruleset = load_rules([str(DEFAULT_RULES_DIR)])
    engine = build_engine(ruleset, options(tmp_path))
    assert isinstance(engine, Engine) and len(ruleset) > 100
    assert (engine.paranoia, engine.inbound_threshold, engine.outbound_threshold) == (2, 7, 3)


@pytest.mark.parametrize(
    ("call", "option"),
    [
        (lambda tmp: load_rules([str(tmp / "missing")]), "guard_rules"),
        (
            lambda tmp: build_engine(
                load_rules([str(DEFAULT_RULES_DIR)]), options(tmp, guard_crs=str(tmp / "no-crs"))
            ),
            "guard_crs",
        ),
        (
            lambda tmp: build_engine(
                load_rules([str(DEFAULT_RULES_DIR)]), options(tmp, guard_exclusions=[str(tmp / "no.yaml")])
            ),
            "guard_exclusions",
        ),
        (lambda tmp: read_policy(str(tmp / "missing.yaml")), "guard_policy"),
        (
            lambda tmp: open_session_store(
                options(tmp, guard_session_store="redis://"), Policy(), cookie_matcher(Policy())
            ),
            "guard_session_store",
        ),
        (lambda tmp: open_audit_log(str(tmp)), "guard_audit_log"),  # a directory
    ],
)
def test_failures_name_the_option(tmp_path: Path, call, option: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exceptions.OptionsError, match=f"^{option}: "):
        call(tmp_path)


def test_policy_and_its_cookie_matcher(tmp_path: Path) -> None:
    assert read_policy("") == Policy()
    (tmp_path / "p.yaml").write_text("session: {cookies: [MYAPP]}\n")
    policy = read_policy(str(tmp_path / "p.yaml"))
    matcher = cookie_matcher(policy)
    assert matcher.matches("MYAPP") and matcher.matches("JSESSIONID")
    assert not cookie_matcher(parse_policy({"session": {"cookie_pattern": "", "cookies": ["x"]}})).matches(
        "sid"
    )


async def test_the_sqlite_store_is_opened_in_a_private_folder(tmp_path: Path) -> None:
    tracker = open_session_store(options(tmp_path), Policy(), cookie_matcher(Policy()))
    try:
        folder = tmp_path / "new" / "dir"
        assert (folder / "sessions.sqlite").exists() and stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert tracker.store.ttl == 60 and tracker.store.max_sessions == 10
        assert tracker.grace_period_s == Policy().grace_period
    finally:
        await tracker.store.close()


def test_a_rule_left_out_for_a_missing_optional_package_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from logoutguard.engine import loader

    monkeypatch.delitem(loader.OPERATORS, "detect_sqli", raising=False)
    ruleset = load_rules([str(DEFAULT_RULES_DIR)])
    assert 942100 not in ruleset.by_id() and [i for i, _ in ruleset.off] == [942100]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        len(warnings) == 1
        and warnings[0].startswith("LogoutGuard: ")
        and warnings[0].endswith(
            "942-sqli.yaml rule 942100 field 'operator': operator 'detect_sqli' needs logoutguard[libinjection] "
            "(pip install 'logoutguard[libinjection]'): rule off"
        )
    )
