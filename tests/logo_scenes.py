"""Small H.264 clips with a drawn sponsor logo on chosen frames, and the logo's PNG, for the finder's CLI tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from cleanfeed.stream import testlogo


def write_logo_png(path: Path, width: int = 160, height: int = 100, variant: int = 0) -> Path:
    rgb, alpha = testlogo.emblem(width, height, variant)
    cv2.imwrite(str(path), np.dstack([rgb[..., ::-1], alpha]))
    return path


def write_scene_clip(path: Path, on: set[int], *, frames: int = 16, width: int = 640, height: int = 360,
                     logo: tuple[int, int] = (160, 100), rate: int = 25) -> Path:
    """A panning textured scene; on the frames in ``on`` the logo moves across it, growing and turning."""
    rgb, alpha = testlogo.emblem(*logo)
    scene = testlogo.textured_background(width + 4 * frames, height, seed=21)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "16"}
        stream.codec_context.time_base = Fraction(1, rate)
        for i in range(frames):
            frame = np.ascontiguousarray(scene[:, 4 * i:4 * i + width])
            if i in on:
                place = testlogo.placement(logo[0], logo[1], (200 + 12 * i, 170 + 3 * i), 0.9 + 0.03 * i, angle_deg=-10 + 2 * i)
                testlogo.composite(frame, rgb, alpha, place)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
