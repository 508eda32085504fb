"""GrabCut segmentation from a box, points or a mask: the object's mask on its prompted frame.

A user draws a box around a logo, clicks on it, or supplies a mask; the tracker needs the
object's exact support. GrabCut separates the object from its surroundings by colour models
learnt inside and outside the prompt. It runs on a crop around the prompt (cost follows the
object's size). Positive points are sure object, negative points sure background. With
points only, GrabCut runs in a box grown around the positive points. A mask alone is used as
is; with points it seeds GrabCut.

The result is never empty for a valid prompt: when GrabCut returns nothing, or something
wildly off (less than 5% or more than 98% of the box), the box itself is returned and the
result says why (``fallback`` and ``reason``).

Arrays: ``image`` is HxWx3 uint8 RGB; masks are HxW bool (or uint8, non-zero = object);
boxes are (x0, y0, x1, y1) pixels, half-open; points are (x, y, label) with label 1 (object)
or 0 (not object).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.regions import Box

PointLike = tuple[float, float, int] | tuple[float, float]


@dataclass(frozen=True)
class SegmenterConfig:
    """GrabCut settings; distances are pixels."""

    iterations: int = 4
    margin: float = 0.5
    """Crop margin around the box, as a fraction of its larger side (at least ``min_margin``)."""
    min_margin: int = 16
    point_radius: int = 3
    """Radius of the sure seed drawn at each point."""
    point_reach: int = 0
    """With points only: how far (px) the box grown around the positive points reaches; 0 = 12% of the
    image's smaller side."""
    min_fill: float = 0.05
    max_fill: float = 0.98
    """A GrabCut result covering less or more than these fractions of the box is replaced by the box."""


@dataclass(frozen=True)
class Segmentation:
    """An object's mask (HxW bool) and how it was found: method "grabcut", "mask" or "box"."""

    mask: np.ndarray
    method: str
    reason: str = ""

    @property
    def fallback(self) -> bool:
        """True when GrabCut's result was not usable and a simpler mask was returned (see ``reason``)."""
        return bool(self.reason)


def segment(
    image: np.ndarray,
    box: Box | Sequence[int] | None = None,
    points: Sequence[PointLike] = (),
    mask: np.ndarray | None = None,
    config: SegmenterConfig | None = None,
) -> Segmentation:
    """Segments one object of ``image`` from a box, points and/or a mask (see the module doc)."""
    cfg = config or SegmenterConfig()
    height, width = image.shape[:2]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    pts = [_point(p) for p in points]
    if mask is not None and mask.shape[:2] != (height, width):
        raise ValueError(f"mask must be {width}x{height} like the image, got {mask.shape[1]}x{mask.shape[0]}")
    given = None if mask is None else mask > 0
    if box is None and not pts:
        if given is None:
            raise ValueError("segment needs a box, a point or a mask")
        if not given.any():
            raise ValueError("mask prompt must not be empty")
        return Segmentation(given, "mask")
    work = _working_box(box, pts, given, width, height, cfg)
    crop_box = regions.grow(work, max(cfg.min_margin, round(cfg.margin * max(regions.box_size(work)))), width, height)
    labels = _seed(work, crop_box, pts, given, box is not None, cfg)
    crop = np.ascontiguousarray(regions.crop(image, crop_box))
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(crop, labels, None, bgd, fgd, cfg.iterations, cv2.GC_INIT_WITH_MASK)
        found = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    except cv2.error:  # e.g. no background or foreground samples to learn from
        found = np.zeros(labels.shape, bool)
    found = _clean(found, pts, crop_box)
    full = np.zeros((height, width), bool)
    regions.crop(full, crop_box)[...] = found
    work_area = regions.box_area(work)
    fill = float(regions.crop(full, work).sum()) / max(1, work_area)
    if cfg.min_fill <= fill <= cfg.max_fill:
        return Segmentation(full, "grabcut")
    reason = f"grabcut kept {100 * fill:.0f}% of the box (usable: {100 * cfg.min_fill:.0f}-{100 * cfg.max_fill:.0f}%)"
    if given is not None and given.any():
        return Segmentation(given, "mask", reason)
    full[...] = False
    regions.crop(full, work)[...] = True
    return Segmentation(full, "box", reason)


def _point(p: PointLike) -> tuple[float, float, bool]:
    if len(p) == 2:
        return float(p[0]), float(p[1]), True
    return float(p[0]), float(p[1]), bool(int(p[2]))  # type: ignore[misc]


def _working_box(box: Box | Sequence[int] | None, pts: list[tuple[float, float, bool]], given: np.ndarray | None,
                 width: int, height: int, cfg: SegmenterConfig) -> Box:
    """The box GrabCut refines: the given one, the mask's, or one grown around the positive points."""
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        work = regions.clamp((x0, y0, x1, y1), width, height)
        if regions.is_empty(work):
            raise ValueError(f"box {x0},{y0},{x1},{y1} must overlap the {width}x{height} image")
        return work
    if given is not None and given.any():
        found = regions.mask_box(given)
        if found is not None:
            return found
    positives = [(x, y) for x, y, pos in pts if pos]
    if not positives:
        raise ValueError("points must include a positive one (label 1) when no box or mask is given")
    xs, ys = [p[0] for p in positives], [p[1] for p in positives]
    half = cfg.point_reach or 0.12 * min(width, height)
    x0, x1 = min(xs) - half, max(xs) + half
    y0, y1 = min(ys) - half, max(ys) + half
    return regions.clamp((int(x0), int(y0), int(np.ceil(x1)) + 1, int(np.ceil(y1)) + 1), width, height)


def _seed(work: Box, crop_box: Box, pts: list[tuple[float, float, bool]], given: np.ndarray | None,
          boxed: bool, cfg: SegmenterConfig) -> np.ndarray:
    """GrabCut's initial labels on the crop.

    From a box: outside sure background, inside probable object. From a mask seed: the mask
    probable object, the rest of the crop probable background (outside the box sure background
    if one is given).
    From points only: probable object near the positive points, probable background elsewhere in
    the box. Points are sure object / sure background discs.
    """
    cw, ch = regions.box_size(crop_box)
    labels = np.full((ch, cw), cv2.GC_BGD, np.uint8)
    local = (work[0] - crop_box[0], work[1] - crop_box[1], work[2] - crop_box[0], work[3] - crop_box[1])
    if given is not None and given.any():
        inside = regions.crop(given, crop_box)
        labels[2:-2, 2:-2] = cv2.GC_PR_BGD  # a rough mask may be too small: only the crop's rim is sure
        labels[inside] = cv2.GC_PR_FGD
        if boxed:
            labels[~_inside(local, labels.shape)] = cv2.GC_BGD
    elif boxed:
        regions.crop(labels, local)[...] = cv2.GC_PR_FGD
    else:
        # points only: the box is a guess around them, likelier background near its edges
        regions.crop(labels, local)[...] = cv2.GC_PR_BGD
        bw, bh = regions.box_size(local)
        inset = min(bw, bh) // 8
        core = (local[0] + inset, local[1] + inset, local[2] - inset, local[3] - inset)
        regions.crop(labels, core)[...] = cv2.GC_PR_FGD
    for x, y, positive in pts:
        centre = (int(round(x)) - crop_box[0], int(round(y)) - crop_box[1])
        cv2.circle(labels, centre, cfg.point_radius, cv2.GC_FGD if positive else cv2.GC_BGD, -1)
    return labels


def _inside(box: Box, shape: tuple[int, ...]) -> np.ndarray:
    keep = np.zeros(shape[:2], bool)
    regions.crop(keep, box)[...] = True
    return keep


def _clean(found: np.ndarray, pts: list[tuple[float, float, bool]], crop_box: Box) -> np.ndarray:
    """Drops specks: keeps the components holding a positive point, and any at least 10% of the largest."""
    count, comp, stats, _ = cv2.connectedComponentsWithStats(found.view(np.uint8), connectivity=8)
    if count <= 1:
        return found
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = set((np.nonzero(areas >= 0.1 * areas.max())[0] + 1).tolist())
    h, w = found.shape
    for x, y, positive in pts:
        cx, cy = int(round(x)) - crop_box[0], int(round(y)) - crop_box[1]
        if positive and 0 <= cx < w and 0 <= cy < h and comp[cy, cx] > 0:
            keep.add(int(comp[cy, cx]))
    lut = np.zeros(count, bool)
    lut[list(keep)] = True
    cleaned = lut[comp]
    closed = cv2.morphologyEx(cleaned.view(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return closed > 0
