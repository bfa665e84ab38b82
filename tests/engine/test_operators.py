"""Operators: ModSecurity-2 semantics, table-driven; bad arguments fail at load with a reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logoutguard.engine import operators
from logoutguard.engine.loader import lint
from logoutguard.engine.operators import (
    OPERATORS,
    OPTIONAL_OPERATORS,
    OperatorContext,
    OperatorError,
    PhraseMatcher,
    atoi,
    parse_pm_content,
)

CONTEXT = OperatorContext(rules_dir=Path(__file__).parent)
MACROS = {"%{tx.word}": "b", "%{tx.num}": "5", "%{tx.list}": "GET POST", "%{tx.rx}": "a+b", "%{tx.bad}": "("}


def expand(text: str) -> str:
    for macro, value in MACROS.items():
        text = text.replace(macro, value)
    return text


def run(name: str, argument: str, value: str, context: OperatorContext = CONTEXT) -> tuple[str, ...] | None:
    return OPERATORS[name](argument, context)(value, expand)


# (operator, argument, value, expected captures or None for no match)
CASES = [
    # rx: DOTALL, DOLLAR_ENDONLY, ASCII-only classes, captures 0..9 up to the last group that matched
    ("rx", "union\\s+select", "1 UNION select", None),
    ("rx", "(?i)union\\s+select", "1 UNION\n select", ("UNION\n select",)),
    ("rx", "a.b", "a\nb", ("a\nb",)),
    ("rx", "^\\d+$", "123", ("123",)),
    ("rx", "^\\d+$", "123\n", None),
    ("rx", "(?m)^\\d+$", "x\n123\n", ("123",)),
    ("rx", "\\w+", "\xe9t\xe9", ("t",)),
    ("rx", "(?i)\xe9", "\xc9", None),  # arguments are byte text; (?i) folds ASCII only
    ("rx", "\xc3\xa9", "caf\xc3\xa9", ("\xc3\xa9",)),  # an é as a loader hands it over: UTF-8 bytes
    ("rx", "(a)|(b)", "b", ("b", "", "b")),
    ("rx", "((a)b)(c)?", "ab", ("ab", "ab", "a")),
    ("rx", "(x)(y)?", "x", ("x", "x")),
    ("rx", "".join(f"({c})" for c in "abcdefghijk"), "abcdefghijk", ("abcdefghijk", *"abcdefghi")),
    ("rx", "", "anything", ("",)),
    ("rx", "\\z", "ab\n", ("",)),
    ("rx", "b\\Z", "ab\n", ("b",)),
    ("rx", "b\\z", "ab\n", None),
    ("rx", "\\e", "\x1b", ("\x1b",)),
    ("rx", "a\\hb", "a\xa0b", ("a\xa0b",)),
    ("rx", "[\\s\\v]", "\x85", ("\x85",)),
    ("rx", "\\V+", "ab\ncd", ("ab",)),
    ("rx", "a\\Rb", "a\r\nb", ("a\r\nb",)),
    ("rx", "\\Qa.b\\E", "axb a.b", ("a.b",)),
    ("rx", "\\x{41}\\x{ff}?", "A", ("A",)),
    ("rx", "(?<word>ab)", "xab", ("ab", "ab")),
    ("rx", "[[:alpha:]]+[[:digit:]]", "1ab2", ("ab2",)),
    ("rx", "[^[:space:]]+", " \vx ", ("x",)),
    ("rx", "[]x]+", "a]x]", ("]x]",)),
    ("rx", "[^]]+", "]]ab]", ("ab",)),
    ("rx", "[$]", "a$", ("$",)),
    ("rx", "\\$$", "a$", ("$",)),
    ("rx", "a%{tx.word}c", "abc", ("abc",)),
    ("rx", "^%{tx.rx}$", "aab", ("aab",)),
    ("rx", "^%{tx.rx}$", "a+b", None),
    ("rx", "%{tx.bad}", "(", None),  # does not compile after expansion: no match, no error
    # pm: ASCII case-insensitive substrings; capture = phrase as written, ending first, longest there
    ("pm", "foo BAR", "xxbarfoo", ("BAR",)),
    ("pm", "foo bar", "xxBARfoo", ("bar",)),
    ("pm", "abc bc b", "xabcd", ("b",)),
    ("pm", "abc bc", "xabcd", ("abc",)),
    ("pm", "select union", "nothing here", None),
    ("pm", "foo", "", None),
    ("pm", "\xe9", "\xc9", None),  # no case folding beyond ASCII
    ("pm", "\xc3\x89", "x\xc3\x89", ("\xc3\x89",)),
    ("pm", "|41 42|c", "xABC", ("ABc",)),
    ("pm", "a\\:b", "xa:b", ("a:b",)),
    ("pm", '"quoted phrase"', "a phrase", ("phrase",)),
    ("pm", "  a\t\tb  ", "xb", ("b",)),
    # contains / contains_word / begins_with / ends_with / streq / within
    ("contains", "b", "abc", ("b",)),
    ("contains", "B", "abc", None),
    ("contains", "", "abc", ("",)),
    ("contains", "%{tx.word}", "abc", ("b",)),
    ("contains", "x", "", None),
    ("contains_word", "id", "select id,name", ("id",)),
    ("contains_word", "id", "ids", None),
    ("contains_word", "id", "_id", None),
    ("contains_word", "id", "ids id", ("id",)),
    ("contains_word", "id", "id", ("id",)),
    ("contains_word", "", "x", ("",)),
    ("begins_with", "ab", "abc", ("ab",)),
    ("begins_with", "bc", "abc", None),
    ("begins_with", "", "", ("",)),
    ("begins_with", "abcd", "abc", None),
    ("ends_with", "bc", "abc", ("bc",)),
    ("ends_with", "%{tx.word}c", "abc", ("bc",)),
    ("ends_with", "ab", "abc", None),
    ("streq", "abc", "abc", ("abc",)),
    ("streq", "abc", "ABC", None),
    ("streq", "", "", ("",)),
    ("streq", "%{tx.num}", "5", ("5",)),
    ("within", "GET POST HEAD", "POST", ("POST",)),
    ("within", "GET POST HEAD", "PUT", None),
    ("within", "GET", "", ("",)),  # ModSecurity: the empty value is always within
    ("within", "%{tx.list}", "GET", ("GET",)),
    ("within", "GET", "GET POST", None),
    # numbers: atoi on both sides, non-numeric is 0
    ("eq", "0", "abc", ("abc",)),
    ("eq", "0", "", ("",)),
    ("eq", "12", " 12abc", (" 12abc",)),
    ("eq", "12", "1 2", None),
    ("eq", "-3", "-3", ("-3",)),
    ("eq", "%{tx.num}", "5", ("5",)),
    ("eq", "%{tx.missing}", "0", ("0",)),
    ("ge", "5", "5", ("5",)),
    ("ge", "5", "4", None),
    ("gt", "5", "6", ("6",)),
    ("gt", "5", "5", None),
    ("le", "5", "5", ("5",)),
    ("le", "5", "+6", None),
    ("lt", "5", "-10", ("-10",)),
    ("lt", "%{tx.num}", "4", ("4",)),
    ("lt", " 5 ", "4", ("4",)),
    # validate_url_encoding: a % not followed by two hex digits
    ("validate_url_encoding", "", "a%20b%2F", None),
    ("validate_url_encoding", "", "a%2", ("a%2",)),
    ("validate_url_encoding", "", "%", ("%",)),
    ("validate_url_encoding", "", "%zz", ("%zz",)),
    ("validate_url_encoding", "", "%%41", ("%%41",)),
    ("validate_url_encoding", "", "", None),
    # validate_utf8_encoding: ModSecurity's rules (truncated, bad continuation, overlong, surrogate, F5+)
    ("validate_utf8_encoding", "", "plain", None),
    ("validate_utf8_encoding", "", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", None),
    ("validate_utf8_encoding", "", "\xc3", ("\xc3",)),
    ("validate_utf8_encoding", "", "\xc3(", ("\xc3(",)),
    ("validate_utf8_encoding", "", "\xa9", ("\xa9",)),
    ("validate_utf8_encoding", "", "\xc0\xaf", ("\xc0\xaf",)),
    ("validate_utf8_encoding", "", "\xe0\x80\xaf", ("\xe0\x80\xaf",)),
    ("validate_utf8_encoding", "", "\xf0\x80\x80\xaf", ("\xf0\x80\x80\xaf",)),
    ("validate_utf8_encoding", "", "\xed\xa0\x80", ("\xed\xa0\x80",)),
    ("validate_utf8_encoding", "", "\xf5\x80\x80\x80", ("\xf5\x80\x80\x80",)),
    ("validate_utf8_encoding", "", "\xff", ("\xff",)),
    ("validate_utf8_encoding", "", "\xf4\x90\x80\x80", None),  # ModSecurity 2 does not cap at U+10FFFF
    # validate_byte_range: matches if ANY byte is outside
    ("validate_byte_range", "32-126", "Hello, world", None),
    ("validate_byte_range", "32-126", "tab\there", ("tab\there",)),
    ("validate_byte_range", "9,10,13,32-126", "tab\there", None),
    ("validate_byte_range", "20,45-47", "-./", None),
    ("validate_byte_range", "20,45-47", "-0", ("-0",)),
    ("validate_byte_range", "1-255", "\0", ("\0",)),
    ("validate_byte_range", "0-255", "\0\xff", None),
    ("validate_byte_range", "1-255", "", None),
    # ip_match
    ("ip_match", "10.0.0.0/8, 192.168.1.1", "10.20.30.40", ("10.20.30.40",)),
    ("ip_match", "10.0.0.0/8, 192.168.1.1", "192.168.1.1", ("192.168.1.1",)),
    ("ip_match", "10.0.0.0/8, 192.168.1.1", "192.168.1.2", None),
    ("ip_match", "10.1.2.3/8", "10.9.9.9", ("10.9.9.9",)),
    ("ip_match", "2001:db8::/32,::1", "2001:db8::42", ("2001:db8::42",)),
    ("ip_match", "2001:db8::/32,::1", "::1", ("::1",)),
    ("ip_match", "10.0.0.0/8", "::ffff:10.0.0.1", None),
    ("ip_match", "10.0.0.0/8", "not an ip", None),
    ("ip_match", "10.0.0.0/8", "10.0.0.1 ", None),
    ("ip_match", "fe80::/10", "fe80::1%eth0", None),
    ("ip_match", "10.0.0.0/8", "", None),
    # constants
    ("unconditional_match", "", "anything", ("anything",)),
    ("unconditional_match", "", "", ("",)),
    ("no_match", "", "anything", None),
]


@pytest.mark.parametrize(("name", "argument", "value", "expected"), CASES)
def test_operator(name: str, argument: str, value: str, expected: tuple[str, ...] | None) -> None:
    assert run(name, argument, value) == expected


# (operator, bad argument, words the error must contain)
BAD_ARGUMENTS = [
    ("rx", "(a", ["bad regex", "missing )"]),
    ("rx", "a{2,1}", ["bad regex"]),
    ("rx", "\\x{}", ["bad regex"]),
    ("rx", "\\x{100}", ["bad regex", "above 0xff"]),  # patterns match bytes (PCRE without UTF mode)
    ("pm", "", ["at least one phrase"]),
    ("pm", "   ", ["at least one phrase"]),
    ("pm_from_file", "", ["phrase file"]),
    ("pm_from_file", "no-such-file.data", ["no-such-file.data", "not found", "tried"]),
    ("pm_from_file", "https://example.test/list.txt", ["remote phrase file", "not supported"]),
    ("eq", "x", ["eq needs an integer"]),
    ("ge", "1.5", ["ge needs an integer"]),
    ("gt", "", ["gt needs an integer"]),
    ("le", "5a", ["le needs an integer"]),
    ("lt", "five", ["lt needs an integer"]),
    ("validate_byte_range", "", ["needs ranges"]),
    ("validate_byte_range", "1-300", ["'1-300'", "0 to 255"]),
    ("validate_byte_range", "256", ["0 to 255"]),
    ("validate_byte_range", "9-5", ["start is above end"]),
    ("validate_byte_range", "a-b", ["'a-b'", "N or N-M"]),
    ("validate_byte_range", "-5", ["'-5'"]),
    ("ip_match", "", ["needs comma-separated"]),
    ("ip_match", "10.0.0.0/8,1.2.3", ["'1.2.3'"]),
    ("ip_match", "10.0.0.0/33", ["'10.0.0.0/33'"]),
]


@pytest.mark.parametrize(("name", "argument", "words"), BAD_ARGUMENTS)
def test_bad_argument_fails_at_load(name: str, argument: str, words: list[str]) -> None:
    with pytest.raises(OperatorError) as excinfo:
        OPERATORS[name](argument, CONTEXT)
    for word in words:
        assert word in str(excinfo.value)


@pytest.mark.parametrize("name", ["eq", "ge", "gt", "le", "lt", "rx"])
def test_macro_arguments_are_not_checked_at_load(name: str) -> None:
    assert OPERATORS[name]("%{tx.anything}", CONTEXT) is not None


def test_rx_with_macro_compiles_each_distinct_expansion_once() -> None:
    predicate = OPERATORS["rx"]("^%{tx.x}$", CONTEXT)
    seen: list[str] = []

    def counting_expand(text: str) -> str:
        seen.append(text)
        return text.replace("%{tx.x}", "a|b")

    assert predicate("a", counting_expand) == ("a",)
    assert predicate("c", counting_expand) is None
    assert predicate("b", lambda text: text.replace("%{tx.x}", "b")) == ("b",)
    assert len(seen) == 2  # expanded per value, as the macro may change within a transaction


PM_CONTENT = [
    ("abc", "abc"),
    ('"abc"', "abc"),
    ('  "a b"', "a b"),
    ("|41|", "A"),
    ("a|20 21|b", "a !b"),
    ("a\\;b\\\\c", "a;b\\c"),
    ("a\\qb", None),  # unsupported escape: ModSecurity falls back to the raw text
    ("", None),
    ('""', None),
]


@pytest.mark.parametrize(("text", "expected"), PM_CONTENT)
def test_parse_pm_content(text: str, expected: str | None) -> None:
    assert parse_pm_content(text) == expected


ATOI = [
    ("", 0),
    ("abc", 0),
    ("42", 42),
    ("  \t-17xyz", -17),
    ("+8", 8),
    ("- 8", 0),
    ("0x10", 0),
    ("2147483648", -2147483648),  # glibc atoi: (int) strtol
    ("99999999999999999999999", -1),  # strtol saturates at LONG_MAX, then truncated
    ("-99999999999999999999999", 0),
    ("\xa05", 0),  # NBSP is not C whitespace
]


@pytest.mark.parametrize(("text", "expected"), ATOI)
def test_atoi(text: str, expected: int) -> None:
    assert atoi(text) == expected


# --- phrase matching: the Aho-Corasick path and the pure-Python fallback agree ---------------------

PHRASES = ["select", "union", "UNION ALL", "sel", "lect", "or 1=1", "\xe9t\xe9", "a"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SELECT 1", "sel"),
        ("x union all", "union"),
        ("xlectx", "lect"),
        ("\xc9T\xc9", None),  # no case folding beyond ASCII
        ("\xe9t\xe9", "\xe9t\xe9"),
        ("zzz", None),
        ("", None),
        ("b a", "a"),
    ],
)
@pytest.mark.parametrize("use_automaton", [True, False])
def test_phrase_matcher_both_paths(value: str, expected: str | None, use_automaton: bool) -> None:
    matcher = PhraseMatcher(PHRASES, use_automaton=use_automaton)
    assert (matcher.automaton is not None) == use_automaton
    assert matcher.search(value) == expected


def test_phrase_matcher_drops_duplicates_and_empty_phrases() -> None:
    matcher = PhraseMatcher(["Foo", "foo", "FOO", "", "bar"])
    assert len(matcher) == 2
    assert matcher.search("xfoo") == "Foo"


@settings(max_examples=300, deadline=None)
@given(
    phrases=st.lists(st.text(alphabet="abAB \xe9", min_size=1, max_size=4), min_size=1, max_size=6),
    value=st.text(alphabet="abAB \xe9c", max_size=30),
)
def test_phrase_matcher_paths_agree(phrases: list[str], value: str) -> None:
    fast = PhraseMatcher(phrases, use_automaton=True)
    slow = PhraseMatcher(phrases, use_automaton=False)
    assert fast.search(value) == slow.search(value)


def test_pm_without_ahocorasick_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [case for case in CASES if case[0] == "pm"]
    monkeypatch.setattr(operators, "ahocorasick_rs", None)
    for name, argument, value, expected in cases:
        assert run(name, argument, value) == expected, (argument, value)


def test_module_loads_without_optional_packages() -> None:
    code = (
        "import sys; sys.modules['ahocorasick_rs'] = None; sys.modules['libinjection'] = None\n"
        "from logoutguard.engine.operators import OPERATORS, OPTIONAL_OPERATORS, OperatorContext\n"
        "from pathlib import Path\n"
        "assert 'detect_sqli' not in OPERATORS and 'detect_xss' not in OPERATORS\n"
        "assert set(OPTIONAL_OPERATORS) == {'detect_sqli', 'detect_xss'}\n"
        "p = OPERATORS['pm']('foo bar', OperatorContext(Path('.')))\n"
        "assert p('xBARx', str) == ('bar',), p('xBARx', str)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_loader_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(OPERATORS, "detect_sqli", raising=False)
    rule_file = tmp_path / "942-test.yaml"
    rule_file.write_text(
        "category: sqli\n"
        "rules:\n"
        "  - id: 942999\n"
        "    msg: libinjection\n"
        "    targets: [ARGS]\n"
        "    operator: detect_sqli\n"
        "    examples: {match: [\"1' or '1'='1\"], no_match: [hello]}\n"
    )
    ruleset, problems = lint([rule_file])
    assert problems == [] and ruleset is not None and len(ruleset) == 0  # left out, not a problem
    assert [why.split(": ", 1)[1] for _, why in ruleset.off] == [
        "operator 'detect_sqli' needs logoutguard[libinjection] (pip install 'logoutguard[libinjection]'): rule off"
    ]


# --- phrase files ---------------------------------------------------------------------------------


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "words.data").write_bytes(
        b"# a comment\n\n   \nSELECT\r\n  union all  \n\t# indented comment\nxp_\\:cmd\n|41|bc\n\xe9t\xe9"
    )
    (tmp_path / "local.data").write_text("evil\n")
    return tmp_path


@pytest.mark.parametrize(
    ("argument", "value", "expected"),
    [
        ("words.data", "x select 1", ("SELECT",)),
        ("words.data", "UNION ALL", ("union all",)),
        ("words.data", "UNION  ALL", None),
        ("words.data", "a comment", None),
        ("words.data", "exec xp_:cmd", ("xp_:cmd",)),
        ("words.data", "Abc", ("Abc",)),
        ("words.data", "\xe9t\xe9", ("\xe9t\xe9",)),
        ("words.data", "#", None),
        ("local.data", "EVIL", ("evil",)),
        ("words.data local.data", "so evil", ("evil",)),
        ("data/words.data", "select", ("SELECT",)),
    ],
)
def test_pm_from_file(rules_dir: Path, argument: str, value: str, expected: tuple[str, ...] | None) -> None:
    context = OperatorContext(rules_dir=rules_dir)
    assert OPERATORS["pm_from_file"](argument, context)(value, expand) == expected


def test_pm_from_file_absolute_path(rules_dir: Path) -> None:
    elsewhere = OperatorContext(rules_dir=rules_dir / "data")
    predicate = OPERATORS["pm_from_file"](str(rules_dir / "local.data"), elsewhere)
    assert predicate("evil", expand) == ("evil",)


def test_pm_from_file_error_lists_paths_tried(rules_dir: Path) -> None:
    with pytest.raises(OperatorError) as excinfo:
        OPERATORS["pm_from_file"]("words.data missing.data", OperatorContext(rules_dir=rules_dir))
    message = str(excinfo.value)
    assert str(rules_dir / "missing.data") in message
    assert str(rules_dir / "data" / "missing.data") in message


def test_pm_from_file_rereads_a_changed_file(rules_dir: Path) -> None:
    context = OperatorContext(rules_dir=rules_dir)
    assert OPERATORS["pm_from_file"]("local.data", context)("evil", expand) == ("evil",)
    path = rules_dir / "local.data"
    path.write_text("worse\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    reloaded = OPERATORS["pm_from_file"]("local.data", context)
    assert reloaded("evil", expand) is None
    assert reloaded("worse", expand) == ("worse",)


def test_pm_from_file_with_only_comments_never_matches(tmp_path: Path) -> None:
    (tmp_path / "empty.data").write_text("# nothing\n\n")
    predicate = OPERATORS["pm_from_file"]("empty.data", OperatorContext(rules_dir=tmp_path))
    assert predicate("# nothing", expand) is None


# --- libinjection ---------------------------------------------------------------------------------

needs_libinjection = pytest.mark.skipif(operators.libinjection is None, reason="libinjection not installed")


@needs_libinjection
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("detect_sqli", "1' or '1'='1", ("s&sos",)),
        ("detect_sqli", "1 UNION SELECT password FROM users", ("1UEnk",)),
        ("detect_sqli", "hello world", None),
        ("detect_sqli", "", None),
        ("detect_sqli", "\xff\xfe' or 1=1 --", ("s&1c",)),
        ("detect_xss", "<script>alert(1)</script>", ("<script>alert(1)</script>",)),
        ("detect_xss", '<a href="javascript:alert(1)">', ('<a href="javascript:alert(1)">',)),
        ("detect_xss", "plain text", None),
        ("detect_xss", "", None),
    ],
)
def test_libinjection(name: str, value: str, expected: tuple[str, ...] | None) -> None:
    assert run(name, "", value) == expected


# Pieces of XSS payloads with their "<" and "=" taken out: tag and attribute names, URL schemes,
# quotes of every context, blanks, comments, IE conditionals, doctype and entity declarations.
_XSS_PIECES = [
    "script", "img", "svg", "onerror", "onload", "ONMOUSEOVER", "style", "href", "src", "action",
    "formaction", "xmlns", "xlink:href", "attributename", "javascript:", "vbscript:", "data:", "alert(1)",
    "expression(", "!DOCTYPE", "!--", "-->", "[if", "xml", "IMPORT", "ENTITY", "?", "%", "/", ">", "'", '"',
    "`", " ", "\t", "\n", "\x0b", "\x0c", "\r", "\x00", "a", "x", ";", ":", "(", ")", "&#x3c;", "&lt;",
    "\\u003c", "\xff", "\xbc",
]  # fmt: skip


@needs_libinjection
@given(pieces=st.lists(st.sampled_from(_XSS_PIECES), min_size=1, max_size=10))
@settings(max_examples=3000, deadline=None)
def test_libinjection_finds_no_xss_without_a_less_than_or_equals_sign(pieces: list[str]) -> None:
    """What lets detect_xss skip libinjection for such a value (operators._xss)."""
    value = "".join(pieces)
    assert operators.libinjection.is_xss(operators._RawBytes(value))["is_xss"] == 0
    assert run("detect_xss", "", value) is None
    for sign in ("<", "="):  # the same pieces with one of the signs do reach libinjection
        with_sign = sign.join(pieces[:1] + pieces) if sign == "=" else sign + value
        expected = operators.libinjection.is_xss(operators._RawBytes(with_sign))["is_xss"]
        assert (run("detect_xss", "", with_sign) is not None) == bool(expected)


# --- registry and robustness ----------------------------------------------------------------------

REQUIRED = [
    "rx", "pm", "pm_from_file", "contains", "contains_word", "streq", "begins_with", "ends_with",
    "within", "eq", "ge", "gt", "lt", "le", "validate_url_encoding", "validate_utf8_encoding",
    "validate_byte_range", "ip_match", "unconditional_match", "no_match",
]  # fmt: skip


def test_registry_has_every_required_operator_and_each_is_tested() -> None:
    assert set(REQUIRED) <= set(OPERATORS)
    tested = {case[0] for case in CASES} | {
        "pm_from_file",
        "detect_sqli",
        "detect_xss",
        "detect_shell",
    }  # shell: test_shell.py
    assert set(OPERATORS) <= tested


def test_optional_operators_are_registered_when_available() -> None:
    for name in OPTIONAL_OPERATORS:
        assert (name in OPERATORS) == (operators.libinjection is not None)


SAMPLE_ARGUMENTS = {
    "rx": "(?i)a(b)?",
    "pm": "a b",
    "pm_from_file": "words.data",
    "detect_shell": "local.data",
    "validate_byte_range": "32-126",
    "ip_match": "10.0.0.0/8",
}
ODD_VALUES = [
    "",
    "\0",
    "%",
    "%u",
    "\xff\xfe",
    "\xc3",
    "".join(chr(b) for b in range(256)),
    "a" * 2000,
    "\u20ac",
]


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_predicates_never_raise_on_odd_values(name: str, rules_dir: Path) -> None:
    argument = SAMPLE_ARGUMENTS.get(name, "5" if name in ("eq", "ge", "gt", "le", "lt") else "x")
    predicate = OPERATORS[name](argument, OperatorContext(rules_dir=rules_dir))
    for value in ODD_VALUES:
        result = predicate(value, expand)
        assert result is None or (isinstance(result, tuple) and result and isinstance(result[0], str))


@settings(max_examples=500, deadline=None)
@given(
    value=st.text(
        alphabet=st.sampled_from("a\x80\x8f\x90\x9f\xa0\xbf\xc0\xc2\xdf\xe0\xed\xef\xf0\xf4\xf5\xff"),
        max_size=10,
    )
)
def test_validate_utf8_shortcut_agrees_with_modsecurity_rules(value: str) -> None:
    result = run("validate_utf8_encoding", "", value)
    assert (result is not None) == (not value.isascii() and operators._utf8_error(value))
