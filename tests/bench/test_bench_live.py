"""cleanfeed.bench.live's scoring: the verdict "no frame aired the logo" must be able to fail, also
when a restarted server serves the clip again (--kill-at), where output frame i is not clip frame i."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from cleanfeed.bench.live import coverage
from cleanfeed.stream.testclip import SyntheticClip


def _write(path: Path, images: list[np.ndarray]) -> Path:
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        height, width = images[0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "12"}
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_restarted_stream_is_scored_frame_by_frame_against_what_it_shows(tmp_path: Path) -> None:
    clip = SyntheticClip(320, 192, frames=12, rate=25, logo="fixed", logo_size=64, seed=3)
    # the first session's frames 0-5, frame 5 repeated through the outage, then the clip from its start;
    # every frame cleaned (the truth) but two of the second session, which air the logo
    order = [0, 1, 2, 3, 4, 5, 5, 5, 0, 1, 2, 3, 4, 5, 6, 7]
    aired = {10, 13}
    images = [clip.frame(i).image if n in aired else clip.frame(i).clean for n, i in enumerate(order)]
    out = _write(tmp_path / "out.ts", images)
    matched = coverage(clip, out, match=True)
    assert matched["frames_decoded"] == len(order)
    assert matched["uncovered_frames"] == 2 and matched["first_uncovered"] == sorted(aired), matched
    assert matched["clip_restarts_seen"] == 1
    # scored by position instead, the restarted frames would be compared with the wrong clip frames
    by_position = _write(tmp_path / "clean.ts", [clip.frame(i).clean for i in order])
    assert coverage(clip, by_position, match=True)["uncovered_frames"] == 0
    assert coverage(clip, by_position)["worst_clean_to_logo_ratio"] > coverage(clip, by_position, match=True)[
        "worst_clean_to_logo_ratio"]
