"""Prefilter: hyperscan scans of the inspected values decide which rules cannot match, before `re` runs.

Built once per Engine from the rules that run at its paranoia level. An operator declares that it
can be prefiltered by carrying a `prefilter` attribute on its predicate (operators.gated): Python
regexes, one of which finds a match wherever the operator matches (rx: its pattern; contains: the
escaped needle; pm: its phrases). Each is translated into a hyperscan expression that matches a
SUPERSET of what `re` matches on byte text: character classes are spelled out byte by byte exactly as
`re` reads them (so `\\w`, `\\s` and IGNORECASE keep Python's meaning), while zero-width assertions,
back-references and large repeat bounds are widened away. A "no" from the prefilter is therefore
always right, and a "maybe" is settled by the operator itself: detection is unchanged.

Per transaction, for each phase, the rules whose first link cannot match any value of its targets
are not visited at all (`order`), and inside a visited rule a value the link cannot match is not
given to the operator (`value_may_match`). To keep the per-request cost flat, values are first
classified: a value holding none of the characters that the transformations of a chain react to
("plain", see PLAIN_TRANSFORMS) is left as it is by that chain, or only lower-cased; its one scan
answers for every such chain, and a plain value no pattern can match is never looked at again.

The targets of a phase are answered collection by collection (`Source`): one pass over a collection's
members serves every target reading it; which targets select a member depends on its name only, and
what a value adds is kept per (group of targets, value). A visited rule's first link skips the values
that answer rules out (`member_may_match`), and a link whose operator reads no macro keeps its
result per short value (`results`). A pattern compiled for raw text that a link reads through a
lower-casing chain gets a folded twin, so a plain value is never scanned a second time lower-cased;
a chain ending in `lowercase` with folded patterns is scanned before that step; a candidate shorter
than every match of its patterns (re's width bound) is not scanned. A chain reading a few of the
patterns (CHAIN_PATTERNS) scans its long candidates (longer than memo.MAX_TEXT: not memoised) with a
database of those patterns alone, built from the same expressions, ids and flags, so its hits among
them are the whole database's (tests/engine/test_prefilter.py): a few microseconds instead of tens
for a 2 KB body. They are compiled with the whole database and kept in its cache file.

A pattern that matches most ordinary strings (`wide_patterns`: a Connection header's token, a value
without blanks) would gate nothing and cost every scan the report of its match: it is left out of the
database; a later link reading it asks a database of the wide patterns alone about a long value, and
leaves a short one to its operator. A pattern that hyperscan rejects leaves its link ungated
(plain `re` for that rule only). Without hyperscan there is no prefilter at all (one log line).
Scanning uses one scratch space per database, so it is not thread-safe; mitmproxy runs its hooks on
one thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import re
import re._compiler as sre_compile
import re._constants as sre
import re._parser as sre_parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .memo import MAX_TEXT, Memo, digest
from .rules import Link, Marker, Phase, Rule, Target
from .transformations import C_SPACE, path_has_work
from .variables import (
    MEMBER_FIELDS,
    MEMBER_INPUTS,
    STATE_INPUTS,
    Values,
    collect,
    is_dynamic,
    keyed,
    lookup,
    member_name,
)

if TYPE_CHECKING:
    from .evaluator import PhasePlan
    from .state import EvalState
    from .transaction import Transaction

try:
    import hyperscan
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    hyperscan = None

log = logging.getLogger("logoutguard")

MIN_PATTERNS = 8  # fewer gated patterns than this: building a database costs more than it saves
REPEAT_CAP = 8  # repeat bounds above this are widened to "at least CAP" / unbounded
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_CHAR_OPS = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN)
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Untranslatable(ValueError):
    """A regex that cannot be turned into a hyperscan superset (its link then stays ungated)."""


# --- Python regex -> hyperscan expression (superset on byte text) ------------------------------------

_charset_cache: dict[tuple[str, int], frozenset[int]] = {}


def byte_set(node: tuple[Any, Any], flags: int) -> frozenset[int]:
    """The bytes 0-255 that one single-character node matches under `flags`, asked of `re` itself."""
    key = (repr(node), flags & (re.IGNORECASE | re.DOTALL | re.ASCII | re.UNICODE))
    cached = _charset_cache.get(key)
    if cached is None:
        state = sre_parse.State()
        state.flags = flags
        matcher = sre_compile.compile(sre_parse.SubPattern(state, [node]), flags)
        cached = frozenset(b for b in range(256) if matcher.fullmatch(chr(b)))
        _charset_cache[key] = cached
    return cached


def _fold(members: frozenset[int]) -> frozenset[int]:
    """The bytes whose ASCII lower-case is in `members`: how a class reads lower-cased text."""
    kept = {b for b in members if not 0x41 <= b <= 0x5A}  # upper-case letters never reach it
    return frozenset(kept | {b - 0x20 for b in members if 0x61 <= b <= 0x7A})


def _class(members: frozenset[int]) -> str:
    if not members:
        raise Untranslatable("a character class that matches no byte")
    if len(members) == 1:
        return f"\\x{next(iter(members)):02x}"
    parts: list[str] = []
    ordered = sorted(members)
    start = prev = ordered[0]
    for b in [*ordered[1:], -2]:
        if b == prev + 1:
            prev = b
            continue
        parts.append(f"\\x{start:02x}" if start == prev else f"\\x{start:02x}-\\x{prev:02x}")
        start = prev = b
    return "[" + "".join(parts) + "]"


def _anchor(code: Any, flags: int, loose: bool) -> str:
    multiline = bool(flags & re.MULTILINE)
    if loose:
        return ""
    if code == sre.AT_BEGINNING_STRING or (code == sre.AT_BEGINNING and not multiline):
        return "^"
    if code == sre.AT_END and not multiline:
        return "$"  # as in re: the end, or before a newline at the end
    if code == sre.AT_END_STRING:
        return "\\z"
    return ""  # word boundaries and multi-line anchors: dropped (a zero-width test only narrows)


def _repeat(low: int, high: Any, body: str) -> str:
    if not body or high == 0:
        return ""
    low = min(low, REPEAT_CAP)
    if high is sre.MAXREPEAT or high > REPEAT_CAP:
        quantifier = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    elif low == high:
        quantifier = "" if low == 1 else f"{{{low}}}"
    else:
        quantifier = "?" if (low, high) == (0, 1) else f"{{{low},{high}}}"
    return f"(?:{body}){quantifier}"


@dataclass(frozen=True, slots=True)
class _Mode:
    loose: bool  # drop anchors too (hyperscan refuses a start anchor inside a pattern)
    fold: bool  # the text scanned is matched as if it were lower-cased first
    # group number -> (its body, the flags inside it): what a back-reference to it can match
    groups: dict[int, tuple[Any, int]] = field(default_factory=dict)


def _group_bodies(items: Iterable[tuple[Any, Any]], flags: int, found: dict[int, tuple[Any, int]]) -> None:
    """Every capturing group of a parsed regex (also inside lookarounds and conditionals) into `found`."""
    for op, av in items:
        if op is sre.SUBPATTERN:
            group, add, remove, body = av
            inner = (flags | add) & ~remove
            if group is not None:
                found[group] = (body, inner)
            _group_bodies(body, inner, found)
        elif op is sre.BRANCH:
            for branch in av[1]:
                _group_bodies(branch, flags, found)
        elif op in _REPEATS:
            _group_bodies(av[2], flags, found)
        elif op is sre.ATOMIC_GROUP:
            _group_bodies(av, flags, found)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _group_bodies(av[1], flags, found)
        elif op is sre.GROUPREF_EXISTS:
            _group_bodies(av[1], flags, found)
            _group_bodies(av[2] or [], flags, found)


def _emit(items: Iterable[tuple[Any, Any]], flags: int, mode: _Mode) -> str:
    out: list[str] = []
    for op, av in items:
        if op in _CHAR_OPS:
            members = byte_set((op, av), flags)
            out.append(_class(_fold(members) if mode.fold else members))
        elif op is sre.SUBPATTERN:
            _, add, remove, body = av
            inner = _emit(body, (flags | add) & ~remove, mode)
            out.append(f"(?:{inner})" if inner else "")
        elif op is sre.ATOMIC_GROUP:
            inner = _emit(av, flags, mode)
            out.append(f"(?:{inner})" if inner else "")
        elif op is sre.BRANCH:
            out.append("(?:" + "|".join(_emit(b, flags, mode) for b in av[1]) + ")")
        elif op in _REPEATS:
            low, high, body = av
            out.append(_repeat(low, high, _emit(body, flags, mode)))
        elif op is sre.AT:
            out.append(_anchor(av, flags, mode.loose))
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            continue  # lookaround: dropping it only widens
        elif op is sre.GROUPREF:
            out.append(_back_reference(av, flags, mode))
        elif op is sre.GROUPREF_EXISTS:
            _, yes, no = av
            out.append(f"(?:{_emit(yes, flags, mode)}|{_emit(no or [], flags, mode)})")
        else:
            raise Untranslatable(f"regex construct {op} is not supported by the prefilter")
    return "".join(out)


def _back_reference(group: int, flags: int, mode: _Mode) -> str:
    """A back-reference matches exactly the text its group matched, which the group's own body matches:
    the body's expression is a superset of it. Under IGNORECASE the text may differ from the group's
    in case only, which the body need not accept: any bytes then (as for a group not found)."""
    found = mode.groups.get(group)
    if found is None or flags & re.IGNORECASE:
        return "[\\x00-\\xff]*"
    body, inner = found
    return f"(?:{_emit(body, inner, mode)})"


def translate(pattern: re.Pattern[str], *, loose: bool = False, fold: bool = False) -> bytes:
    """A hyperscan expression matching a superset of what `pattern.search` matches on byte text.

    `fold`: the expression is for text that the operator sees lower-cased (ASCII): it then matches
    a superset of `pattern.search(text.lower())` on the text as it is. `loose`: anchors dropped too.
    """
    if not isinstance(pattern.pattern, str):
        raise Untranslatable("bytes patterns are not used by operators")
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    except (re.error, RecursionError) as exc:
        raise Untranslatable(f"cannot parse {pattern.pattern!r}: {exc}") from None
    try:
        groups: dict[int, tuple[Any, int]] = {}
        _group_bodies(parsed, parsed.state.flags, groups)
        return _emit(parsed, parsed.state.flags, _Mode(loose, fold, groups)).encode("ascii")
    except RecursionError:
        raise Untranslatable(f"{pattern.pattern[:60]!r} is nested too deeply") from None


# --- which values a chain of transformations leaves alone -------------------------------------------

# A value's signature: one bit per kind of character (or short sequence) that some transformation
# reacts to. A chain leaves a value as it is (or only lower-cases it) when the value has none of the
# chain's bits: the value is "plain" for that chain and its raw scan answers for it.
# PATH: normalize_path has work to do (transformations.path_has_work); EDGE: whitespace at either end.
PCT, AMP, BSL, NUL, HIGH, WS, SPACE, SPACE2, PATH, EDGE, CMT, CMD = (1 << n for n in range(12))
ALWAYS = 1 << 20  # in every signature and in the mask of chains that no value is plain for
# The bits below are substring tests (str `in` is a fast search; a regex with alternatives tries each
# at every position, tens of microseconds on a 2 KB body). Their regex spelling, which
# tests/engine/test_prefilter.py checks them against:
#   WS: [\t\n\v\f\r\xa0]  CMT: /\*|\*/|<!--|-->|--|#  (both HTML markers hold "--")
#   CMD: ["'\\^,;\t\r\n]| [ /(]
# A two-character test runs only after its first character was found (one-character `in` is memchr).
_WS_CHARS = frozenset(("\t", "\n", "\v", "\f", "\r", "\xa0"))
_CMD_CHARS = frozenset(('"', "'", "\\", "^", ",", ";", "\t", "\r", "\n"))
SET_SIGNATURE = 96  # values up to this long get their signature from their set of characters
_ANY_TRIGGER = re.compile("[%+&\\\\\x00\t\n\v\f\r\xa0 /.*<\\-#\"'^,;\x80-\U0010ffff]")


def signature(value: str) -> int:
    """The trigger bits present in `value` (always including ALWAYS)."""
    if _ANY_TRIGGER.search(value) is None:
        return ALWAYS
    chars: set[str] | str
    if len(value) <= SET_SIGNATURE:
        # A short value: its set of characters answers the one-character tests (one pass instead of one
        # search per character); a long one is searched (a 2 KB body's set costs more than memchr).
        chars = set(value)
        ws, cmd = not chars.isdisjoint(_WS_CHARS), not chars.isdisjoint(_CMD_CHARS)
    else:
        chars = value
        ws, cmd = any(c in value for c in _WS_CHARS), any(c in value for c in _CMD_CHARS)
    sig = ALWAYS
    if "%" in chars or "+" in chars:
        sig |= PCT
    if "&" in chars:
        sig |= AMP
    if "\\" in chars:
        sig |= BSL
    if "\x00" in chars:
        sig |= NUL
    if not value.isascii():
        sig |= HIGH
    if ws:
        sig |= WS
    space = " " in chars
    double = space and "  " in value
    if space:
        sig |= SPACE | (SPACE2 if double else 0)
    if value[0] in C_SPACE or value[-1] in C_SPACE:  # (not empty: _ANY_TRIGGER found something)
        sig |= EDGE
    if ("/" in chars or "." in chars) and path_has_work(value):
        sig |= PATH
    if "#" in chars or ("-" in chars and "--" in value) or ("*" in chars and ("/*" in value or "*/" in value)):
        sig |= CMT
    if double or cmd or (space and (("/" in chars and " /" in value) or ("(" in chars and " (" in value))):
        sig |= CMD
    return sig


# name -> (trigger bits: without them the transformation returns its input unchanged, or only
# ASCII-lower-cased when the flag is True). Transformations not listed change values in other ways
# (base64_decode, hashes, length, ...): values under them are always transformed for real.
# tests/engine/test_prefilter.py checks every entry against transformations.py.
PLAIN_TRANSFORMS: dict[str, tuple[int, bool]] = {
    "none": (0, False),
    "lowercase": (0, True),
    "url_decode": (PCT, False),
    "url_decode_uni": (PCT, False),
    "html_entity_decode": (AMP, False),
    "js_decode": (BSL, False),
    "css_decode": (BSL, False),
    "escape_seq_decode": (BSL, False),
    "remove_nulls": (NUL, False),
    "replace_nulls": (NUL, False),
    "utf8_to_unicode": (HIGH, False),
    "compress_whitespace": (WS | SPACE2, False),
    "remove_whitespace": (WS | SPACE, False),
    "trim": (EDGE, False),
    "trim_left": (EDGE, False),
    "trim_right": (EDGE, False),
    "remove_comments": (CMT, False),
    "remove_comments_char": (CMT, False),
    "replace_comments": (CMT, False),
    "normalize_path": (PATH, False),
    "normalize_path_win": (PATH | BSL, False),
    "cmd_line": (CMD, True),
}


@dataclass(frozen=True, slots=True)
class Chain:
    """How a link's transformations treat a value without any of the `mask` bits: unchanged, or
    (`lowers`) only lower-cased. `folded_output`: every output is lower-cased (the last step folds)."""

    mask: int  # ALWAYS when no value is plain for this chain
    lowers: bool
    folded_output: bool


def chain_of(transforms: tuple[str, ...]) -> Chain:
    if any(t not in PLAIN_TRANSFORMS for t in transforms):
        return Chain(ALWAYS, False, False)
    mask = 0
    for t in transforms:
        mask |= PLAIN_TRANSFORMS[t][0]
    lowers = any(PLAIN_TRANSFORMS[t][1] for t in transforms)
    folded = bool(transforms) and PLAIN_TRANSFORMS[transforms[-1]][1]
    return Chain(mask, lowers, folded)


# --- compiling the database -------------------------------------------------------------------------


def prefilter_regexes(link: Link) -> tuple[re.Pattern[str], ...]:
    """What the link's operator declares for prefiltering; () when it cannot be gated."""
    if link.operator.negated:
        return ()
    return tuple(getattr(link.operator.predicate, "prefilter", ()) or ())


_compiled: dict[tuple[tuple[int, bytes], ...], Any] = {}  # engines built again reuse a database


def _compile(expressions: list[tuple[int, bytes]]) -> Any:
    return _kept_build(_compiled, 32, expressions)


def _kept_build(
    kept: dict[tuple[tuple[int, bytes], ...], Any], limit: int, expressions: list[tuple[int, bytes]]
) -> Any:
    """`_build`, kept in `kept` (emptied at `limit` entries) so that engines built again reuse it."""
    key = tuple(expressions)
    db = kept.get(key)
    if db is None:
        db = _build(expressions)
        if len(kept) >= limit:
            kept.clear()
        kept[key] = db
    return db


def _build(expressions: list[tuple[int, bytes]]) -> Any:
    """A block-mode database of the expressions under their ids (every database is built alike)."""
    db = hyperscan.Database()
    db.compile(
        expressions=[e for _, e in expressions],
        ids=[i for i, _ in expressions],
        elements=len(expressions),
        flags=hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_PREFILTER,
    )
    return db


def _accepted(expression: bytes) -> bool:
    try:
        _compile([(0, expression)])
    except hyperscan.error:
        return False
    return True


PatternSet = tuple[tuple[re.Pattern[str], ...], bool]  # (regexes, fold)


def _translations(patterns: PatternSet, loose: bool) -> list[bytes] | None:
    regexes, fold = patterns
    try:
        return [translate(r, loose=loose, fold=fold) for r in regexes]
    except Untranslatable:
        return None


def _usable(patterns: PatternSet) -> tuple[list[bytes], bool] | None:
    """Expressions hyperscan accepts one by one (anchors kept first, then dropped: the flag), or None."""
    for loose in (False, True):
        exprs = _translations(patterns, loose)
        if exprs is not None and all(_accepted(e) for e in exprs):
            return exprs, loose
    return None


@dataclass
class Compiled:
    """The database of all pattern sets and what the on-disk cache keeps with it (see `cache_dir`)."""

    key: str  # _cache_key of the sets
    sets: list[PatternSet]
    database: Any  # None: nothing hyperscan accepts
    refused: set[int]  # pattern ids hyperscan refused
    loose: set[int]  # pattern ids compiled with their anchors dropped (`_usable`)
    # Sorted pattern ids -> a database of those patterns alone (as read from the cache file: its bytes,
    # loaded when asked for), None when hyperscan refused it (see `chain_databases`). Every subset
    # worked out for these sets is kept in the file (engines of one ruleset may differ in chains).
    subsets: dict[tuple[int, ...], Any] = field(default_factory=dict)
    stored: bool = False  # the file in the cache holds all of the above
    # Pattern id -> its expressions in the database, when compiled here (else translated on demand).
    expressions: dict[int, list[bytes]] = field(default_factory=dict)
    # Pattern id -> the fewest characters a match spans (min_width: re's parser, tens of milliseconds
    # for a ruleset, so kept in the file too).
    widths: list[int] = field(default_factory=list)


def compile_database(sets: list[PatternSet], wide: frozenset[int] = frozenset()) -> Compiled:
    """One database for all pattern sets (pattern id = index) but the `wide` ones, and the ids hyperscan
    refused, from the on-disk cache when the same sets were compiled before (a large ruleset such as
    the OWASP CRS takes seconds to compile; loading it takes milliseconds). See `cache_dir`. It is
    written to the cache by `chain_databases`, with the per-chain databases. `wide` must be a function
    of the sets (`wide_patterns`): the cache key is theirs."""
    key = _cache_key(sets)
    cached = _load_cached(key, sets)
    if cached is not None:
        return cached
    expressions: dict[int, list[bytes]] = {}
    database, refused, loose = _compile_database(sets, expressions, wide)
    widths = [min_width(regexes) for regexes, _ in sets]
    return Compiled(key, sets, database, refused, loose, expressions=expressions, widths=widths)


CHAIN_PATTERNS = 16  # a chain with more patterns (or half the database) scans the whole database
TARGET_PATTERNS = 32  # the same for the long values a target reads as they are
_subset_memo: dict[tuple[tuple[int, bytes], ...], Any] = {}  # engines built again reuse them


def chain_databases(compiled: Compiled, wanted: Iterable[tuple[int, ...]]) -> dict[tuple[int, ...], Any]:
    """For each wanted set of pattern ids (sorted, none refused): a database of those patterns alone,
    compiled from the very expressions, ids and flags of the whole database, so that its hits on a
    text are the whole database's hits on it restricted to those ids. Scanning a long text with it
    costs a few microseconds where the whole database costs tens. A subset hyperscan refuses is left
    out (its chains scan the whole database). Loaded from the cache file of the whole database when
    it holds them; the file is (re)written when anything had to be compiled."""
    wanted = set(wanted)
    subsets = compiled.subsets
    for ids in wanted & subsets.keys():
        if isinstance(subsets[ids], bytes):
            try:
                subsets[ids] = _loaded(subsets[ids])
            except hyperscan.error as exc:  # a damaged part of the file: compiled again
                log.warning(
                    f"LogoutGuard: a cached prefilter chain database cannot be used ({exc}); compiling"
                )
                del subsets[ids]
    missing = sorted(wanted - subsets.keys())
    if missing:
        expressions = compiled.expressions
        for ids in missing:
            for pid in ids:
                if pid not in expressions:
                    exprs = _translations(compiled.sets[pid], loose=pid in compiled.loose)
                    assert exprs is not None  # compiled into the whole database
                    expressions[pid] = exprs
            subsets[ids] = _compile_subset([(pid, e) for pid in ids for e in expressions[pid]])
        compiled.stored = False
    if not compiled.stored and compiled.database is not None:
        _store_cached(compiled, subsets)
        compiled.stored = True
    return {ids: subsets[ids] for ids in wanted if subsets[ids] is not None}


def _compile_subset(expressions: list[tuple[int, bytes]]) -> Any:
    """A chain's database, or None when hyperscan refuses it."""
    try:
        return _kept_build(_subset_memo, 256, expressions)
    except hyperscan.error:
        return None


CACHE_ENV = "LOGOUTGUARD_CACHE_DIR"
CACHE_FILES = 16  # cache files kept (each ruleset, paranoia level and skip list has its own)
_CACHE_MAGIC = b"LGHS2\n"


def cache_dir() -> Path:
    """Where compiled databases are kept: $LOGOUTGUARD_CACHE_DIR, else $XDG_CACHE_HOME/logoutguard, else
    ~/.cache/logoutguard. A file that cannot be read or written there only means compiling again."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "logoutguard"


def _cache_key(sets: list[PatternSet]) -> str:
    """The sets' regexes and folding, this module's own code (the translation) and hyperscan's version."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(repr(getattr(hyperscan, "__version__", "")).encode())
    for regexes, fold in sets:
        digest.update(repr(([(r.pattern, r.flags) for r in regexes], fold)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _load_cached(key: str, sets: list[PatternSet] | None = None) -> Compiled | None:
    """The cache file of `key`: the whole database, then the per-chain ones (one file per key, so the
    chain databases never count against CACHE_FILES). Header: a JSON line with the refused and loose
    pattern ids, each pattern id's least width, the whole database's size in bytes and [pattern ids,
    size] of each subset (size 0: hyperscan refused it)."""
    path = cache_dir() / f"prefilter-{key}.hsdb"
    try:
        info = path.stat()
        # A database decides which rules run: only one this user wrote and nobody else may change.
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            log.warning(f"LogoutGuard: {path} is not owned by this user alone; compiling instead")
            return None
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(_CACHE_MAGIC):
            raise ValueError("not a prefilter database")
        header, _, blob = data[len(_CACHE_MAGIC) :].partition(b"\n")
        fields = json.loads(header)
        refused = {int(i) for i in fields["refused"]}
        loose = {int(i) for i in fields["loose"]}
        widths = [int(w) for w in fields["widths"]]
        if sets is not None and len(widths) != len(sets):
            raise ValueError("widths of other pattern sets")
        size = int(fields["size"])
        database = _loaded(blob[:size])
        position = size
        subsets: dict[tuple[int, ...], Any] = {}
        for ids, length in fields["subsets"]:
            part = blob[position : position + int(length)]
            position += int(length)
            subsets[tuple(int(i) for i in ids)] = part or None  # loaded by chain_databases if used
        if position != len(blob):
            raise ValueError("truncated")
    except Exception as exc:  # a damaged file: compile again (and write it anew)
        log.warning(f"LogoutGuard: the cached prefilter database {path} cannot be used ({exc}); compiling")
        return None
    return Compiled(key, sets or [], database, refused, loose, subsets, stored=True, widths=widths)


def _loaded(blob: bytes) -> Any:
    database = hyperscan.loadb(blob, mode=hyperscan.HS_MODE_BLOCK)
    database.scratch = hyperscan.Scratch(database)
    return database


def _dumped(database: Any) -> bytes:
    """A subset's bytes in the cache file: b"" for one hyperscan refused, as read for one not loaded."""
    if database is None or isinstance(database, bytes):
        return database or b""
    return hyperscan.dumpb(database)


def _store_cached(compiled: Compiled, subsets: dict[tuple[int, ...], Any]) -> None:
    folder = cache_dir()
    path = folder / f"prefilter-{compiled.key}.hsdb"
    try:
        whole = hyperscan.dumpb(compiled.database)
        parts = {ids: _dumped(db) for ids, db in sorted(subsets.items())}
        header = {
            "refused": sorted(compiled.refused),
            "loose": sorted(compiled.loose),
            "widths": compiled.widths,
            "size": len(whole),
            "subsets": [[list(ids), len(part)] for ids, part in parts.items()],
        }
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{path.name}.{os.getpid()}.tmp"
        temporary.touch(mode=0o600)
        temporary.write_bytes(
            b"".join([_CACHE_MAGIC, json.dumps(header).encode(), b"\n", whole, *parts.values()])
        )
        os.replace(temporary, path)
        kept = sorted(folder.glob("prefilter-*.hsdb"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in kept[CACHE_FILES:]:  # bounded: the databases of rulesets no longer used go
            old.unlink(missing_ok=True)
    except (OSError, hyperscan.error) as exc:
        log.info(f"LogoutGuard: the prefilter database cannot be cached in {folder} ({exc})")


def _compile_database(
    sets: list[PatternSet], used: dict[int, list[bytes]] | None = None, wide: frozenset[int] = frozenset()
) -> tuple[Any, set[int], set[int]]:
    """One database for all pattern sets (pattern id = index) but the `wide` ones (left out, neither
    compiled nor refused), the ids hyperscan refused and the ids compiled with their anchors dropped;
    `used` receives each compiled id's expressions.

    Everything is compiled at once; only when that fails is each set tried alone to find the culprits.
    """
    used = {} if used is None else used
    strict = [None if i in wide else _translations(p, loose=False) for i, p in enumerate(sets)]
    refused = {i for i, exprs in enumerate(strict) if exprs is None and i not in wide}
    expressions = [(i, e) for i, exprs in enumerate(strict) if exprs is not None for e in exprs]
    try:
        database = _compile(expressions) if expressions else None
    except hyperscan.error:
        pass
    else:
        used.update((i, exprs) for i, exprs in enumerate(strict) if exprs is not None)
        return database, refused, set()
    expressions = []
    loose: set[int] = set()
    for i, patterns in enumerate(sets):
        if i in wide:
            continue
        usable = None if i in refused else _usable(patterns)
        if usable is None:
            refused.add(i)
            continue
        exprs, dropped = usable
        if dropped:
            loose.add(i)
        used[i] = exprs
        expressions.extend((i, e) for e in exprs)
    return (_compile(expressions) if expressions else None), refused, loose


# --- the prefilter ---------------------------------------------------------------------------------


def _on_match(pid: int, start: int, end: int, flags: int, hits: set[int]) -> None:
    hits.add(pid)


Hits = set[int] | frozenset[int]
ExactTest = Callable[[Link, str, "EvalState"], bool]
_NO_HITS: frozenset[int] = frozenset()
MEMO_ENTRIES = 8192  # short texts whose scan (and values whose signature) each engine keeps (memo.py)
ANSWER_ENTRIES = 32768  # (target, short value) pairs whose rules to visit each engine keeps
RESULT_ENTRIES = 16384  # (link, short value) pairs whose operator result each engine keeps
STEP_ENTRIES = 32768  # (short text, transformation) pairs whose output each engine keeps
LONG_ENTRIES = 4096  # (target or group, digest of a long value) pairs whose rules to visit each engine keeps
NAME_ENTRIES = 512  # member names whose selecting targets each Source keeps (one per phase and collection)
# Whole collections whose answer each Source keeps: at most WHOLE_MEMBERS members of WHOLE_CHARS
# characters in all (so at most ~WHOLE_ENTRIES * WHOLE_CHARS characters kept per Source).
WHOLE_ENTRIES = 256
WHOLE_MEMBERS = 64
WHOLE_CHARS = 4096
WHOLE_SEEN = 4096  # hashes of the fields of a collection seen once (Source.seen)
# Whole phases whose answer (`_todo` before its dynamic targets) each engine keeps per phase: keyed by
# the transaction's fields every collection the phase reads is made from, PHASE_CHARS in all at most.
PHASE_ENTRIES = 256
PHASE_CHARS = 8192
PHASE_SEEN = 4096  # hashes of the fields of requests seen once: the second sighting keeps the answer
# Strings on which a useful gate does not match; a pattern matching most of them gates nothing.
_BREADTH_PROBES = (b"a", b"1", b"abc", b"12345", b"index", b"text/html", b"en-US,en;q=0.9")


@dataclass(frozen=True, slots=True)
class ReadChain:
    """One chain of transformations through which gated rules read one target."""

    link: Link  # a link with these transformations
    rules: dict[int, tuple[int, ...]]  # pattern id -> indexes of the rules reading through it


@dataclass(frozen=True, slots=True)
class ChainPlan:
    """How `_walk` reads a value through one ReadChain, worked out when the engine is built."""

    shortest: int  # the least width of the chain's patterns: a shorter candidate is not scanned
    least: int  # the shortest value whose outputs may be that long (longest_output)
    own: tuple[int, Any] | None  # the chain's own database (chain_databases), for long candidates
    # (name, function, trigger bits, lowers) of each step: PLAIN_TRANSFORMS' entry, or (ALWAYS, True)
    # for a step that changes values in other ways (base64_decode, ...): such a step always runs.
    steps: tuple[tuple[str, Callable[[str], str], int, bool], ...]
    multi: bool  # multi_match: every distinct step's output is a candidate
    pids: frozenset[int] = frozenset()  # the pattern ids the chain's rules read (its `rules` keys)


@dataclass(frozen=True, slots=True)
class Step:
    """One node of a target's step tree (`step_program`): a transformation applied to the output of
    its parent (the step before it, at depth - 1; depth 0 reads the value itself)."""

    depth: int
    name: str
    fn: Callable[[str], str]
    mask: int  # its trigger bits (PLAIN_TRANSFORMS): an input without any of them is returned as it is
    lowers: bool  # ... or lower-cased (or the step changes values in other ways): it always runs
    below: int  # the union of the selecting masks of the chains in its subtree
    least: int  # the least `ChainPlan.least` in its subtree
    after: int  # the position right after its subtree in the program
    ends: tuple[tuple[ReadChain, ChainPlan, int], ...]  # chains whose last step it is, with their mask


def step_program(chains: list[tuple[ReadChain, ChainPlan, int]]) -> tuple[Step, ...]:
    """The chains' steps as a tree in depth-first order: chains starting with the same steps share
    those nodes. `chains`: (chain, its plan, the signature bits that select it: ALWAYS for a chain
    whose output is always computed)."""
    root: dict[str, Any] = {"children": {}, "ends": []}
    for chain, plan, select in chains:
        node = root
        for name, fn, mask, lowers in plan.steps:
            node = node["children"].setdefault(
                name, {"fn": fn, "mask": mask, "lowers": lowers, "children": {}, "ends": []}
            )
        node["ends"].append((chain, plan, select))
    if root["ends"]:
        raise ValueError("a chain without transformations has no steps to walk")
    program: list[Step] = []

    def emit(name: str, node: dict[str, Any], depth: int) -> tuple[int, int]:
        position = len(program)
        program.append(None)  # type: ignore[arg-type]  # filled in below, once the subtree is known
        below = 0
        least = _UNBOUNDED
        for _, plan, select in node["ends"]:
            below, least = below | select, min(least, plan.least)
        for child_name, child in node["children"].items():
            child_below, child_least = emit(child_name, child, depth + 1)
            below, least = below | child_below, min(least, child_least)
        program[position] = Step(
            depth,
            name,
            node["fn"],
            node["mask"],
            node["lowers"],
            below,
            least,
            len(program),
            tuple(node["ends"]),
        )
        return below, least

    for name, child in root["children"].items():
        emit(name, child, 0)
    return tuple(program)


@dataclass(frozen=True, slots=True)
class TargetGates:
    """The gated rules of a phase that read one target, and how they read it."""

    key: int  # the target's number, for the per-transaction value cache
    target: Target
    plain: dict[int, tuple[tuple[int, int], ...]]  # pattern id -> (rule index, chain mask): the
    # rules a plain value (no bit of the mask in its signature) answers for with its own scan
    lowered: dict[int, tuple[tuple[int, int], ...]]  # the same for rules that see a plain value
    # lower-cased (or as it is and lower-cased, with multi_match) through a pattern for raw text
    any_mask: int  # union of the masks below: a value with none of these bits is plain for all
    by_mask: tuple[tuple[int, tuple[ReadChain, ...]], ...]  # chains by mask, transformed when hit
    opaque: tuple[ReadChain, ...]  # chains whose output is always computed (base64_decode, ...)
    # Rules no pattern gates whose first link is a pure test of one value (exact_gate): the rule
    # is visited when its link matches some value of the target. Tested exactly, so no bits apply.
    exact: tuple[tuple[int, Link], ...] = ()
    memo_key: int = 0  # unique per phase and target: the per-value answers are kept under it
    signed: bool = True  # some entry depends on a value's signature (else it is never computed)
    # Pattern-gated rules whose first link is also a pure test of one value (exact_gate): rule index ->
    # that link. A short value's pattern hit counts only when the link's test passes for it (`_answer`).
    confirmed: dict[int, Link] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PhaseGates:
    """Which items of a phase run always, and which run only when one of their pattern ids hits."""

    always: tuple[int, ...]
    targets: tuple[TargetGates, ...]
    # The same targets by collection (see Source), and those read another way (dynamic ones).
    sources: tuple[Source, ...] = ()
    loose: tuple[TargetGates, ...] = ()
    # Rule index -> chain links each of which must let one of its values through for the rule to be
    # visited (`required_links`): all links of a rule must match, and skipping it changes nothing.
    required: dict[int, tuple[Link, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)  # identity: a key of EvalState.prefilter_cache
class Source:
    """The targets of one phase that read one static collection: one pass over the collection's
    members answers for all of them. Which of them select a member is a function of the member's
    name alone (kept in `names`); the targets selecting a member form a group, and what a value
    adds to the rules to visit is kept per (group, value)."""

    collection: str
    reads: tuple[TargetGates, ...]  # targets reading members' values (whole, keyed, key regex)
    counts: tuple[TargetGates, ...]  # `&` targets: the number of members they select is the value
    names: Memo  # full member name -> (group id or -1, indexes in `counts` of the counts selecting it)
    # All the members -> the rules they make visitable (`_source_todo`): keyed by the transaction's
    # fields they are made from (`inputs`, variables.MEMBER_INPUTS) in a 1-tuple, or by the members
    # themselves (a tuple of (name, value) pairs) where the collection has none or an adapter's view
    # replaces it (the two kinds of key never equal: a 1-tuple's item is never a pair of strings).
    wholes: Memo = field(default_factory=lambda: Memo(WHOLE_ENTRIES))
    inputs: Callable[[Transaction], object] | None = None
    # The hashes of the fields (`inputs`) seen: True, an answer is kept under fields seen a second time;
    # False, seen too large to keep (more than WHOLE_MEMBERS members or WHOLE_CHARS), not walked again.
    seen: Memo = field(default_factory=lambda: Memo(WHOLE_SEEN))


def sources_of(targets: tuple[TargetGates, ...]) -> tuple[tuple[Source, ...], tuple[TargetGates, ...]]:
    """The targets grouped by static collection, and the rest (a dynamic collection: TX, MATCHED_*)."""
    by_collection: dict[str, tuple[list[TargetGates], list[TargetGates]]] = {}
    loose: list[TargetGates] = []
    for tg in targets:
        collection = tg.target.collection
        if is_dynamic(collection):
            loose.append(tg)
            continue
        reads, counts = by_collection.setdefault(collection, ([], []))
        (counts if tg.target.count else reads).append(tg)
    sources = tuple(
        Source(c, tuple(reads), tuple(counts), Memo(NAME_ENTRIES), inputs=MEMBER_INPUTS.get(c))
        for c, (reads, counts) in by_collection.items()
    )
    return sources, tuple(loose)


@dataclass(frozen=True, slots=True)
class Stats:
    gated_links: int
    ungated_links: int  # links whose operator declares a prefilter that hyperscan refused
    gated_rules: int
    broad_patterns: int  # patterns matching most ordinary strings: their rules always run
    patterns: int
    exact_rules: int = 0  # rules visited only when their first link matches a value (exact_gate)
    chain_databases: int = 0  # databases of a few patterns scanned for chains' long candidates
    confirmed_rules: int = 0  # gated rules whose pattern hits on short values are confirmed by their test
    required_rules: int = 0  # chained rules visited only when each of their `required_links` may match


class Prefilter:
    """The gates of one engine; per-transaction answers live in EvalState.prefilter_cache/scan_cache.

    What one value of one target adds to a phase's rules to visit is a pure function of the value
    (the scans, signatures, transformations and exact tests all are), so for short values it is
    computed once and kept (`_group_answers` per group of targets, `_answers` for counts and dynamic
    targets): a repeated header, cookie or argument costs one lookup; for long values likewise, under
    the value's digest (`_long_group_answers`, `_long_answers`): a token cookie or a body seen before
    costs its digest.
    """

    def __init__(
        self,
        database: Any,
        link_pids: dict[int, int],
        phases: dict[Phase, PhaseGates],
        keep: tuple[Rule, ...],
        stats: Stats,
        exact: ExactTest,
        heads: dict[int, tuple[Phase, int]] | None = None,
        sets: list[PatternSet] | None = None,
        chain_dbs: dict[int, tuple[int, Any]] | None = None,
        widths: list[int] | None = None,
        subset_ids: dict[int, tuple[int, ...]] | None = None,
        outside: dict[int, tuple[int, Any]] | None = None,
    ) -> None:
        sets = sets or []
        heads = heads or {}
        self._db = database
        self._link_pids = link_pids  # id(link) -> pattern id
        # Pattern id -> (number, database) of the wide patterns, which `database` leaves out.
        self._outside = outside or {}
        self._phases = phases
        # id(PhaseGates) -> (what its static collections are made from, the phase's answers kept under
        # its values, the hashes of the values seen once): only for a phase all of whose collections,
        # and those its `required` links read, are made from known parts (variables.MEMBER_FIELDS,
        # MEMBER_INPUTS, STATE_INPUTS).
        self._phase_memos: dict[int, PhaseMemo] = {}
        for gates in phases.values():
            inputs = _phase_inputs(gates)
            if inputs is not None:
                self._phase_memos[id(gates)] = (inputs, Memo(PHASE_ENTRIES), Memo(PHASE_SEEN))
        self._exact = exact  # does a link's operator match one collected value (evaluator.test_value)
        self._everything = frozenset(link_pids.values())
        self._memo = Memo(MEMO_ENTRIES)  # short text -> its scan
        self._signatures = Memo(MEMO_ENTRIES)  # short value -> its signature
        self._answers = Memo(ANSWER_ENTRIES)  # (TargetGates.memo_key, short value) -> rule indexes
        self._group_answers = Memo(ANSWER_ENTRIES)  # (group id, short value) -> rule indexes
        # The same for long values (a token cookie, a field of prose, a body), under their digest: the
        # value itself is not kept (memo.py), what it makes visitable is (a few numbers).
        self._long_answers = Memo(LONG_ENTRIES)  # (TargetGates.memo_key, digest) -> rule indexes
        self._long_group_answers = Memo(LONG_ENTRIES)  # (group id, digest) -> rule indexes
        self._group_ids: dict[tuple[int, ...], int] = {}  # memo_keys of a group's targets -> group id
        self._groups: list[tuple[TargetGates, ...]] = []  # group id -> its targets
        # id(Source) -> its members' group, for a collection every target of which reads all members
        # (no key, no key regex, no count: ARGS_GET, REQUEST_COOKIES, ...): the same for every name, so
        # neither worked out nor looked up per member name.
        self._fixed: dict[int, int] = {
            id(source): self._selection(source, "")[0]
            for gates in phases.values()
            for source in gates.sources
            if source.reads
            and not source.counts
            and all(tg.target.key is None and tg.target.key_regex is None for tg in source.reads)
        }
        self._keep = keep  # the links keyed by id() above stay alive with their rules
        # Links whose operator reads no %{macro}: evaluator.test_value keeps their answers for short
        # values in `results`, keyed by (id(link), value) (the links stay alive with `keep`).
        self.pure_links = frozenset(
            id(link) for rule in keep for link in rule.links if "%{" not in link.operator.argument
        )
        self.results = Memo(RESULT_ENTRIES)
        # Gated links ending in `lowercase` whose pattern is compiled for lower-cased text -> the link
        # without that step (scanned_link): `pre_scan` asks the scan of the text before the last
        # step, which is often the value itself or a chain output scanned already for `order`.
        self._before_lower: dict[int, Link] = {}
        for rule in keep:
            for link in rule.links:
                scanned = scanned_link(link)
                if scanned is not link and id(link) in link_pids and sets[link_pids[id(link)]][1]:
                    self._before_lower[id(link)] = scanned
        self.stats = stats
        # Exact links whose chain leaves a value without these bits as it is (no lower-casing): id ->
        # the chain's mask (see `_answer`).
        self._direct_masks: dict[int, int] = {}
        for gates in phases.values():
            for tg in gates.targets:
                for _, link in tg.exact:
                    chain = chain_of(link.transforms)
                    if not chain.mask & ALWAYS and not chain.lowers:
                        self._direct_masks[id(link)] = chain.mask
        # The least width of each pattern set (kept with the compiled database) and of each chain's
        # patterns, worked out now: on first use they would cost a request re's parse of its patterns.
        self._widths = widths if widths is not None else [min_width(regexes) for regexes, _ in sets]
        # id(ReadChain) -> (number, a database of its patterns alone: chain_databases), for its long
        # candidates (`_chain_scan`); a short one is scanned whole (memoised across transactions). The
        # same under id(TargetGates) for a target's long values as they are (`_answer`).
        self._chain_dbs = chain_dbs or {}
        # Pattern id -> the numbers of those databases that hold it (`value_may_match`).
        self._pid_subsets: dict[int, tuple[int, ...]] = {}
        for number, ids in (subset_ids or {}).items():
            for pid in ids:
                self._pid_subsets[pid] = (*self._pid_subsets.get(pid, ()), number)
        # Pattern id -> (number, database) of the smallest of them: a long text not scanned yet in the
        # transaction is asked about one pattern with it, not with the whole database.
        databases = dict(self._chain_dbs.values())
        sizes = subset_ids or {}
        self._pid_smallest: dict[int, tuple[int, Any]] = {
            pid: min(((n, databases[n]) for n in numbers if n in databases), key=lambda own: len(sizes[own[0]]))
            for pid, numbers in self._pid_subsets.items()
            if any(n in databases for n in numbers)
        }
        # id(ReadChain) -> how `_walk` reads a value through it (ChainPlan), worked out now.
        self._chain_plans = {
            id(chain): self._plan(chain)
            for gates in phases.values()
            for tg in gates.targets
            for chain in (*(c for _, chains in tg.by_mask for c in chains), *tg.opaque)
        }
        # id(TargetGates) -> its chains' steps as a tree (step_program), for short values (`_walk`).
        self._programs = {
            id(tg): step_program(
                [(c, self._chain_plans[id(c)], mask) for mask, chains in tg.by_mask for c in chains]
                + [(c, self._chain_plans[id(c)], ALWAYS) for c in tg.opaque]
            )
            for gates in phases.values()
            for tg in gates.targets
        }
        # (short text, transformation name) -> its output, kept across transactions (transformations
        # are pure): the chains of a target share their steps (most start with url_decode_uni).
        self._steps = Memo(STEP_ENTRIES)
        # The first link of every rule the gates decide about -> (its phase's sources, its index):
        # evaluator.match_link asks `member_may_match` before testing a value of that link.
        self._heads: dict[int, tuple[dict[str, Source], int]] = {}
        for link_id, (phase, index) in heads.items():
            by_collection = {source.collection: source for source in phases[phase].sources}
            self._heads[link_id] = (by_collection, index)

    def order(self, phase: Phase, count: int, state: EvalState) -> Iterator[int]:
        """Indexes of the phase's items that may match, ascending. After a ctl action (which may
        change what targets read) the rest is worked out again."""
        gates = self._phases.get(phase)
        if gates is None:
            yield from range(count)
            return
        todo = self._todo(gates, state)
        position = 0
        while position < len(todo):
            index = todo[position]
            position += 1
            yield index
            if not state.prefilter_cache:  # cleared by a ctl action
                todo = [i for i in self._todo(gates, state) if i > index]
                position = 0

    def before_lower(self, link: Link) -> Link | None:
        """For a link ending in `lowercase` whose pattern is compiled for lower-cased text: the link
        without its final lowercase steps. `value_may_match` of the link on that link's output answers
        as on the lower-cased output (a folded pattern matches a text as it matches it lower-cased:
        every class holds a letter's upper case exactly when it holds its lower case)."""
        return self._before_lower.get(id(link))

    def value_may_match(self, link: Link, value: str, state: EvalState) -> bool:
        pid = self._link_pids.get(id(link))
        if pid is None:
            return True
        if len(value) < self._widths[pid]:
            return False
        own = self._outside.get(pid)
        if own is not None:  # a wide pattern: its operator reads a short value at the cost of a scan
            if len(value) <= MAX_TEXT:
                return True
            key = (own[0], value)
            hits = state.scan_cache.get(key)
            if hits is None:
                hits = state.scan_cache[key] = self._scan(value, own[1])
            return pid in hits
        if len(value) > MAX_TEXT and value not in state.scan_cache:
            # A long text scanned already by a database holding the pattern (a chain's or a target's
            # own, `_chain_scan`): its hits among its patterns are the whole database's.
            for number in self._pid_subsets.get(pid, ()):
                hits = state.scan_cache.get((number, value))
                if hits is not None:
                    return pid in hits
            # Else the smallest such database scans it (a body whose answer was kept under its digest
            # was not scanned in this transaction: the whole database costs tens of microseconds).
            own = self._pid_smallest.get(pid)
            if own is not None:
                return pid in self._chain_scan(own, value, state)
        return pid in self.scan(value, state)

    def scan(self, text: str, state: EvalState) -> Hits:
        """Pattern ids that may match `text`: memoised across transactions for short texts (header
        names and values, argument names repeat from request to request), else per transaction."""
        if len(text) <= MAX_TEXT:
            hits = self._memo.get(text)
            if hits is None:
                hits = self._memo.put(text, self._scan(text))
            return hits
        hits = state.scan_cache.get(text)
        if hits is None:
            hits = state.scan_cache[text] = self._scan(text)
        return hits

    def _signature(self, text: str) -> int:
        """signature() of a short value, memoised (only values read from the transaction need one;
        transformed candidates are only scanned)."""
        sig = self._signatures.get(text)
        if sig is None:
            sig = self._signatures.put(text, signature(text))
        return sig

    def _scan(self, text: str, database: Any = None) -> Hits:
        """The hits of the whole database on `text`, or of `database` (a subset: chain_databases)."""
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:  # not byte text: let the operators decide everything
            return self._everything
        found: set[int] = set()
        (self._db if database is None else database).scan(data, match_event_handler=_on_match, context=found)
        return frozenset(found) if found else _NO_HITS

    def _todo(self, gates: PhaseGates, state: EvalState) -> list[int]:
        """The phase's rules that always run plus the gated ones one of whose values may match.

        What the static collections make visitable (and which of those rules the `required` links
        keep) is a pure function of what they are made from (`_phase_key`), so for a request seen
        before it is kept whole: one lookup for the phase instead of one per collection. The dynamic
        targets (`loose`: TX, MATCHED_*) are read every time."""
        memo = self._phase_memos.get(id(gates))
        key = entry = None
        if memo is not None and not state.extra_vars and _FIRST_SIGHTING not in state.prefilter_cache:
            key, entry = self._phase_key(memo, state)
        if entry is not None:
            founds, base, checked = entry
            state.prefilter_cache.update(founds)  # each source's answer, for `source_may_match`
            todo = set(checked)
        elif key is None:  # not kept: worked out in place
            todo = set(gates.always)
            for source in gates.sources:
                self._source_todo(source, state, todo)
            if gates.loose:
                self._loose_todo(gates, state, todo)
            self._drop_required(gates, todo, state)
            state.prefilter_cache[None] = True  # marks the answers as current (see `order`)
            return sorted(todo)
        else:
            todo = set(gates.always)
            founds = {source: self._source_todo(source, state, todo) for source in gates.sources}
            base = frozenset(todo)
            self._drop_required(gates, todo, state)
            memo[1].put(key, (founds, base, frozenset(todo)))  # type: ignore[index]
        if gates.loose:
            added: set[int] = set()
            self._loose_todo(gates, state, added)
            added -= base  # the required links of those were asked already: their answer is kept
            if added:
                self._drop_required(gates, added, state)
                todo |= added
        state.prefilter_cache[None] = True  # marks the answers as current (see `order`)
        return sorted(todo)

    def _phase_key(self, memo: PhaseMemo, state: EvalState) -> tuple[object, Any]:
        """(the key of the phase's answer, or None when it is not to be kept; the answer kept under it,
        or None). The key is what the phase's collections are made from, long texts as their digests;
        it is worked out in full only for a request whose fields were seen before (a request whose
        fields are all new, as most are, costs their hash), and only kept when it holds at most
        PHASE_CHARS characters. `seen` keeps, per hash, True (seen), False (too large to keep) or the
        places of the key's long texts, so that a request seen again digests those alone."""
        inputs, answers, seen = memo
        tx = state.tx
        made = (*[read(tx) for read in inputs.of_tx], *[read(state) for read in inputs.of_state])
        key: object = (inputs.fields(tx), made)
        mark = hash(key)  # only a number is kept of a request seen once (never its texts)
        places = seen.get(mark)
        if places is False:  # seen with a key too large to keep (PHASE_CHARS): not worked out again
            return None, None
        if places is None:
            seen.put(mark, True)
            # A request new in one phase is taken as new in the next ones (most are): their keys are
            # not worked out (for a request that comes again, the next phase is kept a sighting later).
            state.prefilter_cache[_FIRST_SIGHTING] = True
            return None, None
        found = answers.get(key)
        if found is not None:
            return key, found

        if places is not True:
            # Where the long texts of a key with this hash were: their digests put in those places
            # alone (no walk of the whole key). Found only if equal to a kept key, which holds no long
            # text: then this is the key's kept form, as bounded_key would have made it.
            fast = replaced(key, places, self._digested(state))
            if fast is not None:
                found = answers.get(fast)
                if found is not None:
                    return fast, found
        bounded, size = self._bounded(key, state)
        if size > PHASE_CHARS:
            seen[mark] = False
            return None, None
        if bounded is not key:  # a long text: kept with its digest in its place
            seen[mark] = changed_places(key, bounded)
            key = bounded
            found = answers.get(key)
        return key, found

    def _loose_todo(self, gates: PhaseGates, state: EvalState, todo: set[int]) -> None:
        """Add what the values of the phase's dynamic targets (TX, MATCHED_*) make visitable."""
        answers = self._answers
        for tg in gates.loose:
            key = tg.memo_key
            for value in self._values(tg, state):
                if len(value) <= MAX_TEXT:
                    found = answers.get((key, value))
                    if found is None:
                        found = answers.put((key, value), frozenset(self._answer(tg, value, state)))
                    if found:
                        todo.update(found)
                else:
                    long_key = (tg.memo_key, self._digest(value, state))
                    found = self._long_answers.get(long_key)
                    if found is None:
                        found = self._long_answers.put(long_key, frozenset(self._answer(tg, value, state)))
                    todo.update(found)

    def _drop_required(self, gates: PhaseGates, todo: set[int], state: EvalState) -> None:
        """Take out of `todo` the rules one of whose `required` links lets none of its values through."""
        required = gates.required
        if not required:
            return
        exact = self._exact
        for index in [i for i in todo if i in required]:
            for link in required[index]:
                # every value the link's targets select, exclusions left in (only widens)
                if not any(exact(link, value, state) for _, value in collect(state, link.targets, ())):
                    todo.discard(index)
                    break

    def _source_todo(self, source: Source, state: EvalState, todo: set[int]) -> frozenset[int]:
        """Add what the members of one collection make visitable: one pass over its members for all
        the phase's targets reading it (leaving exclusions in, as `_values` does, only widens). The
        answer is a pure function of the members (names and values), so for a small collection of
        short texts it is kept whole: the same headers or cookies again cost one lookup instead of one
        per member, and where the collection's members are made from fields of the transaction alone
        (variables.MEMBER_INPUTS) it is kept under those fields, so neither are the members built;
        fields seen once leave only their hash (`Source.seen`), the answer is kept at the second sighting:
        most requests bring some new field, and working out a key's kept form costs a walk of it.
        (A collection holding a long value is not kept whole; its long value's answer is kept under
        the value's digest: see `_long_group_answer`.)"""
        extra = state.extra_vars
        whole: Any = None
        found = None
        fields_size = -1
        mark: int | None = None  # the hash of fields seen before, while their answer is worked out
        if source.inputs is not None and not (extra and source.collection in extra):
            # The members are a pure function of these fields: a collection seen before is answered
            # without building its members (or their names). Fields holding a long text (a form's
            # field of prose, a token cookie) are kept with the text's digest in its place.
            whole = (source.inputs(state.tx),)
            found = source.wholes.get(whole)
            if found is None:
                mark = hash(whole)  # fields seen once leave only this number (never their texts)
                known = source.seen.get(mark)
                if known is True:  # seen before: worked out in its kept form
                    digested, fields_size = self._bounded(whole, state)
                    if digested is not whole:  # a long text: kept with its digest in its place
                        whole = digested
                        found = source.wholes.get(whole)
                else:  # a first sighting (most are), or seen too large to keep: no kept form made
                    if known is None:
                        source.seen.put(mark, True)
                    mark = None
                    fields_size = WHOLE_CHARS + 1
            if found is not None:
                todo.update(found)
                state.prefilter_cache[source] = found
                return found
        # A static collection: what lookup() keeps in collect_cache (unless an adapter overrides it).
        pairs = None if extra else state.collect_cache.get(source.collection)
        if pairs is None:
            pairs = lookup(state, source.collection, None)
        kept = len(pairs) <= WHOLE_MEMBERS
        if whole is None and kept:
            whole = tuple(pairs)
            found = source.wholes.get(whole)
        if found is None:
            added: set[int] = set()
            size = self._members_todo(source, pairs, state, added)
            found = frozenset(added)
            # Kept when the key holds at most WHOLE_CHARS in all: the members' size for a members key
            # (none longer than MAX_TEXT), the fields' own for a fields key, long texts as digests
            # (ARGS_COMBINED_SIZE is one number made from every argument, REQUEST_HEADERS_TEXT leaves
            # out the Cookie header it is keyed by).
            if kept and 0 <= (size if fields_size < 0 else fields_size) <= WHOLE_CHARS:
                source.wholes.put(whole, found)
            elif mark is not None:  # fields seen before, too large to keep: their hash says so
                source.seen[mark] = False
        todo.update(found)
        state.prefilter_cache[source] = found  # for `source_may_match`
        return found

    def _members_todo(self, source: Source, pairs: Values, state: EvalState, todo: set[int]) -> int:
        """`_source_todo`'s pass over the members; returns their total length (names and values), or
        -1 when a name or value is longer than MAX_TEXT."""
        names = source.names
        answers = self._group_answers
        counts = [0] * len(source.counts) if source.counts else None
        fixed = self._fixed.get(id(source))
        group, selected_by = (-1, ()) if fixed is None else (fixed, ())
        size = 0
        for name, value in pairs:
            if size >= 0:
                size = -1 if len(name) > MAX_TEXT or len(value) > MAX_TEXT else size + len(name) + len(value)
            if fixed is None:
                record = names.get(name)
                if record is None:
                    record = self._selection(source, name)
                    if len(name) <= MAX_TEXT:
                        names.put(name, record)
                group, selected_by = record
            if group >= 0:
                if len(value) <= MAX_TEXT:
                    found = answers.get((group, value))
                    if found is None:
                        found = answers.put(
                            (group, value), frozenset(self._group_answer(group, value, state))
                        )
                    if found:
                        todo.update(found)
                else:
                    todo.update(self._long_group_answer(group, value, state))
            if counts is not None:
                for i in selected_by:
                    counts[i] += 1
        if counts is not None:
            for tg, n in zip(source.counts, counts, strict=True):
                value = str(n)
                found = self._answers.get((tg.memo_key, value))
                if found is None:
                    found = self._answers.put((tg.memo_key, value), frozenset(self._answer(tg, value, state)))
                todo.update(found)
        return size

    def _selection(self, source: Source, name: str) -> tuple[int, tuple[int, ...]]:
        """(group id of the reading targets that select the member `name`, or -1; the indexes of the
        counting targets that select it). Selection as in variables.collect/keyed: by member name."""
        member = member_name(name)
        reads = tuple(tg for tg in source.reads if tg.target.selects(member))
        counted = tuple(i for i, tg in enumerate(source.counts) if tg.target.selects(member))
        if not reads:
            return -1, counted
        key = tuple(tg.memo_key for tg in reads)
        group = self._group_ids.get(key)
        if group is None:
            group = self._group_ids[key] = len(self._groups)
            self._groups.append(reads)
        return group, counted

    def head_gate(self, link: Link) -> tuple[dict[str, Source], int] | None:
        """For the first link of a rule the gates decide about: its phase's sources and its index."""
        return self._heads.get(id(link))

    def source_may_match(
        self, head: tuple[dict[str, Source], int], collection: str, state: EvalState
    ) -> bool:
        """May the rule's first link match some member of `collection`? False only when the phase's
        answer for the whole collection (the union of its members' answers, `_source_todo`) leaves the
        rule out: then `member_may_match` is False for every member, and none needs asking."""
        sources, index = head
        source = sources.get(collection)
        if source is None or index < 0:
            return True
        found = state.prefilter_cache.get(source)
        return found is None or index in found

    def member_may_match(
        self, head: tuple[dict[str, Source], int], collection: str, name: str, value: str, state: EvalState
    ) -> bool:
        """May the rule's first link match `value`, the member `name` of `collection`? The same answer
        as for `order` (one memo lookup when the value was answered there): False only when no target
        of the phase selecting the member lets the value through to the rule."""
        sources, index = head
        source = sources.get(collection)
        if source is None or index < 0:
            return True
        group = self._fixed.get(id(source))
        if group is None:
            record = source.names.get(name)
            if record is None:
                record = self._selection(source, name)
                if len(name) <= MAX_TEXT:
                    source.names.put(name, record)
            group = record[0]
        if group < 0:
            return True
        if len(value) > MAX_TEXT:
            return index in self._long_group_answer(group, value, state)
        found = self._group_answers.get((group, value))
        if found is None:
            found = self._group_answers.put(
                (group, value), frozenset(self._group_answer(group, value, state))
            )
        return index in found

    def _bounded(self, key: object, state: EvalState) -> tuple[object, int]:
        """bounded_key of a phase's or a collection's fields, with each long text's digest; each field
        once per transaction (the headers are read by REQUEST_HEADERS in two phases and
        REQUEST_HEADERS_TEXT, the arguments by ARGS, ARGS_POST, ARGS_JOINED ...)."""
        return bounded_key(key, self._digested(state), self._bounded_seen(state))

    def _digested(self, state: EvalState) -> Callable[[str], object]:
        """What stands in a kept key for a long text: its digest (once per transaction)."""
        return lambda text: (_DIGEST, self._digest(text, state))

    def _bounded_seen(self, state: EvalState) -> dict[int, tuple[object, object, int]]:
        """bounded_key's `seen` for the transaction: the answer for each tuple of it met so far."""
        seen = state.prefilter_cache.get(_BOUNDED)
        if seen is None:
            seen = state.prefilter_cache[_BOUNDED] = {}
        return seen

    def _digest(self, value: str, state: EvalState) -> bytes:
        """A long value's digest (memo.digest), once per transaction."""
        return _once(digest, value, state)

    def _long_group_answer(self, group: int, value: str, state: EvalState) -> frozenset[int]:
        """`_group_answer` of a long value, kept under its digest."""
        key = (group, self._digest(value, state))
        found = self._long_group_answers.get(key)
        if found is None:
            found = self._long_group_answers.put(key, frozenset(self._group_answer(group, value, state)))
        return found

    def _group_answer(self, group: int, value: str, state: EvalState) -> set[int]:
        todo: set[int] = set()
        for tg in self._groups[group]:
            todo.update(self._answer(tg, value, state))
        return todo

    def _answer(self, tg: TargetGates, value: str, state: EvalState) -> set[int]:
        """The rules of `tg` that `value` may make match."""
        todo: set[int] = set()
        own = None
        if len(value) <= MAX_TEXT:
            hits, sig = self.scan(value, state), self._signature(value)
        else:  # a long value (a body): its signature only when a mask asks for it; its scan with the
            # target's own database when it has one (its hits among the target's patterns are the same)
            own = self._chain_dbs.get(id(tg))
            hits = self.scan(value, state) if own is None else self._chain_scan(own, value, state)
            sig = _once(signature, value, state) if tg.signed else ALWAYS
        for pid in hits:
            for index, mask in tg.plain.get(pid, ()):
                if not sig & mask:
                    todo.add(index)
        if tg.lowered:
            lowered = value.translate(_LOWER)
            if lowered == value:
                lowered_hits = hits
            elif len(value) <= MAX_TEXT or own is None:
                lowered_hits = hits | self.scan(lowered, state)
            else:
                lowered_hits = hits | self._chain_scan(own, lowered, state)
            for pid in lowered_hits:
                for index, mask in tg.lowered.get(pid, ()):
                    if not sig & mask:
                        todo.add(index)
        if tg.opaque or sig & tg.any_mask:
            # (a long value's `sig` is its signature only when `tg.signed`, else ALWAYS: no step is
            # left out for it then)
            self._walk(self._programs[id(tg)], value, sig, state, todo, len(value) <= MAX_TEXT or tg.signed)
        if tg.confirmed and todo and len(value) <= MAX_TEXT:
            # A pattern hit is only a maybe: for a short value the rule's first link is tested now (its
            # answer kept per value like this one, and in `results` for the visit), so that a rule none
            # of whose values pass is not visited at all. A long value keeps the maybe: its test is
            # not kept (`results` holds short values only), so a visit would run it a second time.
            confirmed = tg.confirmed
            for index in [i for i in todo if i in confirmed]:
                if not self._exact(confirmed[index], value, state):
                    todo.discard(index)
        if tg.exact:
            # A value plain for an exact link's chain reaches its operator as it is (multi_match: every
            # step is the value): the operator is asked directly. `sig` is the real signature for a
            # short value, and for a long one when `tg.signed`.
            known = len(value) <= MAX_TEXT or tg.signed
            direct = self._direct_masks
            for index, link in tg.exact:
                if index in todo:
                    continue
                mask = direct.get(id(link))
                if mask is not None and known and not sig & mask:
                    operator = link.operator
                    found = (operator.predicate(value, state.expand) is not None) != operator.negated
                else:
                    found = self._exact(link, value, state)
                if found:
                    todo.add(index)
        return todo

    def _plan(self, chain: ReadChain) -> ChainPlan:
        link = chain.link
        shortest = min((self._widths[pid] for pid in chain.rules), default=0)
        least = 0  # the shortest value whose longest output (longest_output) can hold a match
        if shortest:
            least = next(
                (n for n in range(4 * shortest + 8) if longest_output(link, n) >= shortest), _UNBOUNDED
            )
        steps = tuple(
            (name, fn, *PLAIN_TRANSFORMS.get(name, (ALWAYS, True)))
            for name, fn in zip(link.transforms, link.transform_fns, strict=True)
        )
        return ChainPlan(
            shortest, least, self._chain_dbs.get(id(chain)), steps, link.multi_match, frozenset(chain.rules)
        )

    def _end_hits(
        self, chain: ReadChain, plan: ChainPlan, candidates: Iterable[str], state: EvalState, todo: set[int]
    ) -> None:
        shortest, own, pids = plan.shortest, plan.own, plan.pids
        for candidate in candidates:
            if len(candidate) < shortest:
                continue  # shorter than any match of the chain's patterns (often: base64 garbage)
            if own is not None and len(candidate) > MAX_TEXT:
                hits = self._chain_scan(own, candidate, state)
            else:
                hits = self.scan(candidate, state)
            if not pids.isdisjoint(hits):  # rarely: most hits are other chains' patterns
                _add_rules(chain.rules, hits, todo)

    def _walk(
        self,
        program: tuple[Step, ...],
        value: str,
        sig: int,
        state: EvalState,
        todo: set[int],
        signed: bool = True,
    ) -> None:
        """The rules a value adds through all the chains of a target at once: their steps form a
        tree (`step_program`), walked depth first, so a step that several chains start with runs once.
        A step whose trigger bits (PLAIN_TRANSFORMS) are not in its input's signature returns the input
        unchanged and is left out (`signed`: `sig` is the value's own signature; a long text other
        than the value gets none, its steps run); other steps' outputs are kept per (text, step),
        across transactions for a short text, for the transaction for a long one. A chain is read when
        `sig` selects it (as `by_mask`), or always (opaque chains); what its operator sees is as
        evaluator.inspected_values computes it: the output, or with multi_match every distinct text
        along its steps. The chains ending at one step share the output's scan; a chain none of whose
        patterns is among the hits adds nothing (one set test)."""
        # texts[d]: the input of the steps at depth d on the path walked so far (a depth is never
        # deeper than the program is long); sigs[d]: its signature, worked out when a step asks.
        count = len(program)
        texts = [value] * (count + 1)
        sigs: list[int | None] = [None] * (count + 1)
        sigs[0] = sig if signed else None
        steps = self._steps
        outputs = state.transform_cache
        length = len(value)
        position = 0
        scanned: str | None = None  # the text scanned last (shared by the chains reading it), and its hits
        scanned_hits: Hits = _NO_HITS
        while position < count:
            step = program[position]
            if not sig & step.below or length < step.least:
                position = step.after  # no chain below is selected, or can hold a match
                continue
            position += 1
            depth = step.depth
            text = texts[depth]
            result = text
            short = len(text) <= MAX_TEXT
            if not step.lowers:
                current = sigs[depth]
                if current is None and short:
                    current = sigs[depth] = self._signature(text)
                # A long text's signature costs more than most steps on it: its steps just run.
                run = current is None or bool(current & step.mask)
            else:
                run = True
            if run:
                key = (text, step.name)
                if short:
                    found = steps.get(key)
                    if found is None:
                        found = steps.put(key, step.fn(text))
                else:  # once per transaction, as evaluator._long_steps keeps it (the same key)
                    found = outputs.get(key)
                    if found is None:
                        found = outputs[key] = step.fn(text)
                result = found
            if result == text:
                texts[depth + 1] = text
                sigs[depth + 1] = sigs[depth]
            else:
                texts[depth + 1] = result
                sigs[depth + 1] = None
            for chain, plan, select in step.ends:
                if not sig & select or length < plan.least:
                    continue
                if plan.multi:
                    candidates = [texts[0]]
                    for later in texts[1 : depth + 2]:
                        if later != candidates[-1]:
                            candidates.append(later)
                    self._end_hits(chain, plan, candidates, state, todo)
                    continue
                # `_end_hits` of the one candidate `result`
                if len(result) < plan.shortest:
                    continue
                if plan.own is not None and len(result) > MAX_TEXT:
                    chain_hits = self._chain_scan(plan.own, result, state)
                else:  # one scan per distinct text: the step's chains, and later steps that leave it as it was
                    if result is not scanned:
                        scanned, scanned_hits = result, self.scan(result, state)
                    chain_hits = scanned_hits
                if not plan.pids.isdisjoint(chain_hits):  # rarely: most hits are other chains' patterns
                    _add_rules(chain.rules, chain_hits, todo)

    def _chain_scan(self, own: tuple[int, Any], text: str, state: EvalState) -> Hits:
        """The hits on a long text that matter to a chain: the whole database's when the transaction
        has them already (a multi_match chain's first candidate is the value itself), else those of the
        chain's own database (the same among its patterns, for a fraction of the cost), kept for the
        transaction under the database's number (targets reading one value through one chain)."""
        cache = state.scan_cache
        hits = cache.get(text)
        if hits is None:
            key = (own[0], text)
            hits = cache.get(key)
            if hits is None:
                hits = cache[key] = self._scan(text, own[1])
        return hits

    def _values(self, tg: TargetGates, state: EvalState) -> list[str]:
        """The values a target reads (exclusions aside: leaving them in only widens), cached. A named
        member (`REQUEST_HEADERS:Host`) comes from the transaction's index of member names."""
        cache = state.prefilter_cache
        values = cache.get(tg.key)
        if values is None:
            target = tg.target
            if target.count or target.key_regex is not None:
                pairs = collect(state, (target,), ())
            elif target.key is not None:
                pairs = keyed(state, target.collection, target.key)
            else:
                pairs = lookup(state, target.collection, None)
            values = cache[tg.key] = [v for _, v in pairs]
        return values


@dataclass(frozen=True, slots=True)
class PhaseInputs:
    """What a phase's collections are made from, each part once: Transaction fields (one getter
    returning them as a tuple), functions of the transaction (MEMBER_INPUTS of a collection made from
    other parts of it) and of the evaluation state (STATE_INPUTS)."""

    fields: Callable[[Transaction], tuple[Any, ...]]
    of_tx: tuple[Callable[[Transaction], object], ...]
    of_state: tuple[Callable[[EvalState], object], ...]


# A phase's inputs, its answers kept under their values, and the hashes of the values seen (see `_phase_key`).
PhaseMemo = tuple[PhaseInputs, Memo, Memo]


def _phase_inputs(gates: PhaseGates) -> PhaseInputs | None:
    """What the phase's static collections, and those its `required` links read, are made from
    (variables.MEMBER_FIELDS, MEMBER_INPUTS, STATE_INPUTS); None when one of them is made from
    something else too (an adapter's XML, ...)."""
    collections = [source.collection for source in gates.sources]
    collections += [t.collection for links in gates.required.values() for link in links for t in link.targets]
    names: dict[str, None] = {}
    of_tx: dict[str, Callable[[Transaction], object]] = {}
    of_state: dict[str, Callable[[EvalState], object]] = {}
    for collection in collections:
        if collection in MEMBER_FIELDS:
            names.update(dict.fromkeys(MEMBER_FIELDS[collection]))
        elif collection in MEMBER_INPUTS:
            of_tx[collection] = MEMBER_INPUTS[collection]
        elif collection in STATE_INPUTS:
            of_state[collection] = STATE_INPUTS[collection]
        else:
            return None
    fields: Callable[[Transaction], tuple[Any, ...]]
    if len(names) > 1:
        fields = operator.attrgetter(*names)
    elif names:  # attrgetter of one name returns the value itself
        one = operator.attrgetter(*names)
        fields = lambda tx: (one(tx),)  # noqa: E731
    else:
        fields = lambda tx: ()  # noqa: E731
    return PhaseInputs(fields, tuple(of_tx.values()), tuple(of_state.values()))


def _once[T](work: Callable[[str], T], value: str, state: EvalState) -> T:
    """work(value) once per transaction: a pure function of a long value (its digest, its signature)
    that several targets or collections ask for, kept in prefilter_cache under (work, value)."""
    key = (work, value)
    found = state.prefilter_cache.get(key)
    if found is None:
        found = state.prefilter_cache[key] = work(value)
    return found


def _add_rules(rules: dict[int, tuple[int, ...]], hits: Hits, todo: set[int]) -> None:
    """Add the rules a chain reads through the patterns among `hits` (ReadChain.rules)."""
    for pid in hits:
        found = rules.get(pid)
        if found is not None:
            todo.update(found)


_FIRST_SIGHTING = object()  # EvalState.prefilter_cache key: a phase of the request was seen for the first time
_DIGEST = object()  # in a kept key, (_DIGEST, digest) stands for a long text (`_digested`)
_BOUNDED = object()  # and of the fields read for their kept form (`_bounded`): id -> bounded_key's answer


DIGEST_CHARS = 16  # what a long text's digest counts for in a key's size (bounded_key)


def bounded_key(
    item: object, digested: Callable[[str], object], seen: dict[int, tuple[object, object, int]] | None = None
) -> tuple[object, int]:
    """`item` (a text, or tuples of texts, numbers and flags) with every text longer than MAX_TEXT
    replaced by `digested(text)` (never kept across transactions as it is: memo.py), and its size: the
    characters of its texts, DIGEST_CHARS for each digest. `item` itself when it holds no long text.
    `seen` keeps the answer for each tuple met (by identity, the tuple kept with it) for later calls."""
    if isinstance(item, str):
        return (item, len(item)) if len(item) <= MAX_TEXT else (digested(item), DIGEST_CHARS)
    if not isinstance(item, tuple):
        return item, 0
    if seen is not None:
        known = seen.get(id(item))
        if known is not None and known[0] is item:
            return known[1], known[2]
    total = 0
    parts: list[object] | None = None
    for i, part in enumerate(item):
        if type(part) is str and len(part) <= MAX_TEXT:  # a short text (a member's name): as it is
            total += len(part)
            if parts is not None:
                parts.append(part)
            continue
        if type(part) is tuple and len(part) == 2 and type(part[0]) is str and type(part[1]) is str:
            # a (name, value) pair, the usual part (headers, arguments, cookies): without a call
            first, second = len(part[0]), len(part[1])
            if first <= MAX_TEXT and second <= MAX_TEXT:
                total += first + second
                if parts is not None:
                    parts.append(part)
                continue
        new, size = bounded_key(part, digested, seen)
        total += size
        if new is not part and parts is None:
            parts = list(item[:i])
        if parts is not None:
            parts.append(new)
    result = item if parts is None else tuple(parts)
    if seen is not None:
        seen[id(item)] = (item, result, total)
    return result, total

Places = tuple[tuple[int, ...], ...]  # index paths into nested tuples


def changed_places(item: object, bounded: object) -> Places:
    """The places (index paths) where bounded_key's answer `bounded` holds a digest in place of a long
    text of `item`: found by identity, as bounded_key returns a part it left alone as itself."""
    if item is bounded or type(item) is not tuple or type(bounded) is not tuple:
        return ((),) if item is not bounded else ()
    return tuple(
        (i, *place)
        for i, (part, new) in enumerate(zip(item, bounded, strict=True))
        if part is not new
        for place in changed_places(part, new)
    )


def replaced(item: object, places: Places, digested: Callable[[str], object]) -> object | None:
    """`item` with `digested(text)` in place of the text at each of `places`; None when one of them
    does not hold a text longer than MAX_TEXT (another shape of key: bounded_key is asked instead).
    For a key whose long texts are all at `places`, this is bounded_key's answer; for any other, it
    still holds a long text (so it equals no kept key)."""
    if not places:
        return item
    if places == ((),):
        return digested(item) if type(item) is str and len(item) > MAX_TEXT else None
    if type(item) is not tuple:
        return None
    parts = list(item)
    inner: dict[int, list[tuple[int, ...]]] = {}
    for place in places:
        if not place:
            return None
        inner.setdefault(place[0], []).append(place[1:])
    for i, rest in inner.items():
        if i >= len(parts):
            return None
        new = replaced(parts[i], tuple(rest), digested)
        if new is None:
            return None
        parts[i] = new
    return tuple(parts)


# Transformations whose output is never longer than their input (base64_decode: 3 characters per 4).
_NOT_LONGER = frozenset(("none", "remove_nulls", "trim", "trim_left", "trim_right"))


def longest_output(link: Link, length: int) -> int:
    """An upper bound on the length of what the link's operator sees for a value of `length`
    characters (with multi_match, the value itself is among the candidates)."""
    bound = length
    for name in link.transforms:
        if name == "base64_decode":
            bound = bound * 3 // 4
        elif name not in _NOT_LONGER:
            return _UNBOUNDED
    return length if link.multi_match else bound


_UNBOUNDED = 1 << 62


def scanned_link(link: Link) -> Link:
    """The link whose output the prefilter scans for `link`: without its trailing `lowercase` steps when
    its patterns are compiled for lower-cased text (a folded pattern scanned on a text matches a
    superset of what the pattern matches on the text lower-cased, `translate(fold=True)`), so that
    chains differing only by a final lowercase share one transformed text and one scan."""
    transforms = link.transforms
    if link.multi_match or not chain_of(transforms).folded_output:
        return link
    kept = len(transforms)
    while kept and transforms[kept - 1] == "lowercase":
        kept -= 1
    if kept == len(transforms):
        return link
    return replace(link, transforms=transforms[:kept], transform_fns=link.transform_fns[:kept])


def _groupable(link: Link, is_dynamic: Callable[[str], bool]) -> bool:
    return not any(is_dynamic(t.collection) or t.count for t in link.targets)


def _folded_twins(
    links: list[tuple[Phase, int, int, Link, int]], sets: list[PatternSet], keys: dict[tuple[Any, ...], int]
) -> dict[int, int]:
    """For the patterns compiled for raw text that a first link reads through a lower-casing chain:
    pattern id -> the id of the same regexes compiled for lower-cased text (added to `sets`). A plain
    value's own scan then answers for the value lower-cased: no second scan of a lower-cased copy."""
    twins: dict[int, int] = {}
    for _, _, n, link, pid in links:
        regexes, fold = sets[pid]
        if n != 0 or fold or pid in twins or not chain_of(link.transforms).lowers:
            continue
        key = (tuple((r.pattern, r.flags) for r in regexes), True)
        if key not in keys:
            keys[key] = len(sets)
            sets.append((regexes, True))
        twins[pid] = keys[key]
    return twins


def min_width(regexes: tuple[re.Pattern[str], ...]) -> int:
    """The fewest characters a match of any of `regexes` spans, as `re` computes it for itself (0 when
    it cannot be worked out): a text shorter than that is not matched by any of them."""
    try:
        return min((sre_parse.parse(r.pattern, r.flags).getwidth()[0] for r in regexes), default=0)
    except (re.error, RecursionError, OverflowError):
        return 0


def exact_gate(link: Link, is_dynamic: Callable[[str], bool]) -> bool:
    """Can the link be tested value by value, once per distinct value? Its targets are fixed for the
    transaction (not TX or MATCHED_*) and its operator reads no %{macro}. A count (`&ARGS`) is one
    value; a link with exclusions may not count (leaving excluded values in only widens, except for
    a count)."""
    if not link.targets or "%{" in link.operator.argument:
        return False
    if any(is_dynamic(t.collection) for t in link.targets):
        return False
    return not (link.exclusions and any(t.count for t in link.targets))


_MATCHED = frozenset(("MATCHED_VAR", "MATCHED_VAR_NAME"))


def reads_last_match(link: Link) -> bool:
    """Does the link read what the last link to match anywhere left (MATCHED_VAR, MATCHED_VAR_NAME) as
    a target, or in a macro of its operator or actions?"""
    if any(t.collection.upper() in _MATCHED for t in link.targets):
        return True
    texts = [link.operator.argument, *(repr(action) for action in link.actions)]
    return any("MATCHED_VAR" in text.upper() for text in texts)


def required_links(rule: Rule, is_dynamic: Callable[[str], bool]) -> tuple[Link, ...]:
    """The chain links of `rule` the prefilter may ask before the rule is visited: a rule matches only
    when all its links match, so when one of these lets none of its values through the visit would
    end there. Skipping it must leave the state as the visit would: no link before one of them has
    actions or captures (and the caller makes sure no rule's first link reads MATCHED_VAR, which the
    visit's earlier links would have set: `reads_last_match`). Each link is tested value by value
    (`exact_gate`)."""
    if len(rule.links) < 2:
        return ()
    chosen: list[Link] = []
    for k, link in enumerate(rule.links[1:], start=1):
        earlier = rule.links[k - 1]
        if earlier.actions or earlier.capture:
            break
        if exact_gate(link, is_dynamic):
            chosen.append(link)
    return tuple(chosen)


def wide_patterns(sets: list[PatternSet]) -> frozenset[int]:
    """Pattern sets one of whose regexes matches most of the probe strings (as `re` reads them; through
    a folding chain, lower-cased). Their translation matches at least as much (a superset), so they are
    `_broad` in any database: they gate nothing, and left out of the database they cost no scan the
    report of a match (a Python callback) nor the running of their engines."""
    probes = [probe.decode("latin-1") for probe in _BREADTH_PROBES]
    wide = set()
    for pid, (regexes, fold) in enumerate(sets):
        texts = [probe.lower() for probe in probes] if fold else probes
        if 2 * sum(1 for text in texts if any(r.search(text) for r in regexes)) > len(texts):
            wide.add(pid)
    return frozenset(wide)


def _broad(database: Any) -> set[int]:
    """Pattern ids that match most of the probe strings: gating on them would only cost."""
    counts: dict[int, int] = {}
    for probe in _BREADTH_PROBES:
        found: set[int] = set()
        database.scan(probe, match_event_handler=_on_match, context=found)
        for pid in found:
            counts[pid] = counts.get(pid, 0) + 1
    return {pid for pid, n in counts.items() if n * 2 > len(_BREADTH_PROBES)}


@dataclass
class _PhaseBuilder:
    always: list[int]
    plain: dict[Target, dict[int, list[tuple[int, int]]]]
    lowered: dict[Target, dict[int, list[tuple[int, int]]]]
    chains: dict[Target, dict[tuple[Any, ...], tuple[Link, int, dict[int, list[int]]]]]
    exact: dict[Target, list[tuple[int, Link]]]
    confirmed: dict[Target, dict[int, Link]]
    required: dict[int, tuple[Link, ...]] = field(default_factory=dict)

    def gate_exact(self, index: int, link: Link) -> None:
        for target in link.targets:
            self.exact.setdefault(target, []).append((index, link))

    def confirm(self, index: int, link: Link) -> None:
        """The gated rule's first link is tested on a short value its patterns let through (`_answer`)."""
        for target in link.targets:
            self.confirmed.setdefault(target, {})[index] = link

    def gate(
        self, index: int, link: Link, pid: int, chain: Chain, lowered: bool, plain_pids: tuple[int, ...] = ()
    ) -> None:
        """`plain_pids`: the pattern ids whose scans of a plain value as it is answer for the link (its
        own pid, or its folded twin for a link that sees the value lower-cased); else `pid`, and
        `lowered` says whether the plain value is scanned lower-cased too."""
        mask = chain.mask
        for target in link.targets:
            if plain_pids:
                for plain_pid in plain_pids:
                    self.plain.setdefault(target, {}).setdefault(plain_pid, []).append((index, mask))
            else:
                table = self.lowered if lowered else self.plain
                table.setdefault(target, {}).setdefault(pid, []).append((index, mask))
            self.plain.setdefault(target, {})
            key = (link.transforms, link.multi_match)
            _, _, rules = self.chains.setdefault(target, {}).setdefault(key, (link, mask, {}))
            rules.setdefault(pid, []).append(index)

    def freeze(self, target_keys: dict[Target, int], memo_keys: list[int]) -> PhaseGates:
        targets = []
        for target in [*self.plain, *(t for t in self.exact if t not in self.plain)]:
            by_pid = self.plain.get(target, {})
            key = target_keys.setdefault(target, len(target_keys))
            by_mask: dict[int, list[ReadChain]] = {}
            opaque: list[ReadChain] = []
            for link, mask, rules in self.chains.get(target, {}).values():
                read = ReadChain(scanned_link(link), {pid: tuple(ix) for pid, ix in rules.items()})
                if mask & ALWAYS:
                    opaque.append(read)
                elif mask:  # mask 0: no value reacts to the chain; the plain entries cover it
                    by_mask.setdefault(mask, []).append(read)
            any_mask = 0
            for mask in by_mask:
                any_mask |= mask
            plain = {pid: tuple(entries) for pid, entries in by_pid.items()}
            lowered = {pid: tuple(entries) for pid, entries in self.lowered.get(target, {}).items()}
            masks = tuple((mask, tuple(chains)) for mask, chains in by_mask.items())
            exact = tuple(self.exact.get(target, ()))
            memo_keys.append(len(memo_keys))
            entries = [e for table in (plain, lowered) for group in table.values() for e in group]
            signed = bool(masks) or any(mask for _, mask in entries)
            targets.append(
                TargetGates(
                    key,
                    target,
                    plain,
                    lowered,
                    any_mask,
                    masks,
                    tuple(opaque),
                    exact,
                    memo_keys[-1],
                    signed,
                    self.confirmed.get(target, {}),
                )
            )
        sources, loose = sources_of(tuple(targets))
        return PhaseGates(tuple(sorted(self.always)), tuple(targets), sources, loose, dict(self.required))


def build_prefilter(
    plans: dict[Phase, PhasePlan],
    is_dynamic: Callable[[str], bool],
    skip: frozenset[str] = frozenset(),
    exact: ExactTest | None = None,
) -> Prefilter | None:
    """A prefilter for the planned rules, or None without hyperscan or without anything to gate.
    Links whose operator is named in `skip` are never gated by a pattern. With `exact` (a test of one
    link on one value), a rule no pattern gates whose first link passes `exact_gate` is visited only
    when that test passes for one of the link's values (answers kept per distinct value)."""
    if hyperscan is None:
        _warn_once()
        return None
    keys: dict[tuple[Any, ...], int] = {}  # same regexes and folding -> same pattern id
    sets: list[PatternSet] = []
    links: list[tuple[Phase, int, int, Link, int]] = []
    rules: list[Rule] = []
    for phase, phase_plan in plans.items():
        for index, item in enumerate(phase_plan.items):
            if isinstance(item, Marker):
                continue
            rules.append(item)
            for n, link in enumerate(item.links):
                regexes = () if link.operator.name in skip else prefilter_regexes(link)
                if not regexes:
                    continue
                fold = chain_of(link.transforms).folded_output and not link.multi_match
                key = (tuple((r.pattern, r.flags) for r in regexes), fold)
                if key not in keys:
                    keys[key] = len(sets)
                    sets.append((regexes, fold))
                links.append((phase, index, n, link, keys[key]))
    twins = _folded_twins(links, sets, keys)
    if len(sets) < MIN_PATTERNS:
        return None
    wide = wide_patterns(sets)
    compiled = compile_database(sets, wide)
    database, refused = compiled.database, compiled.refused
    if database is None:
        return None
    broad = wide | _broad(database)  # (a wide pattern is not in the database: see `together` below)
    link_pids: dict[int, int] = {}
    builders = {phase: _PhaseBuilder([], {}, {}, {}, {}, {}) for phase in plans}
    gated: set[tuple[Phase, int]] = set()
    confirmed_rules = 0
    wide_links: dict[int, int] = {}  # id(link) -> a wide pattern it reads (see `outside` below)
    for phase, index, n, link, pid in links:
        if pid in wide:
            wide_links[id(link)] = pid
        if pid in refused or pid in wide:
            continue
        link_pids[id(link)] = pid
        if n != 0 or pid in broad or not _groupable(link, is_dynamic):
            continue
        chain = chain_of(link.transforms)
        # A plain value is scanned as it is: right when the chain leaves it so, or lower-cases it
        # for a pattern compiled for lower-cased text; otherwise the value is always transformed.
        # A plain value is scanned as it is when the chain leaves it so, or when it lower-cases it
        # for a pattern compiled for lower-cased text; else also lower-cased (see TargetGates).
        lowered = chain.lowers and not (sets[pid][1] and not link.multi_match)
        twin = twins.get(pid)
        plain_pids: tuple[int, ...] = ()
        if lowered and twin is not None and twin not in refused and twin not in broad:
            # The folded twin scanned on the value as it is answers for the value lower-cased.
            plain_pids = (pid, twin) if link.multi_match else (twin,)
        builders[phase].gate(index, link, pid, chain, lowered, plain_pids)
        gated.add((phase, index))
        if exact is not None and exact_gate(link, is_dynamic):
            builders[phase].confirm(index, link)
            confirmed_rules += 1
    exact_rules = 0
    exact_gated: set[tuple[Phase, int]] = set()
    for phase, phase_plan in plans.items():
        for i, item in enumerate(phase_plan.items):
            if isinstance(item, Marker) or (phase, i) in gated:
                continue
            if exact is not None and exact_gate(item.links[0], is_dynamic):
                builders[phase].gate_exact(i, item.links[0])
                exact_gated.add((phase, i))
                exact_rules += 1
            else:
                builders[phase].always.append(i)
    required_rules = 0
    if exact is not None and not any(reads_last_match(rule.links[0]) for rule in rules):
        for phase, phase_plan in plans.items():
            for i, item in enumerate(phase_plan.items):
                needed = () if isinstance(item, Marker) else required_links(item, is_dynamic)
                if needed:
                    builders[phase].required[i] = needed
                    required_rules += 1
    target_keys: dict[Target, int] = {}
    memo_keys: list[int] = []
    phases = {phase: b.freeze(target_keys, memo_keys) for phase, b in builders.items()}
    # Chains reading few of the patterns get a database of those alone (for their long candidates).
    usable = len(sets) - len(refused) - len(wide)
    wanted: dict[int, tuple[int, ...]] = {}
    for gates in phases.values():
        for tg in gates.targets:
            for chain in (*(c for _, chains in tg.by_mask for c in chains), *tg.opaque):
                ids = tuple(sorted(chain.rules))
                if len(ids) <= CHAIN_PATTERNS and 2 * len(ids) <= usable:
                    wanted[id(chain)] = ids
            # And targets whose values as they are answer for few patterns (REQUEST_BODY, ...): the
            # scan of a long value (a body) with those alone (`_answer`).
            ids = tuple(sorted({*tg.plain, *tg.lowered}))
            if ids and len(ids) <= TARGET_PATTERNS and 2 * len(ids) <= usable:
                wanted[id(tg)] = ids
    # The wide patterns get a database of their own: a link reading one asks it about a long value
    # (a body: its operator would read all of it), and leaves a short one to its operator.
    together = tuple(sorted(pid for pid in wide if _translations(sets[pid], loose=False) is not None))
    asked = [*wanted.values(), together] if together else list(wanted.values())
    subsets = chain_databases(compiled, asked)  # (and the whole database cached on disk)
    numbers = {ids: n for n, ids in enumerate(sorted(subsets))}
    outside: dict[int, tuple[int, Any]] = {}
    if together in subsets:
        outside = {pid: (numbers[together], subsets[together]) for pid in together}
        link_pids.update((link, pid) for link, pid in wide_links.items() if pid in outside)
    chain_dbs = {key: (numbers[ids], subsets[ids]) for key, ids in wanted.items() if ids in subsets}
    ungated = sum(1 for *_, pid in links if pid in refused)
    stats = Stats(
        len(link_pids),
        ungated,
        len(gated),
        len(broad),
        usable,
        exact_rules,
        len(subsets),
        confirmed_rules,
        required_rules,
    )
    heads: dict[int, tuple[Phase, int]] = {}
    for phase, index in sorted(gated | exact_gated):
        head = plans[phase].items[index].links[0]  # type: ignore[union-attr]
        heads[id(head)] = (phase, index) if id(head) not in heads else (phase, -1)  # -1: never skip
    return Prefilter(
        database,
        link_pids,
        phases,
        tuple(rules),
        stats,
        exact or (lambda *_: True),
        heads,
        sets,
        chain_dbs,
        compiled.widths,
        {n: ids for ids, n in numbers.items()},
        outside,
    )


_warned = False


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "LogoutGuard: hyperscan is not installed; rules run with plain `re` (pip install hyperscan)"
        )


def available() -> bool:
    return hyperscan is not None
