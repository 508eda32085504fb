"""The logo finder on synthetic frames: a drawn emblem placed by a known homography on a busy scene."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cleanfeed.engines.detect.finder import KEYPOINTS, TEMPLATE, LogoFinder
from cleanfeed.engines.detect.reference import reference_from_array
from cleanfeed.stream import testlogo

W, H = 1280, 720


@pytest.fixture(scope="module")
def emblem():
    rgb, alpha = testlogo.emblem(240, 150)
    return rgb, alpha, LogoFinder([reference_from_array(rgb, alpha >= 128, "emblem")])


def _frame(rgb, alpha, seed, **place):
    frame = testlogo.textured_background(W, H, seed)
    support = testlogo.composite(frame, rgb, alpha, testlogo.placement(rgb.shape[1], rgb.shape[0], **place))
    return frame, support


@pytest.mark.parametrize("place", [
    dict(centre=(400, 300), scale=0.5),
    dict(centre=(640, 360), scale=2.0),
    dict(centre=(800, 400), scale=1.0, angle_deg=25),
    dict(centre=(500, 420), scale=1.2, angle_deg=-10, tilt=0.35),
], ids=["half", "double", "rotated25", "perspective"])
def test_finds_the_logo_and_covers_its_pixels(emblem, place):
    rgb, alpha, finder = emblem
    frame, support = _frame(rgb, alpha, seed=3, **place)
    found = finder.find(frame)
    assert len(found) == 1 and found[0].method == KEYPOINTS
    mask = found[0].mask(W, H, grow=2)
    assert (mask & support).sum() / support.sum() > 0.98
    assert (mask & ~support).sum() < 0.15 * support.sum()


def test_finds_a_partly_occluded_logo(emblem):
    rgb, alpha, finder = emblem
    frame, support = _frame(rgb, alpha, seed=4, centre=(640, 360), scale=1.3, angle_deg=8)
    ys, xs = np.nonzero(support)
    x_mid = int(xs.min() + 0.35 * (xs.max() - xs.min()))
    frame[:, :x_mid] = testlogo.textured_background(W, H, 99)[:, :x_mid]  # a third of the logo hidden
    found = finder.find(frame)
    assert len(found) == 1
    visible = support.copy()
    visible[:, :x_mid] = False
    assert (found[0].mask(W, H, grow=2) & visible).sum() / visible.sum() > 0.98


def test_finds_two_appearances_and_two_logos():
    a_rgb, a_alpha = testlogo.emblem(240, 150, variant=0)
    b_rgb, b_alpha = testlogo.emblem(200, 130, variant=1)
    finder = LogoFinder([reference_from_array(a_rgb, a_alpha >= 128, "a"), reference_from_array(b_rgb, b_alpha >= 128, "b")])
    frame = testlogo.textured_background(W, H, 5)
    testlogo.composite(frame, a_rgb, a_alpha, testlogo.placement(240, 150, (300, 200), 1.0))
    testlogo.composite(frame, a_rgb, a_alpha, testlogo.placement(240, 150, (950, 520), 0.9, angle_deg=15))
    testlogo.composite(frame, b_rgb, b_alpha, testlogo.placement(200, 130, (950, 180), 1.1, angle_deg=-20))
    found = sorted((d.reference, d.box[0] > 640) for d in finder.find(frame))
    assert found == [(0, False), (0, True), (1, True)]


def test_nothing_found_without_the_logo(emblem):
    _, _, finder = emblem
    for seed in (10, 11, 12, 13):
        assert finder.find(testlogo.textured_background(W, H, seed)) == []
    other_rgb, other_alpha = testlogo.emblem(240, 150, variant=1)  # another sponsor is not this one
    frame, _ = _frame(other_rgb, other_alpha, seed=14, centre=(640, 360), scale=1.0)
    assert finder.find(frame) == []


def test_a_flat_reference_falls_back_to_templates_with_one_warning(caplog):
    rgb, alpha = testlogo.flat_disc(80)
    with caplog.at_level(logging.WARNING):
        finder = LogoFinder([reference_from_array(rgb, alpha >= 128, "disc")])
    assert finder.methods() == [TEMPLATE]
    assert len([r for r in caplog.records if "too few features" in r.message]) == 1
    caplog.clear()
    frame, support = _frame(rgb, alpha, seed=6, centre=(500, 300), scale=1.5)
    found = finder.find(frame)
    assert len(found) == 1 and found[0].method == TEMPLATE
    assert (found[0].mask(W, H, grow=4) & support).sum() / support.sum() > 0.95
    assert finder.find(testlogo.textured_background(W, H, 7)) == []
    assert not [r for r in caplog.records if "too few features" in r.message]  # warned once, not per frame


def test_find_near_follows_a_moved_logo_by_its_pixels_and_lets_keypoints_decide_when_it_is_gone(emblem):
    rgb, alpha, _ = emblem
    finder = LogoFinder([reference_from_array(rgb, alpha >= 128, "emblem")])
    frame, _ = _frame(rgb, alpha, seed=5, centre=(600, 350), scale=0.9, angle_deg=5)
    first = finder.find(frame)
    assert len(first) == 1
    # the logo moved 6 px right and 3 down: predicted there, ECC alone aligns it, and its mask covers it
    moved, support = _frame(rgb, alpha, seed=5, centre=(606, 353), scale=0.9, angle_deg=5)
    predicted = [first[0].moved(6, 3, W, H)]
    again = finder.find_near(moved, first, predicted=predicted)
    assert again is not None and len(again) == 1 and finder.followed == 1
    mask = again[0].mask(W, H, grow=2)
    assert (mask & support).sum() / support.sum() > 0.98
    # gone: following fails (the correlation is low), and the keypoints find nothing either
    empty = testlogo.textured_background(W, H, 5)
    assert finder.find_near(empty, again) == [] and finder.followed == 1


def test_without_following_find_near_still_finds_the_logo_by_keypoints(emblem):
    from dataclasses import replace

    rgb, alpha, finder = emblem
    keypoints_only = LogoFinder(finder.references, replace(finder.config, follow=False))
    frame, support = _frame(rgb, alpha, seed=6, centre=(600, 350), scale=1.0)
    first = keypoints_only.find(frame)
    moved, support = _frame(rgb, alpha, seed=6, centre=(610, 350), scale=1.0)
    again = keypoints_only.find_near(moved, first)
    assert again is not None and len(again) == 1 and keypoints_only.followed == 0
    assert (again[0].mask(W, H, grow=2) & support).sum() / support.sum() > 0.98
