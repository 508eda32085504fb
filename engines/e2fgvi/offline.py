"""E2FGVI over a whole clip in memory exactly as upstream's test.py does it: the parity reference.

test.py loads every frame and mask onto the GPU as one tensor; here only each window's frames
are moved, converted and padded (engines/e2fgvi/sliding.py runs the offline schedule on the
whole frame), so device memory follows the window, not the clip. The goldens call this, the
benchmark the general :func:`inpaint_clip`; the ``inpaint`` element runs the same schedules on
frames streamed through the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from cleanfeed.engines.e2fgvi.regions import Box, Patch
from cleanfeed.engines.e2fgvi.schedule import SlidingConfig
from cleanfeed.engines.e2fgvi.sliding import SlidingInpainter, WindowModel
from cleanfeed.engines.e2fgvi.windows import Window


def inpaint_offline(
    model: WindowModel,
    frames: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    neighbor_stride: int = 5,
    ref_step: int = 10,
    num_ref: int = -1,
    device: torch.device | str = "cpu",
    on_window: Callable[[int, np.ndarray], None] | None = None,
) -> list[np.ndarray]:
    """The inpainted HxWx3 uint8 frames of a clip, as test.py computes them.

    ``frames``: HxWx3 uint8 RGB; ``masks``: HxW, non-zero = remove (dilated here as test.py
    does). ``on_window(center, output)`` sees each window's raw model output (``[T, 3, H, W]``
    float32 in [-1, 1], cropped), for parity checks.
    """
    config = SlidingConfig("offline", neighbor_stride, ref_step, num_ref, region="full")
    seen = None if on_window is None else (lambda window, _region, output: on_window(window.center, output))
    return inpaint_clip(model, frames, masks, config, device, seen)


def inpaint_clip(
    model: WindowModel,
    frames: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    config: SlidingConfig,
    device: torch.device | str = "cpu",
    on_window: Callable[[Window, Box, np.ndarray], None] | None = None,
) -> list[np.ndarray]:
    """A clip in memory through either schedule and region mode (the benchmark's and the tests' entry)."""
    if len(frames) != len(masks) or not frames:
        raise ValueError(f"frames and masks must be two equally long, non-empty lists, got {len(frames)} and {len(masks)}")
    height, width = frames[0].shape[:2]
    engine = SlidingInpainter(model, config, height, width, device=device, on_window=on_window)
    out = [np.array(rgb) for rgb in frames]

    def paste(patches: Iterable[Patch]) -> None:
        for patch in patches:
            if patch.box is not None:
                np.copyto(out[patch.index][patch.box.slices], patch.rgb, where=patch.where[..., None])

    for rgb, mask in zip(frames, masks, strict=True):
        paste(engine.push(rgb, mask))
    paste(engine.finish())
    return out
