"""The runtime's side of logo finding: references loaded for a stream, and what a frame shows.

``logofind`` (removal), ``logocheck`` (counting on air) and `cleanfeed check` all need the same
things: the references read once and checked against the frame size, and for a frame the
detections in full-frame pixels with its index and time. Kept here so the three agree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cleanfeed.engines.detect.finder import Detection, FinderConfig, LogoFinder
from cleanfeed.engines.detect.reference import check_fits, load_reference
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.timebase import seconds

log = logging.getLogger(__name__)


def split_paths(value: str | None) -> list[str]:
    """A ``logo`` property's files: several are separated by ``;`` (a path rarely holds one)."""
    return [p for p in (value or "").split(";") if p]


def load_finder(paths: Sequence[str], width: int, height: int, config: FinderConfig | None = None) -> LogoFinder:
    """A finder for ``paths`` in frames of ``width`` x ``height``; a bad reference is a ReferenceImageError."""
    config = config or FinderConfig()
    references = [load_reference(p) for p in paths]
    for ref in references:
        check_fits(ref, width, height, config.min_scale)
    return LogoFinder(references, config)


@dataclass(frozen=True)
class Sighting:
    """A frame on which at least one logo was found."""

    frame: int
    time_s: float | None
    logos: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]

    def to_json(self) -> dict[str, object]:
        return {"frame": self.frame, "time_s": None if self.time_s is None else round(self.time_s, 6),
                "logos": list(self.logos), "boxes": [list(b) for b in self.boxes]}


def sighting(frame: VideoFrame, found: Sequence[Detection]) -> Sighting | None:
    if not found:
        return None
    time_s = None if frame.pts is None else seconds(frame.pts, frame.time_base)
    return Sighting(frame.seq, time_s, tuple(d.name for d in found), tuple(d.box for d in found))
