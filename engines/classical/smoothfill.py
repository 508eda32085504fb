"""Smooth fills of a fixed hole from its border: harmonic (Laplace) or biharmonic.

A screen-fixed logo leaves the same hole in every frame, so the linear system that fills it is
the same every frame: it is factorised once (scipy's sparse LU) and each frame costs one
back-substitution per colour channel, on the hole's neighbourhood only. The fill is a fixed
linear function of the known border pixels, so a static border gives a bit-identical fill in
every frame: no flicker on static backgrounds (unlike fills that sample or iterate).

- ``harmonic``: each hole pixel is the mean of its 4 neighbours (Laplace's equation, Dirichlet
  border from the known pixels next to the hole). The smoothest fill that touches the border;
  no overshoot (max principle), so it never invents a brighter or darker colour than the border.
- ``biharmonic``: the Laplacian of the fill is itself harmonic (needs 2 px of known border);
  continues gradients (a sky's ramp) across the hole instead of flattening them, but can
  overshoot near strong edges.

Arrays: ``hole`` is an HxW bool mask of the crop; crops are HxWxC (C=1 or 3) uint8 or float32
in 0..255; fills are float32 HxWxC with the known pixels passed through unchanged.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

ORDERS = ("harmonic", "biharmonic")


def _laplacian(h: int, w: int) -> sp.csr_matrix:
    """5-point graph Laplacian (degree minus adjacency) of an HxW grid, Neumann at the crop edge."""
    idx = np.arange(h * w).reshape(h, w)
    rows, cols = [], []
    for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
        rows += [a.ravel(), b.ravel()]
        cols += [b.ravel(), a.ravel()]
    r, c = np.concatenate(rows), np.concatenate(cols)
    adj = sp.csr_matrix((np.ones(r.size), (r, c)), shape=(h * w, h * w))
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return (sp.diags(deg) - adj).tocsr()


class SmoothFill:
    """Fills ``hole`` (HxW bool) of crops of one fixed size; build once, call per frame.

    Raises ValueError when the hole leaves no known pixel in the crop (nothing to fill from).
    """

    def __init__(self, hole: np.ndarray, order: str = "harmonic") -> None:
        if order not in ORDERS:
            raise ValueError(f"fill order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.hole = np.asarray(hole, bool)
        self.order = order
        h, w = self.hole.shape
        flat = self.hole.ravel()
        self._h = np.flatnonzero(flat)
        self._k = np.flatnonzero(~flat)
        self._solve = None
        if self._h.size == 0:
            return
        if self._k.size == 0:
            raise ValueError("fill needs known pixels around the hole, got a hole covering the whole crop")
        lap = _laplacian(h, w)
        op = lap if order == "harmonic" else (lap @ lap).tocsr()
        op_hh = op[self._h][:, self._h].tocsc()
        self._op_hk = op[self._h][:, self._k].tocsr()
        self._solve = spla.splu(op_hh).solve

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """The crop (HxWxC or HxW) as float32 with its hole filled."""
        img = np.asarray(crop, np.float32)
        squeeze = img.ndim == 2
        if squeeze:
            img = img[..., None]
        if img.shape[:2] != self.hole.shape:
            raise ValueError(f"crop must be {self.hole.shape}, got {img.shape[:2]}")
        out = img.copy()
        if self._solve is None:
            return out[..., 0] if squeeze else out
        flat = out.reshape(-1, out.shape[2])
        rhs = -(self._op_hk @ flat[self._k].astype(np.float64))
        flat[self._h] = self._solve(rhs).astype(np.float32)
        return out[..., 0] if squeeze else out


def smooth_fill(crop: np.ndarray, hole: np.ndarray, order: str = "harmonic") -> np.ndarray:
    """One-off fill (builds the factorisation each call): float32 crop with ``hole`` filled."""
    return SmoothFill(hole, order)(crop)
