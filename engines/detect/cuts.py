"""Shot cuts, told from how much a frame's colours differ from the previous frame's.

A cut replaces the whole picture at once; camera motion and moving objects change where the
colours are, not which colours there are. So two frames' hue-saturation histograms, taken from a
thumbnail (a few hundred pixels: the check costs well under a millisecond), are compared by
Bhattacharyya distance, and a jump above ``threshold`` is a cut. A fade is no cut here: the
detector's other cadence (every N frames) catches what fades in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

THUMB = (96, 54)


@dataclass
class CutDetector:
    """Feed every frame in order to :meth:`is_cut`; the first frame is a cut (nothing came before)."""

    threshold: float = 0.4
    """Bhattacharyya distance (0 same colours .. 1 disjoint) above which a frame starts a new shot."""
    _previous: np.ndarray | None = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` (HxWx3 RGB uint8) starts a new shot."""
        hist = self.signature(frame)
        previous, self._previous = self._previous, hist
        if previous is None:
            return True
        return bool(cv2.compareHist(previous, hist, cv2.HISTCMP_BHATTACHARYYA) > self.threshold)

    @staticmethod
    def signature(frame: np.ndarray) -> np.ndarray:
        thumb = cv2.resize(frame, THUMB, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256])
        return cv2.normalize(hist, hist).flatten()
