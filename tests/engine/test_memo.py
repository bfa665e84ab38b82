"""Memo tables: bounded, emptied when full, and restorable as a whole."""

from __future__ import annotations

from logoutguard.engine import memo


def test_a_full_table_is_emptied_before_the_next_entry() -> None:
    table = memo.Memo(limit=3)
    for n in range(3):
        table.put(n, str(n))
    assert len(table) == 3
    assert table.put(3, "3") == "3"
    assert dict(table) == {3: "3"}


def test_snapshot_and_restore_cover_every_table() -> None:
    first, second = memo.Memo(limit=10), memo.Memo(limit=10)
    first.put("a", 1)
    saved = memo.snapshot()
    first.put("b", 2)
    second.put("c", 3)
    later = memo.Memo(limit=10)
    later.put("d", 4)
    memo.restore(saved)
    assert dict(first) == {"a": 1}
    assert dict(second) == {}
    assert dict(later) == {}  # made after the snapshot: emptied
    memo.clear_all()
    assert dict(first) == {}


def test_a_long_texts_digest_tells_texts_apart_and_takes_any_code_point() -> None:
    texts = ["a" * 300, "a" * 299 + "b", "é" * 300, "\udc80" * 300, "\u2028" * 300]
    digests = [memo.digest(t) for t in texts]
    assert len(set(digests)) == len(texts) and all(len(d) == 16 for d in digests)
    assert memo.digest("a" * 300) == digests[0]  # a pure function of the text
