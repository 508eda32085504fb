"""E2FGVI over a whole clip exactly as upstream's test.py does it, without holding the clip on the device.

test.py loads every frame and mask onto the GPU as one tensor; here frames stay on the host and
only each window's frames (its neighbours and references) are moved, converted and padded, so
device memory follows the window, not the video. The arithmetic is test.py's, step for step
(engines/e2fgvi/windows.py holds the schedule, padding and compositing), so outputs match it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from engines.e2fgvi.windows import Compositor, dilate_mask, offline_windows, pad_by_mirroring

Model = Callable[[torch.Tensor, int], tuple[torch.Tensor, object]]
"""``model(masked_frames [1, T, 3, H, W] in [-1, 1], num_local_frames) -> (output [T, 3, H, W], flows)``."""


def inpaint_offline(
    model: Model,
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
    if len(frames) != len(masks) or not frames:
        raise ValueError(f"frames and masks must be two equally long, non-empty lists, got {len(frames)} and {len(masks)}")
    height, width = frames[0].shape[:2]
    dilated = [dilate_mask(m) for m in masks]
    compositor = Compositor()
    with torch.no_grad():
        for window in offline_windows(len(frames), neighbor_stride, ref_step, num_ref):
            ids = list(window.frames)
            images = torch.from_numpy(np.stack([frames[i] for i in ids])).permute(0, 3, 1, 2).float().div(255) * 2 - 1
            holes = torch.from_numpy(np.stack([dilated[i] * 255 for i in ids])[:, None]).float().div(255)
            masked = (images * (1 - holes)).numpy()
            padded = torch.from_numpy(np.ascontiguousarray(pad_by_mirroring(masked))).to(device)
            output, _ = model(padded[None], len(window.neighbors))
            output = output[:, :, :height, :width].float().cpu().numpy()
            if on_window is not None:
                on_window(window.center, output)
            for row, index in enumerate(window.neighbors):
                compositor.add(index, output[row].transpose(1, 2, 0), frames[index], dilated[index])
    return [compositor.pop(i) for i in range(len(frames))]
