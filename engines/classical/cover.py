"""The fastest ways to cover a masked region when there is no time to inpaint it properly.

A live feed must never show the object, even when the engine's answer comes too late: a frame
that is due leaves with its masked pixels painted over by one of these fills, each a few
milliseconds on a logo-sized region:

- ``inpaint``: cv2.inpaint (Telea) from the ring of known pixels around the hole;
- ``blur``: a heavy Gaussian blur of the surroundings pulled into the hole (normalised
  convolution: only pixels outside the hole are averaged, so nothing of the object leaks in);
- ``pixelate``: 16-pixel blocks over the hole's neighbourhood (the broadcast censor look).

The functions work on an RGB crop around the hole and return the new crop; the caller writes
back only the hole's pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

FALLBACKS = ("inpaint", "blur", "pixelate")

BLOCK = 16
"""Pixelate block size in pixels."""


def fill(rgb: np.ndarray, hole: np.ndarray, how: str = "inpaint", radius: int = 5) -> np.ndarray:
    """A new HxWx3 uint8 crop whose ``hole`` pixels (HxW bool) are covered by ``how``.

    The crop should include a margin of known pixels around the hole (a few pixels for
    inpaint, more for blur); a crop with no known pixel at all is filled grey for blur.
    """
    if how not in FALLBACKS:
        raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}, got {how!r}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or hole.shape != rgb.shape[:2]:
        raise ValueError(f"fill needs an HxWx3 crop and an HxW hole, got {rgb.shape} and {hole.shape}")
    if not hole.any():
        return rgb.copy()
    if how == "inpaint":
        return cv2.inpaint(np.ascontiguousarray(rgb), hole.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    if how == "blur":
        return _blur(rgb, hole)
    return _pixelate(rgb, hole)


def _blur(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    known = (~hole).astype(np.float32)
    ys, xs = np.nonzero(hole)
    extent = max(int(ys.max() - ys.min()), int(xs.max() - xs.min()), 1)
    sigma = max(4.0, extent / 3)
    weight = cv2.GaussianBlur(known, (0, 0), sigma)
    summed = cv2.GaussianBlur(rgb.astype(np.float32) * known[..., None], (0, 0), sigma)
    out = rgb.copy()
    where = weight > 1e-3
    mean = rgb[~hole].mean(axis=0) if (~hole).any() else np.full(3, 128.0)
    filled = np.where(where[..., None], summed / np.maximum(weight, 1e-3)[..., None], mean)
    out[hole] = np.clip(filled[hole], 0, 255).astype(np.uint8)
    return out


def _pixelate(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    h, w = hole.shape
    small = cv2.resize(rgb, (max(1, -(-w // BLOCK)), max(1, -(-h // BLOCK))), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (small.shape[1] * BLOCK, small.shape[0] * BLOCK), interpolation=cv2.INTER_NEAREST)[:h, :w]
    out = rgb.copy()
    out[hole] = big[hole]
    return out
