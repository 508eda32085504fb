"""Box and mask geometry shared by the classical engines.

The engines work on the neighbourhood of an object, never on whole frames: their cost must
follow the object's size. These helpers find that neighbourhood (a mask's bounding box, grown
by a margin, clamped to the frame, optionally aligned to even coordinates for 4:2:0 pictures)
and move boxes through the 3x3 motions the engines estimate.

A box is ``(x0, y0, x1, y1)`` in pixels, half-open (x1 and y1 excluded).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box of the non-zero pixels of an HxW mask (bool or uint8), None if empty."""
    view = mask.view(np.uint8) if mask.dtype == bool else mask
    x, y, w, h = cv2.boundingRect(view)
    if w == 0 or h == 0:
        return None
    return (x, y, x + w, y + h)


def box_size(box: Box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def box_area(box: Box) -> int:
    w, h = box_size(box)
    return max(0, w) * max(0, h)


def is_empty(box: Box) -> bool:
    return box[2] <= box[0] or box[3] <= box[1]


def grow(box: Box, pad: int, width: int, height: int, align: int = 1) -> Box:
    """``box`` grown by ``pad`` px on every side, clamped to the frame, corners rounded outward to ``align``."""
    x0, y0, x1, y1 = box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad
    return clamp((x0, y0, x1, y1), width, height, align)


def clamp(box: Box, width: int, height: int, align: int = 1) -> Box:
    """``box`` clipped to the frame; with ``align`` > 1 its corners are rounded outward to multiples of it."""
    x0, y0 = max(0, min(box[0], width)), max(0, min(box[1], height))
    x1, y1 = max(x0, min(box[2], width)), max(y0, min(box[3], height))
    if align > 1:
        x0, y0 = x0 - x0 % align, y0 - y0 % align
        x1 = min(width, x1 + (-x1) % align)
        y1 = min(height, y1 + (-y1) % align)
    return (x0, y0, x1, y1)


def union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def contains(outer: Box, inner: Box) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """A view of ``array`` (HxW or HxWxC) inside ``box``."""
    return array[box[1] : box[3], box[0] : box[2]]


def translation(dx: float, dy: float) -> np.ndarray:
    """3x3 float64 translation."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def map_box(box: Box, motion: np.ndarray) -> Box | None:
    """Bounding box (outward-rounded) of ``box``'s corners moved by a 3x3 motion; None if degenerate."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]]).T
    moved = motion @ corners
    if np.any(moved[2] <= 1e-6):
        return None
    xs, ys = moved[0] / moved[2], moved[1] / moved[2]
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        return None
    if max(abs(xs).max(), abs(ys).max()) > 1e6:
        return None
    return (math.floor(xs.min()), math.floor(ys.min()), math.ceil(xs.max()), math.ceil(ys.max()))


def ellipse(pixels: int) -> np.ndarray:
    """The elliptical structuring element that grows a mask by ``pixels`` px."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))


def dilate_ids(mask: np.ndarray, pixels: int) -> None:
    """Grows every object id of an HxW uint8 id map by ``pixels`` px (elliptical), in place.

    Only the ids' bounding region is touched. A pixel that several grown objects reach takes
    the lowest id; pixels that already hold an id keep it.
    """
    if pixels <= 0:
        return
    height, width = mask.shape
    whole = mask_box(mask)
    if whole is None:
        return
    region = grow(whole, pixels, width, height)
    view = crop(mask, region)
    counts = np.bincount(view.ravel(), minlength=256)
    ids = [int(i) for i in np.nonzero(counts[1:])[0] + 1]
    kernel = ellipse(pixels)
    if len(ids) == 1:
        grown = cv2.dilate(view, kernel)
        np.copyto(view, grown, where=view == 0)
        return
    original = view.copy()
    for obj_id in reversed(ids):  # lower ids are written last and win
        grown = cv2.dilate((original == obj_id).view(np.uint8), kernel)
        view[(grown > 0) & (original == 0)] = obj_id


def flow_pairs(select: np.ndarray, flow: np.ndarray, scale: tuple[float, float], origin: tuple[int, int],
               budget: int, minimum: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Point pairs (Nx2 float32, full-frame pixels) where the ``select`` pixels of a flow field land.

    The flow was computed on a crop at ``origin`` resized by ``scale`` (sx, sy); pixels are
    subsampled on a regular grid to about ``budget`` pairs, which is plenty for RANSAC and
    keeps its cost independent of the object's size. None when fewer than ``minimum`` remain.
    """
    ys, xs = np.nonzero(select)
    if len(xs) < minimum:
        return None
    step = max(1, int(math.sqrt(len(xs) / budget)))
    if step > 1:
        keep = ((ys % step) == 0) & ((xs % step) == 0)
        ys, xs = ys[keep], xs[keep]
    if len(xs) < minimum:
        return None
    vec = flow[ys, xs]
    sx, sy = scale
    src = np.stack([xs / sx + origin[0], ys / sy + origin[1]], axis=1).astype(np.float32)
    dst = np.stack([(xs + vec[:, 0]) / sx + origin[0], (ys + vec[:, 1]) / sy + origin[1]], axis=1).astype(np.float32)
    return src, dst


def grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """A bool mask grown by ``pixels`` px (elliptical); a copy when ``pixels`` is 0."""
    m = np.asarray(mask, bool)
    return cv2.dilate(m.astype(np.uint8), ellipse(pixels)) > 0 if pixels > 0 else m.copy()


def thick_parts(mask: np.ndarray, radius: int) -> np.ndarray:
    """The connected parts of a bool mask that hold a disc wider than ``radius`` px (a thick
    shape rather than a stroke), whole; thin parts are dropped."""
    m = np.asarray(mask, bool)
    if not m.any():
        return m.copy()
    count, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    dist = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    widest = np.zeros(count, np.float32)
    np.maximum.at(widest, labels[m], dist[m])
    keep = widest > radius
    keep[0] = False
    return keep[labels]
