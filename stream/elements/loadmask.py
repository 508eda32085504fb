"""loadmask: per-frame masks made elsewhere, instead of segmenting and tracking.

E2FGVI, ProPainter and most editors exchange masks as a folder of PNGs (one per frame, sorted
by name, non-zero = object) or as a mask video; this element reads either in step with the
video, so masks from another tool can drive cleanfeed's inpainting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import av
import cv2
import numpy as np

from cleanfeed.errors import MediaError, PromptError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")


def _from_folder(folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PromptError(f"mask folder {str(folder)!r} must hold mask images ({', '.join(IMAGE_SUFFIXES)}), found none")
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise PromptError(f"mask file {str(path)!r} is not a readable image")
        yield str(path), (img.max(axis=2) if img.ndim == 3 else img)


def _from_video(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise MediaError(f"mask video {str(path)!r} cannot be read: {err}") from None
    with container:
        for i, frame in enumerate(container.decode(video=0)):
            yield f"{path}#{i}", frame.to_ndarray(format="gray")


@register
class LoadMask(Filter):
    factory: ClassVar[str] = "loadmask"
    klass: ClassVar[str] = "Filter/Video/Mask"
    description: ClassVar[str] = (
        "Sets each frame's mask from a folder of mask images or a mask video made elsewhere.\n"
        "Mask N belongs to frame N; pixels above `threshold` become object `object_id`. "
        "A missing mask or one of another size is an error, never a silently unmasked frame."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! loadmask location=masks/ ! inpaint ! filesink location=out.mp4"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("location", "folder of mask images, or a mask video", None),
        Property.int("threshold", "grey level above which a pixel is object", 127, 0, 254),
        Property.int("object_id", "id written into the mask", 1, 1, 255),
    )

    def configure(self) -> None:
        self.location: str | None
        if not self.location:
            raise PromptError("loadmask needs location=FOLDER or location=VIDEO")
        path = Path(self.location)
        if not path.exists():
            raise PromptError(f"masks {self.location!r} do not exist")
        self._masks: Iterator[tuple[str, np.ndarray]] | None = None

    def reads(self) -> list[str]:
        return [self.location or ""]

    def start(self, caps: Caps) -> Caps:
        path = Path(self.location or "")
        self._masks = _from_folder(path) if path.is_dir() else _from_video(path)
        self._size = (caps.width, caps.height)
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        assert self._masks is not None, "start() not called"
        try:
            name, img = next(self._masks)
        except StopIteration:
            raise PromptError(f"masks {self.location!r} ran out at frame {frame.seq}: one mask per frame is needed") from None
        if (img.shape[1], img.shape[0]) != self._size:
            w, h = self._size
            raise PromptError(f"mask {name!r} must be {w}x{h} like the video, got {img.shape[1]}x{img.shape[0]}")
        np.copyto(frame.mask, np.uint8(self.object_id), where=img > self.threshold)
        return [frame]

    def stop(self) -> None:
        close: Any = getattr(self._masks, "close", None)
        if close is not None:
            close()
