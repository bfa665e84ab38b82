"""state: the per-transaction evaluation state: TX variables (setvar) and macro expansion."""

from __future__ import annotations

import pytest

from logoutguard.engine.state import EvalState

from .helpers import request


def state() -> EvalState:
    s = EvalState(tx=request("/p?q=1", headers=[("X-Name", "v")]))
    s.vars.update({"n": "5", "word": "abc", "bad": "x"})
    return s


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("plain", "plain"),
        ("%{tx.n}", "5"),
        ("%{TX.N}", "5"),
        ("%{tx.missing}", ""),
        ("a%{tx.word}b%{tx.n}", "aabcb5"),
        ("%{REQUEST_HEADERS.x-name}", "v"),
        ("%{request_method}", "GET"),
        ("%{ARGS.q}", "1"),
        ("%{MATCHED_VAR}", ""),
        ("%{tx.n", "%{tx.n"),
    ],
)
def test_macros(text: str, expanded: str) -> None:
    assert state().expand(text) == expanded


def test_matched_var_macros_follow_the_state() -> None:
    s = state()
    s.matched_var_name, s.matched_var = "ARGS:q", "1"
    assert s.expand("%{MATCHED_VAR_NAME}=%{MATCHED_VAR}") == "ARGS:q=1"


@pytest.mark.parametrize(
    ("expression", "name", "value"),
    [
        ("tx.a=1", "a", "1"),
        ("TX.A=x y", "a", "x y"),
        ("b=2", "b", "2"),  # the tx. prefix is optional
        ("tx.flag", "flag", "1"),
        ("tx.n=+3", "n", "8"),
        ("tx.n=-7", "n", "-2"),
        ("tx.new=+2", "new", "2"),
        ("tx.bad=+1", "bad", "1"),  # a non-number counts as 0
        ("tx.n=+x", "n", "+x"),  # not a number: taken as text
        ("tx.copy=%{tx.word}", "copy", "abc"),
        ("tx.%{tx.word}=1", "abc", "1"),
        ("tx.n=+%{tx.n}", "n", "10"),
    ],
)
def test_setvar(expression: str, name: str, value: str) -> None:
    s = state()
    s.set_var(expression)
    assert s.vars[name] == value


def test_setvar_removes_with_a_bang() -> None:
    s = state()
    s.set_var("!tx.word")
    s.set_var("!tx.%{tx.missing}never")
    assert "word" not in s.vars and s.vars["n"] == "5"
