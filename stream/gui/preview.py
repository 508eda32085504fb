"""Preview: the prompted masks tracked over the next few seconds, in this process, as a short clip.

The `track` element runs here on the frames the app already decodes; the masks on the
prompted frames are the ones on screen (the run's `segment` computes the same ones), so the
preview shows what the run will track, before committing to a whole video.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from cleanfeed.stream import registry
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.gui.overlay import paint_masks

FrameAt = Callable[[int], VideoFrame]


def track_masks(caps: Caps, frame_at: FrameAt, start: int, count: int, references: dict[int, np.ndarray],
                track_props: dict[str, Any] | None = None) -> dict[int, np.ndarray]:
    """Object-id maps (HxW uint8) of frames start..start+count-1, tracked from ``references``
    (frame -> id map of the objects prompted there; those ids restart on that frame)."""
    track = registry.create("track", dict(track_props or {}))
    track.start(caps)
    out: dict[int, np.ndarray] = {}
    try:
        for index in range(start, start + count):
            frame = frame_at(index)
            given = references.get(index)
            if given is not None:
                np.copyto(frame.mask, given)
                frame.meta["reference"] = sorted(int(i) for i in np.unique(given) if i)
            for done in track.process(frame):
                out[done.seq] = done.mask.copy()
    finally:
        track.stop()
    return out


def write_clip(path: Path, frames: list[np.ndarray], rate: Fraction) -> Path:
    """An H.264 MP4 a browser plays (yuv420p, even size, moov first) from HxWx3 uint8 RGB frames."""
    h, w = frames[0].shape[:2]
    w2, h2 = w - w % 2, h - h % 2
    with av.open(str(path), "w", container_options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.codec_context.options = {"preset": "veryfast", "crf": "23"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h2, :w2]), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def preview_clip(path: Path, caps: Caps, frame_at: FrameAt, masks: dict[int, np.ndarray]) -> Path:
    """The tracked masks painted over their frames, as a clip at the video's rate."""
    frames = [paint_masks(frame_at(i).picture.rgb(), masks[i]) for i in sorted(masks)]
    return write_clip(path, frames, caps.rate)
