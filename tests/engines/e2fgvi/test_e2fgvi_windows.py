"""test.py's walk over a video, reproduced: windows, references, mirrored padding, compositing."""

from __future__ import annotations

import numpy as np
import pytest

from cleanfeed.engines.e2fgvi.windows import (
    Compositor,
    dilate_mask,
    offline_windows,
    pad_by_mirroring,
    padding,
    reference_ids,
)


def test_windows_of_a_23_frame_video() -> None:
    windows = offline_windows(23)
    assert [w.center for w in windows] == [0, 5, 10, 15, 20]
    assert windows[0].neighbors == (0, 1, 2, 3, 4, 5) and windows[0].references == (10, 20)
    assert windows[2].neighbors == tuple(range(5, 16)) and windows[2].references == (0, 20)
    assert windows[4].neighbors == tuple(range(15, 23)) and windows[4].references == (0, 10)
    assert windows[1].frames == (*range(0, 11), 20)
    # a frame is a neighbour of two or three windows, except past the last centre
    counts = [sum(i in w.neighbors for w in windows) for i in range(23)]
    assert set(counts[:21]) == {2, 3} and counts[21:] == [1, 1]


def test_a_bounded_reference_count_lets_one_more_through_as_upstream_does() -> None:
    refs = reference_ids(50, tuple(range(45, 56)), 200, 10, num_ref=2)
    assert refs == (40, 60)  # window 40..60 around 50: 50 is a neighbour
    refs = reference_ids(100, (), 400, 10, num_ref=4)
    assert refs == (80, 90, 100, 110, 120)  # num_ref + 1: upstream tests len > num_ref before appending


def test_padding_mirrors_the_frame_repeating_its_edge() -> None:
    frame = np.arange(2 * 100 * 200).reshape(2, 100, 200)
    padded = pad_by_mirroring(frame)
    assert padded.shape == (2, 120, 216) and padding(100, 200) == (20, 16)
    assert np.array_equal(padded[:, :100, :200], frame)
    assert np.array_equal(padded[:, 100, :200], frame[:, 99])  # the edge row again
    assert np.array_equal(padded[:, 119, :200], frame[:, 80])
    assert np.array_equal(padded[:, :100, 200], frame[:, :, 199])
    assert pad_by_mirroring(np.zeros((60, 108))).shape == (60, 108)
    with pytest.raises(ValueError, match="at least half a padding multiple"):
        pad_by_mirroring(np.zeros((20, 108)))


def test_mask_is_dilated_with_a_cross_four_times() -> None:
    mask = np.zeros((21, 21), np.uint8)
    mask[10, 10] = 255
    grown = dilate_mask(mask)
    ys, xs = np.nonzero(grown)
    assert grown.max() == 1 and (np.abs(ys - 10) + np.abs(xs - 10)).max() == 4  # a diamond of radius 4
    assert grown.sum() == 41


def test_overlapping_windows_average_in_order_and_truncate() -> None:
    frame = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[1, 0], [0, 0]], np.uint8)
    comp = Compositor()
    comp.add(0, np.full((2, 2, 3), 1.0, np.float32), frame, mask)  # 255 inside the mask
    comp.add(0, np.full((2, 2, 3), -1.0, np.float32), frame, mask)  # 0
    comp.add(0, np.full((2, 2, 3), 0.0, np.float32), frame, mask)  # 127 (127.5 truncated)
    out = comp.pop(0)
    assert out[0, 0, 0] == int((255 * 0.5 + 0 * 0.5) * 0.5 + 127 * 0.5)  # 127.25 -> 127: later windows weigh more
    assert (out[1, 1] == 100).all() and 0 not in comp
