"""Apache config lexing as ModSecurity 2 on Apache sees it."""

import pytest

from logoutguard.crs.lexer import directives, getword_conf, logical_lines, split_args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SecRule A \\\n    B", [(1, "SecRule A     B")]),
        ("a\\\r\nb", [(1, "ab")]),
        ("# comment \\\nSecRule X", [(1, "# comment SecRule X")]),  # continuation before comments
        ("x \\\\\ny", [(1, "x \\\\"), (2, "y")]),  # an escaped backslash does not continue
        ("   indented   \n\n", [(1, "indented"), (2, ""), (3, "")]),
    ],
)
def test_logical_lines(text, expected):
    assert list(logical_lines(text)) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('SecRule ARGS "@rx a\\\\b" "id:1"', ["SecRule", "ARGS", "@rx a\\b", "id:1"]),
        ('X "say \\"hi\\""', ["X", 'say "hi"']),
        ("X 'it\\'s'", ["X", "it's"]),
        ('X "\\d \\w"', ["X", "\\d \\w"]),  # other backslashes stay
        ("X a\\\\b", ["X", "a\\b"]),  # bare words unescape \\ too
        ('X "a\\\\"', ["X", "a\\"]),
        ('X "unterminated', ["X", "unterminated"]),
        ('X "[\\\\\\\\\'\\"]"', ["X", "[\\\\'\"]"]),  # 3.3.4's 932 style: \\\\ -> \\
    ],
)
def test_split_args(line, expected):
    assert split_args(line) == expected


def test_getword_conf_returns_position_after_trailing_space():
    assert getword_conf('"a b"   c', 0) == ("a b", 8)


def test_directives_skip_comments_and_keep_line_numbers():
    text = '# c\n\nSecRule ARGS "@rx x" \\\n  "id:1,\\\n  pass"\nSecMarker END\n'
    found = list(directives(text, "f.conf"))
    assert [(d.name, d.args, d.line) for d in found] == [
        ("SecRule", ("ARGS", "@rx x", "id:1,  pass"), 3),
        ("SecMarker", ("END",), 6),
    ]
