"""Holding frames back to real time at a live output.

A network output must not be fed faster than the stream plays: a receiver (a UDP listener, an
RTSP server, a player) buffers a little and drops or stalls on a burst. The first frame sets the
clock; each later frame leaves no earlier than the first one's send time plus its pts distance.
Frames that arrive late are never skipped: they leave at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cleanfeed.stream.buffers import VideoFrame

MAX_SLEEP_S = 0.05
"""Longest single sleep, so a stop request is seen promptly."""


class FramePacer:
    """Blocks in :meth:`wait` until a frame's timestamp is due on the wall clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._origin: tuple[float, float] | None = None  # (wall seconds, stream seconds)

    def due(self, frame: VideoFrame) -> float | None:
        """The wall time ``frame`` may leave (None: at once, e.g. no timestamp)."""
        if frame.pts is None:
            return None
        at = float(frame.pts * frame.time_base)
        if self._origin is None:
            self._origin = (self._clock(), at)
            return None
        wall, stream = self._origin
        if at < stream:  # timestamps went back (a restarted input): start a new clock
            self._origin = (self._clock(), at)
            return None
        return wall + at - stream

    def wait(self, frame: VideoFrame) -> None:
        due = self.due(frame)
        if due is None:
            return
        while (left := due - self._clock()) > 0:
            time.sleep(min(left, MAX_SLEEP_S))
