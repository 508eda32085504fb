"""The synthetic shot (cleanfeed.stream.testclip) written as an H.264 file, for the benches that serve or load one."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from cleanfeed.stream.testclip import SyntheticClip


def encode_clip(clip: SyntheticClip, path: Path, rate: int, options: dict[str, str],
                container: str | None = None) -> Path:
    """Every frame of ``clip`` at ``rate`` fps through libx264 with ``options`` (preset, crf, g, ...)."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        stream.codec_context.options = options
        for i in range(len(clip)):
            frame = av.VideoFrame.from_ndarray(clip.frame(i).image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
