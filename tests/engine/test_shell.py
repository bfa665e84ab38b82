"""The shell-syntax detector (engine/shell.py) and its operator, detect_shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logoutguard.engine import shell
from logoutguard.engine.operators import OPERATORS, OperatorContext, OperatorError
from logoutguard.engine.shell import MAX_WORD, ShellDetector

COMMANDS = ["cat", "id", "whoami", "uname", "ls", "sleep", "ping", "curl", "sh", "echo", "python", "w", "nc"]
COMMANDS += ["sudo", "nohup", "env", "timeout"]
BARE = ["id", "whoami", "uname", "ls", "w", "env"]
PREFIXES = ["sudo", "nohup", "env", "timeout"]
DETECTOR = ShellDetector(COMMANDS, BARE, PREFIXES)
RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.mark.parametrize(
    ("value", "command"),
    [
        ("1; cat /etc/passwd", "cat"),
        ("example.com | ls /", "ls"),
        ("x|whoami", "whoami"),
        ("a && uname -a", "uname"),
        ("a||curl http://203.0.113.9/x", "curl"),
        ("1\nid", "id"),
        ("$(id)", "id"),
        ("x`whoami`", "whoami"),
        ("name=`uname -a`", "uname"),
        ("1|sleep 5", "sleep"),
        ("x; echo $PATH", "echo"),
        ("';id;'", "id"),
        # obfuscation: quotes, backslashes, empty expansions and substitutions inside the word
        ("1; c'a't /etc/passwd", "cat"),
        ('1;c"a"t x', "cat"),
        ("x|w\\hoami", "whoami"),
        ("a;who''ami", "whoami"),
        ("x;wh$@oami", "whoami"),
        ("x;c${u}at /etc/passwd", "cat"),
        ("x;c$u'at' /etc/passwd", "cat"),
        ("x;w``hoami", "whoami"),
        ("x;who$()ami", "whoami"),
        ("x;$'\\x63at' /etc/passwd", "cat"),
        ("x;$'\\143at' /etc/passwd", "cat"),
        # blanks and paths made of variables, globs
        ("1;cat$IFS/etc/passwd", "cat"),
        ("1;${IFS}cat${IFS}/etc/passwd", "cat"),
        ("1;${PATH:0:1}bin${PATH:0:1}cat /etc/passwd", "cat"),
        ("1;/bin/c?t /etc/passwd", "cat"),
        ("x;/???/??t /etc/passwd", "cat"),
        ("x;/bin/ca[s-u] /etc/passwd", "cat"),
        ("x;/usr/bin/who*mi", "whoami"),
        ("x;python3 -c 1", "python"),
        ("x;/usr/bin/python3.11 -c 1", "python"),
        # a prefix runs the next word; the shell itself through a variable; a payload closing a quote
        ("x; sudo id", "id"),
        ("x; nohup whoami", "whoami"),
        ("x; timeout 5 sleep 10", "sleep"),
        ("x; sudo -u root id", "id"),
        ("x;$0 -c id", "sh"),
        ("x;${SHELL} -c id", "sh"),
        ("a'||'id", "id"),
    ],
)
def test_finds_the_command(value: str, command: str) -> None:
    assert DETECTOR.search(value) == command


@pytest.mark.parametrize(
    "value",
    [
        "Tom & Jerry",
        "Java; Python; Go",
        "ideas; identity",
        "Pop; rock'n'roll",
        "a; it's ''fine''",
        'ok; "quoted" text',
        "a; 'cat' is a word",
        'He said; "whoami" is a command',
        "Cats & dogs; cat food on sale",
        "I was tired; sleep 8 hours a night",
        "Black | White | head start",
        "Q&A; who is it?",
        "price $(5)",
        "see C:\\Users; docs\\readme",
        "Main entry point for ``python -m pygments``.",  # reStructuredText literal
        "    'w'        #  0x77 -> LATIN SMALL LETTER W",
        "docs:\n\npython setup.py\n",  # a command on its own line in documentation, only a file name after it
        "a; *note* this",
    ],
)
def test_quiet_on_prose_and_markup(value: str) -> None:
    assert DETECTOR.search(value) is None


def test_bare_commands_need_the_command_line_to_end() -> None:
    assert DETECTOR.search("x; ls") == "ls"
    assert DETECTOR.search("x; ls the files") is None
    assert DETECTOR.search("x; cat") is None  # cat is not bare: it needs an argument shape


def test_prefix_commands_alone_follow_their_own_rules() -> None:
    assert DETECTOR.search("x; env") == "env"  # bare
    assert DETECTOR.search("x; sudo make me a sandwich") is None


def test_the_start_of_the_value_only_when_asked() -> None:
    at_start = ShellDetector(COMMANDS, BARE, PREFIXES, at_start=True)
    assert DETECTOR.search("cat /etc/passwd") is None
    assert at_start.search("cat /etc/passwd") == "cat"
    assert at_start.search("c'a't x") == "cat"
    assert at_start.search("id") is None  # a bare word at the start is a value, not a command line
    assert at_start.search("cat food") is None
    assert at_start.search("python setup.py") is None  # only the weak sign (a file name)
    assert at_start.search("x; cat /etc/passwd") is None  # separators are rule 932110's (no --start)


def test_unclosed_quotes_and_overlong_words_are_no_command() -> None:
    assert DETECTOR.search("x; c'at /etc/passwd") is None
    assert DETECTOR.search("x; " + "c" * (MAX_WORD + 1) + " /etc/passwd") is None


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Where the detector reads a word (shell._read_word), in order."""
    positions: list[int] = []
    original = shell._read_word

    def counting(value: str, pos: int) -> tuple[str, int, bool, bool, bool] | None:
        positions.append(pos)
        return original(value, pos)

    monkeypatch.setattr(shell, "_read_word", counting)
    return positions


def test_work_is_bounded_on_adversarial_input(reads: list[int]) -> None:
    """At most one word read per character, each read at most MAX_WORD long (see the test above)."""
    total = 0
    for value in [";" * 20_000, ";'" * 10_000, ';"a' * 7_000, "; c'a'" * 3_000 + "x", "`a" * 10_000]:
        reads.clear()
        assert DETECTOR.search(value) is None
        assert len(reads) <= len(value)  # plain words (";;;", "`a") need no read at all (_PLAIN_WORD)
        total += len(reads)
    assert total > 0  # the quoted words were read


def test_a_plain_word_that_names_no_command_is_settled_without_reading_it(reads: list[int]) -> None:
    """The shortcut of `_at` (_PLAIN_WORD): a plain word naming no command ends the search there; a
    command, a quoted or escaped word, $IFS or a too-long word is read as before."""
    for value in ["a; hello world", "x|/usr/local/thing -v", "a;", "q=1&page=2"]:
        assert DETECTOR.search(value) is None
    assert reads == []
    for value, found in [
        ("a; cat /etc/passwd", "cat"),
        ("a; $IFS cat /etc/passwd", "cat"),
        ("a; \\cat /etc/passwd", "cat"),
        ("a; /bin/c'a't x", "cat"),
        ("a;" + "x" * (MAX_WORD + 5) + " /etc/passwd", None),
    ]:
        reads.clear()
        assert DETECTOR.search(value) == found, value
        assert reads, value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("cat id;|&`$'\"\\{}()[]?*/\n IFS:01")), max_size=80))
def test_never_raises(value: str) -> None:
    found = DETECTOR.search(value)
    assert found is None or found in COMMANDS


def test_needs_commands() -> None:
    with pytest.raises(ValueError, match="at least one command"):
        ShellDetector([])


# --- the operator ---------------------------------------------------------------------------------


def test_operator_reads_the_command_list(tmp_path: Path) -> None:
    (tmp_path / "cmds.txt").write_text("# comment\ncat\nid bare\nsudo prefix\n")
    predicate = OPERATORS["detect_shell"]("cmds.txt", OperatorContext(tmp_path))
    assert predicate("1; c'a't x", str) == ("cat",)
    assert predicate("1;id", str) == ("id",)
    assert predicate("1;cat", str) is None
    assert predicate("1;sudo id", str) == ("id",)
    assert predicate("Tom & Jerry", str) is None
    assert predicate.prefilter[0].search("1;id")  # type: ignore[attr-defined]
    assert not predicate.prefilter[0].search("plain words")  # type: ignore[attr-defined]


def test_operator_refuses_bad_lists(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("cat always\n")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    context = OperatorContext(tmp_path)
    with pytest.raises(OperatorError, match="bad line 'cat always'"):
        OPERATORS["detect_shell"]("bad.txt", context)
    with pytest.raises(OperatorError, match="no command names"):
        OPERATORS["detect_shell"]("empty.txt", context)
    with pytest.raises(OperatorError, match="needs one or more"):
        OPERATORS["detect_shell"]("  ", context)
    with pytest.raises(OperatorError, match="not found"):
        OPERATORS["detect_shell"]("missing.txt", context)


def test_default_command_list_loads() -> None:
    predicate = OPERATORS["detect_shell"]("932-unix-commands.txt", OperatorContext(RULES))
    assert predicate("x;/???/??t /etc/passwd", str) == ("cat",)
    assert predicate("127.0.0.1;whoami", str) == ("whoami",)
    assert predicate("x; sudo id", str) == ("id",)
    assert predicate("cat /etc/passwd", str) is None


def test_start_option_makes_the_value_start_a_command_position() -> None:
    predicate = OPERATORS["detect_shell"]("932-unix-commands.txt --start", OperatorContext(RULES))
    assert predicate("cat /etc/passwd", str) == ("cat",)
    assert predicate("Cat food", str) is None
    assert not hasattr(predicate, "prefilter")  # every value is a candidate: the prefilter keeps it


@settings(max_examples=1500, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(
            [*" \t\n;|&<>()`\\'\"$?*[]{}ab/.-09", "``", "$IFS", "${IFS}", "$(id)", "cat", "\xe9"]
        ),
        max_size=12,
    ),
    long=st.booleans(),
)
def test_plain_word_shortcut_reads_as_the_word_loop(parts: list[str], long: bool) -> None:
    from logoutguard.engine.shell import MAX_WORD, _read_word, _read_word_slowly

    value = ("a" * (MAX_WORD - 2) if long else "") + "".join(parts)
    for pos in range(len(value) + 1):
        assert _read_word(value, pos) == _read_word_slowly(value, pos), (value, pos)


def _glob_by_every_command(detector: ShellDetector, name: str) -> str | None:
    """The glob resolved as before its shortcut: the first command, in sorted order, its pattern matches."""
    pattern = shell._glob_regex(name)
    return (
        None
        if pattern is None
        else next((c for c in sorted(detector.commands) if pattern.fullmatch(c)), None)
    )


@settings(max_examples=1500, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from([*"?*[]!^-acehilnopstuwy/=.", "[a-c]", "[!a]", "ca", "py", "sl", "wh", "sea"]),
        min_size=1,
        max_size=8,
    )
)
def test_a_glob_resolves_as_against_every_command(parts: list[str]) -> None:
    """The glob shortcut (only commands starting with the part before the first glob character are
    tried) finds what matching the pattern against every command finds."""
    name = "".join(parts)
    commands = [*COMMANDS, "python3", "ping6", "search", "seq", "[", "a-b", "c?t"]
    detector = ShellDetector(commands)
    literal = sum(1 for c in name if c not in "?*[")
    if literal < 2 or len(name) > 32:  # settled before any pattern, as before
        assert detector._glob(name, path=False) is None
    else:
        assert detector._glob(name, path=False) == _glob_by_every_command(detector, name), name


def test_a_glob_no_command_starts_like_makes_no_pattern() -> None:
    """A path or URL with a `?` (a globbed word to the shell) whose part before it starts no command
    name is settled without building a pattern for it."""
    predicate = OPERATORS["detect_shell"]("932-unix-commands.txt --start", OperatorContext(RULES))
    before = shell._glob_regex.cache_info().misses
    assert predicate("/search?q=running+shoes+1234&page=5", str) is None
    assert predicate("/index.php?id=7", str) is None
    assert shell._glob_regex.cache_info().misses == before
    assert predicate("/bin/c?t /etc/passwd", str) == ("cat",)  # a glob of a command still resolves
    assert shell._glob_regex.cache_info().misses == before + 1
