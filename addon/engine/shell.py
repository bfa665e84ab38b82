"""A Unix shell-syntax detector: a command position followed by a word that the shell would run as a
known command, across quoting, escaping, expansions and globbing.

`ShellDetector(commands).search(value)` returns the command found (normalised, as the shell would
look it up) or None. Work is linear in the value: candidate positions come from one regex scan (C
speed), each candidate reads one word of at most MAX_WORD characters, and a value is never read
again from an earlier place.

A command position is a place where the shell starts a new simple command: after `;`, `|`, `||`,
`&`, `&&`, a line break, `$(`, a backtick, or `<(`/`>(`. The word there is normalised as the shell
would: quotes removed ('..', "..", $'..' with its escapes), backslashes dropped, `$IFS`/`${IFS}`
taken as a blank, `$@ $* $1 $var ${var}` and empty `$()` / backticks taken as empty (unset
variables expand to nothing), `${VAR:0:1}` of a variable holding a path (PATH, HOME, PWD, SHELL ...)
taken as `/`; glob characters `? * [..]` are kept and resolved against the command list. The command
name is the part after the last `/`.

Prose and ordinary form input have semicolons, pipes, ampersands and apostrophes, so a plain word is
not enough. The detector reports a command when:
* the word was obfuscated: its spelling changed under normalisation inside the word (`c'a't`,
  `c\\at`, `wh$@oami`, `c${u}at`, `/bin/c?t`), not merely a whole word in quotes; or
* the word is a plain command followed by what only a command line has: an option (`-l`, `--all`),
  an absolute, home or relative path, a variable, `$IFS`, a redirection, a URL or an IP address, a
  file name with an extension, or numbers (`sleep 5`); or
* the word is a reconnaissance command that takes no argument (`id`, `whoami`, `uname` ...) and the
  command ends there (end of value, separator, quote, comment or closing parenthesis).
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable

MAX_WORD = 96  # characters of input one command word may take (quotes and escapes included)

# Where a command starts: a separator (one or two chars), a substitution, or a process substitution.
# A run of backticks is Markdown or reStructuredText literal markup, not a substitution.
_POSITION = re.compile(r"(?:;|\|\|?|&&?|(\n|\r)|(?<!`)`(?!`)|\$\(|[<>]\()")
# Blanks before the command word: spaces, tabs, and $IFS / ${IFS} (also with an empty ${IFS%??}-like
# suffix left out: the plain forms are what evasion uses).
_BLANKS = re.compile(r"(?:[ \t\x0b\x0c]|\$\{IFS\}|\$IFS(?![A-Za-z0-9_]))*")
# What ends an unquoted word.
_WORD_END = frozenset(" \t\n\r\x0b\x0c;|&<>()`")
_GLOB = frozenset("?*[")
_NAME_CHAR = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
# Variables whose value starts with `/`: ${PATH:0:1} is a slash.
_SLASH_VARS = frozenset(("PATH", "HOME", "PWD", "OLDPWD", "SHELL", "TMPDIR", "LOGNAME_HOME"))
_SLICE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):\s*0\s*:\s*1\s*\}")
_BRACED = re.compile(r"\{[#!]?[A-Za-z_][A-Za-z0-9_]*(?:[:#%/^,~][^{}]{0,32})?\}|\{[0-9@*#?$!-]\}|\{\s*\}")
_ANSI_C = re.compile(r"\\(?:x([0-9A-Fa-f]{1,2})|([0-7]{1,3})|u([0-9A-Fa-f]{1,4})|(.))", re.DOTALL)
_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v"}
# What follows a plain command word on a command line (checked right after the word).
_ARGUMENT = re.compile(
    r"(?:[ \t]|\$\{IFS\}|\$IFS(?![A-Za-z0-9_]))+(?:"
    r"--?[A-Za-z][\w-]*(?=[\s=;|&'\"`)]|$)"  # an option
    r"|[+-][rwxXst]{1,4}\b|[0-7]{3,4}(?=\s)"  # chmod modes
    r"|/(?:[\w.~*?-]|$|[;|&`)])|~/?|\.{1,2}/|\$\{?[A-Za-z_]"  # a path, a variable
    r"|[<>]|[0-9]?>"  # a redirection
    r"|(?:https?|ftp|tcp|udp)://"
    r"|[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"  # an IP address
    r")"
    r"|[<>]|\s*[0-9]?>&?\s*[/0-9&]"  # a redirection right after the word
)
# Weaker signs, not taken after a line break (documentation shows `python setup.py` on a line).
_ARGUMENT_WEAK = re.compile(
    r"(?:[ \t]|\$\{IFS\}|\$IFS(?![A-Za-z0-9_]))+(?:"
    r"[0-9]+\s*(?:$|[;|&`#)'\"\n])"  # a number ending the command (sleep 5)
    r"|[\w-]+\.(?:txt|log|conf|cfg|ini|php|sh|py|pl|rb|js|jsp|asp|aspx|html?|xml|json|db|sql|bak|key|pem|passwd|shadow|out|tmp|exe|bat)\b"
    r")"
)
# The running shell named by a variable: $0, $SHELL, ${SHELL}, $BASH.
_SHELL_VAR = re.compile(r"\$(?:0|\{0\}|\{?(?:SHELL|BASH)\}?)(?![A-Za-z0-9_])")
# Options and numbers of a prefix command before the command it runs (timeout 5, nice -n 10, sudo -u x).
_PREFIX_OPTIONS = re.compile(
    r"(?:[ \t]+(?:-{1,2}[A-Za-z][\w-]*(?:[ \t=]+[\w.]+)?|[0-9]+[smhd]?|[A-Za-z_]\w*=\S*))*"
)
# What may follow a command that needs no argument: the end of the command.
_COMMAND_END = re.compile(r"[ \t]*(?:$|[;|&`#)\n\r'\"]|[0-9]?>)")


class ShellDetector:
    """Finds a known command run at a command position (see the module docstring)."""

    def __init__(
        self,
        commands: Iterable[str],
        bare: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        at_start: bool = False,
    ) -> None:
        self.commands = frozenset(c for c in commands if c)
        if not self.commands:
            raise ValueError("the shell detector needs at least one command name")
        self.bare = frozenset(bare) & self.commands
        self.prefixes = frozenset(prefixes) & self.commands
        self.at_start = at_start
        self._sorted = tuple(sorted(self.commands))

    def search(self, value: str) -> str | None:
        if self.at_start:  # the value itself is the command line (argument injection)
            return self._at(value, 0, line_break=True, start=True)
        for m in _POSITION.finditer(value):
            found = self._at(value, m.end(), line_break=m.group(1) is not None)
            if found is not None:
                return found
        return None

    def _at(self, value: str, pos: int, line_break: bool, depth: int = 0, start: bool = False) -> str | None:
        """The command run at `pos` (right after a separator), if the evidence is there."""
        plain = _PLAIN_WORD.match(value, pos)
        if plain is not None:
            # Most places hold a plain word (prose, a token, a header): when it names no command, or
            # there is none, nothing below can report one (the word is read as `_read_word` reads it).
            word = plain.group(1)
            if len(word) < MAX_WORD and (not word or self._lookup(word.rpartition("/")[2]) is None):
                return None
        pos = _BLANKS.match(value, pos).end()  # type: ignore[union-attr]
        shell_var = _SHELL_VAR.match(value, pos)
        if shell_var is not None and _ARGUMENT.match(value, shell_var.end()):
            return "sh"  # $0 -c id, $SHELL -c id: the running shell
        word = _read_word(value, pos)
        if word is None and pos < len(value) and value[pos] in "'\"":
            word = _read_word(value, pos + 1)  # an unclosed quote: the payload closed the value's own quote
        if word is None:
            return None
        text, end, obfuscated, globbed, quoted = word
        name = text.rpartition("/")[2]
        if not name:
            return None
        if globbed:
            return self._glob(name, path="/" in text)
        command = self._lookup(name)
        if command is None:
            return None
        if command in self.prefixes and depth < 3:
            # exec, sudo, nohup, env, time ...: the next word is the command they run
            after = _PREFIX_OPTIONS.match(value, end)
            inner = self._at(value, after.end() if after else end, line_break, depth + 1)
            if inner is not None and _BLANKS.match(value, end).end() > end:  # type: ignore[union-attr]
                return inner
        if obfuscated:
            return command
        if _ARGUMENT.match(value, end) or (not line_break and _ARGUMENT_WEAK.match(value, end)):
            return command
        if command in self.bare and not quoted and not start and _COMMAND_END.match(value, end):
            return command
        return None

    def _lookup(self, name: str) -> str | None:
        if name in self.commands:
            return name
        base = name.rstrip("0123456789.")  # python3.11, php8, perl5.36
        return base if base != name and base in self.commands else None

    def _glob(self, name: str, path: bool) -> str | None:
        literal = sum(1 for c in name if c not in _GLOB)
        if literal < (1 if path else 2) or len(name) > 32:
            return None
        # The pattern matches the name's part before its first glob character as it is: only the
        # commands starting with that part can match (a contiguous run of the sorted names, found by
        # bisection), so a path or URL such as `search?q=shoes` costs no pattern when none does.
        head = _GLOB_HEAD.match(name).group()  # type: ignore[union-attr]
        names = self._sorted
        first = bisect.bisect_left(names, head)
        if first == len(names) or not names[first].startswith(head):
            return None
        pattern = _glob_regex(name)
        if pattern is None:
            return None
        for command in names[first:]:
            if not command.startswith(head):
                break
            if pattern.fullmatch(command):
                return command
        return None


# The part of a globbed name before its first glob character.
_GLOB_HEAD = re.compile("[^" + re.escape("".join(sorted(_GLOB))) + "]*")


@functools.lru_cache(maxsize=1024)
def _glob_regex(name: str) -> re.Pattern[str] | None:
    out = []
    i, n = 0, len(name)
    while i < n:
        c = name[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            close = name.find("]", i + 2)
            if close < 0:
                out.append(re.escape(c))
            else:
                body = name[i + 1 : close]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append(
                    "[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]"
                )
                i = close
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return None


# A character the word loop below only copies: no quote, escape, expansion, glob, backtick or word end.
_COPIED = "[^ \t\n\r\x0b\x0c;|&<>()`\\\\'\"$?*\\[]"
# A plain word at a command position: blanks (not $IFS: a `$` stops the match), then characters that
# `_read_word` copies as they are, ended by the end of the value or a character that ends a word (not a
# backtick: `` may be an empty substitution inside the word). Possessive, so that a shorter run of
# blanks or of the word is never tried. Where this matches, group 1 is the word as `_read_word` reads it.
_PLAIN_WORD = re.compile(f"[ \t\x0b\x0c]*+({_COPIED}*+)(?=\\Z|[ \t\n\r\x0b\x0c;|&<>()])")
# A run of characters each of which the word loop below only copies.
_PLAIN_RUN = re.compile(f"{_COPIED}*")


def _read_word(value: str, pos: int) -> tuple[str, int, bool, bool, bool] | None:
    """One shell word from `pos`: (normalised text, end, obfuscated, globbed, quoted as a whole), or
    None when the word is empty, too long, or has an unclosed quote."""
    # Most words are plain (a session id, a word of prose): copied as they are up to a word end.
    n = len(value)
    end = _PLAIN_RUN.match(value, pos).end()  # type: ignore[union-attr]
    limit = min(n, pos + MAX_WORD)
    if end >= limit and limit < n:
        return None  # too long
    if end == n or (value[end] in _WORD_END and value[end] != "`"):
        return None if end == pos else (value[pos:end], end, False, False, False)
    return _read_word_slowly(value, pos)


def _read_word_slowly(value: str, pos: int) -> tuple[str, int, bool, bool, bool] | None:
    out: list[str] = []
    obfuscated = globbed = False
    quoted_whole = False  # set when the only change was quotes around the whole word
    i, n = pos, len(value)
    limit = min(n, pos + MAX_WORD)
    while i < n:
        if i >= limit:
            return None
        c = value[i]
        if c == "`" and value.startswith("``", i):  # an empty substitution inside the word
            obfuscated = True
            i += 2
            continue
        if c in _WORD_END:
            break
        if c == "\\":
            if i + 1 >= n:
                return None
            if value[i + 1] != "\n":
                out.append(value[i + 1])
            obfuscated = True
            i += 2
        elif c == "'":
            close = value.find("'", i + 1, limit)
            if close < 0:
                return None
            out.append(value[i + 1 : close])
            quoted_whole = quoted_whole or (i == pos)
            obfuscated = True
            i = close + 1
        elif c == '"':
            j = i + 1
            while j < limit and value[j] != '"':
                if value[j] == "\\" and j + 1 < limit:
                    if value[j + 1] in '$`"\\':
                        out.append(value[j + 1])
                    elif value[j + 1] != "\n":
                        out.append(value[j : j + 2])
                    j += 2
                elif value[j] == "$":
                    j = _expansion(value, j, limit, out)
                else:
                    out.append(value[j])
                    j += 1
            if j >= limit:
                return None
            quoted_whole = quoted_whole or (i == pos)
            obfuscated = True
            i = j + 1
        elif c == "$":
            if value.startswith("$'", i):
                close = value.find("'", i + 2, limit)
                while close > 0 and value[close - 1] == "\\":
                    close = value.find("'", close + 1, limit)
                if close < 0:
                    return None
                out.append(_ANSI_C.sub(_ansi_char, value[i + 2 : close]))
                obfuscated = True
                i = close + 1
                continue
            if value.startswith(("$IFS", "${IFS}"), i) and not value.startswith("$IFS_", i):
                break  # a blank: the word ends
            before = len(out)
            j = _expansion(value, i, limit, out)
            if j == i + 1:  # a lone $
                out.append("$")
            else:
                obfuscated = True
                globbed = globbed or out[before:] == ["*"]
            i = j
        else:
            if c in _GLOB:
                globbed = True
            out.append(c)
            i += 1
    if i == pos:
        return None
    text = "".join(out)
    if not text:
        return None
    raw = value[pos:i]
    whole = quoted_whole and raw[0] in "'\"" and raw[-1] == raw[0] and raw.count(raw[0]) == 2
    if whole:
        obfuscated = False  # "cat" as a whole word in quotes: that is how prose quotes words too
    return text, i, obfuscated, globbed, whole


def _expansion(value: str, i: int, limit: int, out: list[str]) -> int:
    """An expansion at value[i] == '$': appends what it yields (usually nothing) and returns the end."""
    nxt = value[i + 1] if i + 1 < limit else ""
    if nxt in ("@", "*", "#", "?", "!", "-", "$") or nxt.isdigit():
        return i + 2
    if nxt == "{":
        m = _SLICE.match(value, i + 1, limit)
        if m is not None:
            if m.group(1) in _SLASH_VARS or m.group(1).endswith("PATH"):
                out.append("/")
            return m.end()
        m = _BRACED.match(value, i + 1, limit)
        return m.end() if m is not None else i + 1
    if nxt == "(":
        close = value.find(")", i + 2, limit)
        if close < 0:
            return i + 1
        if value[i + 2 : close].strip():
            out.append("*")  # a substitution's output: unknown
        return close + 1
    if nxt == "`":
        return i + 1
    j = i + 1
    while j < limit and value[j] in _NAME_CHAR:
        j += 1
    return j


def _ansi_char(m: re.Match[str]) -> str:
    if m.group(1):
        return chr(int(m.group(1), 16))
    if m.group(2):
        return chr(int(m.group(2), 8) & 0xFF)
    if m.group(3):
        return chr(int(m.group(3), 16))
    c = m.group(4)
    return _ANSI_SIMPLE.get(c, c)
