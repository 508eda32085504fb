"""The static-overlay matte estimator, un-blending and the fixed fill (issue 17), on synthetic composites."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.matte import estimate_matte, load_matte
from cleanfeed.engines.classical.smoothfill import SmoothFill
from cleanfeed.engines.classical.unblend import Unblender
from cleanfeed.errors import PromptError

H, W, R = 48, 64, 8  # crop size, ring width


def scene(t: int, moving: bool, seed: int = 0) -> np.ndarray:
    """T x H x W x 3 float32: a smooth random texture panning 2 px per frame (or standing still)."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (H + 8, W + 2 * t + 8, 3)).astype(np.float32), (0, 0), 5.0)
    big = (big - big.mean()) * 3 + 110
    return np.clip(np.stack([big[4:4 + H, 4 + (2 * i if moving else 0):4 + (2 * i if moving else 0) + W]
                             for i in range(t)]), 0, 255).astype(np.float32)


def logo_cover() -> np.ndarray:
    img = np.zeros((H * 4, W * 4), np.uint8)
    cv2.ellipse(img, (W * 2, H * 2), (W * 2 - 4 * R - 8, H * 2 - 4 * R - 8), 0, 0, 360, 255, -1)
    cv2.putText(img, "TV", (W * 2 - 50, H * 2 + 20), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 0, 8)
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def composite(bg: np.ndarray, opacity: float, colour: float) -> tuple[np.ndarray, np.ndarray]:
    a = opacity * logo_cover()
    comp = np.clip(a[None, ..., None] * colour + (1 - a[None, ..., None]) * bg + 0.5, 0, 255).astype(np.uint8)
    return comp, a


def inbox() -> np.ndarray:
    box = np.zeros((H, W), bool)
    box[R:-R, R:-R] = True
    return box


@pytest.mark.parametrize("moving", [True, False])
@pytest.mark.parametrize("opacity,colour", [(0.6, 235.0), (1.0, 235.0), (0.6, 15.0)])
def test_estimator_recovers_a_known_matte(moving: bool, opacity: float, colour: float) -> None:
    comp, truth = composite(scene(25, moving), opacity, colour)
    m = estimate_matte(comp, inbox(), (0, 0, W, H), (W, H))
    assert m.present, m.why
    assert abs(m.a0 - opacity) <= 0.1
    assert np.abs(m.alpha - truth).mean() <= 0.03  # mean over the crop
    assert np.abs(m.colour - colour).max() <= 20
    support = truth > 0.02
    iou = ((m.alpha > 0) & support).sum() / ((m.alpha > 0) | support).sum()
    assert iou >= 0.85


@pytest.mark.parametrize("moving", [True, False])
def test_unblending_recovers_the_scene_under_a_translucent_bug(moving: bool) -> None:
    bg = scene(30, moving, seed=3)
    comp, truth = composite(bg, 0.6, 235.0)
    m = estimate_matte(comp[:25], inbox(), (0, 0, W, H), (W, H))
    remove = Unblender(m.alpha, m.colour)
    assert not remove.hole.any(), "a 60% bug is un-blended, nothing invented"
    core = truth > 0.3
    errors = [np.abs(remove(f).astype(np.float32) - b)[core].mean() for f, b in zip(comp, bg, strict=True)]
    assert max(errors) <= 8.0, errors  # the issue asks for a few levels: not reached yet


def test_fill_of_a_static_background_is_identical_frame_to_frame() -> None:
    bg = scene(1, False)[0]
    frames = [np.clip(bg + 0.0, 0, 255).astype(np.uint8) for _ in range(5)]
    comp = [composite(f[None].astype(np.float32), 1.0, 235.0)[0][0] for f in frames]
    m = estimate_matte(np.stack(comp * 3), inbox(), (0, 0, W, H), (W, H))
    remove = Unblender(m.alpha, m.colour)
    outs = [remove(c) for c in comp]
    assert remove.hole.any()
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    fill = SmoothFill(inbox(), "biharmonic")
    assert np.array_equal(fill(frames[0]), fill(frames[1]))


def test_a_box_with_no_static_overlay_says_so() -> None:
    m = estimate_matte(scene(25, True, seed=5).astype(np.uint8), inbox(), (0, 0, W, H), (W, H))
    assert not m.present and m.why


def test_element_warns_once_and_passes_the_box_on(caplog: pytest.LogCaptureFixture) -> None:
    from fractions import Fraction

    from cleanfeed.stream.buffers import Caps, VideoFrame
    from cleanfeed.stream.picture import Picture
    from cleanfeed.stream.registry import create

    el = create("logo", {"box": (R, R, W - R, H - R), "learn": 5})
    el.start(Caps(W, H, Fraction(25), Fraction(1, 25), pix_fmt="rgb24"))
    out = []
    with caplog.at_level(logging.WARNING):
        for i, f in enumerate(scene(8, True, seed=7).astype(np.uint8)):
            out += el.process(VideoFrame.new(i, i, Fraction(1, 25), Picture.from_rgb(f)))
        out += el.flush()
    assert [f.seq for f in out] == list(range(8))
    assert sum("no static overlay" in r.getMessage() for r in caplog.records) == 1
    assert all(f.mask[R:H - R, R:W - R].all() for f in out)


def test_matte_file_round_trip_and_one_line_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    comp, _ = composite(scene(25, True), 0.6, 235.0)
    m = estimate_matte(comp, inbox(), (0, 0, W, H), (W, H))
    path = tmp_path / "bug.npz"
    m.save(str(path))
    back = load_matte(str(path), (W, H))
    assert np.array_equal(back.alpha, m.alpha.astype(np.float32))
    with pytest.raises(PromptError) as err:
        load_matte(str(path), (W * 2, H))
    assert "\n" not in str(err.value) and "made for" in str(err.value)
    np.savez(tmp_path / "other.npz", alpha=np.zeros((3, 3)))
    other = tmp_path / "other.npz"
    (tmp_path / "text.npz").write_text("not a matte")
    for bad in (other, tmp_path / "text.npz", tmp_path / "missing.npz"):
        with pytest.raises(PromptError) as err:
            load_matte(str(bad))
        assert "\n" not in str(err.value)


def two_colour(bg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An opaque blue disc carrying white text, keyed over ``bg``: most real channel bugs have
    more than one colour. Returns the composite, the disc's coverage and the text's."""
    disc = np.zeros((H * 4, W * 4), np.uint8)
    cv2.ellipse(disc, (W * 2, H * 2), (W * 2 - 4 * R - 8, H * 2 - 4 * R - 8), 0, 0, 360, 255, -1)
    text = np.zeros_like(disc)
    cv2.putText(text, "TV", (W * 2 - 50, H * 2 + 20), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 8)
    d = cv2.resize(disc, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    t = cv2.resize(text, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    blue, white = np.array([20.0, 40.0, 200.0]), np.array([240.0, 240.0, 240.0])
    comp = d * (t * white + (1 - t) * blue) + (1 - d) * bg
    return np.clip(comp + 0.5, 0, 255).astype(np.uint8), d[..., 0], t[..., 0]


def test_a_multi_coloured_opaque_bug_is_removed_whole() -> None:
    bg = scene(25, True, seed=11)
    comp, disc, _ = two_colour(bg)
    m = estimate_matte(comp, inbox(), (0, 0, W, H), (W, H))
    assert m.present, m.why
    core = disc > 0.98
    assert m.support[core].mean() >= 0.95, "the blue disc is part of the bug, not only the white text"
    assert m.a0 >= 0.85, f"an opaque bug (opacity {m.a0:.2f}): its other colour is not the scene next to its text"
    remove = Unblender(m.alpha, m.colour, solid=m.solid)
    assert remove.where[core].all()
    outside = cv2.dilate((disc > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    assert not remove.where[outside & inbox()].any(), "nothing of the scene around the bug is touched"


def test_thick_parts_keep_discs_and_drop_strokes() -> None:
    from cleanfeed.engines.classical.regions import thick_parts

    mask = np.zeros((40, 60), bool)
    mask[5:9, 2:50] = True  # a 4-px stroke
    cv2.circle(mask.view(np.uint8), (30, 26), 10, 1, -1)
    thick = thick_parts(mask, 3)
    assert thick[26, 30] and not thick[7, 5]
    assert thick.sum() == (mask[14:, :]).sum()


def run_logo(frames: np.ndarray, props: dict) -> list:  # type: ignore[type-arg]
    from fractions import Fraction

    from cleanfeed.stream.buffers import Caps, VideoFrame
    from cleanfeed.stream.picture import Picture
    from cleanfeed.stream.registry import create

    el = create("logo", {"box": (R, R, W - R, H - R), "learn": 5, **props})
    el.start(Caps(W, H, Fraction(25), Fraction(1, 25), pix_fmt="rgb24"))
    out = []
    for i, f in enumerate(frames):
        out += el.process(VideoFrame.new(i, i, Fraction(1, 25), Picture.from_rgb(f)))
    return out + el.flush()


def test_in_the_default_chain_a_box_without_a_bug_is_left_to_segment_and_track() -> None:
    frames = scene(8, True, seed=7).astype(np.uint8)
    out = run_logo(frames, {"absent": "pass"})
    assert [f.seq for f in out] == list(range(8))
    assert all(not f.mask.any() and "fixed" not in f.meta for f in out)
    assert all(np.array_equal(f.picture.rgb(), src) for f, src in zip(out, frames, strict=True))


def test_a_found_bug_is_marked_so_segment_and_dilate_leave_it_alone() -> None:
    from fractions import Fraction

    from cleanfeed.stream.buffers import Caps
    from cleanfeed.stream.registry import create

    comp, disc, _ = two_colour(scene(25, True, seed=11))
    out = run_logo(comp, {"absent": "pass"})
    assert all(f.meta.get("fixed") == [1] for f in out)
    masked = [f for f in out if f.mask.any()]  # the disc is thick: left to inpaint's propagation
    assert masked and all(f.meta.get("exact_ids") == [1] for f in masked)
    before = masked[0].mask.copy()
    dilate = create("dilate", {"pixels": 8})
    assert np.array_equal(dilate.process(masked[0])[0].mask, before), "an exact mask is not grown"
    seg = create("segment", {"box": (R, R, W - R, H - R), "engine": "classical"})
    seg.start(Caps(W, H, Fraction(25), Fraction(1, 25), pix_fmt="rgb24"))
    first = seg.process(out[0])[0]
    assert "segment" not in first.meta and np.array_equal(first.mask, out[0].mask)


def test_a_translucent_bug_over_a_still_smooth_sky_is_filled_not_unblended() -> None:
    """Un-blending amplifies the keyed frames' 8-bit rounding 2.5x at 60 %; over a smooth, still
    background a fill from the border is closer, and the estimator measures that and says so."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sky = np.stack([140 + 0.8 * xx + 0.5 * yy, 170 + 0.4 * xx, 210 - 0.3 * yy], axis=-1)
    comp, truth = composite(np.repeat(sky[None], 25, axis=0), 0.6, 30.0)
    m = estimate_matte(comp, inbox(), (0, 0, W, H), (W, H))
    assert m.present and m.why == "static"
    remove = Unblender(m.alpha, m.colour, solid=m.solid)
    core = truth > 0.3
    assert remove.hole[core].all(), "filled from the border"
    assert np.abs(remove(comp[0]).astype(np.float32) - sky)[core].mean() <= 1.0
    textured, _ = composite(scene(25, False, seed=3), 0.6, 235.0)
    kept = estimate_matte(textured, inbox(), (0, 0, W, H), (W, H))
    kept_hole = Unblender(kept.alpha, kept.colour, solid=kept.solid).hole
    assert kept_hole.sum() <= 0.05 * (kept.alpha > 0).sum(), "a textured scene is un-blended, not filled"


def test_over_a_still_scene_the_support_keeps_the_faint_rim_that_shows() -> None:
    """A dark bug over a bright still sky changes its 1-3 % covered anti-aliased rim by several
    levels: those pixels are the bug's (removed, not left as a halo), while the sky around it, which
    the bug does not touch, is left alone."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sky = np.stack([190 + 0.4 * xx + 0.3 * yy, 200 + 0.2 * xx, 215 - 0.2 * yy], axis=-1)
    comp, truth = composite(np.repeat(sky[None], 25, axis=0), 1.0, 20.0)
    m = estimate_matte(comp, inbox(), (0, 0, W, H), (W, H))
    assert m.present and m.why == "static"
    effect = truth * np.abs(sky - 20.0).mean(axis=-1)
    shows = effect >= 2.0
    assert (shows & (truth < 0.05)).any(), "the scene has a faint rim to find"
    assert m.support[shows].all(), f"{int((shows & ~m.support).sum())} rim pixels left out"
    assert not (m.support & (regions.grow_mask(truth > 0, 2) == 0)).any(), "the sky beyond the rim is not the bug"
    remove = Unblender(m.alpha, m.colour, solid=m.solid)
    out = remove(comp[0]).astype(np.float32)
    assert np.abs(out - sky)[shows].max() <= 3.0, "nothing of the rim is left"
