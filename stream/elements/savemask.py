"""savemask: writes each frame's object-id mask as a PNG, for other tools and for checking the tracker."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import cv2

from cleanfeed.errors import MediaError, PropertyError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register


@register
class SaveMask(Filter):
    factory: ClassVar[str] = "savemask"
    klass: ClassVar[str] = "Filter/Video/Mask"
    description: ClassVar[str] = (
        "Writes every frame's mask to FOLDER/%05d.png (frame seq) and passes the frame on.\n"
        "values=ids keeps object ids (1, 2, ...); values=binary writes 255 for any object, "
        "the form E2FGVI and ProPainter read."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! segment box=10,10,90,60 ! track ! savemask location=masks ! fakesink"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("location", "folder to write the PNGs into (created)", None),
        Property.enum("values", "what a mask pixel holds", ("ids", "binary"), "ids"),
    )

    def configure(self) -> None:
        if not self.location:
            raise PropertyError("savemask needs location=FOLDER")

    def writes(self) -> list[str]:
        return [str(Path(self.location) / "%05d.png")]

    def start(self, caps: Caps) -> Caps:
        folder = Path(self.location)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise MediaError(f"cannot write masks to {self.location!r}: {err.strerror}") from None
        self._folder = folder
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        mask = frame.mask if self.values == "ids" else (frame.mask > 0).astype("uint8") * 255
        path = self._folder / f"{frame.seq:05d}.png"
        if not cv2.imwrite(str(path), mask):
            raise MediaError(f"cannot write mask {str(path)!r}")
        return [frame]
