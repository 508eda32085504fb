"""E2FGVI's windows in a thread of their own (live deadlines): frames leave on time while a
window computes, late answers are dropped, a hopeless backlog resyncs, errors reach the element."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from cleanfeed.engines.e2fgvi.schedule import SlidingConfig
from cleanfeed.errors import ElementError
from cleanfeed.stream.adapters.base import ModelSettings
from cleanfeed.stream.adapters.inpaint_e2fgvi import E2fgviEngine
from cleanfeed.stream.adapters.inpaint_windows import BackgroundWindows, InlineWindows
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.picture import Picture


@dataclass
class _Patch:
    index: int
    box: None = None


class _GatedWindows:
    """Stands in for the sliding inpainter: frame i is answered once frame i+stride is pushed,
    and each push waits for the test to open the gate (a window that takes as long as the test wants)."""

    def __init__(self, stride: int = 2, gate: threading.Event | None = None, fail_at: int | None = None) -> None:
        self.stride, self.gate, self.fail_at = stride, gate, fail_at
        self.entered = threading.Event()  # set once a push has started
        self.pushed: list[int] = []  # the first pixel of each frame pushed (its seq, see _frame)
        self.windows_run = self.windows_skipped = 0

    def push(self, rgb: np.ndarray, mask: np.ndarray) -> list[_Patch]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_at is not None and len(self.pushed) == self.fail_at:
            raise RuntimeError("out of memory")
        self.pushed.append(int(rgb[0, 0, 0]))
        n = len(self.pushed)
        if n > self.stride:
            self.windows_run += 1
            return [_Patch(n - 1 - self.stride)]
        return []

    def finish(self) -> list[_Patch]:
        n = len(self.pushed)
        return [_Patch(i) for i in range(max(0, n - self.stride), n)]


def _frame(seq: int) -> VideoFrame:
    picture = Picture.empty("rgb24", 32, 32)
    picture.put_rgb(np.full((32, 32, 3), seq, np.uint8), (0, 0, 32, 32))
    frame = VideoFrame.new(seq, seq, Fraction(1, 25), picture)
    frame.mask = np.zeros((32, 32), np.uint8)
    return frame


def _engine(windows: InlineWindows | BackgroundWindows, stride: int = 2) -> tuple[E2fgviEngine, list[int]]:
    engine = E2fgviEngine(None, ModelSettings(), sliding=SlidingConfig(neighbor_stride=stride))  # type: ignore[arg-type]
    covered: list[int] = []

    def cover(frame: VideoFrame) -> VideoFrame:
        covered.append(frame.seq)
        frame.meta["degraded"] = True
        return frame

    engine._windows, engine._cover = windows, cover
    return engine, covered


def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_frames_leave_on_time_while_a_window_computes_and_late_answers_are_dropped() -> None:
    gate = threading.Event()
    fake = _GatedWindows(stride=2, gate=gate)
    windows = BackgroundWindows(lambda: fake, "inpaint", max_backlog=50)
    engine, covered = _engine(windows)
    try:
        for seq in range(4):  # the thread is stuck in its first push: process never waits for it
            assert engine.process(_frame(seq)) == []
        out = engine.expire(lambda f: f.seq < 2, engine._cover)  # type: ignore[arg-type]
        assert [f.seq for f in out] == [0, 1] and covered == [0, 1]
    finally:
        gate.set()
    rest = list(engine.flush())  # the answers for 0 and 1 come after they left: dropped
    assert [f.seq for f in rest] == [2, 3] and covered == [0, 1]
    assert not any(f.meta.get("degraded") for f in rest)
    assert fake.pushed == [0, 1, 2, 3]  # the engine still saw every frame, in order
    engine.close()


def test_a_hopeless_backlog_drops_the_queue_and_restarts_the_engine() -> None:
    gate = threading.Event()
    made: list[_GatedWindows] = []
    resyncs: list[str] = []

    def make() -> _GatedWindows:
        made.append(_GatedWindows(stride=1, gate=gate))
        return made[-1]

    windows = BackgroundWindows(make, "inpaint", max_backlog=4, on_resync=resyncs.append)
    engine, covered = _engine(windows, stride=1)
    try:
        engine.process(_frame(0))
        _wait_for(lambda: bool(made) and made[0].entered.is_set())  # stuck inside frame 0's window
        for seq in range(1, 8):  # 4 not through at frames 4 and 6: the queue is dropped, and a fresh engine
            engine.process(_frame(seq))
        assert windows.resyncs == 2 and resyncs == ["e2fgvi_resyncs"] * 2
        # held_max is 2*1+1 = 3: the oldest frames left covered as soon as more were held
        assert [f.seq for f in engine._held] == [5, 6, 7] and covered == [0, 1, 2, 3, 4]
    finally:
        gate.set()
    out = list(engine.flush())
    assert [f.seq for f in out] == [5, 6, 7] and covered == [0, 1, 2, 3, 4, 5]  # 5 was dropped: never answered
    assert len(made) == 2 and made[0].pushed == [0] and made[1].pushed == [6, 7]
    engine.close()


def test_an_error_in_the_thread_is_the_elements_error() -> None:
    windows = BackgroundWindows(lambda: _GatedWindows(fail_at=1), "inpaint", max_backlog=10)
    engine, _ = _engine(windows)
    engine.process(_frame(0))
    engine.process(_frame(1))
    with pytest.raises(ElementError, match=r"^inpaint: E2FGVI window failed: RuntimeError: out of memory$"):
        _wait_for(lambda: engine.process(_frame(2)) is None)
    engine.close()


@pytest.mark.parametrize("background", [False, True])
def test_without_overdue_frames_both_ways_answer_every_frame_in_order(background: bool) -> None:
    fake = _GatedWindows(stride=2)
    windows = BackgroundWindows(lambda: fake, "inpaint", max_backlog=50) if background else InlineWindows(fake)
    engine, covered = _engine(windows)
    out: list[VideoFrame] = []
    for seq in range(9):
        out += engine.process(_frame(seq))
        _wait_for(lambda: len(fake.pushed) == seq + 1)  # noqa: B023  (a thread that keeps up)
        out += engine.expire(lambda f: False, engine._cover)  # type: ignore[arg-type]
    out += list(engine.flush())
    assert [f.seq for f in out] == list(range(9)) and covered == []
    assert engine.statistics() == {"windows_run": 7, "windows_skipped": 0, "resyncs": 0}
    engine.close()


def test_backlog_counts_frames_not_yet_pushed_through() -> None:
    gate = threading.Event()
    fake = _GatedWindows(stride=1, gate=gate)
    windows = BackgroundWindows(lambda: fake, "inpaint", max_backlog=10)
    for seq in range(3):
        windows.submit(seq, np.full((2, 2, 3), seq, np.uint8), np.zeros((2, 2), np.uint8))
    assert windows.backlog == 3
    gate.set()
    _wait_for(lambda: windows.backlog == 0)
    assert fake.pushed == [0, 1, 2]
    windows.close()
