"""Removes a known overlay from one crop: un-blends what is translucent, fills what is opaque.

With the matte (``a``, ``L``) of ``I = a*L + (1-a)*B``, the scene is ``B = (I - a*L) / (1-a)``
exactly, up to noise amplified by ``1/(1-a)``. Above ``a_max`` (default 0.85: 6.7x noise) the
inversion would show more noise and rounding than a fill invents, so those pixels, grown by
``grow`` pixels for the anti-aliased rim whose opacity is least certain, are filled from their
border (:mod:`smoothfill`, a fixed linear map: a static border gives an identical fill). When
the bug is opaque as a whole (its core opacity ``a0 >= a_max``), its whole support is filled.

Arrays: crops HxWx3 uint8 RGB; ``alpha`` HxW float32 0..1; ``colour`` 3 float32 0..255.
"""

from __future__ import annotations

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.smoothfill import SmoothFill


class Unblender:
    """Per-frame removal of one overlay; build once per matte, call per crop."""

    def __init__(self, alpha: np.ndarray, colour: np.ndarray, a_max: float = 0.85, grow: int = 1,
                 order: str = "harmonic", hole: np.ndarray | None = None, solid: np.ndarray | None = None,
                 smooth: float = 0.0) -> None:
        self.alpha = np.asarray(alpha, np.float32)
        a0 = float(self.alpha.max()) if self.alpha.size else 0.0
        support = self.alpha > 0
        given = hole is not None  # a caller's hole (the chroma planes take the luma's) is used as is
        hole = np.asarray(hole, bool) if given else (support if a0 >= a_max else self.alpha >= a_max)
        if solid is not None and not given:
            hole = hole | solid
            support = support | solid
        if grow > 0 and hole.any() and not given:
            hole = regions.grow_mask(hole, grow)
        self.hole = hole
        self.blend = support & ~hole
        """Pixels recovered by inversion (HxW bool)."""
        self.where = support | hole
        """Every pixel this remover writes (HxW bool)."""
        a = self.alpha[self.blend][:, None]
        self._a, self._inv = a, 1.0 / (1.0 - a)
        self._al = a * np.asarray(colour, np.float32)[None, :]
        self._fill = SmoothFill(hole, order) if hole.any() else None
        self.smooth = smooth
        """Sigma (px) of a Gaussian average of the recovered pixels over the pixels written (0: none)."""
        self._weight = self.where.astype(np.float32)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """A new HxWx3 uint8 crop with the overlay removed (only ``where`` pixels differ)."""
        out = np.asarray(crop, np.float32).copy()
        if self.blend.any():
            out[self.blend] = (out[self.blend] - self._al) * self._inv
        if self._fill is not None:
            out = self._fill(out)
        if self.smooth > 0 and self.blend.any():
            w = self._weight
            num = cv2.GaussianBlur(out * w[..., None], (0, 0), self.smooth).reshape(out.shape)
            den = cv2.GaussianBlur(w, (0, 0), self.smooth)[..., None]
            out[self.blend] = (num / np.maximum(den, 1e-6))[self.blend]
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
