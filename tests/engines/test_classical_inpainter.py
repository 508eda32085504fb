"""FlowInpainter: streaming order, quality against Telea, never copying masked pixels, bounded memory."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.inpainter import Filled, FlowInpainter, InpaintConfig
from cleanfeed.stream.testclip import SyntheticClip, psnr


def reader(image: np.ndarray) -> Callable[[regions.Box], np.ndarray]:
    return lambda box: image[box[1] : box[3], box[0] : box[2]].copy()


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def apply(image: np.ndarray, result: Filled) -> np.ndarray:
    out = image.copy()
    if result.box is not None:
        assert result.rgb is not None and result.where is not None
        view = regions.crop(out, result.box)
        np.copyto(view, result.rgb, where=result.where[..., None])
    return out


def run(images: list[np.ndarray], masks: list[np.ndarray], **config: object) -> list[np.ndarray]:
    engine = FlowInpainter(**config)
    results: list[Filled] = []
    for image, mask in zip(images, masks, strict=True):
        results += engine.push(grey(image), reader(image), mask)
    results += engine.flush()
    assert [r.index for r in results] == list(range(len(images)))
    return [apply(images[r.index], r) for r in results]


def clip_data(logo: str, motion: str = "pan", frames: int = 30, grow: int = 4, seed: int = 0):
    clip = SyntheticClip(320, 180, frames, logo=logo, motion=motion, logo_size=50, seed=seed)
    truths = [clip.frame(i) for i in range(frames)]
    masks = [cv2.dilate(t.mask.view(np.uint8), regions.ellipse(grow)) for t in truths]
    return truths, masks


def test_streams_in_order_with_a_lookahead_of_w() -> None:
    truths, masks = clip_data("fixed", frames=12)
    engine = FlowInpainter(window=3)
    assert engine.lookahead == 3
    emitted = []
    for i, (t, m) in enumerate(zip(truths, masks, strict=True)):
        out = engine.push(grey(t.image), reader(t.image), m)
        emitted += [r.index for r in out]
        assert len(emitted) == max(0, i + 1 - 3), f"after frame {i}"
        assert engine.pending == min(i + 1, 3)
    emitted += [r.index for r in engine.flush()]
    assert emitted == list(range(12))
    assert engine.pending == 0


def test_memory_is_bounded_by_the_window() -> None:
    truths, masks = clip_data("fixed", frames=20)
    engine = FlowInpainter(window=2)
    for t, m in zip(truths, masks, strict=True):
        engine.push(grey(t.image), reader(t.image), m)
        assert len(engine._records) <= 2 * 2 + 1
        cached = [r for r in engine._records if r.cache is not None]
        assert all(r.cache.shape[0] * r.cache.shape[1] < 160 * 120 for r in cached), "region crops, not frames"


def test_pan_with_a_fixed_logo_beats_telea_by_far() -> None:
    truths, masks = clip_data("fixed")
    images = [t.image for t in truths]
    ours = run(images, masks, window=5)
    ours_db = np.mean([psnr(o, t.clean, m > 0) for o, t, m in zip(ours, truths, masks, strict=True)])
    telea = [cv2.inpaint(t.image, m, 5, cv2.INPAINT_TELEA) for t, m in zip(truths, masks, strict=True)]
    telea_db = np.mean([psnr(o, t.clean, m > 0) for o, t, m in zip(telea, truths, masks, strict=True)])
    print(f"PSNR in the mask: propagate {ours_db:.2f} dB, telea {telea_db:.2f} dB")
    assert ours_db >= telea_db + 8


def test_only_hole_pixels_change() -> None:
    truths, masks = clip_data("scene", frames=8)
    ours = run([t.image for t in truths], masks, window=2)
    for out, t, m in zip(ours, truths, masks, strict=True):
        np.testing.assert_array_equal(out[m == 0], t.image[m == 0])
        assert np.abs(out[m > 0].astype(int) - t.image[m > 0]).mean() > 10, "the logo is gone"


def test_masked_pixels_are_never_copied() -> None:
    """Static camera, static logo: no frame shows what is behind it, so all of it is spatial."""
    truths, masks = clip_data("fixed", motion="static", frames=8)
    engine = FlowInpainter(window=3)
    results: list[Filled] = []
    for t, m in zip(truths, masks, strict=True):
        results += engine.push(grey(t.image), reader(t.image), m)
    results += engine.flush()
    for r in results:
        assert r.counts["propagated"] == 0 and r.counts["carried"] == 0
        assert r.counts["spatial"] == int((masks[r.index] > 0).sum())
        telea = cv2.inpaint(truths[r.index].image, masks[r.index], 5, cv2.INPAINT_TELEA)
        hole = masks[r.index] > 0
        assert np.abs(apply(truths[r.index].image, r)[hole].astype(int) - telea[hole]).max() <= 2


def test_brightness_changes_between_frames_are_matched() -> None:
    truths, masks = clip_data("fixed", frames=24)
    gains = [1.0 + 0.12 * (-1) ** i for i in range(24)]
    images = [np.clip(t.image * g, 0, 255).astype(np.uint8) for t, g in zip(truths, gains, strict=True)]
    cleans = [np.clip(t.clean * g, 0, 255).astype(np.uint8) for t, g in zip(truths, gains, strict=True)]
    ours = run(images, masks, window=4)
    ours_db = np.mean([psnr(o, c, m > 0) for o, c, m in zip(ours, cleans, masks, strict=True)])
    telea_db = np.mean([psnr(cv2.inpaint(i, m, 5, cv2.INPAINT_TELEA), c, m > 0)
                        for i, c, m in zip(images, cleans, masks, strict=True)])
    print(f"exposure flicker: propagate {ours_db:.2f} dB, telea {telea_db:.2f} dB")
    assert ours_db >= telea_db + 5


def test_frames_without_a_mask_pass_through_in_order() -> None:
    truths, masks = clip_data("fixed", frames=10)
    masks = [m if i % 3 else np.zeros_like(m) for i, m in enumerate(masks)]
    engine = FlowInpainter(window=2)
    results: list[Filled] = []
    for t, m in zip(truths, masks, strict=True):
        results += engine.push(grey(t.image), reader(t.image), m)
    results += engine.flush()
    assert [r.index for r in results] == list(range(10))
    for r in results:
        assert (r.box is None) == (r.index % 3 == 0)


@pytest.mark.parametrize(("config", "flag"), [({"method": "telea"}, cv2.INPAINT_TELEA),
                                              ({"method": "ns"}, cv2.INPAINT_NS),
                                              ({"window": 0}, cv2.INPAINT_TELEA)])
def test_spatial_methods_match_cv2_inpaint_with_no_delay(config: dict, flag: int) -> None:
    truths, masks = clip_data("scene", frames=3)
    engine = FlowInpainter(**config)
    assert engine.lookahead == 0
    for t, m in zip(truths, masks, strict=True):
        (result,) = engine.push(grey(t.image), reader(t.image), m)
        expected = cv2.inpaint(t.image, m, 5, flag)
        np.testing.assert_array_equal(apply(t.image, result)[m > 0], expected[m > 0])


def test_aligned_boxes_for_420_pictures() -> None:
    truths, masks = clip_data("scene", frames=6)
    engine = FlowInpainter(window=2, align=2)
    asked: list[regions.Box] = []

    def even_reader(image: np.ndarray) -> Callable[[regions.Box], np.ndarray]:
        def read(box: regions.Box) -> np.ndarray:
            asked.append(box)
            return image[box[1] : box[3], box[0] : box[2]].copy()
        return read

    results: list[Filled] = []
    for t, m in zip(truths, masks, strict=True):
        results += engine.push(grey(t.image), even_reader(t.image), m)
    results += engine.flush()
    boxes = asked + [r.box for r in results if r.box is not None]
    assert boxes and all(v % 2 == 0 for box in boxes for v in box)


def test_reader_returning_the_wrong_shape_is_an_error() -> None:
    truths, masks = clip_data("fixed", frames=1)
    engine = FlowInpainter(window=0)
    with pytest.raises(ValueError, match=r"region reader must return \(\d+, \d+, 3\) uint8 RGB for box"):
        engine.push(grey(truths[0].image), lambda box: np.zeros((2, 2, 3), np.uint8), masks[0])


def test_frame_size_must_not_change() -> None:
    engine = FlowInpainter(window=1)
    engine.push(np.zeros((20, 30), np.uint8), lambda b: np.zeros((b[3] - b[1], b[2] - b[0], 3), np.uint8),
                np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match="frame and mask must be 30x20 like the first frame, got 40x20 and 40x20"):
        engine.push(np.zeros((20, 40), np.uint8), lambda b: np.zeros((1, 1, 3), np.uint8), np.zeros((20, 40), np.uint8))


def test_config_errors_name_the_rule() -> None:
    with pytest.raises(ValueError, match="inpaint method must be one of propagate, telea, ns, got 'blur'"):
        InpaintConfig(method="blur")
    with pytest.raises(ValueError, match="inpaint window must be 0..100, got -1"):
        InpaintConfig(window=-1)


def test_region_geometry() -> None:
    assert regions.grow((10, 10, 20, 20), 5, 24, 100) == (5, 5, 24, 25)
    assert regions.clamp((3, 5, 9, 11), 100, 100, align=2) == (2, 4, 10, 12)
    assert regions.clamp((-4, -4, 7, 7), 7, 7, align=2) == (0, 0, 7, 7)
    assert regions.mask_box(np.zeros((4, 4), bool)) is None
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert regions.mask_box(mask) == (3, 2, 9, 5)
    assert regions.map_box((0, 0, 10, 10), regions.translation(2.5, -1.0)) == (2, -1, 13, 9)
    assert regions.union(None, (1, 2, 3, 4)) == (1, 2, 3, 4)
    assert regions.contains((0, 0, 10, 10), (2, 2, 10, 10)) and not regions.contains((0, 0, 10, 10), (2, 2, 11, 10))
