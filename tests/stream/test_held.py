"""Frames held for a worker's answers leave in order: answered, beyond the cap, overdue, or at the end."""

from __future__ import annotations

from fractions import Fraction

from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.held import HeldFrames
from cleanfeed.stream.picture import Picture


def _frame(seq: int) -> VideoFrame:
    return VideoFrame.new(seq, seq, Fraction(1, 25), Picture.empty("rgb24", 8, 8))


def _late(frame: VideoFrame) -> VideoFrame:
    frame.meta["late"] = True
    return frame


def test_frames_leave_in_order_answered_or_late_and_late_answers_are_dropped() -> None:
    held = HeldFrames(held_max=3)
    assert [held.add(_frame(i)) for i in range(5)] == [0, 1, 2, 3, 4]
    assert held.answer(1) is not None and held.ready(None) == []  # 1 waits behind 0
    out = held.ready(_late)  # 5 held, 3 allowed: 0 leaves late, then 1 (answered) as it is
    assert [(f.seq, f.meta.get("late", False)) for f in out] == [(0, True), (1, False)]
    assert held.answer(0) is None  # left already: its answer is dropped
    assert held.answer(2) is not None
    out = held.overdue(lambda f: f.seq <= 3, _late)
    assert [(f.seq, f.meta.get("late", False)) for f in out] == [(2, False), (3, True)]
    assert [f.seq for f in held] == [4] and len(held) == 1
    assert [(f.seq, f.meta.get("late", False)) for f in held.rest(_late)] == [(4, True)]


class _Worker:
    def __init__(self) -> None:
        self.done = False
        self.asked = 0

    def request_finish(self) -> None:
        self.asked += 1


def test_a_live_flush_takes_answers_until_the_worker_is_done_then_the_rest_leaves_late() -> None:
    held, worker = HeldFrames(held_max=8), _Worker()
    for i in range(3):
        held.add(_frame(i))
    rounds = []

    def collect() -> list[VideoFrame]:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            held.answer(0)
            worker.done = True
        return held.ready(_late)

    out = list(held.flush_live(worker, collect, lambda f: False, _late))
    assert worker.asked == 1
    assert [(f.seq, f.meta.get("late", False)) for f in out] == [(0, False), (1, True), (2, True)]
