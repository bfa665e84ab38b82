"""The guard_* options: every one declared once with help text, and a bad value refused naming the option."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from mitmproxy import exceptions, optmanager

from logoutguard import guard_options


def declared() -> optmanager.OptManager:
    options = optmanager.OptManager()
    guard_options.declare(options)
    return options


def test_every_option_is_declared_with_help_and_the_sets_name_declared_ones() -> None:
    options = declared()
    names = set(options.keys())
    assert all(name.startswith("guard_") for name in names) and len(names) >= 20
    assert all(options._options[name].help for name in names)
    assert (
        guard_options.ENGINE_OPTIONS | guard_options.STORE_OPTIONS | set(guard_options.POSITIVE_OPTIONS)
        <= names
    )
    assert options.guard_mode == "enforce" and options.guard_fail_mode == "closed"


GOOD = SimpleNamespace(**{name: opt.default for name, opt in declared()._options.items()})


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("guard_mode", "block", "guard_mode: 'block' is not one of detect, enforce"),
        ("guard_fail_mode", "half", "guard_fail_mode: 'half' is not one of closed, open"),
        ("guard_error_action", "drop", "guard_error_action: 'drop' is not one of deny, pass"),
        ("guard_paranoia", 5, "guard_paranoia: 5 is not in 1-4"),
        ("guard_body_limit", 0, "guard_body_limit: 0 must be at least 1"),
        ("guard_body_limit_action", "drop", "guard_body_limit_action: 'drop' is not one of reject, inspect"),
        ("guard_max_args", 0, "guard_max_args: 0 must be at least 1"),
        ("guard_max_cookies", -1, "guard_max_cookies: -1 must be at least 1"),
        ("guard_max_headers", 0, "guard_max_headers: 0 must be at least 1"),
        ("guard_max_parts", 0, "guard_max_parts: 0 must be at least 1"),
        ("guard_metrics", "not a port", "guard_metrics: "),
        ("guard_upstream", "ftp://app", "guard_upstream: 'ftp://app' is not an http(s) URL"),
    ],
)
def test_a_bad_value_is_refused_naming_the_option(name: str, value: Any, words: str) -> None:
    opts = SimpleNamespace(**{**vars(GOOD), name: value})
    with pytest.raises(exceptions.OptionsError, match="^" + words.replace("(", r"\(").replace(")", r"\)")):
        guard_options.validate(opts, {name})
    guard_options.validate(opts, set())  # only updated options are checked
    guard_options.validate(GOOD, set(vars(GOOD)))  # the defaults are valid


def test_limits_come_from_the_max_options() -> None:
    opts = SimpleNamespace(**{**vars(GOOD), "guard_max_args": 7, "guard_max_cookies": 8})
    limits = guard_options.limits(opts)
    assert (limits.args, limits.cookies, limits.headers, limits.parts) == (7, 8, 200, 1000)
