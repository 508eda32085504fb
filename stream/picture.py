"""Pixels of one frame, kept in the decoder's layout and converted only where touched.

Converting every 1080p frame to RGB and back halves throughput (docs/streaming.md: 0.45x of
ffmpeg), so a Picture keeps the planes as decoded and offers RGB *regions*: an element that
paints a 100-px logo converts ~100x100 pixels, not 2 million.

Layouts (all uint8, C-contiguous, one buffer so a Picture can live in a shared-memory slot):

- ``yuv420p``: I420, shape ``(H*3//2, W)``: Y rows, then U and V planes of (H/2)x(W/2) each.
  Width and height are even. This is what ``av.VideoFrame.from_ndarray(.., 'yuv420p')`` takes.
- ``rgb24``: shape ``(H, W, 3)``, RGB. Used for sources that are not 4:2:0 or have odd sizes
  (PNG sequences, 4:4:4), so lossless inputs stay lossless.

Colour conversion of yuv420p regions uses OpenCV's BT.601 limited-range I420 matrices, the
same matrix both ways, so pixels that an element did not change survive a round trip exactly
when written back with ``where``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FORMATS = ("yuv420p", "rgb24")

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels, half-open (x1, y1 excluded)."""


def picture_nbytes(pix_fmt: str, width: int, height: int) -> int:
    if pix_fmt == "yuv420p":
        return width * height * 3 // 2
    if pix_fmt == "rgb24":
        return width * height * 3
    raise ValueError(f"pix_fmt must be one of {', '.join(FORMATS)}, got {pix_fmt!r}")


def picture_shape(pix_fmt: str, width: int, height: int) -> tuple[int, ...]:
    if pix_fmt == "yuv420p":
        return (height * 3 // 2, width)
    if pix_fmt == "rgb24":
        return (height, width, 3)
    raise ValueError(f"pix_fmt must be one of {', '.join(FORMATS)}, got {pix_fmt!r}")


@dataclass(eq=False)
class Picture:
    """One frame's pixels; ``data`` may be a view into shared memory (see module doc)."""

    pix_fmt: str
    width: int
    height: int
    data: np.ndarray

    def __post_init__(self) -> None:
        expected = picture_shape(self.pix_fmt, self.width, self.height)
        if self.pix_fmt == "yuv420p" and (self.width % 2 or self.height % 2):
            raise ValueError(f"yuv420p size must be even, got {self.width}x{self.height}")
        if self.data.shape != expected or self.data.dtype != np.uint8:
            raise ValueError(
                f"{self.pix_fmt} data must be uint8 {expected}, got {self.data.dtype} {self.data.shape}"
            )

    # -- construction -------------------------------------------------------------------
    @classmethod
    def empty(cls, pix_fmt: str, width: int, height: int) -> Picture:
        return cls(pix_fmt, width, height, np.zeros(picture_shape(pix_fmt, width, height), np.uint8))

    @classmethod
    def from_rgb(cls, rgb: np.ndarray, pix_fmt: str = "rgb24") -> Picture:
        """Wraps (rgb24, no copy) or converts (yuv420p) an HxWx3 uint8 RGB image."""
        h, w = rgb.shape[:2]
        if pix_fmt == "rgb24":
            return cls("rgb24", w, h, np.ascontiguousarray(rgb))
        return cls("yuv420p", w, h, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420))

    def copy(self) -> Picture:
        return Picture(self.pix_fmt, self.width, self.height, self.data.copy())

    # -- planes ---------------------------------------------------------------------------
    @property
    def y(self) -> np.ndarray:
        """Luma plane HxW (a view for yuv420p; computed for rgb24)."""
        return self.luma()

    def luma(self) -> np.ndarray:
        if self.pix_fmt == "yuv420p":
            return self.data[: self.height]
        return cv2.cvtColor(self.data, cv2.COLOR_RGB2GRAY)

    def _chroma(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.height, self.width
        flat = self.data.reshape(-1)
        n = (h // 2) * (w // 2)
        u = flat[h * w : h * w + n].reshape(h // 2, w // 2)
        v = flat[h * w + n : h * w + 2 * n].reshape(h // 2, w // 2)
        return u, v

    def planes(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """yuv420p only: writable views (Y, U, V) of an aligned box, for elements that work on
        the planes themselves (no colour conversion at all)."""
        x0, y0, x1, y1 = self.align(box)
        u, v = self._chroma()
        return (self.data[y0:y1, x0:x1], u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
                v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2])

    def thumbnail(self, width: int, height: int) -> np.ndarray:
        """The whole frame shrunk to ``width`` x ``height``, as RGB: each plane is shrunk
        before the colour conversion, so a colour summary (shot cuts) costs a thumbnail's conversion,
        not a full frame's (about 2 ms at 720p on a small CPU)."""
        if self.pix_fmt == "rgb24":
            return cv2.resize(self.data, (width, height), interpolation=cv2.INTER_AREA)
        u, v = self._chroma()
        # OpenCV's I420 conversion lays out chroma in whole rows: sizes in multiples of 4
        w4, h4 = width + (-width) % 4, height + (-height) % 4
        small = np.empty((h4 * 3 // 2, w4), np.uint8)
        small[:h4] = cv2.resize(self.data[: self.height], (w4, h4), interpolation=cv2.INTER_AREA)
        n = (h4 // 2) * (w4 // 2)
        flat = small.reshape(-1)
        half = (w4 // 2, h4 // 2)
        flat[w4 * h4 : w4 * h4 + n] = cv2.resize(u, half, interpolation=cv2.INTER_AREA).reshape(-1)
        flat[w4 * h4 + n :] = cv2.resize(v, half, interpolation=cv2.INTER_AREA).reshape(-1)
        out = cv2.cvtColor(small, cv2.COLOR_YUV2RGB_I420)
        return out if (w4, h4) == (width, height) else cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)

    # -- regions --------------------------------------------------------------------------
    def align(self, box: Box | None) -> Box:
        """Clamps a box to the frame and, for yuv420p, widens it to even coordinates."""
        if box is None:
            return (0, 0, self.width, self.height)
        x0, y0, x1, y1 = (int(v) for v in box)
        x0, y0 = max(0, min(x0, self.width)), max(0, min(y0, self.height))
        x1, y1 = max(x0, min(x1, self.width)), max(y0, min(y1, self.height))
        if self.pix_fmt == "yuv420p":
            x0, y0 = x0 - x0 % 2, y0 - y0 % 2
            x1, y1 = x1 + x1 % 2, y1 + y1 % 2
        return (x0, y0, x1, y1)

    def rgb(self, box: Box | None = None) -> np.ndarray:
        """A new HxWx3 uint8 RGB array of ``box`` (aligned with :meth:`align`; whole frame if None)."""
        x0, y0, x1, y1 = self.align(box)
        if x1 <= x0 or y1 <= y0:
            return np.zeros((max(0, y1 - y0), max(0, x1 - x0), 3), np.uint8)
        if self.pix_fmt == "rgb24":
            return self.data[y0:y1, x0:x1].copy()
        if (x0, y0, x1, y1) == (0, 0, self.width, self.height):
            return cv2.cvtColor(self.data, cv2.COLOR_YUV2RGB_I420)
        u, v = self._chroma()
        ys = self.data[y0:y1, x0:x1]
        us = u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
        vs = v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
        packed = np.concatenate([ys.ravel(), us.ravel(), vs.ravel()]).reshape(-1, x1 - x0)
        return cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_I420)

    def put_rgb(self, rgb: np.ndarray, box: Box | None = None, where: np.ndarray | None = None) -> None:
        """Writes an RGB region back in place.

        ``box`` must be aligned (use the box you passed to :meth:`rgb` after :meth:`align`, or
        an rgb array obtained from it). ``where`` (HxW bool/uint8 of the region) limits the
        write to those pixels; for yuv420p a chroma sample is written where any of its 2x2
        luma pixels is selected, so unselected pixels keep their exact values.
        """
        x0, y0, x1, y1 = self.align(box)
        h, w = y1 - y0, x1 - x0
        if rgb.shape != (h, w, 3):
            raise ValueError(f"region must be {(h, w, 3)} for box {(x0, y0, x1, y1)}, got {rgb.shape}")
        if h == 0 or w == 0:
            return
        sel = None if where is None else where.astype(bool)
        if self.pix_fmt == "rgb24":
            region = self.data[y0:y1, x0:x1]
            if sel is None:
                region[...] = rgb
            else:
                np.copyto(region, rgb, where=sel[..., None])
            return
        i420 = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2YUV_I420).reshape(-1)
        n = (h // 2) * (w // 2)
        ny = i420[: h * w].reshape(h, w)
        nu = i420[h * w : h * w + n].reshape(h // 2, w // 2)
        nv = i420[h * w + n :].reshape(h // 2, w // 2)
        u, v = self._chroma()
        yd = self.data[y0:y1, x0:x1]
        ud = u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
        vd = v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
        if sel is None:
            yd[...], ud[...], vd[...] = ny, nu, nv
            return
        csel = sel.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))
        np.copyto(yd, ny, where=sel)
        np.copyto(ud, nu, where=csel)
        np.copyto(vd, nv, where=csel)
