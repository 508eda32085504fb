"""The sliding schedules and region mode, with models whose answer is known.

The oracle model fills each hole pixel with the mean of the window's frames where that pixel is
not a hole (a hole is exactly 0 in every channel: no uint8 value maps to 0 in [-1, 1]). On a
static scene with a moving mask, any schedule that gives the model the right frames recovers the
background exactly (up to test.py's truncation to uint8: 1 level), and the oracle is per pixel,
so region mode must give exactly what the whole frame gives.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cleanfeed.engines.e2fgvi.regions import Box, SparseMask, window_region  # noqa: E402
from cleanfeed.engines.e2fgvi.schedule import SlidingConfig  # noqa: E402
from cleanfeed.engines.e2fgvi.sliding import SlidingInpainter, past_references  # noqa: E402
from cleanfeed.engines.e2fgvi.windows import MULTIPLE, dilate_mask  # noqa: E402

H, W = 240, 432


class Oracle:
    """Per-pixel mean of the window's visible frames; records every call's shape."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, masked: torch.Tensor, local: int) -> tuple[torch.Tensor, None]:
        frames = masked[0]
        self.calls.append(tuple(frames.shape))
        visible = (frames != 0).any(dim=1, keepdim=True).float()
        total = (frames * visible).sum(0, keepdim=True)
        count = visible.sum(0, keepdim=True)
        mean = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
        return mean.expand_as(frames).clone(), None


def scene(count: int, size: int = 40, speed: int = 6, height: int = H, width: int = W) -> tuple[np.ndarray, list[np.ndarray]]:
    """A static textured background and a square mask moving right ``speed`` px per frame."""
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([(xx * 3 + yy) % 200 + 20, (yy * 5) % 180 + 40, (xx + yy * 2) % 150 + 60], -1).astype(np.uint8)
    masks = []
    for i in range(count):
        m = np.zeros((height, width), np.uint8)
        x0 = 30 + speed * i
        m[90:90 + size, x0:x0 + size] = 1
        masks.append(m)
    return background, masks


def run(config: SlidingConfig, background: np.ndarray, masks: list[np.ndarray], model=None) -> tuple[list[np.ndarray], SlidingInpainter, list]:
    model = model or Oracle()
    height, width = background.shape[:2]
    engine = SlidingInpainter(model, config, height, width)
    out: dict[int, np.ndarray] = {}
    timeline = []

    def take(patches) -> None:
        for p in patches:
            frame = background.copy()
            frame[masks[p.index] > 0] = 0  # the object: what must be painted out
            if p.box is not None:
                np.copyto(frame[p.box.slices], p.rgb, where=p.where[..., None])
            out[p.index] = frame

    for i, m in enumerate(masks):
        frame = background.copy()
        frame[m > 0] = 0
        patches = engine.push(frame, m)
        timeline.append((i, [p.index for p in patches]))
        take(patches)
    take(engine.finish())
    return [out[i] for i in range(len(masks))], engine, timeline


@pytest.mark.parametrize("mode", ["stream", "offline"])
def test_static_background_is_recovered_behind_a_moving_mask(mode: str) -> None:
    background, masks = scene(23, speed=12)  # every hidden pixel shows within 4 frames either side
    out, engine, _ = run(SlidingConfig(mode, region="full"), background, masks)
    for i, frame in enumerate(out):
        diff = np.abs(frame.astype(int) - background.astype(int))
        assert diff.max() <= 1, f"frame {i}: {diff.max()}"
    assert engine.windows_run == 5  # centres 0, 5, 10, 15, 20


def test_stream_frames_leave_within_the_lookahead_in_order_with_constant_memory() -> None:
    background, masks = scene(61, speed=3)
    config = SlidingConfig("stream", neighbor_stride=4, ref_step=7, num_ref=2, region="full")
    _, engine, timeline = run(config, background, masks)
    emitted = [j for _, out in timeline for j in out]
    assert emitted == list(range(len(emitted)))  # in order, each once
    for i, out in timeline:
        for j in out:
            assert i - j <= config.lookahead
        if i >= 2 * config.neighbor_stride:
            assert emitted.count(i - config.lookahead) == 1
    # frames kept: the window (2*4+1), the not yet emitted ones inside it, 2 references
    assert len(engine.store) <= 2 * config.neighbor_stride + 1 + 2 + 1


def test_stream_references_come_from_the_past_only() -> None:
    background, masks = scene(50, speed=2)
    seen = []
    engine = SlidingInpainter(Oracle(), SlidingConfig("stream", 5, 10, 3, "full"), H, W,
                              on_window=lambda w, region, out: seen.append(w))
    for m in masks:
        engine.push(background, m)
    list(engine.finish())
    assert [w.center for w in seen] == list(range(0, 50, 5))
    for w in seen:
        assert all(r < w.neighbors[0] and r % 10 == 0 for r in w.references)
        assert len(w.references) == min(3, (w.neighbors[0] + 9) // 10)
    assert seen[-1].references == (10, 20, 30)  # window 40..49
    assert past_references(0, 5, 10, 3) == () and past_references(16, 5, 10, 3) == (0, 10)


def test_region_mode_gives_the_whole_frames_answer_on_a_fraction_of_the_pixels() -> None:
    background, masks = scene(17, size=30, speed=4, height=480, width=864)
    full_model, region_model = Oracle(), Oracle()
    full, full_engine, _ = run(SlidingConfig("stream", region="full"), background, masks, full_model)
    crop, crop_engine, _ = run(SlidingConfig("stream", region="auto", margin=32), background, masks, region_model)
    for a, b in zip(full, crop, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(shape[-2:] == (480, 864) for shape in full_model.calls)
    for shape in region_model.calls:
        assert shape[-2] % MULTIPLE[0] == 0 and shape[-1] % MULTIPLE[1] == 0
        assert shape[-2] * shape[-1] <= 0.25 * 480 * 864
    assert crop_engine.pixels_run < full_engine.pixels_run / 4


def test_windows_without_masks_are_skipped_and_frames_pass_untouched() -> None:
    background, masks = scene(20)
    for m in masks[:12]:
        m[:] = 0
    model = Oracle()
    out, engine, _ = run(SlidingConfig("offline", region="full"), background, masks, model)
    assert engine.windows_skipped == 2 and engine.windows_run == 2  # centres 0 and 5 see no mask
    for frame in out[:12]:
        np.testing.assert_array_equal(frame, background)


def test_window_region_grows_to_the_models_multiples_with_real_pixels() -> None:
    mask = np.zeros((1080, 1920), np.uint8)
    mask[100:200, 1800:1900] = 1
    region = window_region([SparseMask.of(dilate_mask(mask))], margin=64)
    assert region is not None and region.height % 60 == 0 and region.width % 108 == 0
    assert region.contains(Box(100 - 64, 1800 - 64, 200 + 64, 1900 + 20)) and region.x1 == 1920  # clamped, not padded
    assert window_region([SparseMask.of(np.zeros((50, 60), np.uint8))], margin=8) is None
    big = np.ones((240, 432), np.uint8)
    assert window_region([SparseMask.of(big)], margin=0) == Box(0, 0, 240, 432)  # most of the frame: whole frame


def test_bad_settings_are_refused_with_the_rule() -> None:
    with pytest.raises(ValueError, match="mode must be one of offline, stream, got 'live'"):
        SlidingConfig("live")
    with pytest.raises(ValueError, match="neighbor_stride must be at least 1, got 0"):
        SlidingConfig(neighbor_stride=0)
    engine = SlidingInpainter(Oracle(), SlidingConfig(), 60, 108)
    with pytest.raises(ValueError, match="frames must be 60x108 RGB"):
        engine.push(np.zeros((60, 100, 3), np.uint8), np.zeros((60, 100), np.uint8))
