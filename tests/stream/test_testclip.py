"""SyntheticClip: deterministic, textured, moving as stated, with a truthful mask and clean frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cleanfeed.errors import PropertyError
from cleanfeed.stream.testclip import SyntheticClip


def test_frames_are_deterministic_from_the_seed() -> None:
    a, b = SyntheticClip(160, 96, 5, seed=3), SyntheticClip(160, 96, 5, seed=3)
    for i in (0, 4):
        np.testing.assert_array_equal(a.frame(i).image, b.frame(i).image)
        np.testing.assert_array_equal(a.frame(i).mask, b.frame(i).mask)
    assert not np.array_equal(a.frame(0).clean, SyntheticClip(160, 96, 5, seed=4).frame(0).clean)


@pytest.mark.parametrize("logo", ["fixed", "scene"])
def test_frame_layout_and_ground_truth(logo: str) -> None:
    clip = SyntheticClip(320, 180, 3, logo=logo, logo_size=60)
    f = clip.frame(1)
    assert f.image.shape == f.clean.shape == (180, 320, 3) and f.image.dtype == f.clean.dtype == np.uint8
    assert f.mask.shape == (180, 320) and f.mask.dtype == bool
    ys, xs = np.nonzero(f.mask)
    assert f.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert 50 <= f.box[2] - f.box[0] <= 64
    np.testing.assert_array_equal(f.image[~f.mask], f.clean[~f.mask])
    changed = np.abs(f.image.astype(int) - f.clean).max(axis=2) > 0
    assert changed[f.mask].mean() > 0.9, "the logo visibly covers its mask"


def test_scene_has_texture_at_several_scales() -> None:
    grey = cv2.cvtColor(SyntheticClip(320, 180, 1, logo="none").frame(0).clean, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine = cv2.Laplacian(grey, cv2.CV_32F)
    coarse = cv2.Laplacian(cv2.resize(grey, (80, 45), interpolation=cv2.INTER_AREA), cv2.CV_32F)
    assert fine.std() > 3 and coarse.std() > 8 and grey.std() > 15


def test_pan_moves_2_to_6_px_per_frame_with_sub_pixel_positions() -> None:
    clip = SyntheticClip(480, 270, 120, motion="pan", logo="none")
    steps = [clip.motion_between(i, i + 1)[:2, 2] for i in range(119)]
    speeds = np.hypot(*np.array(steps).T)
    assert speeds.max() <= 6.05 and np.percentile(speeds, 10) >= 1.5
    assert any(abs(s[0] - round(s[0])) > 0.1 for s in steps), "sub-pixel motion"


def test_frames_agree_with_the_stated_motion() -> None:
    clip = SyntheticClip(320, 180, 12, motion="zoom", logo="none")
    a, b = clip.frame(2).clean, clip.frame(10).clean
    moved = cv2.warpPerspective(a, clip.motion_between(2, 10), (320, 180), flags=cv2.INTER_LINEAR)
    inner = (slice(40, 140), slice(60, 260))
    diff = moved[inner].astype(float) - b[inner]
    psnr = 10 * np.log10(255**2 / np.mean(diff * diff))
    assert psnr > 28, f"{psnr:.1f} dB"


def test_static_camera_gives_identical_frames() -> None:
    clip = SyntheticClip(160, 96, 4, motion="static", logo="fixed", logo_size=40)
    np.testing.assert_array_equal(clip.frame(0).image, clip.frame(3).image)


def test_fixed_logo_stays_while_scene_logo_follows_the_scene() -> None:
    fixed = SyntheticClip(320, 180, 150, logo="fixed", logo_size=50)
    assert {fixed.frame(i).box for i in (0, 70, 149)} == {fixed.frame(0).box}
    scene = SyntheticClip(320, 180, 150, logo="scene", logo_size=50)
    areas = []
    for i in range(0, 150, 7):
        f = scene.frame(i)
        x0, y0, x1, y1 = f.box
        assert 0 < x0 and 0 < y0 and x1 < 320 and y1 < 180, f"frame {i}: the sign stays inside"
        areas.append(f.mask.sum())
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
        first = scene.frame(0).box
        expected = scene.motion_between(0, i) @ np.array([(first[0] + first[2]) / 2, (first[1] + first[3]) / 2, 1.0])
        assert np.abs(expected[:2] - centre[:2]).max() <= 1.0
    assert max(areas) / min(areas) < 1.25


def test_no_logo_means_an_empty_mask() -> None:
    f = SyntheticClip(64, 48, 1, logo="none").frame(0)
    assert not f.mask.any() and f.box == (0, 0, 0, 0)
    np.testing.assert_array_equal(f.image, f.clean)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"motion": "spin"}, "clip motion must be one of pan, static, zoom, got 'spin'"),
        ({"logo": "big"}, "clip logo must be one of fixed, scene, none, got 'big'"),
        ({"logo_size": 500}, "logo_size must be 8..133 for a 160x96 clip, got 500"),
        ({"frames": 0}, "clip frames must be >= 1, got 0"),
        ({"width": 16}, "clip size must be at least 32x32, got 16x96"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs: dict, message: str) -> None:
    settings = {"width": 160, "height": 96, "frames": 3, "logo_size": 40, **kwargs}
    with pytest.raises(PropertyError, match=message):
        SyntheticClip(**settings)


def test_frame_index_out_of_range() -> None:
    with pytest.raises(IndexError, match="frame index must be 0..2, got 3"):
        SyntheticClip(64, 48, 3, logo_size=20).frame(3)
