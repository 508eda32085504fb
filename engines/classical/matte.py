"""Estimates a screen-fixed overlay's matte (support, per-pixel opacity, colour) from the stream.

A channel bug is keyed on as ``I = a*L + (1-a)*B`` at a fixed position: its opacity ``a`` and
colour ``L`` stay the same while the scene ``B`` under it changes. From a few seconds of frames
of a box around it (plus a margin of ``ring`` pixels outside the box) this module finds:

1. the support: where the temporal mean departs from a harmonic interpolation of the ring's mean
   (a consistent overlay stays visible in the mean, a moving scene averages out smooth), or, when
   the ring moves, where the pixels vary clearly less over time than the ring predicts
   (``std(I) = (1-a) std(B)``);
2. the bug's opacity ``a0`` and colour ``L0`` by one pooled regression of ``I`` on a harmonic
   prediction ``R`` of ``B`` from pixels just outside the support, over every core pixel and
   frame (``I = a0*L0 + (1-a0)*R``): thousands of samples for two numbers per channel, so the
   estimate is precise even when the background is static (its spatial variation along the
   logo suffices);
3. the per-pixel coverage ``m`` (anti-aliased edges) from the mean image, so ``a = a0*m``.

Model limit, said plainly: one colour and one opacity per bug (anti-aliased edges allowed), as
most channel bugs are; a multi-coloured bug is treated as opaque where the fit says so.

Arrays: ``frames`` is a TxHxWxC array (uint8 or float32 0..255; C=3: RGB, C=1: one plane such as Y) of the crop (box + ring);
``inbox`` an HxW bool mask of the box inside the crop. ``Matte.alpha`` is HxW float32 in 0..1,
``Matte.colour`` 3 float32 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.smoothfill import SmoothFill
from cleanfeed.errors import PromptError

KIND = "cleanfeed-logo-matte-1"
"""Written into every matte file; a file without it is not a matte."""

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
QUANTUM = 1 / np.sqrt(12)
"""RMS error (levels) of rounding to integers: an 8-bit frame's floor."""


@dataclass
class Matte:
    """A logo's matte inside its crop; ``present`` False means no static overlay was found."""

    alpha: np.ndarray
    colour: np.ndarray
    crop: tuple[int, int, int, int]
    frame_size: tuple[int, int]
    present: bool = True
    why: str = ""
    frames: int = 0
    solid: np.ndarray | None = None
    """HxW bool: opaque parts of other colours than ``colour`` (a multi-coloured bug's disc or banner),
    found by how little they vary or how far they stand out; removed by filling, never un-blended."""

    @property
    def support(self) -> np.ndarray:
        """Every pixel the bug touches (HxW bool)."""
        return (self.alpha > 0) | (self.solid if self.solid is not None else False)

    @property
    def a0(self) -> float:
        return float(self.alpha.max()) if self.alpha.size else 0.0

    def save(self, path: str) -> None:
        """Writes an .npz holding kind, alpha, colour, crop (x0,y0,x1,y1) and frame size (w,h)."""
        with open(path, "wb") as fh:
            np.savez_compressed(fh, kind=np.array(KIND), alpha=self.alpha.astype(np.float32),
                                colour=self.colour.astype(np.float32), crop=np.array(self.crop, np.int64),
                                frame_size=np.array(self.frame_size, np.int64), frames=np.array(self.frames),
                                solid=(self.solid if self.solid is not None else np.zeros(self.alpha.shape, bool)))


def load_matte(path: str, frame_size: tuple[int, int] | None = None) -> Matte:
    """Reads a matte file; a missing file, another kind of file, or one made for another frame size
    is a one-line PromptError."""
    p = Path(path)
    if not p.is_file():
        raise PromptError(f"logo matte file must exist, got {path!r}")
    try:
        with np.load(p, allow_pickle=False) as data:
            kind = str(data["kind"]) if "kind" in data.files else ""
            if kind != KIND:
                raise PromptError(f"logo matte file must be a {KIND} .npz (written by logo save=FILE), got {path!r}")
            alpha, colour = data["alpha"].astype(np.float32), data["colour"].astype(np.float32)
            crop = tuple(int(v) for v in data["crop"])
            size = tuple(int(v) for v in data["frame_size"])
            solid = data["solid"].astype(bool) if "solid" in data.files else None
    except PromptError:
        raise
    except Exception as err:  # not a zip, truncated, missing arrays
        raise PromptError(f"logo matte file must be a {KIND} .npz (written by logo save=FILE), got {path!r} "
                          f"({type(err).__name__})") from None
    x0, y0, x1, y1 = crop
    if (alpha.shape != (y1 - y0, x1 - x0) or colour.shape != (3,) or not np.isfinite(alpha).all()
            or (solid is not None and solid.shape != alpha.shape)):
        raise PromptError(f"logo matte file alpha must be {y1 - y0}x{x1 - x0} with a 3-value colour, "
                          f"got {alpha.shape} and {colour.shape} in {path!r}")
    if frame_size is not None and tuple(frame_size) != size:
        raise PromptError(f"logo matte file must be made for {frame_size[0]}x{frame_size[1]} frames, "
                          f"got {size[0]}x{size[1]} in {path!r}")
    return Matte(alpha, colour, crop, size, solid=solid)  # type: ignore[arg-type]


def _shrink(mask: np.ndarray, r: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), regions.ellipse(r)) > 0 if r > 0 else mask.copy()


def _edge_pairs(inner: np.ndarray, outside: np.ndarray, reach: float) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                             tuple[np.ndarray, np.ndarray]]:
    """Pixels of ``inner`` within ``reach`` px of ``outside``, and for each the nearest pixel of
    ``outside`` (row and column index arrays of both)."""
    dist, label = cv2.distanceTransformWithLabels((~outside).astype(np.uint8), cv2.DIST_L2, 5,
                                                  labelType=cv2.DIST_LABEL_PIXEL)
    oy, ox = np.nonzero(outside)
    of_label = np.zeros(int(label.max()) + 1, np.int64)
    of_label[label[oy, ox]] = np.arange(oy.size)
    iy, ix = np.nonzero(inner & (dist <= reach))
    j = of_label[label[iy, ix]]
    return (iy, ix), (oy[j], ox[j])


def _fill_error(images: np.ndarray, hole: np.ndarray, inbox: np.ndarray, band: int) -> float | None:
    """RMS error (levels) of a fill of ``hole`` on ``images`` (one HxWxC image or a stack of them),
    measured on a ``band`` of pixels just outside it, filled as if hidden, where the truth is known:
    how far a fill's guess of the scene can be trusted. None when too few pixels show it."""
    ring = regions.grow_mask(hole, band) & ~hole & inbox
    if ring.sum() < 8 or (~(hole | ring)).sum() < 8:
        return None
    fill = SmoothFill(hole | ring)
    stack = images if images.ndim == 4 else images[None]
    return float(np.sqrt(np.mean([((fill(im) - im)[ring] ** 2).mean() for im in stack])))


def _fill_beats_unblending(f: np.ndarray, alpha: np.ndarray, colour: np.ndarray, inbox: np.ndarray,
                           cfg: MatteConfig) -> bool:
    """Over a static scene, whether filling the translucent bug from its border would be closer to
    the scene than un-blending it.

    Un-blending divides by 1-a, so it amplifies the source's noise and 8-bit rounding (2.5x at
    60 %: about 0.8 levels rms on clean 8-bit footage); over a smooth background (a sky) a fill
    from the border is closer than that (measured on a 60 % bug over a static sky: un-blended
    48.9 dB, filled 55.7). Both errors are measured on the frames: the fill's on a band of pixels
    just outside the support, filled as if hidden, where the truth is known; un-blending's as the
    frame-to-frame spread of the recovered pixels, which is all noise when the scene stands still,
    plus the 8-bit rounding of the keyed frames amplified, which a still scene repeats every frame.
    """
    support = alpha > 0
    frames = f[np.linspace(0, len(f) - 1, min(len(f), cfg.compare_frames)).round().astype(int)]
    err_fill = _fill_error(frames, regions.grow_mask(support, 1), inbox, cfg.band)
    if err_fill is None or len(f) < 3:
        return False
    a = alpha[support][:, None]
    recovered = (frames[:, support] - a * colour[: frames.shape[-1]]) / np.maximum(1.0 - a, 1e-3)
    rounding = QUANTUM / np.maximum(1.0 - a[:, 0], 1e-3)  # the 8-bit rounding of every frame, amplified
    err_unblend = float(np.sqrt(recovered.var(axis=0).mean() + (rounding ** 2).mean()))
    return err_fill < err_unblend


@dataclass(frozen=True)
class MatteConfig:
    dev_levels: float = 10.0
    """Mean-image departure (levels) from the ring's interpolation that marks a support pixel."""
    sd_ratio: float = 0.6
    """When the ring moves: a pixel varying less than this share of the ring's prediction is support."""
    still_ratio: float = 0.9
    """When the ring moves: a pixel standing out in the mean is support only if it varies less than
    this share of the ring's prediction."""
    band: int = 3
    """Width (px) of the band outside the support on which a fill's error is measured."""
    compare_frames: int = 8
    """Frames (spread through the learnt ones) on which the fill and un-blending errors are compared."""
    moving_sd: float = 2.0
    """The ring's median temporal std (luma levels) above which the scene counts as moving."""
    min_alpha: float = 0.12
    """An overlay fainter than this is no overlay."""
    solid_dev: float = 3.0
    """Over a static scene, such a pixel must stand out this many times more than a support pixel."""
    pair_reach: float = 2.5
    """Over a moving scene, the fully covered pixels within this many px of the bug's edge are paired
    with their nearest outside pixel to measure its opacity."""
    faint_levels: float = 1.0
    """Over a static scene, a pixel is support where the overlay changes it by this many levels
    (``a*|L-B|``), however small its coverage: the anti-aliased rim of a bug that contrasts with the
    scene is 1-3 % covered yet 2-5 levels off (measured on a bug over a static sky: 55.5 dB on Y with
    the rim found, 54.2 with a coverage floor of 5 % and the support grown by 1 px instead, 51.9 not
    grown). Over a moving scene the mean is too noisy for this: coverage under 5 % is dropped."""
    solid_sd: float = 0.35
    """Over a moving scene, a candidate pixel the one-colour fit leaves out is an opaque part of
    another colour when it varies less than this share of the scene's spread around it."""


def estimate_matte(frames: np.ndarray, inbox: np.ndarray, crop: tuple[int, int, int, int],
                   frame_size: tuple[int, int], config: MatteConfig | None = None) -> Matte:
    """The matte of the static overlay inside ``inbox`` (see the module doc), or one with
    ``present=False`` and ``why`` saying what was missing."""
    cfg = config or MatteConfig()
    f = np.asarray(frames, np.float32)
    t, h, w = f.shape[:3]
    empty = Matte(np.zeros((h, w), np.float32), np.zeros(3, np.float32), crop, frame_size, False, "", t)
    ring = ~inbox
    if t < 2 or not ring.any():
        empty.why = "needs at least 2 frames and a ring of pixels around the box"
        return empty
    mean = f.mean(axis=0)
    c = f.shape[-1]
    luma = f @ LUMA if c == 3 else f.mean(axis=-1)  # a single plane (Y) is its own luma
    sd = luma.std(axis=0)
    from_ring = SmoothFill(inbox)
    dev = np.abs(mean - from_ring(mean)).max(axis=-1)
    ring_sd = float(np.median(sd[ring]))
    moving = ring_sd >= cfg.moving_sd
    stands_out = min(cfg.dev_levels, 0.25 * float(np.percentile(dev[inbox], 99)))
    cand = (dev > stands_out) & inbox
    if moving:
        sd_ref = np.maximum(from_ring(sd), 1e-3)
        # over a moving scene what stands out in the mean must also vary less than the scene: scene
        # structure that stays in a short mean (a horizon along a pan, a face) varies as much as the
        # scene does (measured: a 16-px bug over moving bikes, 45 such pixels of 200 without it, none with)
        cand &= sd < cfg.still_ratio * sd_ref
        cand |= (sd < cfg.sd_ratio * sd_ref) & inbox
    cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0
    if cand.sum() < 3:
        empty.why = ("nothing in the box stays put while the scene around it moves" if moving
                     else "nothing in the box stands out from its surroundings")
        return empty
    # pooled fit of a0 and L0: core pixels against a harmonic prediction from just outside the support
    around = regions.grow_mask(cand, 2)
    strong = cand & (dev >= 0.5 * float(np.percentile(dev[cand], 90)))
    # fit on pixels 2-3 px inside the support: fully covered, yet near enough to the outside for
    # the harmonic prediction to be close to the true background (a far prediction biases a0 up)
    dist = cv2.distanceTransform(strong.astype(np.uint8), cv2.DIST_L2, 3)
    near = (dist >= 1.5) & (dist <= 3.5)
    shrunk = _shrink(strong, 1)
    core = near if near.sum() >= 8 else (shrunk if shrunk.sum() >= 8 else strong)
    pred = SmoothFill(around)
    ii = f[:, core]  # (t, n, 3)
    rr = np.stack([pred(fr)[core] for fr in f])
    di, dr = ii - ii.mean(axis=(0, 1)), rr - rr.mean(axis=(0, 1))
    var_r = float((dr * dr).sum())
    if var_r < 1.0 * dr.size:  # the background hardly varies anywhere under the core: assume opaque
        a0 = 1.0
    else:
        slope = float((di * dr).sum() / var_r)
        a0 = float(np.clip(1.0 - slope, 0.0, 1.0))
        if moving and a0 >= cfg.min_alpha:  # the regression still decides whether there is a bug
            # over a moving, textured scene the regression on a smooth prediction is diluted (the
            # prediction varies with the ring more than the scene under the bug does: a0 biased
            # up). The temporal spread is not: std(I) = (1-a0) std(B), with std(B) interpolated
            # from just outside the support, where the scene's texture is like that under the bug
            sd_out = SmoothFill(around)(sd)
            ratio = sd[core] / np.maximum(sd_out[core], 1e-3)
            a0 = float(np.clip(1.0 - np.median(ratio), 0.0, 1.0))
    if a0 < cfg.min_alpha:
        empty.why = f"what stands out in the box is the scene, not an overlay (opacity {a0:.2f})"
        return empty
    if moving:
        core_sd, ref_sd = float(np.median(sd[core])), float(np.median(sd_ref[core]))
        if core_sd > (1.0 - 0.5 * a0) * ref_sd:
            empty.why = "the candidate overlay changes with the scene"
            return empty
    zone = regions.grow_mask(cand, 2) & inbox
    mean_b = SmoothFill(zone)(mean)
    faint = cfg.faint_levels if moving else max(cfg.faint_levels, 2.0 * (_fill_error(mean, zone, inbox, cfg.band) or 0.0))
    mean_ii, mean_rr = ii.mean(axis=(0, 1)), rr.mean(axis=(0, 1))

    def matte(a0: float) -> tuple[np.ndarray, np.ndarray]:
        """alpha and colour for one core opacity: the colour from the pooled intercept, the
        coverage per pixel from the mean image against the scene's interpolated mean."""
        colour = np.clip((mean_ii - (1.0 - a0) * mean_rr) / max(a0, 1e-3), 0, 255).astype(np.float32)
        diff = colour - mean_b
        num = ((mean - mean_b) * diff).sum(axis=-1)
        den = a0 * (diff * diff).sum(axis=-1)
        cover = np.where(den > a0 * c * 20.0 ** 2, num / np.maximum(den, 1e-6), cand.astype(np.float32))
        cover = np.clip(cover, 0.0, 1.0) * zone
        if moving:
            cover[cover < 0.05] = 0.0
        else:  # a still scene's mean is precise: keep the faint rim wherever it shows
            cover[a0 * cover * np.sqrt((diff * diff).mean(axis=-1)) < faint] = 0.0
        return (a0 * cover).astype(np.float32), colour

    alpha, colour = matte(a0)
    if moving:
        # that opacity compares the core with the scene's spread interpolated from beyond the
        # candidates, which a face or a textured field under the bug need not share (measured on a
        # 60 % bug: 0.67-0.79 over a face, 0.63-0.77 over grass). The bug's fully covered pixels next
        # to its edge and their nearest pixels outside it, 1-3 px apart, see the same scene: their
        # spread ratio is 1 - a0 (0.58-0.61 on the study's three moving clips; flicker over the face
        # +0.80 levels before, -0.26 after). Outside means outside the bug's opaque parts of other
        # colours too (as `solid` below finds them): next to a multi-coloured bug's text lies its own
        # disc, which varies no more than the text does (the demo's opaque bug measured 0.65 against
        # its disc); not outside every candidate, which moves the pairs off the edge (a 60 % bug
        # over a pan: flicker +0.12 instead of +0.05)
        full = alpha >= 0.9 * a0
        other = cand & (alpha < 0.5 * a0) & (sd < cfg.solid_sd * sd_ref)
        inner, outer = _edge_pairs(full, ~regions.grow_mask(full | other, 1), cfg.pair_reach)
        if inner[0].size >= 8:
            a0 = float(np.clip(1.0 - np.median(sd[inner] / np.maximum(sd[outer], 1e-3)), 0.0, 1.0))
            if a0 < cfg.min_alpha:
                empty.why = f"what stands out in the box is the scene, not an overlay (opacity {a0:.2f})"
                return empty
            alpha, colour = matte(a0)
    # a multi-coloured bug: what stays put (moving scene) or stands out far (static scene: there
    # the scene's own edges stand out too) but is not the fitted colour is an opaque part of another
    # colour (measured on the demo's disc and banner: the one-colour fit kept only the white text,
    # a third of the bug)
    solid = cand & (alpha < 0.5 * a0)
    solid &= (sd < cfg.solid_sd * sd_ref) if moving else (dev > cfg.solid_dev * stands_out)
    solid = cv2.morphologyEx(solid.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0  # specks, not strokes
    if not moving and a0 < 1.0 and _fill_beats_unblending(f, alpha, colour, inbox, cfg):
        solid |= alpha > 0
    return Matte(alpha, colour, crop, frame_size, True, "moving" if moving else "static", t,
                 solid if solid.any() else None)
