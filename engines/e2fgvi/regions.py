"""Where a window is inpainted: the whole frame, or a crop around its masks — and how answers are kept.

E2FGVI's cost follows the pixels it is given, and a 100-pixel logo in a 1080p frame needs only
the logo and some context around it. A window's region is the union of its local frames' (dilated)
masks, grown by a context margin and then to the model's multiples (60 x 108) with real pixels
rather than mirrored ones wherever the frame has them, so a crop of a large frame is never
padded. When that region would cover most of the frame, the whole frame is cheaper than the
bookkeeping and is used instead (``region=auto``); ``region=full`` always uses it, which is
test.py's behaviour.

Only masked pixels change, so the answer kept for each frame is its mask's bounding box — not a
full frame — averaged over the windows that produce it in test.py's order and arithmetic. Inside
that box the numbers are test.py's whether the window ran on a crop or the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cleanfeed.engines.e2fgvi.windows import MULTIPLE

REGION_MODES = ("auto", "full")
FULL_FRAME_SHARE = 0.5
"""``region=auto`` runs the whole frame once the region would cover this share of it or more."""


@dataclass(frozen=True)
class Box:
    """Pixels ``[y0:y1, x0:x1]`` of a frame."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def area(self) -> int:
        return self.height * self.width

    def union(self, other: Box) -> Box:
        return Box(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1))

    def contains(self, other: Box) -> bool:
        return self.y0 <= other.y0 and self.x0 <= other.x0 and self.y1 >= other.y1 and self.x1 >= other.x1

    def within(self, outer: Box) -> tuple[slice, slice]:
        """This box's rows and columns inside an array that holds ``outer``."""
        return slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


@dataclass(frozen=True)
class SparseMask:
    """A frame's dilated 0/1 mask as its bounding box and the crop inside it (None when empty).

    Offline mode keeps one per frame of the whole clip; a full-size copy each would cost more
    than the frames' own region of interest.
    """

    height: int
    width: int
    box: Box | None
    crop: np.ndarray | None

    @classmethod
    def of(cls, mask: np.ndarray) -> SparseMask:
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return cls(mask.shape[0], mask.shape[1], None, None)
        cols = np.flatnonzero(mask.any(axis=0))
        box = Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
        return cls(mask.shape[0], mask.shape[1], box, np.ascontiguousarray(mask[box.slices]))

    def within(self, region: Box) -> np.ndarray:
        """The 0/1 mask over ``region`` (zeros where the mask is not)."""
        out = np.zeros((region.height, region.width), np.uint8)
        if self.box is None:
            return out
        inter = Box(max(self.box.y0, region.y0), max(self.box.x0, region.x0),
                    min(self.box.y1, region.y1), min(self.box.x1, region.x1))
        if inter.height > 0 and inter.width > 0:
            out[inter.within(region)] = self.crop[inter.within(self.box)]
        return out


def _grow(start: int, stop: int, size: int, multiple: int) -> tuple[int, int]:
    """``[start, stop)`` grown evenly to a multiple of ``multiple`` within ``[0, size)``; the whole axis
    when the frame is not long enough for the next multiple (the model pads by mirroring then)."""
    length = -(-(stop - start) // multiple) * multiple
    if length >= size:
        return 0, size
    start = max(0, min(start - (length - (stop - start)) // 2, size - length))
    return start, start + length


def window_region(masks: list[SparseMask], margin: int, mode: str = "auto",
                  multiple: tuple[int, int] = MULTIPLE) -> Box | None:
    """The part of the frame a window is inpainted on; None when no local frame has a mask.

    ``masks``: the window's local frames (only their pixels are written back). The region holds
    every one of their mask boxes plus ``margin`` pixels of context on each side, grown to the
    model's multiples.
    """
    boxes = [m.box for m in masks if m.box is not None]
    if not boxes:
        return None
    height, width = masks[0].height, masks[0].width
    full = Box(0, 0, height, width)
    if mode == "full":
        return full
    union = boxes[0]
    for box in boxes[1:]:
        union = union.union(box)
    y0, y1 = _grow(max(0, union.y0 - margin), min(height, union.y1 + margin), height, multiple[0])
    x0, x1 = _grow(max(0, union.x0 - margin), min(width, union.x1 + margin), width, multiple[1])
    region = Box(y0, x0, y1, x1)
    return full if region.area >= FULL_FRAME_SHARE * full.area else region


@dataclass(frozen=True)
class Patch:
    """A finished frame's answer: write ``rgb`` at ``box`` where ``where`` is set (nothing when box is None)."""

    index: int
    box: Box | None
    rgb: np.ndarray | None
    where: np.ndarray | None


class RegionCompositor:
    """test.py's per-frame accumulation, kept only over each frame's mask box.

    ``add`` takes one window's output for one local frame (over the window's region, which holds
    the frame's mask box); the first answer is kept as uint8, later ones averaged as float
    (``old * 0.5 + new * 0.5``) and truncated once when the frame is finished, exactly as
    test.py does over the whole frame — outside the mask its result is the untouched frame.
    """

    def __init__(self) -> None:
        self._held: dict[int, np.ndarray] = {}

    def add(self, index: int, mask: SparseMask, output: np.ndarray, original: np.ndarray, region: Box) -> None:
        """``output``: the model's ``[h, w, 3]`` float in [-1, 1] over ``region``; ``original``: the frame's
        uint8 RGB over ``region``."""
        if mask.box is None:
            return
        rows, cols = mask.box.within(region)
        predicted = ((output[rows, cols] + 1) / 2 * 255).astype(np.uint8)
        keep = mask.crop[..., None]
        image = predicted * keep + original[rows, cols] * (1 - keep)
        held = self._held.get(index)
        self._held[index] = image if held is None else held.astype(np.float32) * 0.5 + image.astype(np.float32) * 0.5

    def pop(self, index: int, mask: SparseMask) -> Patch:
        """The finished frame's patch (uint8), forgotten here afterwards."""
        held = self._held.pop(index, None)
        if held is None or mask.box is None:
            return Patch(index, None, None, None)
        return Patch(index, mask.box, held.astype(np.uint8), mask.crop.astype(bool))

    def __len__(self) -> int:
        return len(self._held)
