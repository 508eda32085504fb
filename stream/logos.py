"""The runtime's side of logo finding: references loaded for a stream, and what a frame shows.

``logofind`` (removal), ``logocheck`` (counting on air) and `cleanfeed check` all need the same
things: the references read once and checked against the frame size, and for a frame the
detections in full-frame pixels with its index and time. Kept here so the three agree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


def look(finder: LogoFinder, image: np.ndarray, previous: Sequence[Detection]) -> list[Detection]:
    """Every appearance on ``image``: the whole frame searched, and the previous frame's appearances
    searched again around where they were (closer, so small and half-hidden ones are kept)."""
    local = (finder.find_near(image, previous) if previous else []) or []
    return merge(local, finder.find(image, known=local))


def merge(local: Sequence[Detection], full: Sequence[Detection]) -> list[Detection]:
    """The local search's appearances (searched closer, so more exact), and those of the full search
    that are new: whose centre lies in no appearance of the same logo found locally."""
    new = [d for d in full if not any(k.reference == d.reference and contains(k.box, d.centre) for k in local)]
    return [*local, *new]


def contains(box: tuple[int, int, int, int], point: np.ndarray) -> bool:
    return bool(box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3])


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The share of the smaller box that the two boxes have in common (0..1)."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0
