"""The frames an element holds while its worker thread (stream/background.py) answers them.

A punctual element (DeAOT in `track`, E2FGVI in `inpaint`, under a live deadline) keeps each
frame it receives, numbered in arrival order, until the worker's answer for that number is
written into it, or until the frame must leave without it: past its deadline, beyond the
``held_max`` frames the element may keep, or at the end of the stream. Frames always leave in
order; one that leaves unanswered goes through the element's ``late`` fill (the fallback cover,
the stale masks) and a later answer for it is dropped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from cleanfeed.stream.buffers import VideoFrame

Late = Callable[[VideoFrame], VideoFrame]
"""How a frame leaves without its answer."""

POLL_S = 0.005
"""How often a live flush looks for the worker's last answers and for frames come due."""


@dataclass
class _Held:
    frame: VideoFrame
    done: bool = False


class Finishing(Protocol):
    """The worker's end of stream: asked once, then ``done`` when its last answer is out."""

    done: bool

    def request_finish(self) -> None: ...


class HeldFrames:
    """Frames in arrival order; ``add`` numbers them, ``answer`` marks one done."""

    def __init__(self, held_max: int) -> None:
        self.held_max = held_max
        self._held: deque[_Held] = deque()
        self._first = 0  # the number of _held[0]

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[VideoFrame]:
        return (held.frame for held in self._held)

    def add(self, frame: VideoFrame) -> int:
        """Holds ``frame``; returns its number (the worker answers by it)."""
        self._held.append(_Held(frame))
        return self._first + len(self._held) - 1

    def answer(self, index: int) -> VideoFrame | None:
        """The held frame numbered ``index``, now done (write the answer into it); None when it
        left already (its answer is dropped)."""
        position = index - self._first
        if position < 0:
            return None
        held = self._held[position]
        held.done = True
        return held.frame

    def ready(self, late: Late | None) -> list[VideoFrame]:
        """The answered frames at the head; then, with ``late``, the oldest beyond ``held_max``."""
        out = []
        while self._held and self._held[0].done:
            out.append(self._pop(None))
        while late is not None and len(self._held) > self.held_max:
            out.append(self._pop(late))
        return out

    def overdue(self, is_overdue: Callable[[VideoFrame], bool], late: Late) -> list[VideoFrame]:
        """The frames at the head that must leave now (through ``late`` unless answered)."""
        out = []
        while self._held and is_overdue(self._held[0].frame):
            out.append(self._pop(late))
        return out

    def rest(self, late: Late) -> Iterator[VideoFrame]:
        """Everything still held (through ``late`` unless answered)."""
        while self._held:
            yield self._pop(late)

    def flush_live(self, worker: Finishing, collect: Callable[[], list[VideoFrame]],
                   is_overdue: Callable[[VideoFrame], bool], late: Late) -> Iterator[VideoFrame]:
        """End of a live stream: the worker finishes what is queued while held frames leave as
        they are answered (``collect`` applies the answers and returns :meth:`ready`) or on
        their deadlines, so the end is as punctual as the rest; what it never answered (dropped
        from its queue) goes through ``late``."""
        worker.request_finish()
        while self._held and not worker.done:
            yield from collect()
            yield from self.overdue(is_overdue, late)
            time.sleep(POLL_S)
        yield from collect()
        yield from self.rest(late)

    def _pop(self, late: Late | None) -> VideoFrame:
        held = self._held.popleft()
        self._first += 1
        return held.frame if late is None or held.done else late(held.frame)
