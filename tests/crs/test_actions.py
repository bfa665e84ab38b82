"""msre_parse_generic: action and target lists."""

import pytest

from logoutguard.crs.actions import ParseError, parse_generic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id:1,phase:2,pass", [("id", "1"), ("phase", "2"), ("pass", None)]),
        ("t:none, t:lowercase ,  nolog", [("t", "none"), ("t", "lowercase"), ("nolog", None)]),
        ("msg:'a, b: c'", [("msg", "a, b: c")]),
        ("msg:'it\\'s \\\\ x'", [("msg", "it's \\ x")]),
        ("setvar:'tx.a=+%{tx.b}'", [("setvar", "tx.a=+%{tx.b}")]),
        ("setvar:tx.x=1|nolog", [("setvar", "tx.x=1"), ("nolog", None)]),
        (
            "ARGS|!REQUEST_COOKIES:/__utm/|XML:/*",
            [("ARGS", None), ("!REQUEST_COOKIES", "/__utm/"), ("XML", "/*")],
        ),
        ("&TX:'/LEAKAGE\\\\/ERRORS/'", [("&TX", "/LEAKAGE\\/ERRORS/")]),  # 980100 after Apache
        ("x:", [("x", None)]),
        ("", []),
    ],
)
def test_parse_generic(text, expected):
    assert parse_generic(text) == expected


@pytest.mark.parametrize("text", ["msg:'open", "msg:'bad \\x pair'", "a b"])
def test_parse_generic_rejects_what_modsecurity_rejects(text):
    with pytest.raises(ParseError):
        parse_generic(text)
