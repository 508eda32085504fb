"""The logo reference a user gives: an image file, read and checked once before any frame is decoded.

A PNG's alpha says which pixels are the logo (a sign's shape is rarely its bounding rectangle,
and matching the transparent corners against the scene behind would match the scene); an
image without alpha is taken as a tight crop, every pixel the logo. The reference is cropped
to its visible pixels so that its size is the logo's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from cleanfeed.errors import ReferenceImageError

MIN_SIDE = 8
"""Below this a reference holds no shape to match, only a colour."""
ALPHA_VISIBLE = 128
"""Alpha at or above this counts as logo (a half-transparent fringe is scene as much as logo)."""


@dataclass(frozen=True)
class Reference:
    """A logo to find: its pixels (RGB), its support (mask) and a name for messages."""

    name: str
    rgb: np.ndarray
    """HxWx3 uint8 RGB, cropped to the visible pixels."""
    mask: np.ndarray
    """HxW bool: which pixels are the logo."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @property
    def gray(self) -> np.ndarray:
        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)


def load_reference(path: str) -> Reference:
    """The reference in ``path``; a file that is missing, undecodable, empty or too small is a
    ReferenceImageError (one line, naming the file)."""
    if not os.path.isfile(path):
        raise ReferenceImageError(f"--logo {path} must be an image file, got no such file")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ReferenceImageError(f"--logo {path} must be an image OpenCV can read (PNG, JPEG...), got an unreadable file")
    if image.dtype != np.uint8:  # 16-bit PNGs: the top byte is all a match needs
        image = (image / 257).astype(np.uint8) if image.dtype == np.uint16 else cv2.convertScaleAbs(image)
    if image.ndim == 2:
        rgb, alpha = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), None
    elif image.shape[2] == 4:
        rgb, alpha = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB), image[..., 3]
    else:
        rgb, alpha = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB), None
    return reference_from_array(rgb, None if alpha is None else alpha >= ALPHA_VISIBLE, name=path)


def reference_from_array(rgb: np.ndarray, mask: np.ndarray | None = None, name: str = "logo") -> Reference:
    """A reference from pixels already in memory (tests, generated logos); ``mask`` None: all logo."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ReferenceImageError(f"--logo {name} must be an RGB image, got an array of shape {rgb.shape} {rgb.dtype}")
    support = np.ones(rgb.shape[:2], bool) if mask is None else mask.astype(bool)
    if support.shape != rgb.shape[:2]:
        raise ReferenceImageError(f"--logo {name}: the mask must match the image's size, got {support.shape}")
    ys, xs = np.nonzero(support)
    if xs.size == 0:
        raise ReferenceImageError(f"--logo {name} must have visible pixels, got a fully transparent image")
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    if min(x1 - x0, y1 - y0) < MIN_SIDE:
        raise ReferenceImageError(f"--logo {name} must be at least {MIN_SIDE}x{MIN_SIDE} visible pixels, "
                                  f"got {x1 - x0}x{y1 - y0}")
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    return Reference(name, crop, np.ascontiguousarray(support[y0:y1, x0:x1]))


def check_fits(reference: Reference, width: int, height: int, min_scale: float) -> None:
    """Refuses a reference that could not appear in a ``width`` x ``height`` frame even at the
    smallest scale looked for: it was cropped from a larger video, or is the wrong file."""
    rw, rh = reference.size
    if rw * min_scale > width or rh * min_scale > height:
        raise ReferenceImageError(f"--logo {reference.name} must fit in the {width}x{height} frame at "
                                  f"{min_scale:g}x its size, got {rw}x{rh}")
