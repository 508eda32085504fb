"""GrabCut segmentation: IoU from the true box, points, mask prompts, and the box fallback."""

from __future__ import annotations

import numpy as np
import pytest

from cleanfeed.engines.classical.segmenter import Segmentation, SegmenterConfig, segment
from cleanfeed.stream.testclip import SyntheticClip


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def box_mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[box[1] : box[3], box[0] : box[2]] = True
    return out


@pytest.mark.parametrize("logo", ["fixed", "scene"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_true_box_gives_iou_at_least_080(logo: str, seed: int) -> None:
    clip = SyntheticClip(480, 270, 1, logo=logo, logo_size=70, seed=seed)
    truth = clip.frame(0)
    result = segment(truth.image, box=truth.box)
    score = iou(result.mask, truth.mask)
    print(f"{logo} seed {seed}: IoU {score:.3f} (the box itself: {iou(box_mask(truth.mask.shape, truth.box), truth.mask):.3f})")
    assert result.method == "grabcut" and not result.fallback
    assert score >= 0.8
    assert score > iou(box_mask(truth.mask.shape, truth.box), truth.mask) + 0.1, "GrabCut must beat the box"
    assert result.mask.shape == truth.mask.shape and result.mask.dtype == bool


def test_box_is_refined_only_inside_the_box() -> None:
    truth = SyntheticClip(320, 180, 1, logo="scene", logo_size=60, seed=4).frame(0)
    x0, y0, x1, y1 = truth.box
    loose = (x0 - 6, y0 - 6, x1 + 6, y1 + 6)
    result = segment(truth.image, box=loose)
    assert not result.mask[~box_mask(truth.mask.shape, loose)].any()
    assert iou(result.mask, truth.mask) >= 0.75


def test_positive_points_alone_grow_a_region() -> None:
    truth = SyntheticClip(480, 270, 1, logo="scene", logo_size=80, seed=0).frame(0)
    x0, y0, x1, y1 = truth.box
    result = segment(truth.image, points=[((x0 + x1) / 2, (y0 + y1) / 2, 1)])
    assert result.method == "grabcut"
    assert iou(result.mask, truth.mask) >= 0.75


def test_points_are_sure_seeds() -> None:
    truth = SyntheticClip(480, 270, 1, logo="fixed", logo_size=80, seed=1).frame(0)
    x0, y0, x1, y1 = truth.box
    inside, outside = (x0 + 20, (y0 + y1) // 2), (x0 - 10, y1 + 10)
    result = segment(truth.image, box=(x0 - 15, y0, x1, y1 + 15), points=[(*inside, 1), (*outside, 0)])
    assert result.mask[inside[1], inside[0]]
    assert not result.mask[outside[1], outside[0]]


def test_mask_alone_is_used_as_is() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[5:9, 10:30] = 200
    result = segment(image, mask=mask)
    assert result == Segmentation(result.mask, "mask")
    np.testing.assert_array_equal(result.mask, mask > 0)


def test_mask_with_a_box_seeds_grabcut() -> None:
    truth = SyntheticClip(480, 270, 1, logo="scene", logo_size=80, seed=2).frame(0)
    rough = np.zeros_like(truth.mask)
    x0, y0, x1, y1 = truth.box
    rough[y0 + 8 : y1 - 8, x0 + 16 : x1 - 16] = True  # a rough, too small mask
    result = segment(truth.image, box=truth.box, mask=rough)
    assert result.method == "grabcut"
    assert iou(result.mask, truth.mask) > iou(rough, truth.mask) + 0.1


def test_unusable_grabcut_falls_back_to_the_box_and_says_why() -> None:
    flat = np.full((80, 100, 3), 120, np.uint8)
    result = segment(flat, box=(30, 20, 60, 50))
    assert result.method == "box" and result.fallback
    assert result.reason.startswith("grabcut kept ") and "of the box (usable: 5-98%)" in result.reason
    np.testing.assert_array_equal(result.mask, box_mask((80, 100), (30, 20, 60, 50)))


def test_fill_limits_are_configurable() -> None:
    truth = SyntheticClip(320, 180, 1, logo="fixed", logo_size=60, seed=0).frame(0)
    result = segment(truth.image, box=truth.box, config=SegmenterConfig(max_fill=0.3))
    assert result.method == "box" and "usable: 5-30%" in result.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "segment needs a box, a point or a mask"),
        ({"points": [(5, 5, 0)]}, "points must include a positive one"),
        ({"box": (200, 200, 300, 300)}, "box 200,200,300,300 must overlap the 60x40 image"),
        ({"mask": np.zeros((40, 60), bool)}, "mask prompt must not be empty"),
        ({"mask": np.ones((10, 10), bool)}, "mask must be 60x40 like the image, got 10x10"),
    ],
)
def test_bad_prompts_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        segment(np.zeros((40, 60, 3), np.uint8), **kwargs)
