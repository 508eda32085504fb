"""DeAOT under a live deadline (stream/adapters/track_live.py): frames leave on time with stale
masks when the tracker is late, reference frames are never skipped, answers in time are used."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np

from cleanfeed.stream.adapters.track_live import PunctualTracker
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.picture import Picture

H = W = 48


class _FakeDeaot:
    """Tracks object 1 as a 6x6 square that moves 1 px right per frame; each call waits for the gate."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate, self.ids, self.lost = gate, [], []
        self.seen: list[int] = []  # the frames tracked (their first pixel, see _frame)

    def track(self, rgb: np.ndarray, mask: np.ndarray, refs: list[int]) -> dict[str, str]:
        if self.gate is not None:
            self.gate.wait(10)
        seq = int(rgb[0, 0, 0])
        self.seen.append(seq)
        if refs:
            self.ids = refs
            return {"1": "reference"}
        mask[20:26, 10 + seq : 16 + seq] = 1
        return {"1": "deaot"}


def _frame(seq: int, reference: bool = False) -> VideoFrame:
    picture = Picture.empty("rgb24", W, H)
    picture.put_rgb(np.full((H, W, 3), seq, np.uint8), (0, 0, W, H))
    frame = VideoFrame.new(seq, seq, Fraction(1, 25), picture)
    frame.mask = np.zeros((H, W), np.uint8)
    if reference:
        frame.mask[20:26, 10 + seq : 16 + seq] = 1
        frame.meta["reference"] = [1]
    return frame


def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def _tracker(deaot: _FakeDeaot, grow: int = 2, held_max: int = 8) -> tuple[PunctualTracker, dict[str, int]]:
    counts: dict[str, int] = {}

    def count(name: str, n: int = 1) -> None:
        counts[name] = counts.get(name, 0) + n

    return PunctualTracker(deaot, "track", held_max, grow, count), counts


def test_answers_in_time_are_used_and_nothing_is_degraded() -> None:
    deaot = _FakeDeaot()
    tracker, counts = _tracker(deaot)
    out: list[VideoFrame] = []
    for seq in range(6):
        out += tracker.process(_frame(seq, reference=seq == 0))
        _until(lambda: len(deaot.seen) == seq + 1)  # noqa: B023  (a tracker that keeps up)
        out += tracker.expire(lambda f: False)
    out += list(tracker.flush(lambda f: False))
    assert [f.seq for f in out] == list(range(6)) and not counts
    for frame in out[1:]:
        assert frame.meta["track"] == {"1": "deaot"} and not frame.meta.get("degraded")
        assert frame.mask[20:26, 10 + frame.seq : 16 + frame.seq].all() and frame.mask.sum() == 36
    tracker.close()


def test_a_late_tracker_lets_frames_go_on_time_with_the_newest_masks_grown() -> None:
    gate = threading.Event()
    deaot = _FakeDeaot(gate)
    tracker, counts = _tracker(deaot, grow=2)
    try:
        assert tracker.process(_frame(0, reference=True)) == []
        for seq in (1, 2):
            assert tracker.process(_frame(seq)) == []
        out = tracker.expire(lambda f: f.seq <= 2)  # due before DeAOT answered anything
    finally:
        gate.set()
    assert [f.seq for f in out] == [0, 1, 2]
    assert not out[0].meta.get("degraded") and out[0].mask.sum() == 36  # its own reference mask
    for frame in out[1:]:  # frame 0's reference mask (the newest known), grown by 2 px
        assert frame.meta["degraded"] and frame.meta["track"] == {"1": "stale"}
        assert frame.mask[19:27, 9:17].all() and frame.mask[18:28, 10:16].all()
        assert not frame.mask[:, 18:].any() and not frame.mask[:17].any()
    assert counts == {"stale_masks": 2}
    assert list(tracker.flush(lambda f: False)) == []
    _until(lambda: len(deaot.seen) == 3)
    assert deaot.seen == [0, 1, 2]  # the tracker still saw every frame, in order
    tracker.close()


def test_when_far_behind_queued_frames_are_skipped_but_never_a_reference() -> None:
    gate = threading.Event()
    deaot = _FakeDeaot(gate)
    tracker, counts = _tracker(deaot, held_max=2)  # max_backlog 4
    try:
        tracker.process(_frame(0, reference=True))
        _until(lambda: tracker._worker._inbox.empty())  # DeAOT is stuck inside frame 0
        for seq in range(1, 9):
            tracker.process(_frame(seq, reference=seq == 4))
    finally:
        gate.set()
    rest = list(tracker.flush(lambda f: False))
    assert [f.seq for f in rest] == [7, 8]
    assert 4 in deaot.seen and counts["track_skipped"] >= 3 and len(deaot.seen) < 9
    assert deaot.seen == sorted(deaot.seen)
    tracker.close()


def test_a_reference_for_one_object_keeps_the_others_newest_masks_for_stale_frames() -> None:
    gate = threading.Event()
    tracker, _ = _tracker(_FakeDeaot(gate), grow=0)
    try:
        first = _frame(0, reference=True)
        first.mask[2:8, 2:8] = 2  # objects 1 and 2 referenced on frame 0
        first.meta["reference"] = [1, 2]
        tracker.process(first)
        again = _frame(1)
        again.mask[30:36, 30:36] = 2  # object 2 alone referenced again, elsewhere
        again.meta["reference"] = [2]
        tracker.process(again)
        tracker.process(_frame(2))
        out = tracker.expire(lambda f: True)
    finally:
        gate.set()
    stale = out[2]
    assert stale.meta["track"] == {"1": "stale", "2": "stale"}
    assert stale.mask[20:26, 10:16].all() and (stale.mask == 1).sum() == 36  # object 1 as frame 0 had it
    assert stale.mask[30:36, 30:36].all() and (stale.mask == 2).sum() == 36  # object 2 as frame 1 has it
    assert out[1].meta["track"] == {"1": "stale"}  # frame 1's own reference is the truth for object 2
    tracker.close()
