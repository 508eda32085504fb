"""How E2FGVI's test.py walks a video: which frames each model call sees, how frames are padded,
and how the overlapping answers become one frame.

The released checkpoints were evaluated with exactly this procedure, and a file processed by
cleanfeed's offline mode must match test.py frame for frame, so its details are kept even where
they look accidental:

- windows are centred on every ``neighbor_stride``-th frame and hold the frames within
  ``neighbor_stride`` of the centre (so each frame is in two or three windows);
- reference frames are every ``ref_step``-th frame of the whole video not already in the window
  (``num_ref=-1``), or up to ``num_ref`` around the centre — where upstream's check lets one more
  through than asked (``len(refs) > num_ref`` is tested before appending);
- frames are padded to multiples of 60 x 108 by appending the frame flipped, which repeats the
  edge row/column;
- the model output becomes uint8 by truncation, is composited with the untouched pixels, and a
  frame in several windows is averaged sequentially (``old * 0.5 + new * 0.5``, in window order,
  so later windows weigh more), truncated to uint8 once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MULTIPLE = (60, 108)
"""E2FGVI-HQ's frames are padded to multiples of (height, width)."""
DILATE_ITERATIONS = 4
"""test.py dilates every mask 4 times with a 3x3 cross."""


@dataclass(frozen=True)
class Window:
    """One model call: the local frames (whose outputs are kept) and the reference frames (context only)."""

    center: int
    neighbors: tuple[int, ...]
    references: tuple[int, ...]

    @property
    def frames(self) -> tuple[int, ...]:
        """The frames in the order the model takes them: neighbours first, then references."""
        return self.neighbors + self.references


def reference_ids(center: int, neighbors: tuple[int, ...], length: int, ref_step: int, num_ref: int) -> tuple[int, ...]:
    """test.py's ``get_ref_index``: every ``ref_step``-th frame (all of the video for ``num_ref=-1``)."""
    refs: list[int] = []
    if num_ref == -1:
        return tuple(i for i in range(0, length, ref_step) if i not in neighbors)
    start = max(0, center - ref_step * (num_ref // 2))
    end = min(length, center + ref_step * (num_ref // 2))
    for i in range(start, end + 1, ref_step):
        if i not in neighbors:
            if len(refs) > num_ref:  # upstream's bound: num_ref + 1 references get through
                break
            refs.append(i)
    return tuple(refs)


def offline_windows(length: int, neighbor_stride: int = 5, ref_step: int = 10, num_ref: int = -1) -> list[Window]:
    """Every model call test.py makes for a video of ``length`` frames, in its order."""
    windows = []
    for center in range(0, length, neighbor_stride):
        neighbors = tuple(range(max(0, center - neighbor_stride), min(length, center + neighbor_stride + 1)))
        windows.append(Window(center, neighbors, reference_ids(center, neighbors, length, ref_step, num_ref)))
    return windows


def dilate_mask(mask: np.ndarray) -> np.ndarray:
    """test.py's mask: non-zero -> 1, dilated with a 3x3 cross four times (uint8 0/1)."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return cv2.dilate((np.asarray(mask) > 0).astype(np.uint8), cross, iterations=DILATE_ITERATIONS)


def padding(height: int, width: int, multiple: tuple[int, int] = MULTIPLE) -> tuple[int, int]:
    """Rows and columns added below and right to reach the multiples."""
    return (-height) % multiple[0], (-width) % multiple[1]


def pad_by_mirroring(frames: np.ndarray, multiple: tuple[int, int] = MULTIPLE) -> np.ndarray:
    """``[..., H, W]`` padded bottom/right with the frame flipped (its edge row/column repeated), as test.py does.

    Upstream appends one flipped copy, so the padding can be at most the frame's own size;
    smaller frames are refused rather than silently mis-padded.
    """
    height, width = frames.shape[-2:]
    pad_h, pad_w = padding(height, width, multiple)
    if pad_h > height or pad_w > width:
        raise ValueError(
            f"frames must be at least half a padding multiple {multiple} per side, got {height}x{width}"
        )
    out = np.concatenate([frames, np.flip(frames, -2)], axis=-2)[..., : height + pad_h, :]
    return np.concatenate([out, np.flip(out, -1)], axis=-1)[..., : width + pad_w]


class Compositor:
    """test.py's accumulation: each window's output for its local frames, composited and averaged in order."""

    def __init__(self) -> None:
        self._frames: dict[int, np.ndarray] = {}

    def add(self, index: int, output: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> None:
        """``output``: the model's HxWx3 in [-1, 1]; ``frame``: the HxWx3 uint8 original; ``mask``: HxW 0/1 dilated."""
        predicted = ((output + 1) / 2 * 255).astype(np.uint8)
        keep = mask[..., None].astype(np.uint8)
        image = predicted * keep + frame * (1 - keep)
        held = self._frames.get(index)
        self._frames[index] = image if held is None else held.astype(np.float32) * 0.5 + image.astype(np.float32) * 0.5

    def __contains__(self, index: int) -> bool:
        return index in self._frames

    def pop(self, index: int) -> np.ndarray:
        """The finished frame (uint8, truncated as test.py saves it); forgotten afterwards."""
        return self._frames.pop(index).astype(np.uint8)
