"""pcre_to_python: each PCRE -> Python rewrite, and that the result means the same."""

import re

import pytest

from logoutguard.crs.regex import FLAGS, RegexError, compile_pcre, pcre_to_python


@pytest.mark.parametrize(
    ("pcre", "python"),
    [
        ("^GET /$", "^GET /\\Z"),
        ("[$]x", "[$]x"),  # `$` in a class is literal
        ("a\\$", "a\\$"),
        ("ab\\z", "ab\\Z"),
        ("ab\\Z", "ab(?=\\n?\\Z)"),
        ("\\x{c2}\\x{b4}|[\\x7f-\\x{ff}]", "\\xc2\\xb4|[\\x7f-\\xff]"),
        ("\\x{9}", "\\x09"),
        ("^(?i)up", "^(?i:up)"),
        ("a(?i)b|c", "a(?i:b)|(?i:c)"),
        ("(x(?i)y|z)w", "(x(?i:y)|(?i:z))w"),
        ("(?i)abc", "(?i)abc"),  # leading flags are fine in Python
        ("[\\s\\v]", "[\\s\\n\\x0b\\f\\r\\x85]"),
        ("a\\vb", "a[\\n\\x0b\\f\\r\\x85]b"),
        ("[[:alpha:][:digit:]_]", "[a-zA-Z0-9_]"),
        ("[]a]", "[\\]a]"),
        ("(?<!&(?:amp)|&(?:ab))x", "(?<!&(?:amp))(?<!&(?:ab))x"),
        ("(?<=ab|c)x", "(?:(?<=ab)|(?<=c))x"),
        ("(?<=ab|cd)x", "(?<=ab|cd)x"),  # same width: Python takes it as it is
    ],
)
def test_rewrites(pcre, python):
    assert pcre_to_python(pcre) == python
    re.compile(python, FLAGS)


@pytest.mark.parametrize(
    ("pcre", "subject", "matches"),
    [
        ("^GET /$", "GET /\n", False),  # DOLLAR_ENDONLY
        ("^GET /$", "GET /", True),
        ("a.b", "a\nb", True),  # DOTALL
        ("\\w", "\xe9", False),  # byte mode: ASCII classes only
        ("(?i)\xe9", "\xc9", False),  # no case folding outside ASCII
        ("[\xb4]", "\xc2\xb4", True),  # a non-ASCII literal is one byte
        ("^(?i)application/x-www-form-urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED", True),
        ("ab\\z", "ab\n", False),
        ("ab\\Z", "ab\n", True),
    ],
)
def test_semantics(pcre, subject, matches):
    assert (compile_pcre(pcre).search(subject) is not None) is matches


def test_bad_pattern_names_it():
    with pytest.raises(RegexError, match="a\\(b"):
        compile_pcre("a(b")
