"""DeAOT behind the `track` element under a live deadline: never late, never maskless.

Inline, a DeAOT frame that takes longer than its slack (a slow GPU moment, a CPU) makes every
frame behind it late, and no later stage can win the time back. Under a deadline the tracker
runs in a thread of its own (stream/background.py) and the element keeps the frames: a frame
leaves as soon as its masks are back, or, when its deadline comes first, with the newest masks
known (the tracker's last answer, or a later reference mask from `segment`) grown by
``stale_grow`` pixels, flagged degraded (``meta["track"]`` says ``stale`` per object). A
screen-fixed logo is covered exactly; a moving object is covered while it moves less than
``stale_grow`` pixels between the masks' frame and this one.

The tracker still sees every frame it can: frames queue for it in order, and when it falls
further behind than ``max_backlog`` frames, the queued frames without a reference mask are
dropped (DeAOT carries on from its memory, as across a fast cut; counter ``track_skipped``).
Frames with a reference mask are never dropped. At most ``held_max`` frames are held; an older
one leaves at once with the stale masks (the tracker is too far behind to answer in time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from cleanfeed.stream.background import Background
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.held import HeldFrames


class PunctualTracker:
    """Wraps a DeaotEngine (``track(rgb, mask, refs)``, ``ids``, ``lost``) for one live run."""

    def __init__(self, deaot: Any, element: str, held_max: int, stale_grow: int,
                 count: Callable[[str, int], None]) -> None:
        self.deaot = deaot
        self.max_backlog = 2 * held_max
        self.count = count
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * stale_grow + 1,) * 2) if stale_grow else None
        self._worker = Background(element, "DeAOT frame")
        self._held = HeldFrames(held_max)
        self._newest: tuple[int, np.ndarray] | None = None  # (index, object-id mask) of the newest masks known

    @property
    def busy_s(self) -> float:
        """Seconds DeAOT has computed in the thread so far."""
        return self._worker.busy_s

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        index = self._held.add(frame)
        refs = sorted(int(i) for i in frame.meta.get("reference", []))
        rgb = frame.picture.rgb()
        rgb = rgb if rgb.flags.owndata else rgb.copy()  # the frame may leave, its slot reused, meanwhile
        mask = frame.mask.copy()
        if refs:
            self._remember(index, self._with_references(mask, refs))
        if self._worker.backlog >= self.max_backlog:
            self.count("track_skipped", self._worker.drop_queued())
        self._worker.submit(lambda: self._track(index, rgb, mask, refs), droppable=not refs)
        return self._collect()

    def expire(self, overdue: Callable[[VideoFrame], bool]) -> list[VideoFrame]:
        return self._collect() + self._held.overdue(overdue, self._stale)

    def flush(self, overdue: Callable[[VideoFrame], bool]) -> Iterator[VideoFrame]:
        """The tracker finishes what is queued while held frames leave on their deadlines."""
        return self._held.flush_live(self._worker, self._collect, overdue, self._stale)

    def close(self) -> None:
        self._worker.close()

    # -- the tracker's thread ---------------------------------------------------------------
    def _track(self, index: int, rgb: np.ndarray, mask: np.ndarray, refs: list[int]) -> list[Any]:
        deaot = self.deaot
        if not deaot.ids and not refs:
            return [(index, None, {}, [])]  # nothing to track yet: the frame passes as it is
        modes = deaot.track(rgb, mask, refs)
        return [(index, mask, modes, list(deaot.lost))]

    # -- the element's thread ---------------------------------------------------------------
    def _collect(self) -> list[VideoFrame]:
        for index, mask, modes, lost in self._worker.ready():
            if mask is not None:
                self._remember(index, mask)
            frame = self._held.answer(index)
            if frame is None and mask is not None:
                self.count("discarded", 1)  # computed for a frame that left with stale masks
            if frame is not None and mask is not None:  # None: it left on its deadline with stale masks
                np.copyto(frame.mask, mask)
                frame.meta["track"] = modes
                frame.meta["objects_lost"] = lost
        return self._held.ready(self._stale)

    def _with_references(self, mask: np.ndarray, refs: list[int]) -> np.ndarray:
        """The newest masks known once this frame's references are in: the referenced objects
        as this frame has them (none: no longer tracked), every other object as it was."""
        merged = np.where(np.isin(mask, refs), mask, 0).astype(np.uint8)
        if self._newest is not None:
            before = self._newest[1]
            np.copyto(merged, before, where=(merged == 0) & (before > 0) & ~np.isin(before, refs))
        return merged

    def _remember(self, index: int, mask: np.ndarray) -> None:
        if self._newest is None or index >= self._newest[0]:
            self._newest = (index, mask)

    def _stale(self, frame: VideoFrame) -> VideoFrame:
        """A frame leaving before DeAOT answered: the newest masks known, grown."""
        if self._newest is None:
            return frame  # nothing known to cover yet
        known = self._newest[1]
        refs = {int(i) for i in frame.meta.get("reference", [])}  # their pixels here are the truth
        modes = {}
        for obj_id in (int(i) for i in np.unique(known) if i and int(i) not in refs):
            area = (known == obj_id).view(np.uint8)
            grown = cv2.dilate(area, self._kernel) > 0 if self._kernel is not None else area > 0
            np.copyto(frame.mask, np.uint8(obj_id), where=grown & (frame.mask == 0))
            modes[str(obj_id)] = "stale"
        if modes:
            frame.meta["track"] = modes
            frame.meta["degraded"] = True
            self.count("stale_masks", 1)
        return frame
