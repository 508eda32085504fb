"""Picture.thumbnail: the colour summary shot cuts are told from, without a full-frame RGB conversion."""

from __future__ import annotations

import cv2
import numpy as np

from cleanfeed.stream.picture import Picture


def test_a_yuv_thumbnail_matches_the_rgb_frame_shrunk():
    # smooth colours: a saturated texture clips in RGB, so the mean of converted pixels and the conversion
    # of the mean part (a summary need not care)
    rng = np.random.default_rng(0)
    rgb = cv2.GaussianBlur(rng.integers(40, 220, (360, 640, 3)).astype(np.uint8), (0, 0), 8)
    expected = cv2.resize(rgb, (96, 54), interpolation=cv2.INTER_AREA).astype(np.int16)
    for pix_fmt in ("yuv420p", "rgb24"):
        thumb = Picture.from_rgb(rgb, pix_fmt).thumbnail(96, 54)
        assert thumb.shape == (54, 96, 3) and thumb.dtype == np.uint8
        # the 4:2:0 round trip costs colour detail, not the summary
        assert np.abs(thumb.astype(np.int16) - expected).mean() < 1.5
