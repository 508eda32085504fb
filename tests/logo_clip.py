"""A small H.264 clip with a fixed logo (a white square with a blue core) on a moving background.

The web app's tests click that logo: in the session logic, in a run, and in a real browser.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_logo_clip(path: Path, *, width: int = 160, height: int = 96, frames: int = 24, rate: int = 24,
                    logo: tuple[int, int, int, int] = (100, 20, 140, 52), border: int = 8,
                    gop: int | None = None, bframes: int | None = None) -> Path:
    """``logo`` is (x0, y0, x1, y1); ``gop``/``bframes`` make seeking work harder (default: x264's)."""
    y, x = np.mgrid[0:height, 0:width]
    options = {"preset": "ultrafast", "crf": "18"}
    if gop is not None:
        options["g"] = str(gop)
    if bframes is not None:
        options["bf"] = str(bframes)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = options
        for i in range(frames):
            rgb = np.zeros((height, width, 3), np.uint8)
            rgb[..., 0] = (x * 2 + 5 * i) % 256 // 2
            rgb[..., 1] = (y * 2 + 3 * i) % 256 // 2 + 40
            rgb[..., 2] = 60
            x0, y0, x1, y1 = logo
            rgb[y0:y1, x0:x1] = (250, 250, 250)
            rgb[y0 + border:y1 - border, x0 + border:x1 - border] = (40, 60, 220)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
