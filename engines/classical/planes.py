"""The logo's matte and its removal on the decoder's own planes (4:2:0 Y, U, V), not on RGB.

Frames in the pipeline are usually I420 (yuv420p). Converting a crop to RGB and back costs
time, and the RGB round trip itself moves pixels: OpenCV's I420->RGB repeats each chroma sample
over its 2x2 block, the RGB values are rounded and clipped, and RGB->I420 averages them again,
so un-blending in RGB then writing back is not the inverse of how the bug was keyed on. The
blend ``I = a*L + (1-a)*B`` survives any affine colour transform exactly, so it holds plane by
plane in Y'CbCr: the luma plane with the matte ``a`` at full resolution, each chroma plane with
``a`` averaged over the 2x2 block the sample stands for (what a 4:2:0 encoder does to a bug
keyed on in RGB, up to its chroma filter). This module estimates on the Y plane (where the
detail is), fits the chroma colour with the opacity fixed, and un-blends/fills the planes in
place, writing only the samples under the bug.

Colours are kept in RGB in :class:`~cleanfeed.engines.classical.matte.Matte` (so one matte file
serves rgb24 and yuv420p pictures) and converted with the BT.601 limited-range affine map that
:mod:`cleanfeed.stream.picture` uses (OpenCV's I420 matrices).

Arrays: ``ys`` TxHxW, ``uvs`` Tx(H/2)x(W/2)x2 (U, V), uint8 or float32; crops have even sizes.
"""

from __future__ import annotations

import numpy as np

from cleanfeed.engines.classical.matte import Matte, MatteConfig, estimate_matte
from cleanfeed.engines.classical.smoothfill import SmoothFill
from cleanfeed.engines.classical.unblend import Unblender

# BT.601 limited range, 8-bit: yuv = M @ rgb + OFF (as OpenCV's RGB2YUV_I420, up to its rounding)
M = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], np.float64) / 255
OFF = np.array([16.0, 128.0, 128.0])
CHROMA_SMOOTH = 1.0
"""Sigma (chroma px) of the average over the bug of its un-blended chroma. Un-blending divides
the keyed frame's rounding by 1-a (2.5x at 60 %) in every frame anew, and in the chroma planes
that noise is most of the flicker un-blending adds (a 60 % bug over a pan: flicker excess +0.15
levels from the chroma, -0.01 from the luma); chroma carries little detail at half resolution,
so averaging it costs nothing seen (measured on the study's three moving translucent cases:
flicker +0.14/+0.22/+0.11 down to +0.04/+0.09/+0.05, PSNR +0.6/-0.2/+0.3 dB)."""


def rgb_to_yuv(colour: np.ndarray) -> np.ndarray:
    return (M @ np.asarray(colour, np.float64) + OFF).astype(np.float32)


def yuv_to_rgb(colour: np.ndarray) -> np.ndarray:
    return np.linalg.solve(M, np.asarray(colour, np.float64) - OFF).astype(np.float32)


def half(alpha: np.ndarray) -> np.ndarray:
    """The 2x2 block mean of an HxW map (even sizes): the matte of the chroma planes."""
    h, w = alpha.shape
    return alpha.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.float32)


def half_any(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    return mask.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))


def chroma_colour(uvs: np.ndarray, alpha_c: np.ndarray) -> np.ndarray:
    """The bug's (U, V) with the chroma matte fixed: least squares of ``I - R = a*(L - R)`` over
    every frame and strongly covered sample, ``R`` a harmonic prediction of the scene from the
    samples around the support."""
    a0 = float(alpha_c.max())
    support = alpha_c > 0
    strong = alpha_c >= 0.5 * a0
    pred = SmoothFill(support)
    f = np.asarray(uvs, np.float32)
    num = np.zeros(2)
    den = 0.0
    a = alpha_c[strong][:, None]
    for fr in f:
        r = pred(fr)[strong]
        num += (a * (fr[strong] - (1 - a) * r)).sum(axis=0)
        den += float((a * a).sum())
    return (num / max(den, 1e-9)).astype(np.float32)


def estimate_yuv(ys: np.ndarray, uvs: np.ndarray, inbox: np.ndarray, crop: tuple[int, int, int, int],
                 frame_size: tuple[int, int], config: MatteConfig | None = None) -> Matte:
    """The matte from 4:2:0 crops: support, opacity and luma colour from Y, chroma colour from U, V;
    the returned colour is RGB (see module doc)."""
    m = estimate_matte(np.asarray(ys)[..., None], inbox, crop, frame_size, config)
    if not m.present:
        return m
    ly = float(m.colour[0])
    luv = chroma_colour(uvs, half(m.alpha))
    m.colour = yuv_to_rgb(np.array([ly, luv[0], luv[1]]))
    return m


class PlaneRemover:
    """Removes one matte from yuv420p crops in place: build once per matte, call per frame."""

    def __init__(self, matte: Matte, a_max: float = 0.85, grow: int = 1, order: str = "harmonic") -> None:
        yuv = rgb_to_yuv(matte.colour)
        self.luma = Unblender(matte.alpha, yuv[:1], a_max, grow, order, solid=matte.solid)
        hole_c = half_any(self.luma.hole)
        self.chroma = Unblender(half(matte.alpha), yuv[1:], a_max, 0, order, hole=hole_c, smooth=CHROMA_SMOOTH)
        self.blend, self.hole, self.where = self.luma.blend, self.luma.hole, self.luma.where

    def __call__(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """``y`` HxW and ``u``, ``v`` (H/2)x(W/2) uint8 views of the crop, changed in place."""
        ny = self.luma(y[..., None])[..., 0]
        np.copyto(y, ny, where=self.luma.where)
        nuv = self.chroma(np.stack([u, v], axis=-1))
        np.copyto(u, nuv[..., 0], where=self.chroma.where)
        np.copyto(v, nuv[..., 1], where=self.chroma.where)
