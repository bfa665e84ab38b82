"""Transformations: pure str -> str functions, one per name, in one registry. None of them raises.

Values are byte text: one char per byte (latin-1). Each function follows ModSecurity 2 (apache2/re_tfns.c
and msc_util.c) byte for byte, because an importer maps OWASP CRS `t:` names onto these. Character
classes are those of the C locale: `lowercase` folds A-Z only, "whitespace" is space \\t \\n \\v \\f \\r
(plus NBSP 0xA0 where ModSecurity adds it).

Where we knowingly differ from ModSecurity 2, it is where its C code reads a NUL-terminated string or
has a plain bug, never a decoding choice:
- `cmd_line` and `utf8_to_unicode` process the whole value; ModSecurity 2 stops at the first NUL byte.
- `utf8_to_unicode` computes 4-byte code points correctly (ModSecurity 2 has `<` for `<<` there).
- `remove_comments` follows the fixed 2.9 behaviour (its tests/tfn/removeComments.t): scanning resumes
  right after a closing `*/` or `-->`, so `/**//**/` is removed whole; the old code copied the byte
  after the close unexamined, and a NUL when the comment closed at the very end.
- `html_entity_decode` knows ModSecurity's named entities (quot amp lt gt nbsp) plus the ASCII
  punctuation names added by the GHSA-cxqf-vgrr-xxrv fix (colon, apos, num, ...).
Choices where ModSecurity depends on configuration:
- `url_decode_uni` behaves as ModSecurity 2 without SecUnicodeMapFile: %uXXXX gives the low byte,
  and full-width ASCII U+FF01..U+FF5E gives the ASCII byte (low byte + 0x20); %uFF21 -> "A".
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Callable

Transformation = Callable[[str], str]

_HEX = frozenset("0123456789abcdefABCDEF")
_OCT = frozenset("01234567")
_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale
C_SPACE = _C_SPACE  # what trim strips (prefilter.py reads it)
_NBSP = "\xa0"
_LONG_MAX = 2**63 - 1
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _to_bytes(value: str) -> bytes:
    """Byte text -> bytes; a char above 0xFF (not byte text) is taken as its UTF-8 bytes, never raises."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _x2c(high: str, low: str) -> int:
    """ModSecurity's x2c: two hex digits -> byte, with its unchecked arithmetic for non-hex input."""

    def digit(ch: str) -> int:
        c = ord(ch) & 0xFF
        return ((c & 0xDF) - 0x41 + 10) if c >= 0x41 else (c - 0x30)

    return ((digit(high) * 16) + digit(low)) & 0xFF


def _full_width(low: int, high_digits: str) -> int:
    """%uFFxx / \\uFFxx: full-width ASCII (FF01-FF5E) becomes ASCII, as ModSecurity does."""
    if 0 < low < 0x5F and high_digits[0] in "fF" and high_digits[1] in "fF":
        return low + 0x20
    return low


def _strtol(digits: str, base: int) -> int:
    """C strtol on a run of valid digits: saturates at LONG_MAX."""
    significant = digits.lstrip("0")
    if len(significant) > 20:
        return _LONG_MAX
    return min(int(significant or "0", base), _LONG_MAX)


def _octal_run(value: str, start: int, limit: int = 3) -> str:
    """Up to `limit` octal digits from `start` (the first is known to be octal)."""
    end = start + 1
    while end < len(value) and end - start < limit and value[end] in _OCT:
        end += 1
    return value[start:end]


# --- case, whitespace, NUL -------------------------------------------------------------------------


def none(value: str) -> str:
    return value


def lowercase(value: str) -> str:
    return _ascii_lower(value)


def _ascii_lower(value: str) -> str:
    """Fold A-Z only (C tolower), fast: str.lower() for ASCII, bytes.lower() for other byte text."""
    if value.isascii():
        return value.lower()
    try:
        return value.encode("latin-1").lower().decode("latin-1")
    except UnicodeEncodeError:
        return value.translate(_LOWER)


def trim_left(value: str) -> str:
    return value.lstrip(_C_SPACE)


def trim_right(value: str) -> str:
    return value.rstrip(_C_SPACE)


def trim(value: str) -> str:
    return value.strip(_C_SPACE)


_WHITESPACE_RUN = re.compile(f"[{re.escape(_C_SPACE + _NBSP)}]+")


# Each whitespace character becomes a space, then runs of two or more spaces one: the same as each
# run of whitespace -> one space, with one regex match per long run instead of one per word.
_WHITESPACE_TO_SPACE = bytes.maketrans(b"\t\n\v\f\r\xa0", b"      ")
_WHITESPACE_BYTES = b" \t\n\v\f\r\xa0"
_SPACE_RUN = re.compile("  +")


def _whitespace_to_space(value: str) -> str:
    try:
        return value.encode("latin-1").translate(_WHITESPACE_TO_SPACE).decode("latin-1")
    except UnicodeEncodeError:  # not byte text
        return _WHITESPACE_RUN.sub(" ", value)


def compress_whitespace(value: str) -> str:
    return _single_spaces(_whitespace_to_space(value))


def _single_spaces(value: str) -> str:
    """Each run of two or more spaces -> one (a text without two in a row, the usual case, is left as
    it is without a regex pass: its search stops at every single space)."""
    return _SPACE_RUN.sub(" ", value) if "  " in value else value


def remove_whitespace(value: str) -> str:
    try:
        return value.encode("latin-1").translate(None, _WHITESPACE_BYTES).decode("latin-1")
    except UnicodeEncodeError:  # not byte text
        return _WHITESPACE_RUN.sub("", value)


def remove_nulls(value: str) -> str:
    return value.replace("\0", "")


def replace_nulls(value: str) -> str:
    return value.replace("\0", " ")


_CMD_DELETE = str.maketrans("", "", "\"'\\^")
_CMD_SPACE_RUN = re.compile(r"[ ,;\t\r\n]+")
_CMD_TO_SPACE = bytes.maketrans(b",;\t\r\n", b"     ")
_CMD_SPACE_BEFORE = re.compile(r" (?=[/(])")


def cmd_line(value: str) -> str:
    """ModSecurity cmdLine: delete \\ " ' ^; each run of space , ; \\t \\r \\n -> one space; no space
    before / or (; lowercase."""
    try:  # delete \ " ' ^ and turn , ; \t \r \n into spaces; then each run of spaces -> one
        data = value.encode("latin-1").translate(_CMD_TO_SPACE, b"\"'\\^")
        value = _single_spaces(data.decode("latin-1"))
    except UnicodeEncodeError:  # not byte text
        value = _CMD_SPACE_RUN.sub(" ", value.translate(_CMD_DELETE))
    # (one-character tests first: a two-character search stops at every space of a long text)
    if ("/" in value and " /" in value) or ("(" in value and " (" in value):
        value = _CMD_SPACE_BEFORE.sub("", value)
    return _ascii_lower(value)


# --- URL --------------------------------------------------------------------------------------------

_URL_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})|\+")
_URL_ESCAPE_UNI = re.compile(r"%[uU]([0-9A-Fa-f]{4})|%([0-9A-Fa-f]{2})|\+")


def _url_char(m: re.Match[str]) -> str:
    return chr(int(m[1], 16)) if m[1] else " "


def url_decode(value: str) -> str:
    """ModSecurity urlDecode: %xx -> byte, + -> space; an invalid or truncated % stays as it is."""
    if "%" not in value:
        return value.replace("+", " ")  # (the value itself when it has no "+")
    return _unquote(value) or _URL_ESCAPE.sub(_url_char, value)


_URL_HEX_BYTES = re.compile(rb"%([0-9A-Fa-f]{2})")
_HEX_PAIR_BYTE = {f"{high}{low}".encode(): bytes((int(high + low, 16),)) for high in _HEX for low in _HEX}


def _unquote(value: str) -> str | None:
    """url_decode in C-speed steps (the same result: valid %xx decoded, + -> space, the rest kept), or
    None for a value that is not byte text. Splitting on the escapes puts their hex digits at the odd
    places of the list; each pair is swapped for its byte in one pass."""
    try:
        parts = _URL_HEX_BYTES.split(value.encode("latin-1").replace(b"+", b" "))
    except UnicodeEncodeError:
        return None
    parts[1::2] = map(_HEX_PAIR_BYTE.__getitem__, parts[1::2])
    return b"".join(parts).decode("latin-1")


def _url_char_uni(m: re.Match[str]) -> str:
    if m[1]:
        return chr(_full_width(int(m[1][2:], 16), m[1][:2]))
    return chr(int(m[2], 16)) if m[2] else " "


def url_decode_uni(value: str) -> str:
    """ModSecurity urlDecodeUni: url_decode plus %uXXXX -> low byte (full-width ASCII -> ASCII)."""
    if "%" not in value and "+" not in value:
        return value
    if "%u" not in value and "%U" not in value:
        return url_decode(value)
    return _URL_ESCAPE_UNI.sub(_url_char_uni, value)


_URL_KEEP = frozenset(b"*0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_URL_ENCODED = tuple(
    "+" if byte == 0x20 else chr(byte) if byte in _URL_KEEP else f"%{byte:02x}" for byte in range(256)
)


def url_encode(value: str) -> str:
    """ModSecurity urlEncode: space -> +; keep * 0-9 A-Z a-z; every other byte -> %xx (lowercase)."""
    return "".join(map(_URL_ENCODED.__getitem__, _to_bytes(value)))


# A complete 2/3/4-byte sequence, else a lone lead byte (C0-F7), else a byte that cannot lead.
_UTF8_UNIT = re.compile(
    "[\xc0-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf7][\x80-\xbf]{3}|[\xc0-\xf7]|[^\x00-\x7f]"
)


def _utf8_unit(m: re.Match[str]) -> str:
    unit = m[0]
    lead = ord(unit[0])
    if len(unit) == 1:
        if 0xC0 <= lead <= 0xF7:  # lead byte of an invalid or truncated sequence: dropped ...
            return unit if lead >= 0xF5 else ""  # ... except F5-F7, which ModSecurity copies first
        return unit  # continuation byte, F8-FF, or not byte text: copied
    size = len(unit)
    code = lead & (0x7F >> size)
    for t in unit[1:]:
        code = (code << 6) | (ord(t) & 0x3F)
    out = f"%u{code:04x}"
    if size == 4 and lead >= 0xF5:
        out = unit[0] + out
    if 0xD800 <= code <= 0xDFFF:
        out += unit[0]
    if code < (0x80, 0x800, 0x10000)[size - 2]:
        out += unit[0]
    return out


def utf8_to_unicode(value: str) -> str:
    """ModSecurity utf8toUnicode: each valid multi-byte UTF-8 sequence -> %uXXXX (lowercase hex, at
    least 4 digits). Like ModSecurity: the lead byte of an invalid or truncated sequence is dropped;
    an overlong or surrogate sequence gives %uXXXX followed by its lead byte; continuation bytes and
    0xF8-0xFF pass through; a 0xF5-0xF7 lead is also copied as is."""
    if value.isascii():
        return value
    return _UTF8_UNIT.sub(_utf8_unit, value)


# --- HTML, JavaScript, CSS, C escapes ------------------------------------------------------------

_ENTITIES = {
    "quot": '"',
    "amp": "&",
    "lt": "<",
    "gt": ">",
    "nbsp": _NBSP,
    # added to ModSecurity 2 by the GHSA-cxqf-vgrr-xxrv fix
    "colon": ":",
    "apos": "'",
    "num": "#",
    "dollar": "$",
    "percnt": "%",
    "lpar": "(",
    "rpar": ")",
    "ast": "*",
    "plus": "+",
    "comma": ",",
    "hyphen": "-",
    "period": ".",
    "sol": "/",
    "semi": ";",
    "equals": "=",
    "quest": "?",
    "commat": "@",
    "lbrack": "[",
    "bsol": "\\",
    "rbrack": "]",
    "caret": "^",
    "lowbar": "_",
    "grave": "`",
    "lbrace": "{",
    "verbar": "|",
    "rbrace": "}",
    "tilde": "~",
}


# Runs of hex digits, digits, ASCII letters and digits: one match each, not a loop per character.
_HEX_RUN = re.compile("[0-9A-Fa-f]*")
_DIGIT_RUN = re.compile("[0-9]*")
_ALNUM_RUN = re.compile("[0-9A-Za-z]*")


def _run_end(run: re.Pattern[str], value: str, start: int) -> int:
    """Where the run of `run`'s characters that starts at `start` ends (`start` for an empty run)."""
    found = run.match(value, start)
    return found.end() if found else start


def _entity(value: str, i: int) -> tuple[str, int]:
    """Decode the entity at value[i] == '&': (output, next index). Unknown -> copied raw."""
    n = len(value)
    j = i + 1
    if j >= n:
        return "&", i + 1
    if value[j] == "#":
        if j + 1 >= n:
            return value[i : i + 2], i + 2
        j += 1
        hexadecimal = value[j] in "xX"
        digits, base = (_HEX_RUN, 16) if hexadecimal else (_DIGIT_RUN, 10)
        start = j + hexadecimal
        j = _run_end(digits, value, start)
        if j == start:  # `&#` or `&#x` without digits: copied raw
            return value[i:start], start
        out = chr(_strtol(value[start:j], base) & 0xFF)
    else:
        start = j
        j = _run_end(_ALNUM_RUN, value, start)
        if j == start:
            return "&", i + 1
        known = _ENTITIES.get(value[start:j].lower())
        if known is None:
            return value[i:j], j
        out = known
    if j < n and value[j] == ";":
        j += 1
    return out, j


# An & that `_entity` decodes (any other & is copied as it is): &# and a digit, &#x and a hex digit, or
# a known name that is the whole run of ASCII letters and digits after the & (in any case).
_DECODED_ENTITY = re.compile(
    "&(?:#(?:[0-9]|[xX][0-9A-Fa-f])|(?:{})(?![0-9A-Za-z]))".format("|".join(map(re.escape, _ENTITIES))),
    re.IGNORECASE | re.ASCII,
)


def html_entity_decode(value: str) -> str:
    """ModSecurity htmlEntityDecode: &#dd; &#xhh; and named entities, the ; optional; numeric ones
    keep the low byte (so the result stays byte text). A text none of whose & starts an entity (a
    urlencoded body: &name=) is returned as it is after one regex search, without a call per &."""
    if "&" not in value or _DECODED_ENTITY.search(value) is None:
        return value
    return _decode_escapes(value, "&", _entity)


_JS_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _js_escape(value: str, i: int) -> tuple[str, int]:
    """Decode the JavaScript escape at value[i] == '\\': (output, next index)."""
    n = len(value)
    if i + 5 < n and value[i + 1] == "u" and all(c in _HEX for c in value[i + 2 : i + 6]):
        return chr(_full_width(int(value[i + 4 : i + 6], 16), value[i + 2 : i + 4])), i + 6
    if i + 3 < n and value[i + 1] == "x" and value[i + 2] in _HEX and value[i + 3] in _HEX:
        return chr(int(value[i + 2 : i + 4], 16)), i + 4
    if i + 1 < n and value[i + 1] in _OCT:
        digits = _octal_run(value, i + 1)
        if len(digits) == 3 and digits[0] > "3":
            digits = digits[:2]
        return chr(int(digits, 8)), i + 1 + len(digits)
    if i + 1 < n:
        return _JS_SIMPLE.get(value[i + 1], value[i + 1]), i + 2
    return value[i:], n


def js_decode(value: str) -> str:
    """ModSecurity jsDecode: \\uHHHH (low byte, full-width ASCII -> ASCII), \\xHH, \\OOO (one byte),
    \\a \\b \\f \\n \\r \\t \\v, and \\C -> C for any other C."""
    return _decode_escapes(value, "\\", _js_escape)


def _css_escape(value: str, i: int) -> tuple[str, int]:
    """Decode the CSS escape at value[i] == '\\': (output, next index)."""
    n = len(value)
    if i + 1 >= n:
        return "", n  # a lone backslash at the end is dropped
    i += 1
    j = 0
    while j < 6 and i + j < n and value[i + j] in _HEX:
        j += 1
    if j == 0:
        if value[i] == "\n":
            return "", i + 1
        return value[i], i + 1
    digits = value[i : i + j]
    if j == 1:
        byte = int(digits, 16)
    else:
        byte = int(digits[-2:], 16)
        if j == 4 or (j == 5 and digits[0] == "0") or (j == 6 and digits[:2] == "00"):
            byte = _full_width(byte, digits[-4:-2])
    if i + j < n and value[i + j] in _C_SPACE:
        j += 1  # one whitespace after a hex escape belongs to it
    return chr(byte), i + j


def css_decode(value: str) -> str:
    """ModSecurity cssDecode: \\ + 1-6 hex digits (last byte used; full-width ASCII -> ASCII; one
    following whitespace eaten), \\newline removed, \\C -> C, a trailing backslash dropped."""
    return _decode_escapes(value, "\\", _css_escape)


_C_SIMPLE = {**_JS_SIMPLE, "\\": "\\", "?": "?", "'": "'", '"': '"'}


def _c_escape(value: str, i: int) -> tuple[str, int]:
    """Decode the ANSI C escape at value[i] == '\\': (output, next index)."""
    n = len(value)
    if i + 1 >= n:
        return "\\", n
    nxt = value[i + 1]
    if nxt in _C_SIMPLE:
        return _C_SIMPLE[nxt], i + 2
    if nxt in "xX" and i + 3 < n and value[i + 2] in _HEX and value[i + 3] in _HEX:
        return chr(int(value[i + 2 : i + 4], 16)), i + 4
    if nxt in _OCT:
        digits = _octal_run(value, i + 1)
        return chr(int(digits, 8) & 0xFF), i + 1 + len(digits)
    return nxt, i + 2  # unknown escape: the backslash goes


def escape_seq_decode(value: str) -> str:
    """ModSecurity escapeSeqDecode: ANSI C escapes \\a \\b \\f \\n \\r \\t \\v \\\\ \\? \\' \\" \\xHH \\OOO
    (byte overflow truncated); for an unknown escape the backslash is removed."""
    return _decode_escapes(value, "\\", _c_escape)


def _decode_escapes(value: str, marker: str, escape: Callable[[str, int], tuple[str, int]]) -> str:
    """`value` with every escape starting at `marker` replaced by what `escape(value, at)` decodes it to."""
    if marker not in value:
        return value
    out: list[str] = []
    i = 0
    while (at := value.find(marker, i)) >= 0:
        out.append(value[i:at])
        decoded, i = escape(value, at)
        out.append(decoded)
    out.append(value[i:])
    return "".join(out)


# --- comments -------------------------------------------------------------------------------------

_BLOCK_COMMENT = re.compile(r"/\*(?:.*?\*/|.*)", re.DOTALL)
_COMMENT_CHARS = re.compile(r"/\*|\*/|<!--|-->|--|#")


def replace_comments(value: str) -> str:
    """ModSecurity replaceComments: each /* ... */ (also unterminated) -> one space."""
    if "/*" not in value:
        return value
    return _BLOCK_COMMENT.sub(" ", value)


def remove_comments_char(value: str) -> str:
    """ModSecurity removeCommentsChar: delete the comment markers /* */ <!-- --> -- # themselves."""
    return _COMMENT_CHARS.sub("", value)


_COMMENT_OPEN = re.compile(r"/\*|<!--|--|#")
_COMMENT_CLOSE = re.compile(r"\*/|-->")


def remove_comments(value: str) -> str:
    """ModSecurity removeComments: delete /* ... */ and <!-- ... --> (either closer ends either
    opener; an unterminated one becomes a space) and everything from -- or # to the end."""
    out: list[str] = []
    i = 0
    while (opener := _COMMENT_OPEN.search(value, i)) is not None:
        out.append(value[i : opener.start()])
        if opener[0] in ("--", "#"):
            return "".join(out)
        closer = _COMMENT_CLOSE.search(value, opener.end())
        if closer is None:
            out.append(" ")
            return "".join(out)
        i = closer.end()
    out.append(value[i:])
    return "".join(out)


# --- paths ----------------------------------------------------------------------------------------


def _normalize_path(value: str, win: bool) -> str:
    """Port of ModSecurity's normalize_path_inplace (msc_util.c), a pointer state machine kept as is."""
    if not value:
        return value
    buf = list(value)
    src = dst = 0
    end = len(buf) - 1
    hitroot = done = False
    relative = not (buf[0] == "/" or (win and buf[0] == "\\"))
    trailing = buf[end] == "/" or (win and buf[end] == "\\")
    while not done and src <= end and dst <= end:
        if win:
            if buf[src] == "\\":
                buf[src] = "/"
            if src < end and buf[src + 1] == "\\":
                buf[src + 1] = "/"
        step = "normalize"
        if src == end:
            done = True
        elif buf[src + 1] != "/":
            step = "copy"
        if step == "normalize":
            if src != end and buf[src] == "/":
                step = "copy"  # empty segment: the copy below collapses the slashes
            elif buf[src] == ".":
                if dst > 0 and buf[dst - 1] == ".":  # back-reference
                    if relative and (hitroot or dst - 2 <= 0):
                        hitroot = True
                    else:
                        dst -= 3
                        while dst > 0 and buf[dst] != "/":
                            dst -= 1
                        if dst <= 0:
                            hitroot = True
                            dst = 1 if (not relative and src == end) else 0
                        if done:
                            step = "length"
                        else:
                            src += 1
                elif dst == 0:  # relative self-reference
                    if done:
                        step = "length"
                    else:
                        src += 1
                elif buf[dst - 1] == "/":  # self-reference
                    if done:
                        step = "length"
                    else:
                        dst -= 1
                        src += 1
            elif dst > 0:
                hitroot = False
        if step != "length":
            if buf[src] == "/":
                while src < end and (buf[src + 1] == "/" or (win and buf[src + 1] == "\\")):
                    src += 1
                if relative and dst == 0:
                    src += 1
                    continue
            buf[dst] = buf[src]
            dst += 1
            src += 1
    if not trailing and dst > 0 and buf[dst - 1] == "/":
        dst -= 1
    return "".join(buf[:dst])


# Where normalize_path_inplace can change anything: "//", a "." segment, or ".." before / or the end
# (ModSecurity also takes "x.." as a back-reference).
_PATH_WORK = re.compile(r"//|\.\.(?:/|$)|(?:^|/)\.(?:/|$)")


def path_has_work(value: str) -> bool:
    """_PATH_WORK.search(value), with substring tests first: each of its branches needs "//", ".."
    or "/." or a leading ".", and long prose has none of them (the regex alone tries every position).
    A two-character search runs only when its first character is there (one-character `in` is memchr)."""
    slash = "/" in value
    if slash and "//" in value:
        return True
    if "." not in value or (".." not in value and not (slash and "/." in value) and value[0] != "."):
        return False
    return _PATH_WORK.search(value) is not None


def normalize_path(value: str) -> str:
    """ModSecurity normalizePath: resolve ./ and ../, collapse //, keep a trailing slash only if there
    was one."""
    if not path_has_work(value):
        return value
    return _normalize_path(value, win=False)


def normalize_path_win(value: str) -> str:
    """ModSecurity normalizePathWin: normalize_path with \\ taken as /."""
    if "\\" not in value and not path_has_work(value):
        return value
    return _normalize_path(value, win=True)


# --- encodings and digests ------------------------------------------------------------------------

_B64_PREFIX = re.compile(r"[A-Za-z0-9+/]*")
_ALL_HEX = re.compile(r"[0-9A-Fa-f]*")


def base64_decode(value: str) -> str:
    """ModSecurity base64Decode (apr_base64_decode): decode the longest prefix of base64 alphabet
    characters, stopping at the first other one ('=' included); a dangling sixth-bit char is ignored."""
    prefix = _B64_PREFIX.match(value)
    data = prefix.group(0) if prefix else ""
    if len(data) % 4 == 1:
        data = data[:-1]
    data += "=" * (-len(data) % 4)
    return binascii.a2b_base64(data).decode("latin-1")


def base64_encode(value: str) -> str:
    return binascii.b2a_base64(_to_bytes(value), newline=False).decode("ascii")


def hex_decode(value: str) -> str:
    """ModSecurity hexDecode: every pair of chars -> one byte, unchecked (non-hex gives garbage like
    ModSecurity's x2c); a trailing odd char is dropped."""
    pairs = len(value) // 2 * 2
    if _ALL_HEX.fullmatch(value, 0, pairs):
        return bytes.fromhex(value[:pairs]).decode("latin-1")
    return "".join(chr(_x2c(value[k], value[k + 1])) for k in range(0, pairs, 2))


def hex_encode(value: str) -> str:
    return _to_bytes(value).hex()


def length(value: str) -> str:
    return str(len(value))


def sha1(value: str) -> str:
    """SHA-1 digest as 20 bytes of byte text (hex_encode it to read it)."""
    return hashlib.sha1(_to_bytes(value)).digest().decode("latin-1")


def md5(value: str) -> str:
    """MD5 digest as 16 bytes of byte text (hex_encode it to read it)."""
    return hashlib.md5(_to_bytes(value)).digest().decode("latin-1")


TRANSFORMATIONS: dict[str, Transformation] = {
    "none": none,
    "lowercase": lowercase,
    "url_decode": url_decode,
    "url_decode_uni": url_decode_uni,
    "url_encode": url_encode,
    "utf8_to_unicode": utf8_to_unicode,
    "html_entity_decode": html_entity_decode,
    "js_decode": js_decode,
    "css_decode": css_decode,
    "escape_seq_decode": escape_seq_decode,
    "cmd_line": cmd_line,
    "compress_whitespace": compress_whitespace,
    "remove_whitespace": remove_whitespace,
    "remove_nulls": remove_nulls,
    "replace_nulls": replace_nulls,
    "remove_comments": remove_comments,
    "remove_comments_char": remove_comments_char,
    "replace_comments": replace_comments,
    "normalize_path": normalize_path,
    "normalize_path_win": normalize_path_win,
    "base64_decode": base64_decode,
    "base64_encode": base64_encode,
    "hex_decode": hex_decode,
    "hex_encode": hex_encode,
    "trim": trim,
    "trim_left": trim_left,
    "trim_right": trim_right,
    "length": length,
    "sha1": sha1,
    "md5": md5,
}
