"""SAM's pre/post-processing against Pillow and against segment-anything's own code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cleanfeed.engines.sam.transforms import (
    BilinearResizer,
    bilinear_taps,
    mask_to_logits,
    preprocess,
    prompt_points,
    resized_shape,
    scale_coords,
    upscale_logits,
)

# (width, height): 1080p and VGA downscales, a portrait frame, an upscale, odd and degenerate sizes.
SIZES = [(1920, 1080), (640, 480), (300, 1000), (500, 300), (1023, 1025), (17, 9), (1, 700)]


def _compare(ours: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    return int(diff.max()), float((diff == 0).mean())


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("kind", ["random", "natural"])
def test_resize_equals_pillow(width: int, height: int, kind: str, make_image: Any) -> None:
    if kind == "random":
        image = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        image = make_image(height, width, seed=width)
    new_h, new_w = resized_shape(height, width)
    reference = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    ours = BilinearResizer()(torch.from_numpy(image), (new_h, new_w)).numpy()
    assert ours.shape == reference.shape
    worst, exact = _compare(ours, reference)
    assert worst <= 1 and exact >= 0.999, f"{width}x{height} {kind}: max diff {worst}, exact {exact:.6f}"


def test_resizer_caches_taps_and_leaves_same_size_alone() -> None:
    resizer = BilinearResizer()
    image = torch.arange(2 * 1024 * 3, dtype=torch.uint8).reshape(2, 1024, 3)
    assert torch.equal(resizer(image, (2, 1024)), image.to(torch.int32))
    resizer(image, (1, 512))
    resizer(image, (1, 512))
    assert len(resizer._taps) == 2  # one per axis and size
    index, weight = bilinear_taps(1920, 1024)
    assert index.shape == weight.shape and weight.dtype == np.int32
    assert np.all(np.abs(weight.sum(axis=1) - (1 << 22)) <= weight.shape[1])  # fixed-point weights sum to ~1


def test_shapes_and_coords_as_the_package(package_reference: Any) -> None:
    transform = package_reference.ResizeLongestSide(1024)
    rng = np.random.default_rng(1)
    for height, width in [(1080, 1920), (480, 640), (1000, 300), (300, 500), (1, 5000), (333, 777), (1024, 1024)]:
        assert resized_shape(height, width) == transform.get_preprocess_shape(height, width, 1024)
        points = rng.uniform(0, max(height, width), (5, 2))
        assert np.array_equal(scale_coords(points, (height, width)), transform.apply_coords(points, (height, width)))
        boxes = rng.uniform(0, max(height, width), (1, 4))
        assert np.array_equal(
            scale_coords(boxes.reshape(2, 2), (height, width)).reshape(1, 4),
            transform.apply_boxes(boxes, (height, width)),
        )


def test_prompt_points_follow_the_package_padding() -> None:
    points = np.array([[10.0, 20.0], [30.0, 40.0]])
    coords, labels = prompt_points(points, np.array([1, 0]), None, (512, 1024))
    assert coords.dtype == np.float32 and coords.shape == (1, 3, 2)
    assert labels.tolist() == [[1.0, 0.0, -1.0]]  # points only: one padding point
    assert coords[0, :2].tolist() == [[10.0, 20.0], [30.0, 40.0]]
    coords, labels = prompt_points(points, np.array([1, 0]), (1, 2, 101, 202), (512, 1024))
    assert labels.tolist() == [[1.0, 0.0, 2.0, 3.0]]  # with a box: corners, no padding
    assert coords[0, 2:].tolist() == [[1.0, 2.0], [101.0, 202.0]]
    coords, labels = prompt_points(np.zeros((0, 2)), np.zeros(0), None, (512, 1024))
    assert coords.shape == (1, 0, 2) and labels.shape == (1, 0)  # a mask alone: no points at all


def test_preprocess_equals_package(tiny_sam: Any, make_image: Any) -> None:
    image = make_image(180, 320)
    ours, size = preprocess(torch.from_numpy(image), BilinearResizer())
    assert size == (576, 1024)
    resized = np.array(Image.fromarray(image).resize((1024, 576), Image.BILINEAR))
    reference = tiny_sam.preprocess(torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None])
    assert ours.shape == (1, 3, 1024, 1024) and ours.dtype == torch.float32
    assert torch.equal(ours, reference)
    assert torch.all(ours[..., 576:, :] == 0)


@pytest.mark.parametrize(("height", "width"), [(180, 320), (1080, 1920), (700, 300)])
def test_upscale_equals_package_postprocess(tiny_sam: Any, height: int, width: int) -> None:
    low_res = torch.randn(1, 4, 256, 256, generator=torch.Generator().manual_seed(height))
    input_size = resized_shape(height, width)
    ours = upscale_logits(low_res, input_size, (height, width))
    reference = tiny_sam.postprocess_masks(low_res, input_size, (height, width))
    assert ours.shape == (1, 4, height, width)
    assert torch.equal(ours, reference)


def test_mask_to_logits_covers_the_object() -> None:
    mask = np.zeros((180, 320), bool)
    mask[40:100, 80:200] = True
    logits = mask_to_logits(mask)
    assert logits.shape == (256, 256) and logits.dtype == np.float32
    scale = 256 / 320  # frame pixel -> low-res cell (long side 320 -> 1024 -> 256)
    assert logits[int(70 * scale), int(140 * scale)] == pytest.approx(20.0)
    assert logits[int(20 * scale), int(20 * scale)] == pytest.approx(-20.0)
    assert logits[200, 100] == pytest.approx(-20.0)  # padding below the frame
    inside = (logits > 0).sum() / (256 * 256)
    assert inside == pytest.approx(mask.mean() * (144 / 256), rel=0.05)  # the frame fills 144 of 256 rows
    with pytest.raises(ValueError, match=r"mask must be HxW, got shape \(2, 2, 2\)"):
        mask_to_logits(np.zeros((2, 2, 2)))
