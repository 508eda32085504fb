"""Removal of a known matte on yuv420p planes (issue 17): the chroma of un-blended pixels."""

from __future__ import annotations

import numpy as np

from cleanfeed.engines.classical.matte import Matte
from cleanfeed.engines.classical.planes import PlaneRemover, half, rgb_to_yuv

H, W = 32, 48


def keyed(alpha: np.ndarray, colour: np.ndarray, frames: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Y, U, V planes (T frames) of a scene whose luma moves and whose flat chroma has a camera's
    noise, with the bug keyed on per plane and rounded to 8 bits, as an encoder of a keyed frame
    does; and the clean chroma."""
    rng = np.random.default_rng(seed)
    yuv = rgb_to_yuv(colour)
    ys = rng.uniform(40, 200, (frames, H, W)).astype(np.float32)
    us = (110.0 + rng.normal(0.0, 1.0, (frames, H // 2, W // 2))).astype(np.float32)  # a camera's noise
    vs = (150.0 + rng.normal(0.0, 1.0, (frames, H // 2, W // 2))).astype(np.float32)
    a, ac = alpha[None], half(alpha)[None]
    key = [np.clip(a * yuv[0] + (1 - a) * ys + 0.5, 0, 255).astype(np.uint8),
           np.clip(ac * yuv[1] + (1 - ac) * us + 0.5, 0, 255).astype(np.uint8),
           np.clip(ac * yuv[2] + (1 - ac) * vs + 0.5, 0, 255).astype(np.uint8)]
    return (*key, us, vs)


def test_un_blended_chroma_is_averaged_so_its_amplified_rounding_does_not_flicker() -> None:
    """Un-blending divides the keyed frame's rounding by 1-a in every frame anew; over the bug the
    chroma (half resolution, little detail) is averaged, so it changes from frame to frame far less
    than the plain inversion's, and stays on the scene's colour."""
    alpha = np.zeros((H, W), np.float32)
    alpha[8:24, 12:36] = 0.6
    colour = np.array([235.0, 60.0, 200.0], np.float32)
    matte = Matte(alpha, colour, (0, 0, W, H), (W, H), why="moving")
    under = half(alpha) > 0.55
    change = {}
    for averaged in (True, False):
        y, u, v, _, _ = keyed(alpha, colour, 12)
        remover = PlaneRemover(matte)
        if not averaged:
            remover.chroma.smooth = 0.0
        for t in range(len(y)):
            remover(y[t], u[t], v[t])
        change[averaged] = float(np.abs(np.diff(u.astype(np.float32), axis=0))[:, under].mean())
        assert abs(float(u[:, under].mean()) - 110.0) <= 0.5 and abs(float(v[:, under].mean()) - 150.0) <= 0.5
    assert change[True] <= 0.6 * change[False], change
