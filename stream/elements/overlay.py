"""overlay: draws the objects' masks, contours and ids on the picture, for previews."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], np.float32,
)


def colour_of(obj_id: int) -> np.ndarray:
    """A distinct RGB colour per object id (float32, 0..255)."""
    return _COLOURS[(obj_id - 1) % len(_COLOURS)]


@register
class Overlay(Filter):
    factory: ClassVar[str] = "overlay"
    klass: ClassVar[str] = "Filter/Video/Effect"
    description: ClassVar[str] = (
        "Paints each object's mask in a colour of its id, with its contour and id, for previews.\n\n"
        "Put it after `track` (or `dilate`) to see what will be removed; it changes the picture, so "
        "it belongs in preview pipelines, not before `inpaint`. Only the masks' region is converted."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! overlay alpha=0.4 "
        "! filesink location=preview.mp4"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.float("alpha", "Opacity of the mask colour (0 = contours only)", 0.45, 0.0, 1.0),
        Property.bool("contours", "Draw each object's outline", True),
        Property.bool("labels", "Write each object's id next to it", True),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        found = regions.mask_box(frame.mask)
        if found is None:
            return [frame]
        box = frame.picture.align(regions.grow(found, 14, frame.width, frame.height))
        ids_map = regions.crop(frame.mask, box)
        rgb = frame.picture.rgb(box)
        counts = np.bincount(ids_map.ravel(), minlength=256)
        ids = [int(i) for i in np.nonzero(counts[1:])[0] + 1]
        if self.alpha > 0:
            tinted = rgb.astype(np.float32)
            for obj_id in ids:
                sel = ids_map == obj_id
                tinted[sel] = (1.0 - self.alpha) * tinted[sel] + self.alpha * colour_of(obj_id)
            rgb = np.clip(tinted + 0.5, 0, 255).astype(np.uint8)
        for obj_id in ids:
            sel = (ids_map == obj_id).view(np.uint8)
            ink = tuple(int(c) for c in colour_of(obj_id))
            if self.contours:
                outlines, _ = cv2.findContours(sel, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(rgb, outlines, -1, ink, 1, cv2.LINE_AA)
            if self.labels:
                x, y, _, _ = cv2.boundingRect(sel)
                cv2.putText(rgb, str(obj_id), (x, max(10, y - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, ink, 1, cv2.LINE_AA)
        frame.picture.put_rgb(rgb, box)
        return [frame]
