"""Decoded AVFrames into Pictures, keeping I420 as I420.

Converting every frame to RGB halves throughput (docs/streaming.md), so 4:2:0 frames are
copied plane by plane into the Picture's one I420 buffer (which may live in shared memory),
dropping the decoder's line padding. Everything else (PNG sequences, 4:4:4, odd sizes) is
kept as rgb24 so lossless inputs stay lossless.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from cleanfeed.stream.picture import Picture

I420_FORMATS = ("yuv420p", "yuvj420p")
"""Decoder formats copied without conversion (yuvj420p is full-range I420, same layout)."""


def picture_format(format_name: str | None, width: int, height: int) -> str:
    """The Picture layout for frames a decoder reports as ``format_name``.

    An unknown format (some network streams learn it only from the first frame) counts as
    I420 when the size is even: nearly every camera and encoder sends 4:2:0, and frames of
    another format are converted on arrival anyway.
    """
    if width % 2 or height % 2:
        return "rgb24"
    if format_name is None or format_name in I420_FORMATS:
        return "yuv420p"
    return "rgb24"


def _plane(frame: Any, index: int, width: int, height: int) -> np.ndarray:
    """A (height, width) view of one plane, without its line padding."""
    plane = frame.planes[index]
    stride = plane.line_size
    raw = np.frombuffer(plane, np.uint8, count=stride * height)
    return raw.reshape(height, stride)[:, :width]


def fill_picture(frame: av.VideoFrame, picture: Picture) -> None:
    """Writes ``frame``'s pixels into ``picture.data`` in place.

    Frames whose size or format differ from the picture (a resolution change mid-stream, a
    decoder that switches format) are converted first, so the picture always matches caps.
    """
    w, h = picture.width, picture.height
    if picture.pix_fmt == "yuv420p":
        if frame.format.name not in I420_FORMATS or frame.width != w or frame.height != h:
            frame = frame.reformat(width=w, height=h, format="yuv420p")
        flat = picture.data.reshape(-1)
        hw, quarter = w * h, (w // 2) * (h // 2)
        np.copyto(picture.data[:h], _plane(frame, 0, w, h))
        np.copyto(flat[hw : hw + quarter].reshape(h // 2, w // 2), _plane(frame, 1, w // 2, h // 2))
        np.copyto(flat[hw + quarter : hw + 2 * quarter].reshape(h // 2, w // 2), _plane(frame, 2, w // 2, h // 2))
        return
    if frame.format.name != "rgb24" or frame.width != w or frame.height != h:
        frame = frame.reformat(width=w, height=h, format="rgb24")
    rows = _plane(frame, 0, w * 3, h)
    np.copyto(picture.data, rows.reshape(h, w, 3))
