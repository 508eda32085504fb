"""The DeAOT tracker's bookkeeping: capped memory, references, objects joining and leaving, loss reports."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deaot_tracking import tracker_for  # noqa: E402
from deaot_weights import golden_clip  # noqa: E402

from cleanfeed.engines.deaot.memory import MemoryBank  # noqa: E402


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    return golden_clip(3, 10, 100, 170)


def start(clip: tuple[np.ndarray, np.ndarray], gap: int, capacity: int, objects: set[int] = frozenset({1, 2, 3})):
    frames, label0 = clip
    tracker = tracker_for("deaott", 0, gap, capacity)
    labels = np.where(np.isin(label0, list(objects)), label0, 0).astype(np.uint8)
    tracker.update(frames[0], labels, set(objects))
    return tracker


def test_long_term_memory_is_capped_and_keeps_the_reference(clip) -> None:
    frames, _ = clip
    tracker = start(clip, gap=1, capacity=3)
    shape = tracker._bank.long_term[0].key.shape
    for t in range(1, 8):
        tracker.update(frames[t], tracker.track(frames[t]).labels)
    assert tracker.long_term_frames() == [0, 6, 7]  # the reference stays; the newest tracked frames fill the rest
    assert tracker._bank.long_term[0].key.shape == shape  # preallocated: memory does not grow with the video


def test_gap_decides_which_frames_are_remembered(clip) -> None:
    frames, _ = clip
    tracker = start(clip, gap=3, capacity=8)
    for t in range(1, 8):
        tracker.update(frames[t], tracker.track(frames[t]).labels)
    assert tracker.long_term_frames() == [0, 3, 6]


def test_references_are_pinned_and_only_the_first_is_never_evicted() -> None:
    bank = MemoryBank(capacity=3, layers=1)
    one = [torch.zeros(1, 4, 2), torch.zeros(1, 4, 3), torch.zeros(1, 4, 3)]
    from cleanfeed.engines.deaot.propagation import Memory

    frame = [Memory(*one)]
    bank.add_engine(frame)
    bank.remember_long(0, frame, 0, pinned=True)
    bank.remember_long(0, frame, 2, pinned=True)
    bank.remember_long(0, frame, 3, pinned=False)
    bank.remember_long(0, frame, 4, pinned=True)  # evicts the tracked frame 3, not a reference
    assert bank.frames(0) == [0, 2, 4]
    assert bank.remember_long(0, frame, 5, pinned=False) is None  # all references: a tracked frame is not kept
    bank.remember_long(0, frame, 6, pinned=True)  # evicts reference 2, never the first
    assert bank.frames(0) == [0, 4, 6] and bank.references(0) == [0, 4, 6]
    with pytest.raises(ValueError, match="at least 2 frames"):
        MemoryBank(capacity=1, layers=1)


def test_an_object_joins_mid_video_under_its_own_id(clip) -> None:
    frames, label0 = clip
    tracker = start(clip, gap=9999, capacity=4, objects={1, 2})
    for t in range(1, 3):
        tracker.update(frames[t], tracker.track(frames[t]).labels)
    predicted = tracker.track(frames[3]).labels
    joined = np.where(label0 == 3, 3, np.where(predicted == 3, 0, predicted)).astype(np.uint8)
    tracker.update(frames[3], joined, {3})
    assert tracker.ids == [1, 2, 3]
    channels = {obj: tracker._objects[obj].channel for obj in tracker.ids}
    assert len(set(channels.values())) == 3  # upstream's incremental add gives the newcomer an existing id
    assert tracker.reference_frames() == [0, 3]
    out = tracker.track(frames[4]).labels
    assert set(np.unique(out).tolist()) <= {0, 1, 2, 3}


def test_a_removed_object_retires_its_channel(clip) -> None:
    frames, _ = clip
    tracker = start(clip, gap=9999, capacity=4)
    labels = tracker.track(frames[1]).labels
    tracker.update(frames[1], np.where(labels == 2, 0, labels).astype(np.uint8), {2})
    assert tracker.ids == [1, 3]
    assert 2 not in np.unique(tracker.track(frames[2]).labels)
    tracker._pending = None
    grown = np.zeros(frames[2].shape[:2], np.uint8)
    grown[10:30, 10:30] = 9
    tracker.update(frames[2], grown, {9})
    assert tracker._objects[9].channel == 4  # not 2: the old memories still carry object 2 there


def test_eleven_objects_use_two_sub_engines(clip) -> None:
    frames, _ = clip
    tracker = tracker_for("deaott", 0, 9999)
    labels = np.zeros(frames[0].shape[:2], np.uint8)
    for obj in range(1, 12):
        labels[(obj - 1) * 9 : (obj - 1) * 9 + 6, 20 + obj * 5 : 30 + obj * 5] = obj
    tracker.update(frames[0], labels, set(range(1, 12)))
    assert tracker.engines == 2
    assert (tracker._objects[11].engine, tracker._objects[11].channel) == (1, 1)
    result = tracker.track(frames[1])
    assert result.labels.shape == labels.shape and result.labels.max() <= 11


def test_an_object_unseen_too_long_is_reported_lost_and_found_again(clip) -> None:
    frames, _ = clip
    tracker = start(clip, gap=9999, capacity=4)
    tracker.config = type(tracker.config)(long_term_gap=9999, max_long_term=4, lost_after=2)
    for t in range(1, 5):
        labels = tracker.track(frames[t]).labels
        tracker.update(frames[t], np.where(labels == 1, 0, labels).astype(np.uint8))
        assert tracker.lost == ([1] if t > 2 else [])
    assert tracker.ids == [1, 2, 3]  # still tracked: it may come back
    labels = tracker.track(frames[5]).labels
    labels[:5, :5] = 1
    tracker.update(frames[5], labels)
    assert tracker.lost == []


def test_frames_must_keep_one_size(clip) -> None:
    frames, _ = clip
    tracker = start(clip, gap=9999, capacity=4)
    with pytest.raises(ValueError, match=r"DeAOT tracks frames of one size: \(100, 170\), got \(96, 170\)"):
        tracker.track(frames[1][:96])
