"""Drives filters by calling their methods, as a runner would, without processes or links."""

from __future__ import annotations

from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Filter


def run_filters(caps: Caps, frames: list[VideoFrame], elements: list[Filter], copy: bool = False) -> list[VideoFrame]:
    """start() each element, push every frame through in order, then flush each in turn.

    ``copy`` feeds copies so the caller's frames stay as rendered (to compare two runs)."""
    for element in elements:
        caps = element.start(caps)
    out: list[VideoFrame] = []
    for frame in frames:
        batch = [frame.copy() if copy else frame]
        for element in elements:
            batch = [o for f in batch for o in element.process(f)]
        out += batch
    tail: list[VideoFrame] = []
    for element in elements:
        tail = [o for f in tail for o in element.process(f)] + list(element.flush())
    return out + tail
