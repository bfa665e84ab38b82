"""Progress bars: on stderr only when it is a terminal, the items unchanged either way."""

from __future__ import annotations

import io
import sys

import pytest

from logoutguard.progress import ByteProgress, on_terminal, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert not on_terminal()
    assert list(progress(range(5), "counting", 5)) == [0, 1, 2, 3, 4]
    with ByteProgress("reading", 100) as bar:
        bar.at(50)
    assert err.getvalue() == ""


def test_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert list(progress(range(3), "counting", 3, "rule")) == [0, 1, 2]
    assert "counting:" in err.getvalue() and "/3 " in err.getvalue()  # the bar, cleared when done
    with ByteProgress("reading flows.mitm", 2048) as bar:
        bar.at(1024)
        bar.at(512)  # never backwards
        bar.at(2048)
    assert "reading flows.mitm" in err.getvalue()


def test_a_closed_stream_is_no_terminal() -> None:
    stream = io.StringIO()
    stream.close()
    assert not on_terminal(stream)
