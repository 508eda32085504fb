"""track: carries each object's mask from its reference frame through every following frame."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engines.classical import regions
from engines.classical.tracker import MODELS, MaskTracker, TrackerConfig
from stream.buffers import Caps, VideoFrame
from stream.element import Filter
from stream.properties import Property
from stream.registry import register

ENGINES = ("classical", "auto")


@register
class Track(Filter):
    factory: ClassVar[str] = "track"
    klass: ClassVar[str] = "Filter/Video/Track"
    description: ClassVar[str] = (
        "Tracks every referenced object's mask through the following frames (DIS optical flow).\n\n"
        "A frame whose meta reference lists object ids (written by `segment`, or any element that "
        "corrects a mask) (re)starts those objects from the frame's mask; the other objects keep "
        "tracking. On every other frame the tracked masks are written into the frame's mask (object "
        "ids). Frames before the first reference pass through. Each object's motion is fitted on its "
        "own pixels and re-aligned to its reference, so masks neither drift nor erode; an object that "
        "leaves the frame is listed in meta objects_lost. Works on the luma of a region around each "
        "object: the cost follows the objects' size, not the frame's."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! savemask location=masks "
        "! fakesink"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.enum("engine", "Tracking engine (auto picks the best available)", ENGINES, "auto"),
        Property.enum("model", "Motion model fitted inside each object", MODELS, "similarity"),
        Property.int("max_side", "Downscale flow regions whose longer side exceeds this (pixels)", 160, 32, 4096),
        Property.float("margin", "Search region around each object, as a fraction of its size", 0.5, 0.1, 4.0),
        Property.bool("anchor", "Re-align each object to its reference every frame (no drift)", True),
    )

    engine: str
    model: str
    max_side: int
    margin: float
    anchor: bool

    def start(self, caps: Caps) -> Caps:
        config = TrackerConfig(model=self.model, max_side=self.max_side, margin=self.margin, anchor=self.anchor)
        self._tracker = MaskTracker(config)
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        tracker = self._tracker
        refs = [int(i) for i in frame.meta.get("reference", [])]
        if not tracker.ids and not refs:
            return [frame]
        luma = frame.picture.luma()
        modes: dict[str, str] = {}
        if tracker.ids:
            for obj_id, found in tracker.track_regions(luma).items():
                modes[str(obj_id)] = found.mode
                if obj_id in refs or found.box is None:
                    continue
                view = regions.crop(frame.mask, found.box)
                np.copyto(view, np.uint8(obj_id), where=found.mask & (view == 0) if refs else found.mask)
        for obj_id in refs:
            mask = frame.mask == obj_id
            if mask.any():
                tracker.add_reference(obj_id, luma, mask)
                modes[str(obj_id)] = "reference"
            else:
                tracker.remove(obj_id)
        frame.meta["objects_lost"] = sorted(tracker.lost)
        frame.meta["track"] = modes
        return [frame]
