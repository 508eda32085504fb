"""The app's full run in its worker process: the masks it tracks start from the ones shown, and cancel stops cleanly."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from logo_clip import write_logo_clip

from cleanfeed.stream.gui.masker import ClassicalMasker
from cleanfeed.stream.gui.session import GuiConfig, Session
from cleanfeed.stream.gui.worker import NICE, NICE_ENV, niceness

W, H = 160, 96
LOGO = (100, 20, 140, 52)


def write_clip(path: Path, frames: int) -> Path:
    return write_logo_clip(path, width=W, height=H, frames=frames, logo=LOGO)


def _count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += [c for c, parent in parents.items() if parent == p]
    return sorted(found)


def _nice(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_run_priority_comes_from_the_environment_for_benchmarks(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(NICE_ENV, raising=False)
    assert niceness() == NICE == 19
    monkeypatch.setenv(NICE_ENV, "0")
    assert niceness() == 0
    monkeypatch.setenv(NICE_ENV, " 5 ")
    assert niceness() == 5
    for bad in ("-5", "20", "high"):
        monkeypatch.setenv(NICE_ENV, bad)
        assert niceness() == NICE
    assert "$CLEANFEED_GUI_RUN_NICE must be an integer 0..19, got 'high': using 19" in caplog.text


def _wait(session: Session, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = session.run_status()
        assert status is not None
        if status.finished:
            return
        time.sleep(0.1)
    raise AssertionError(f"run did not finish within {timeout} s: {session.run_status()}")


@pytest.mark.slow
def test_run_tracks_from_the_masks_on_screen_and_leaves_the_downloads(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in.mp4", 24)
    session = Session(GuiConfig(tmp_path / "work"), masker=ClassicalMasker())
    session.load(str(clip))
    session.click(120, 36, "positive")
    session.new_object()
    session.goto(6)
    session.click(98, 18, "box")
    session.click(141, 53, "box")
    shown = {0: session.ids_map(0), 6: session.ids_map(6)}
    run = session.start_run()
    _wait(session, 60)
    status = session.run_status()
    assert status is not None and status.state == "done", (status, run.job.log_tail if run.job else "")
    assert status.frames_out == 24 and status.fraction == 1.0
    assert _count(run.video) == 24
    assert run.job is not None and run.job.masks_zip is not None
    with zipfile.ZipFile(run.job.masks_zip) as zf:
        assert len(zf.namelist()) == 24
    for frame, ids in shown.items():
        saved = cv2.imread(str(run.masks / f"{frame:05d}.png"), cv2.IMREAD_UNCHANGED)
        referenced = np.isin(saved, [i for i in np.unique(ids) if i])
        # on a prompted frame the run's mask of the prompted objects is the one the page showed
        np.testing.assert_array_equal(np.where(referenced | (ids > 0), saved, 0), ids, err_msg=f"frame {frame}")
    assert run.command.startswith(f"cleanfeed run {clip} -o cleaned.mp4 --prompts prompts.json")
    assert "segment frame=0 prompts_file=" in run.launch


@pytest.mark.slow
def test_cancel_stops_the_run_cleanly_and_the_page_stays_responsive(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "long.mp4", 1500)
    session = Session(GuiConfig(tmp_path / "work"), masker=ClassicalMasker())
    session.load(str(clip))
    session.click(120, 36, "positive")
    run = session.start_run()
    end = time.monotonic() + 60
    while (session.run_status() or run).frames_out < 24:  # type: ignore[union-attr]
        assert time.monotonic() < end, session.run_status()
        assert not session.run_status().finished, (session.run_status(), run.job.log_tail)  # type: ignore[union-attr]
        time.sleep(0.1)
    assert run.job is not None
    tree = _descendants(run.job.pid)
    assert len(tree) >= 3, tree  # the worker and the pipeline's element processes
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert {pid: _nice(pid) for pid in tree} == {pid: min(19, mine + NICE) for pid in tree}  # all yield to the page
    started = time.monotonic()
    session.goto(40)
    session.click(120, 36, "positive")  # the page works on while the run goes on
    click_s = time.monotonic() - started
    assert session.cancel_run()
    _wait(session, 30)
    status = session.run_status()
    assert status is not None and status.state == "cancelled", (status, run.job.log_tail if run.job else "")
    assert "interrupted by SIGTERM" in status.message
    frames = _count(run.video)
    assert 24 <= frames < 1500, frames  # a playable file with the frames done so far
    assert not session.cancel_run()
    print(f"click during a run: {click_s * 1000:.0f} ms")
