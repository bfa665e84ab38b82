"""pcre: each PCRE -> Python rewrite, and that the result matches what PCRE (as ModSecurity 2 runs it) matches."""

from __future__ import annotations

import re

import pytest

from logoutguard.engine.pcre import FLAGS, RegexError, compile_pcre, parse, pcre_to_python

# (PCRE pattern as a rule file writes it, the Python pattern it becomes)
REWRITES = [
    ("^GET /$", "^GET /\\Z"),  # DOLLAR_ENDONLY
    ("[$]x", "[$]x"),  # `$` in a class is literal
    ("[$^]", "[$^]"),
    ("a\\$", "a\\$"),
    ("(?m)^a$", "(?m)^a$"),  # multi-line mode: PCRE ignores DOLLAR_ENDONLY
    ("a$(?m:b$)c$", "a\\Z(?m:b$)c\\Z"),  # ... only where it is in force
    ("a(?m)b$|c$", "a(?m:b$)|(?m:c$)"),
    ("ab\\z", "ab\\Z"),
    ("ab\\Z", "ab(?=\\n?\\Z)"),
    ("\\x{c2}\\x{b4}|[\\x7f-\\x{ff}]", "\\xc2\\xb4|[\\x7f-\\xff]"),
    ("\\x{9}", "\\x09"),
    ("\\x{0041}", "\\x41"),  # leading zeros: the value counts
    ("\\Q(.*)\\E", "\\(\\.\\*\\)"),
    ("\\Qopen", "open"),  # \Q without \E quotes to the end
    ("[\\Q]\\E]", "[\\]]"),
    ("\\e", "\\x1b"),
    ("a\\vb", "a[\\n\\x0b\\f\\r\\x85]b"),
    ("\\V\\h\\H", "[^\\n\\x0b\\f\\r\\x85][\\t \\xa0][^\\t \\xa0]"),
    ("\\R", "(?:\\r\\n|[\\n\\x0b\\f\\r\\x85])"),
    ("[\\s\\v]", "[\\s\\n\\x0b\\f\\r\\x85]"),
    ("[\\h]", "[\\t \\xa0]"),
    ("[[:alpha:][:digit:]_]", "[a-zA-Z0-9_]"),
    ("[[:upper:][:ascii:]]", "[A-Z\\x00-\\x7f]"),
    ("[[:nope:]]", "[\\[:nope:]]"),  # not a POSIX class: `[` is a literal, the class ends at `]`
    ("[[]", "[\\[]"),
    ("[]a]", "[\\]a]"),  # `]` first in a class is a literal
    ("[^]a]", "[^\\]a]"),
    ("\\d\\w\\s\\b", "\\d\\w\\s\\b"),
    ("(?<n>x)(?'m'y)(?P<o>z)", "(?P<n>x)(?P<m>y)(?P<o>z)"),
    ("(?<=y)(?<!z)(?=a)(?!b)(?>c)", "(?<=y)(?<!z)(?=a)(?!b)(?>c)"),
    ("a(?#note)b", "a(?#note)b"),
    ("(?i)abc", "(?i)abc"),  # leading flags stay global
    ("^(?i)up", "^(?i:up)"),
    ("a(?i)b|c", "a(?i:b)|(?i:c)"),
    ("(x(?i)y|z)w", "(x(?i:y)|(?i:z))w"),
    ("a(?i)|b", "a|(?i:b)"),
    ("a(?i)b(?s)c", "a(?i:b(?s:c))"),
    ("a(?i)b|c(?-i)d|e", "a(?i:b)|(?i:c(?-i:d))|(?i:(?-i:e))"),  # flags carry to later alternatives
    ("(?<!&(?:amp)|&(?:ab))x", "(?<!&(?:amp))(?<!&(?:ab))x"),
    ("(?<!ab|c)x", "(?<!ab)(?<!c)x"),
    ("(?<=ab|c)x", "(?:(?<=ab)|(?<=c))x"),
    ("(?<=ab|cd)x", "(?<=ab|cd)x"),  # same width: Python takes it as it is
]


@pytest.mark.parametrize(("pcre", "python"), REWRITES)
def test_rewrites(pcre: str, python: str) -> None:
    assert pcre_to_python(pcre) == python
    re.compile(python, FLAGS)


# (PCRE pattern, subject, does PCRE find a match) — PCRE semantics spelled out in the comments
SEMANTICS = [
    ("^GET /$", "GET /\n", False),  # DOLLAR_ENDONLY: `$` is the very end
    ("^GET /$", "GET /", True),
    ("(?m)^b$", "a\nb\nc", True),  # multi-line: `$` before any newline
    ("a.b", "a\nb", True),  # DOTALL
    ("\\w", "\xe9", False),  # no UTF mode: classes are ASCII
    ("(?i)\xe9", "\xc9", False),  # no case folding outside ASCII
    ("[\xb4]", "\xc2\xb4", True),  # a non-ASCII literal is one byte
    ("^(?i)application/x-www-form-urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED", True),
    ("ab\\z", "ab\n", False),
    ("ab\\Z", "ab\n", True),  # \Z: the end or before a final newline
    ("a\\Qb.c\\E", "ab.c", True),
    ("a\\Qb.c\\E", "abxc", False),
    ("\\x{41}\\x{0062}", "Ab", True),
    # `a(?i)b|c`: the flag applies to the rest of its alternative and to every later alternative of
    # the group, not to what came before it: "aB" and "C" match, "Ab" does not.
    ("^(?:a(?i)b|c)$", "aB", True),
    ("^(?:a(?i)b|c)$", "ab", True),
    ("^(?:a(?i)b|c)$", "C", True),
    ("^(?:a(?i)b|c)$", "Ab", False),
    ("^(?:a(?i)b|c)$", "AB", False),
    # `(?<!ab|c)x`: an x not preceded by "ab" and not preceded by "c" (PCRE allows alternatives of
    # different fixed widths in a look-behind).
    ("(?<!ab|c)x", "x", True),
    ("(?<!ab|c)x", "zx", True),
    ("(?<!ab|c)x", "bx", True),  # "b" alone is neither "ab" nor "c"
    ("(?<!ab|c)x", "abx", False),
    ("(?<!ab|c)x", "cx", False),
    ("(?<=ab|c)x", "abx", True),
    ("(?<=ab|c)x", "cx", True),
    ("(?<=ab|c)x", "bx", False),
    ("a(?i)b|c(?-i)d|e", "CD", False),  # (?-i) switched case-sensitivity back on for "d" ...
    ("a(?i)b|c(?-i)d|e", "Cd", True),
    ("a(?i)b|c(?-i)d|e", "E", False),  # ... and for the alternatives after it
]


@pytest.mark.parametrize(("pcre", "subject", "matches"), SEMANTICS)
def test_semantics(pcre: str, subject: str, matches: bool) -> None:
    assert (compile_pcre(pcre).search(subject) is not None) is matches


@pytest.mark.parametrize(
    ("pcre", "words"),
    [
        ("a(b", ["'a(b'", "missing )"]),
        ("a)b", ["'a)b'", "unbalanced parenthesis"]),
        ("[ab", ["unterminated character set"]),
        ("a{2,1}", ["min repeat greater than max repeat"]),
        ("\\x{}", ["incomplete escape"]),
        ("\\x{100}", ["\\x{100} is above 0xff", "patterns match bytes"]),  # PCRE refuses it too
        ("a\\", ["'a\\\\'"]),
        ("\\p{L}", ["bad escape"]),  # Unicode properties need UTF mode
        ("(?<=a+)b", ["look-behind requires fixed-width pattern"]),
        ("a$(?<=b+)", ["(as 'a\\\\Z(?<=b+)')"]),  # the translation is shown when it differs
    ],
)
def test_refused_patterns_are_named_with_the_reason(pcre: str, words: list[str]) -> None:
    with pytest.raises(RegexError) as excinfo:
        compile_pcre(pcre)
    for word in words:
        assert word in str(excinfo.value)


def test_extra_flags_are_added() -> None:
    assert compile_pcre("^id_", re.IGNORECASE).search("ID_x")
    assert not compile_pcre("^id_").search("ID_x")


def test_the_pattern_is_read_once_into_groups_and_alternatives() -> None:
    tree = parse("a|(b|[|)]c)")
    assert len(tree.alternatives) == 2
    group = tree.alternatives[1][0]
    assert group.opener == "(" and group.closed
    assert len(group.alternatives) == 2  # the `|` and `)` inside the class are no structure
    assert group.alternatives[1] == ["[|)]", "c"]
