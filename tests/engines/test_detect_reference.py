"""Logo references: read once, checked, and every bad one refused in one line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cleanfeed.engines.detect.cuts import CutDetector
from cleanfeed.engines.detect.reference import check_fits, load_reference
from cleanfeed.errors import ReferenceImageError
from cleanfeed.stream import testlogo


def test_png_alpha_becomes_the_mask_and_the_crop(tmp_path):
    rgb, alpha = testlogo.emblem(120, 80)
    canvas = np.zeros((200, 300, 4), np.uint8)
    canvas[50:130, 100:220, :3] = rgb[..., ::-1]
    canvas[50:130, 100:220, 3] = alpha
    cv2.imwrite(str(tmp_path / "logo.png"), canvas)
    ref = load_reference(str(tmp_path / "logo.png"))
    assert ref.size == (120, 80)
    assert not ref.mask[0, 0] and ref.mask[40, 60]  # the rounded corner is not logo
    np.testing.assert_array_equal(ref.rgb[40, 60], rgb[40, 60])


@pytest.mark.parametrize("content, rule", [
    (None, "no such file"),
    (b"", "unreadable"),
    (b"not an image at all", "unreadable"),
    ("transparent", "fully transparent"),
    ("tiny", "at least 8x8"),
])
def test_bad_references_are_one_line_errors(tmp_path, content, rule):
    path = tmp_path / "logo.png"
    if content == "transparent":
        cv2.imwrite(str(path), np.zeros((50, 50, 4), np.uint8))
    elif content == "tiny":
        cv2.imwrite(str(path), np.full((4, 30, 3), 200, np.uint8))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ReferenceImageError, match=rule) as err:
        load_reference(str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_reference_larger_than_the_frame_is_refused(tmp_path):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), testlogo.emblem(400, 300)[0])
    ref = load_reference(str(path))
    check_fits(ref, 640, 360, 0.4)  # fits at 0.4x
    with pytest.raises(ReferenceImageError, match="must fit in the 120x80 frame"):
        check_fits(ref, 120, 80, 0.4)


def test_cuts_are_told_from_motion():
    scene = testlogo.textured_background(800, 450, 1)
    other = (testlogo.textured_background(800, 450, 2) * [0.5, 0.7, 1.0]).astype(np.uint8)  # another shot, other light
    cuts = CutDetector()
    flags = [cuts.is_cut(scene[:, i * 6:i * 6 + 640].copy()) for i in range(10)]  # a pan
    flags += [cuts.is_cut(other[:, i * 6:i * 6 + 640].copy()) for i in range(5)]
    assert flags == [True] + [False] * 9 + [True] + [False] * 4
