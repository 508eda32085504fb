"""The fleet's table on a terminal: rich's live view while the feeds run, then the final table
printed once, every feed a row with its state, frames and error. No Ray needed."""

from __future__ import annotations

import io
import sys

import pytest

from cleanfeed.stream.cli.fleet import _Table
from cleanfeed.stream.fleet.report import FeedState, State, document

pytest.importorskip("rich")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation  # rich then sizes the console from the environment


def _doc(final: bool) -> dict:
    cam = FeedState("cam1", "in.mp4", "out.mp4", State.RUNNING if not final else State.DONE,
                    stats={"frames_in": 40, "frames_out": 38, "fps": 24.5, "latency_ms": {"p95": 812.0}})
    bad = FeedState("bad", "missing.mp4", "out/bad.mp4", State.FAILED, restarts=2, error="missing.mp4: no such file")
    return document({"cam1": cam, "bad": bad}, 12.0, final)


def test_a_terminal_gets_rich_live_rows_then_the_final_table(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    table = _Table(quiet=False)
    assert table._live is not None, "rich's live view was not started on a terminal"
    table(_doc(final=False))
    table._live.refresh()
    live = screen.getvalue()
    assert "cam1" in live and "running" in live and "\x1b[" in live  # drawn with terminal codes
    table.close(_doc(final=True))
    assert "cleanfeed fleet, 12 s" in screen.getvalue()[len(live):]
    final = screen.getvalue().rpartition("cleanfeed fleet, 12 s")[2]  # the last table printed
    for cells in (("cam1", "done", "40", "38", "24.5", "812"), ("bad", "failed", "2", "missing.mp4: no such file")):
        row = next(line for line in final.splitlines() if cells[0] in line)
        for cell in cells:
            assert cell in row, (cell, row)


def test_not_a_terminal_gets_plain_text_when_a_state_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    table = _Table(quiet=False)
    assert table._live is None
    table(_doc(final=False))
    table(_doc(final=False))  # nothing changed: not said again
    assert log.getvalue().count("cam1") == 1 and "\x1b[" not in log.getvalue()
