"""dilate: grows every object's mask by a few pixels before inpainting."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cleanfeed.engines.classical.regions import dilate_ids
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register


@register
class Dilate(Filter):
    factory: ClassVar[str] = "dilate"
    klass: ClassVar[str] = "Filter/Video/Mask"
    description: ClassVar[str] = (
        "Grows every object's mask by `pixels` (elliptical), per object id.\n\n"
        "A tracked mask hugs the logo; its anti-aliased edge, glow or shadow lies just outside. "
        "Growing the mask hides them and gives the inpainter a clean border. Only the masks' "
        "bounding region is touched. Where grown objects meet, the lower id wins. Masks the element "
        "that made them marked exact (meta exact_ids: a logo's estimated opaque part) are left as they are."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! dilate pixels=8 "
        "! inpaint ! filesink location=out.mp4"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("pixels", "Grow masks by this many pixels", 8, 0, 64),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        exact = frame.meta.get("exact_ids")
        if not exact:
            dilate_ids(frame.mask, self.pixels)
            return [frame]
        keep = np.isin(frame.mask, exact)
        kept = frame.mask[keep]
        frame.mask[keep] = 0
        dilate_ids(frame.mask, self.pixels)
        frame.mask[keep] = kept
        return [frame]
