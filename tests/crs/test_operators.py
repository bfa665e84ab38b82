"""CRS operator fallbacks and @rx: ModSecurity 2 semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from logoutguard.crs.operators import FALLBACK, atoi, rx
from logoutguard.engine.operators import OperatorContext

CONTEXT = OperatorContext(rules_dir=Path("/tmp"))


def check(name: str, argument: str, value: str, env: dict[str, str] | None = None):
    predicate = FALLBACK[name](argument, CONTEXT)
    return predicate(value, lambda text: text.replace("%{tx.x}", (env or {}).get("x", "")))


@pytest.mark.parametrize(("text", "number"), [("12", 12), (" -3x", -3), ("abc", 0), ("", 0), ("+7", 7)])
def test_atoi(text, number):
    assert atoi(text) == number


@pytest.mark.parametrize(
    ("name", "argument", "value", "matches"),
    [
        ("within", "|GET|POST|", "GET", True),
        ("within", "|GET|POST|", "", True),  # the empty string is within anything
        ("within", "|GET|", "PUT", False),
        ("lt", "%{tx.x}", "1", True),
        ("ge", "5", "abc", False),
        ("eq", "0", "", True),
        ("streq", "JSON", "json", False),
        ("ends_with", ".php", "a.php", True),
        ("pm", "AppleWebKit Android", "xx applewebkit yy", True),
        ("validate_byte_range", "32-126", "abc", False),
        ("validate_byte_range", "32-126", "a\x01", True),
        ("validate_url_encoding", "", "%4g", True),
        ("validate_url_encoding", "", "%41%", True),
        ("validate_url_encoding", "", "%41", False),
        ("validate_utf8_encoding", "", "\xc3\xa9", False),
        ("validate_utf8_encoding", "", "\xc3", True),
        ("ip_match", "127.0.0.1,::1,10.0.0.0/8", "10.1.2.3", True),
        ("ip_match", "127.0.0.1,::1", "192.0.2.1", False),
    ],
)
def test_fallback_operators(name, argument, value, matches):
    assert (check(name, argument, value, {"x": "2"}) is not None) is matches


def test_rx_captures_stop_at_the_last_group_that_took_part():
    predicate = rx("(a)(b)?(c)?", CONTEXT)
    assert predicate("a", str) == ("a", "a")
    assert predicate("abc", str) == ("abc", "a", "b", "c")


def test_rx_with_a_macro_is_compiled_per_value():
    predicate = rx("^%{tx.x}$", CONTEXT)
    assert predicate("utf-8", lambda t: t.replace("%{tx.x}", "utf-8|iso-8859-1")) is not None
    assert predicate("utf-7", lambda t: t.replace("%{tx.x}", "utf-8|iso-8859-1")) is None


def test_pm_from_file_reads_phrases_next_to_the_rule(tmp_path):
    (tmp_path / "words.data").write_text("# comment\n\n  /etc/passwd\n.htaccess\n")
    predicate = FALLBACK["pm_from_file"]("words.data", OperatorContext(rules_dir=tmp_path))
    assert predicate("GET /ETC/PASSWD", str) == ("/etc/passwd",)
    assert predicate("index.html", str) is None
