"""Transformations: ModSecurity-2 byte-exact results, table-driven; malformed input never raises."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logoutguard.engine.transformations import _ENTITIES, TRANSFORMATIONS

# (transformation, input, expected). Inputs and outputs are byte text: one char per byte.
# Cases marked "ModSecurity tfn" are ModSecurity 2's own tests/tfn/*.t vectors.
CASES = [
    # none / lowercase (C locale: A-Z only, latin-1 letters untouched)
    ("none", "AbC\0\xff", "AbC\0\xff"),
    ("lowercase", "", ""),
    ("lowercase", "SeLeCT 1", "select 1"),
    ("lowercase", "\xc9T\xc9\xde", "\xc9t\xc9\xde"),
    # url_decode
    ("url_decode", "", ""),
    ("url_decode", "a+b%20c", "a b c"),
    ("url_decode", "%41%42%43", "ABC"),
    ("url_decode", "%2B+%2b", "+ +"),
    ("url_decode", "%zz%4%", "%zz%4%"),
    ("url_decode", "%%41", "%A"),
    ("url_decode", "%u0041", "%u0041"),
    ("url_decode", "%00%ff%FF", "\0\xff\xff"),
    ("url_decode", "100%", "100%"),
    ("url_decode", "%2525", "%25"),
    # url_decode_uni (no SecUnicodeMapFile: low byte; full-width ASCII -> ASCII)
    ("url_decode_uni", "", ""),
    ("url_decode_uni", "%u0041%U0042+%43", "AB C"),
    ("url_decode_uni", "%uFF21%uff41%uFF5E", "Aa~"),
    ("url_decode_uni", "%uFF5F%uFF00%u1241", "_\x00A"),
    ("url_decode_uni", "%u00", "%u00"),
    ("url_decode_uni", "%uzzzz%u12", "%uzzzz%u12"),
    ("url_decode_uni", "%u%41", "%uA"),
    ("url_decode_uni", "%", "%"),
    ("url_decode_uni", "%u", "%u"),
    ("url_decode_uni", "%u002e%u002e%u2215", "..\x15"),
    # url_encode
    ("url_encode", "a b*9/Z\xff", "a+b*9%2fZ%ff"),
    ("url_encode", "", ""),
    # utf8_to_unicode (ModSecurity tfn vectors, plus its handling of bad sequences)
    ("utf8_to_unicode", "", ""),
    ("utf8_to_unicode", "plain ascii", "plain ascii"),
    ("utf8_to_unicode", "\xc4\x80 \xc4\x81 \xc5\xbf", "%u0100 %u0101 %u017f"),
    ("utf8_to_unicode", "\xe2\x96\xa0 \xe2\x9c\x81", "%u25a0 %u2701"),
    ("utf8_to_unicode", "\xef\xbc\x9cscript\xef\xbc\x9e", "%uff1cscript%uff1e"),
    ("utf8_to_unicode", "\xf0\x9f\x98\x80", "%u1f600"),
    ("utf8_to_unicode", "a\xc3", "a"),  # truncated: lead byte dropped
    ("utf8_to_unicode", "a\xc3b", "ab"),  # bad continuation: lead byte dropped
    ("utf8_to_unicode", "\xe2\x96", "\x96"),  # truncated 3-byte: lead dropped, stray byte kept
    ("utf8_to_unicode", "\x80\xbf\xf8\xff", "\x80\xbf\xf8\xff"),
    ("utf8_to_unicode", "\xc0\xaf", "%u002f\xc0"),  # overlong: code point then lead byte
    ("utf8_to_unicode", "\xed\xa0\x80", "%ud800\xed"),  # surrogate: code point then lead byte
    ("utf8_to_unicode", "\xf5\x80\x80\x80", "\xf5%u140000"),  # lead above F4 kept, then decoded
    # html_entity_decode (ModSecurity tfn vectors first)
    ("html_entity_decode", "", ""),
    ("html_entity_decode", "TestCase", "TestCase"),
    ("html_entity_decode", "Test\0Case", "Test\0Case"),
    (
        "html_entity_decode",
        "&#x0;&#X0;&#x20;&#X20;&#0;&#32;\0&#100;&quot;&amp;&lt;&gt;&nbsp;",
        '\0\0  \0 \0d"&<>\xa0',
    ),
    (
        "html_entity_decode",
        "&#x0&#X0&#x20&#X20&#0&#32\0&#100&quot&amp&lt&gt&nbsp",
        '\0\0  \0 \0d"&<>\xa0',
    ),
    (
        "html_entity_decode",
        "&#xg;&#Xg;&#xg0;&#X2g;&#a;\0&#a2;&#3a&#a00;&#1a0;&#10a;&foo;",
        "&#xg;&#Xg;&#xg0;\x02g;&#a;\0&#a2;\x03a&#a00;\x01a0;\na;&foo;",
    ),
    (
        "html_entity_decode",
        "&#xg&#Xg&#xg0&#X2g&#a\0&#a2&#3a&#a00&#1a0&#10a&foo",
        "&#xg&#Xg&#xg0\x02g&#a\0&#a2\x03a&#a00\x01a0\na&foo",
    ),
    ("html_entity_decode", "javascript&colon;alert(1)", "javascript:alert(1)"),
    ("html_entity_decode", "it&apos;s &COLON;&Apos;", "it's :'"),
    (
        "html_entity_decode",
        "&num;&dollar;&percnt;&lpar;&rpar;&ast;&plus;&comma;&hyphen;&period;&sol;&semi;&equals;&quest;&commat;",
        "#$%()*+,-./;=?@",
    ),
    (
        "html_entity_decode",
        "&lbrack;&bsol;&rbrack;&caret;&lowbar;&grave;&lbrace;&verbar;&rbrace;&tilde;",
        "[\\]^_`{|}~",
    ),
    ("html_entity_decode", "&unknown; &ampx; &lt1", "&unknown; &ampx; &lt1"),
    ("html_entity_decode", "&#60;script&#x3e;", "<script>"),
    ("html_entity_decode", "&#0000000000000000000000000000000000000060;", "<"),
    ("html_entity_decode", "&#x100;&#321;", "\x00A"),  # numeric entities keep the low byte
    ("html_entity_decode", "&#99999999999999999999999;&#xffffffffffffffffffff;", "\xff\xff"),  # saturates
    ("html_entity_decode", "&", "&"),
    ("html_entity_decode", "&#", "&#"),
    ("html_entity_decode", "&#x", "&#x"),
    ("html_entity_decode", "a&&#38;b", "a&&b"),
    ("html_entity_decode", "& amp;", "& amp;"),
    # js_decode
    ("js_decode", "", ""),
    ("js_decode", "\\u0041\\x42\\103", "ABC"),
    ("js_decode", "\\uFF21\\uff1c", "A<"),  # full-width ASCII -> ASCII
    ("js_decode", "\\u1241\\uFF5F", "A_"),  # low byte only
    ("js_decode", "\\a\\b\\f\\n\\r\\t\\v", "\a\b\f\n\r\t\v"),
    ("js_decode", "\\'\\\"\\\\\\z", "'\"\\z"),
    ("js_decode", "\\777\\400\\1", "?7 0\x01"),  # 3 octal digits only up to \377
    ("js_decode", "\\u12", "u12"),
    ("js_decode", "\\x4", "x4"),
    ("js_decode", "\\X41", "X41"),
    ("js_decode", "abc\\", "abc\\"),
    ("js_decode", "\\", "\\"),
    # css_decode
    ("css_decode", "", ""),
    ("css_decode", "\\41 b", "Ab"),  # one whitespace after a hex escape is eaten
    ("css_decode", "\\41  b", "A b"),
    ("css_decode", "\\4\\041\\0041", "\x04AA"),
    ("css_decode", "\\ff21\\0ff21\\00ff21", "AAA"),  # full-width ASCII -> ASCII
    ("css_decode", "\\1ff21\\01ff21", "!!"),  # no full-width check above U+FFFF
    ("css_decode", "\\0000ff21", "\xff21"),  # at most six hex digits
    ("css_decode", "a\\\nb", "ab"),  # escaped newline removed
    ("css_decode", "\\g\\\\", "g\\"),
    ("css_decode", "jav\\ascript", "jav\nscript"),  # \a is hex digit 0x0a
    ("css_decode", "abc\\", "abc"),  # trailing backslash dropped
    # escape_seq_decode (ModSecurity tfn vectors)
    ("escape_seq_decode", "", ""),
    ("escape_seq_decode", "Test\0Case", "Test\0Case"),
    (
        "escape_seq_decode",
        "\\a\\b\\f\\n\\r\\t\\v\\?\\'\\\"\\0\\12\\123\\x00\\xff",
        "\a\b\f\n\r\t\v?'\"\x00\nS\x00\xff",
    ),
    ("escape_seq_decode", "\\8\\9\\666\\xag\\xga\\0123", "89\xb6xagxga\n3"),
    ("escape_seq_decode", "\\x", "x"),
    ("escape_seq_decode", "\\x\\x0", "xx0"),
    ("escape_seq_decode", "\\x\\x0\0", "xx0\0"),
    ("escape_seq_decode", "\\0", "\0"),
    ("escape_seq_decode", "\\01", "\x01"),
    ("escape_seq_decode", "\\012", "\n"),
    ("escape_seq_decode", "\\", "\\"),
    ("escape_seq_decode", "\\\0", "\0"),
    ("escape_seq_decode", "\\X41\\\\", "A\\"),
    # cmd_line
    ("cmd_line", "", ""),
    ("cmd_line", "C:\\WINDOWS\\system32", "c:windowssystem32"),
    ("cmd_line", "c^a^t /et'c'/pa\"ss\"wd", "cat/etc/passwd"),
    ("cmd_line", "ls ,;\t\r\n -la", "ls -la"),
    ("cmd_line", "echo   (x)", "echo(x)"),
    ("cmd_line", " a ", " a "),
    ("cmd_line", "a\v\fb", "a\v\fb"),  # \v and \f are not separators for cmdLine
    ("cmd_line", "A\0B", "a\0b"),
    # whitespace
    ("compress_whitespace", "", ""),
    ("compress_whitespace", "a \t\n\v\f\r\xa0b", "a b"),
    ("compress_whitespace", "  a  b  ", " a b "),
    ("compress_whitespace", "a\x85\x1cb", "a\x85\x1cb"),
    ("remove_whitespace", "a \t\n\v\f\r\xa0b", "ab"),
    ("remove_whitespace", "", ""),
    ("trim", " \t\n\v\f\ra b\r\n", "a b"),
    ("trim", "\xa0a\xa0", "\xa0a\xa0"),  # NBSP is not C whitespace
    ("trim", "", ""),
    ("trim", "   ", ""),
    ("trim_left", "  a  ", "a  "),
    ("trim_right", "  a  ", "  a"),
    ("trim_right", "\x85", "\x85"),
    # NUL bytes
    ("remove_nulls", "a\0b\0\0", "ab"),
    ("remove_nulls", "", ""),
    ("replace_nulls", "a\0b\0", "a b "),
    # comments
    ("replace_comments", "", ""),
    ("replace_comments", "UNI/**/ON SEL/*x*/ECT", "UNI ON SEL ECT"),
    ("replace_comments", "a/* unterminated", "a "),
    ("replace_comments", "/*/", " "),
    ("replace_comments", "a */ b", "a */ b"),
    ("replace_comments", "a<!-- x -->b--c#d", "a<!-- x -->b--c#d"),
    ("remove_comments_char", "/*a*/b<!--c-->d--e#f", "abcdef"),
    ("remove_comments_char", "-->", ""),
    ("remove_comments_char", "*", "*"),
    # remove_comments (ModSecurity tfn vectors)
    ("remove_comments", "", ""),
    ("remove_comments", "TestCase", "TestCase"),
    ("remove_comments", "/* TestCase */", ""),
    ("remove_comments", "Before/* TestCase */After", "BeforeAfter"),
    ("remove_comments", "Before TestCase */ After", "Before TestCase */ After"),
    ("remove_comments", "/*Before/* Test\r\nCase ", " "),
    ("remove_comments", "Before /* Test\nCase ", "Before  "),
    ("remove_comments", "Before/* T*/ /* e */ /* s */ /* t */\r\nCase ", "Before   \r\nCase "),
    ("remove_comments", "Before /* */ ops */ Test\nCase ", "Before  ops */ Test\nCase "),
    ("remove_comments", "Test\nCase /**/ After", "Test\nCase  After"),
    ("remove_comments", "Test/*\nCase */ After", "Test After"),
    ("remove_comments", "SELECT/**//**/UNION", "SELECTUNION"),
    ("remove_comments", "foo<!-- comment 1 --><!-- comment 2 -->bar", "foobar"),
    ("remove_comments", "1 OR 1=1-- tail", "1 OR 1=1"),
    ("remove_comments", "1#tail", "1"),
    ("remove_comments", "<!-- open", " "),
    ("remove_comments", "/* x --> y", " y"),  # either closer ends a comment
    # normalize_path (port of normalize_path_inplace)
    ("normalize_path", "", ""),
    ("normalize_path", "x", "x"),
    ("normalize_path", "/a/b/../c/", "/a/c/"),
    ("normalize_path", "/a/b/c/../../d", "/a/d"),
    ("normalize_path", "/foo//bar///baz", "/foo/bar/baz"),
    ("normalize_path", "/./a/./b/.", "/a/b"),
    ("normalize_path", "a/./b", "a/b"),
    ("normalize_path", "./a", "a"),
    ("normalize_path", "a/b/..", "a"),
    ("normalize_path", "../../x", "../../x"),  # relative: nothing to go up into
    ("normalize_path", "a/../../x", "../x"),
    ("normalize_path", "/foo/bar/../../../../etc/passwd", "/etc/passwd"),  # not above the root
    ("normalize_path", "/", "/"),
    ("normalize_path", "//", "/"),
    ("normalize_path", "/./", "/"),
    ("normalize_path", "/../", "/"),
    ("normalize_path", "/..", ""),
    ("normalize_path", ".", ""),
    ("normalize_path", "..", ".."),
    ("normalize_path", "a//b/", "a/b/"),
    ("normalize_path", "\\a\\..\\b", "\\a\\..\\b"),
    ("normalize_path_win", "\\a\\b\\..\\c", "/a/c"),
    ("normalize_path_win", "c:\\windows\\..\\boot.ini", "c:/boot.ini"),
    ("normalize_path_win", "..\\..\\x", "../../x"),
    ("normalize_path_win", "/a\\\\/b", "/a/b"),
    ("normalize_path_win", "", ""),
    # base64_decode (ModSecurity tfn vectors: stops at the first non-alphabet char)
    ("base64_decode", "", ""),
    ("base64_decode", "VGVzdENhc2U=", "TestCase"),
    ("base64_decode", "VGVzdENhc2Ux", "TestCase1"),
    ("base64_decode", "VGVzdENhc2UxMg==", "TestCase12"),
    ("base64_decode", "VGVzdABDYXNl", "Test\0Case"),
    ("base64_decode", "VGVzdENhc2U=\0VGVzdENhc2U=", "TestCase"),
    ("base64_decode", "VGVzdENhc2UxM", "TestCase1"),  # a dangling sixth-bit char is ignored
    ("base64_decode", "VGVz dA==", "Tes"),  # stops at the space
    ("base64_decode", "!!!", ""),
    ("base64_decode", "QR==", "A"),  # non-zero padding bits tolerated
    ("base64_decode", "/w", "\xff"),
    ("base64_encode", "Test\0Case\xff", "VGVzdABDYXNl/w=="),
    # hex_decode (ModSecurity x2c: unchecked pairs, odd trailing char dropped)
    ("hex_decode", "", ""),
    ("hex_decode", "5465737443617365", "TestCase"),
    ("hex_decode", "546573740043617365", "Test\0Case"),
    ("hex_decode", "01234567890a0z01234567890a", "\x01#Eg\x89\n#\x01#Eg\x89\n"),
    ("hex_decode", "01234567890az", "\x01#Eg\x89\n"),
    ("hex_decode", "4", ""),
    ("hex_decode", "fF", "\xff"),
    ("hex_encode", "", ""),
    ("hex_encode", "Test\0\xff", "5465737400ff"),
    # length
    ("length", "", "0"),
    ("length", "a\0\xff", "3"),
    # digests as byte text
    ("sha1", "", hashlib.sha1(b"").digest().decode("latin-1")),
    ("sha1", "abc\xff", hashlib.sha1(b"abc\xff").digest().decode("latin-1")),
    ("md5", "abc", hashlib.md5(b"abc").digest().decode("latin-1")),
]


@pytest.mark.parametrize(("name", "value", "expected"), CASES)
def test_transformation(name: str, value: str, expected: str) -> None:
    assert TRANSFORMATIONS[name](value) == expected


def test_sha1_hex_matches_known_digest() -> None:
    chain = TRANSFORMATIONS["hex_encode"](TRANSFORMATIONS["sha1"]("abc"))
    assert chain == "a9993e364706816aba3e25717850c26c9cd0d89d"


REQUIRED = [
    "none", "lowercase", "url_decode", "url_decode_uni", "html_entity_decode", "js_decode",
    "css_decode", "cmd_line", "compress_whitespace", "remove_whitespace", "remove_nulls",
    "replace_nulls", "remove_comments", "replace_comments", "remove_comments_char", "normalize_path",
    "normalize_path_win", "base64_decode", "hex_decode", "trim", "trim_left", "trim_right",
    "utf8_to_unicode", "length", "escape_seq_decode", "sha1", "hex_encode",
]  # fmt: skip


def test_registry_has_every_required_name_and_each_is_tested() -> None:
    assert set(REQUIRED) <= set(TRANSFORMATIONS)
    tested = {name for name, _, _ in CASES}
    assert set(TRANSFORMATIONS) <= tested


# Malformed input: truncated escapes, odd bytes, lone markers. Nothing may raise, and byte text
# must stay byte text (every char <= 0xFF).
NASTY = [
    "",
    "%",
    "%u",
    "%uD8",
    "%%%%",
    "&",
    "&#",
    "&#x",
    "&#xffffffffffffffffffffffffffffffff",
    "&#" + "9" * 5000,
    "\\",
    "\\u",
    "\\x",
    "\\0",
    "/*",
    "*/",
    "<!--",
    "--",
    "#",
    "/../../..",
    "\\..\\..",
    "\xc3",
    "\xf0\x9f",
    "\xff\xfe\x00\x80",
    "\0" * 3,
    "=",
    "A" * 5,
    "".join(chr(b) for b in range(256)),
]


@pytest.mark.parametrize("name", sorted(TRANSFORMATIONS))
@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
def test_malformed_input_never_raises(name: str, value: str) -> None:
    result = TRANSFORMATIONS[name](value)
    assert isinstance(result, str)
    assert all(ord(c) <= 0xFF for c in result)


@pytest.mark.parametrize("name", sorted(TRANSFORMATIONS))
def test_not_byte_text_still_never_raises(name: str) -> None:
    assert isinstance(TRANSFORMATIONS[name]("\u20ac%u20ac&#8364;\\u20ac"), str)


@pytest.mark.parametrize("name", sorted(TRANSFORMATIONS))
@settings(max_examples=150, deadline=None)
@given(value=st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=40))
def test_random_byte_text_stays_byte_text(name: str, value: str) -> None:
    result = TRANSFORMATIONS[name](value)
    assert all(ord(c) <= 0xFF for c in result)


@given(value=st.text(alphabet=st.sampled_from("%uUfF0123456789abcdefxX&#;\\/.*-!<>+ \0\xff"), max_size=30))
@settings(max_examples=300, deadline=None)
def test_decoders_on_escape_soup(value: str) -> None:
    for name in ("url_decode", "url_decode_uni", "html_entity_decode", "js_decode", "css_decode",
                 "escape_seq_decode", "normalize_path", "normalize_path_win", "remove_comments"):  # fmt: skip
        assert len(TRANSFORMATIONS[name](value)) <= len(value) + 1


# --- reference ports: the straightforward byte loops of ModSecurity's C code ------------------------


def reference_utf8_to_unicode(value: str) -> str:
    """msc_util.c utf8_unicode_inplace_ex, one byte at a time (4-byte code points computed correctly)."""
    out, i, n = [], 0, len(value)
    while i < n:
        c = ord(value[i])
        size = 2 if c & 0xE0 == 0xC0 else 3 if c & 0xF0 == 0xE0 else 4 if c & 0xF8 == 0xF0 else 1
        if c < 0x80 or size == 1:
            out.append(value[i])
            i += 1
            continue
        if size == 4 and c >= 0xF5:
            out.append(value[i])
        tail = value[i + 1 : i + size]
        if len(tail) < size - 1 or any(ord(t) & 0xC0 != 0x80 for t in tail):
            i += 1
            continue
        code = c & (0x7F >> size)
        for t in tail:
            code = (code << 6) | (ord(t) & 0x3F)
        out.append(f"%u{code:04x}")
        if 0xD800 <= code <= 0xDFFF:
            out.append(value[i])
        if code < (0x80, 0x800, 0x10000)[size - 2]:
            out.append(value[i])
        i += size
    return "".join(out)


def reference_remove_comments(value: str) -> str:
    """re_tfns.c removeComments as fixed in 2.9 (scanning resumes right after a closer)."""
    out, i, n, in_comment = [], 0, len(value), False
    while i < n:
        if not in_comment:
            if value.startswith("/*", i):
                in_comment, i = True, i + 2
            elif value.startswith("<!--", i):
                in_comment, i = True, i + 4
            elif value.startswith("--", i) or value[i] == "#":
                break
            else:
                out.append(value[i])
                i += 1
        elif value.startswith("*/", i):
            in_comment, i = False, i + 2
        elif value.startswith("-->", i):
            in_comment, i = False, i + 3
        else:
            i += 1
    if in_comment:
        out.append(" ")
    return "".join(out)


@settings(max_examples=500, deadline=None)
@given(
    value=st.text(
        alphabet=st.sampled_from("a\x80\x9f\xa0\xbf\xc0\xc3\xdf\xe0\xed\xef\xf0\xf4\xf5\xf8\xff"), max_size=12
    )
)
def test_utf8_to_unicode_matches_the_byte_loop(value: str) -> None:
    assert TRANSFORMATIONS["utf8_to_unicode"](value) == reference_utf8_to_unicode(value)


@settings(max_examples=500, deadline=None)
@given(value=st.text(alphabet=st.sampled_from("a/*<!->#"), max_size=16))
def test_remove_comments_matches_the_char_loop(value: str) -> None:
    assert TRANSFORMATIONS["remove_comments"](value) == reference_remove_comments(value)


@settings(max_examples=500, deadline=None)
@given(value=st.text(alphabet=st.sampled_from("a./\\"), max_size=12))
def test_normalize_path_shortcut_never_skips_work(value: str) -> None:
    from logoutguard.engine.transformations import _normalize_path

    assert TRANSFORMATIONS["normalize_path"](value) == _normalize_path(value, win=False)
    assert TRANSFORMATIONS["normalize_path_win"](value) == _normalize_path(value, win=True)


@settings(max_examples=800, deadline=None)
@given(value=st.text(alphabet=st.sampled_from("%+aAfF09guUxN{}\\\x00\xff\u0100 "), max_size=14))
def test_url_decode_fast_path_matches_the_escape_regex(value: str) -> None:
    # (backslashes and what follows them in Python's escapes: the fast path decodes with unicode_escape)
    from logoutguard.engine import transformations as t

    assert t.url_decode(value) == t._URL_ESCAPE.sub(t._url_char, value)
    assert t.url_decode_uni(value) == t._URL_ESCAPE_UNI.sub(t._url_char_uni, value)


# The whitespace and cmd_line transformations as their definitions say (one regex match per run):
# the fast versions (translate, then one match per run of two or more spaces) must agree.
_WS_RUN = re.compile("[ \t\n\v\f\r\xa0]+")


@settings(max_examples=800, deadline=None)
@given(value=st.text(alphabet=st.sampled_from(" \t\n\v\f\r\xa0,;\"'\\^/(aAB\u0101"), max_size=16))
def test_whitespace_and_cmd_line_match_their_run_definitions(value: str) -> None:
    assert TRANSFORMATIONS["compress_whitespace"](value) == _WS_RUN.sub(" ", value)
    assert TRANSFORMATIONS["remove_whitespace"](value) == _WS_RUN.sub("", value)
    expected = re.sub(r"[ ,;\t\r\n]+", " ", re.sub("[\"'\\\\^]", "", value))
    expected = re.sub(r" (?=[/(])", "", expected).translate(str.maketrans("AB", "ab"))
    assert TRANSFORMATIONS["cmd_line"](value) == expected


@settings(max_examples=800, deadline=None)
@given(value=st.text(alphabet=st.sampled_from("a./\\"), max_size=12))
def test_path_work_shortcut_agrees_with_the_regex(value: str) -> None:
    from logoutguard.engine import transformations as t

    assert t.path_has_work(value) == (t._PATH_WORK.search(value) is not None)


def reference_html_entity_decode(value: str) -> str:
    """re_tfns.c htmlEntityDecode as transformations.py documents it, one character at a time."""
    alnum = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    out, i, n = [], 0, len(value)
    while i < n:
        if value[i] != "&" or i + 1 >= n:
            out.append(value[i])
            i += 1
            continue
        j = i + 1
        if value[j] == "#":
            if j + 1 >= n:
                out.append(value[i : i + 2])
                i += 2
                continue
            j += 1
            hexadecimal = value[j] in "xX"
            digits = set("0123456789abcdefABCDEF") if hexadecimal else set("0123456789")
            start = j = j + hexadecimal
            while j < n and value[j] in digits:
                j += 1
            if j == start:
                out.append(value[i:start])
                i = start
                continue
            decoded = chr(min(int(value[start:j], 16 if hexadecimal else 10), 2**63 - 1) & 0xFF)  # C strtol
        else:
            start = j
            while j < n and value[j] in alnum:
                j += 1
            known = _ENTITIES.get(value[start:j].lower()) if j > start else None
            if known is None:
                out.append(value[i:j] if j > start else "&")
                i = j if j > start else i + 1
                continue
            decoded = known
        out.append(decoded)
        i = j + 1 if j < n and value[j] == ";" else j
    return "".join(out)


_ENTITY_PIECES = [
    "&",
    "&#",
    "&#x",
    "X",
    ";",
    "9",
    "0",
    "a",
    "F",
    "g",
    "lt",
    "LT",
    "Quot",
    "amp",
    "\u0660",
    "\xb2",
    " ",
]


@settings(max_examples=800, deadline=None)
@given(value=st.lists(st.sampled_from(_ENTITY_PIECES), max_size=8).map("".join))
def test_html_entity_decode_matches_the_char_loop(value: str) -> None:
    assert TRANSFORMATIONS["html_entity_decode"](value) == reference_html_entity_decode(value)


# Every known name in three cases, and what may follow one: a letter or digit (then it is not the
# name), ;, = (a form field: &email=), the Kelvin sign (lower-cases to k outside ASCII).
_NAMED_PIECES = [
    *(form for name in _ENTITIES for form in (name, name.upper(), name.title())),
    *_ENTITY_PIECES,
    "=",
    "\u212a",
    "email",
]


@settings(max_examples=1500, deadline=None)
@given(value=st.lists(st.sampled_from(_NAMED_PIECES), max_size=10).map("".join))
def test_html_entity_decode_shortcut_leaves_alone_exactly_the_texts_without_an_entity(value: str) -> None:
    # A text is returned unchanged after one search when no & in it starts an entity; the search must
    # find every entity the loop decodes, or the shortcut would skip work.
    from logoutguard.engine.transformations import _DECODED_ENTITY

    decoded = reference_html_entity_decode(value)
    assert TRANSFORMATIONS["html_entity_decode"](value) == decoded
    assert (_DECODED_ENTITY.search(value) is None) == (decoded == value)


def test_html_entity_decode_leaves_a_urlencoded_form_as_it_is() -> None:
    form = "name=Maria&email=maria%40example.org&amp2=x&lt=1&lta&comment=a+b"
    assert TRANSFORMATIONS["html_entity_decode"](form) == form.replace("&lt=", "<=")
    plain = "name=Maria&email=maria%40example.org&ltx&#&#x;&copy&"
    assert TRANSFORMATIONS["html_entity_decode"](plain) == plain
