"""Pictures: region conversion that leaves untouched pixels exactly as they were."""

import numpy as np
import pytest

from cleanfeed.stream.picture import Picture, picture_nbytes


def smooth_rgb(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["yuv420p", "rgb24"])
def test_region_matches_full_conversion(fmt):
    pic = Picture.from_rgb(smooth_rgb(48, 64), fmt)
    full = pic.rgb()
    box = pic.align((9, 5, 41, 29))
    assert box == ((8, 4, 42, 30) if fmt == "yuv420p" else (9, 5, 41, 29))
    x0, y0, x1, y1 = box
    np.testing.assert_array_equal(pic.rgb(box), full[y0:y1, x0:x1])


@pytest.mark.parametrize("fmt", ["yuv420p", "rgb24"])
def test_put_rgb_where_changes_only_selected_pixels(fmt):
    pic = Picture.from_rgb(smooth_rgb(48, 64), fmt)
    before = pic.rgb()
    box = pic.align((10, 10, 40, 30))
    x0, y0, x1, y1 = box
    where = np.zeros((y1 - y0, x1 - x0), bool)
    where[6:12, 4:14] = True
    pic.put_rgb(np.full((y1 - y0, x1 - x0, 3), 255, np.uint8), box, where=where)
    after = pic.rgb()
    changed = np.any(after != before, axis=2)
    support = np.zeros_like(changed)
    support[y0 + 6 : y0 + 12, x0 + 4 : x0 + 14] = True
    if fmt == "yuv420p":  # chroma is shared by 2x2 blocks; conversion may touch that block only
        support = np.repeat(np.repeat(support.reshape(24, 2, 32, 2).any((1, 3)), 2, 0), 2, 1)
    assert not np.any(changed & ~support)
    assert np.all(after[y0 + 6 : y0 + 12, x0 + 4 : x0 + 14] > 230)


def test_yuv_is_i420_with_luma_view():
    pic = Picture.from_rgb(smooth_rgb(16, 24), "yuv420p")
    assert pic.data.shape == (24, 24)
    assert pic.data.nbytes == picture_nbytes("yuv420p", 24, 16)
    assert np.shares_memory(pic.luma(), pic.data)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="yuv420p size must be even, got 15x16"):
        Picture("yuv420p", 15, 16, np.zeros((24, 15), np.uint8))
    with pytest.raises(ValueError, match=r"rgb24 data must be uint8 \(16, 24, 3\)"):
        Picture("rgb24", 24, 16, np.zeros((16, 24), np.uint8))
    pic = Picture.empty("rgb24", 24, 16)
    with pytest.raises(ValueError, match="region must be"):
        pic.put_rgb(np.zeros((3, 3, 3), np.uint8), (0, 0, 4, 4))


def test_box_is_clamped_to_frame():
    pic = Picture.empty("yuv420p", 32, 16)
    assert pic.align((-5, -5, 100, 100)) == (0, 0, 32, 16)
    assert pic.rgb((40, 40, 50, 50)).shape == (0, 0, 3)
