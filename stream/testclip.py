"""A synthetic clip whose ground truth is known: what lies behind the logo, and where the logo is.

Tests, the demo and the benchmarks need video in which removing a logo can be scored. Real
footage has no ground truth, so this renders one: a large procedurally generated scene (colour
gradients, shapes and multi-octave noise: texture at several scales, enough for optical flow)
seen through a camera that pans along a smooth path at 2-6 px/frame with sub-pixel positions
(optionally zooming), with a logo composited on top:

- ``logo="fixed"``: a broadcaster's channel bug (a disc and a banner with text, partly
  semi-opaque) fixed in the top-right corner of the screen while the scene moves behind it;
- ``logo="scene"``: a sign printed on the scene, moving (and scaling) with it;
- ``logo="none"``: no logo (for pass-through checks).

Everything is deterministic from ``seed``. The scene and the logo sprite are rendered once per
clip; a frame costs one bilinear warp of the scene plus a composite of the logo's region
(about 2 ms at 720p).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from cleanfeed.errors import PropertyError

MOTIONS = ("pan", "static", "zoom")
LOGOS = ("fixed", "scene", "none")

_SUPERSAMPLE = 4  # logo sprites are drawn 4x larger and averaged down: smooth, anti-aliased alpha


@dataclass(frozen=True)
class ClipFrame:
    """One rendered frame.

    - ``image``: HxWx3 uint8 RGB, what a camera would deliver (logo included);
    - ``clean``: HxWx3 uint8 RGB, the same frame without the logo (the ground truth);
    - ``mask``: HxW bool, the logo's support (every pixel the logo changes, alpha > 0);
    - ``box``: the mask's bounding box (x0, y0, x1, y1), half-open; (0, 0, 0, 0) without a logo.
    """

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class _Sprite:
    """A logo drawn once: premultiplied RGB (float32 HxWx3) and alpha (float32 HxW, 0..1)."""

    premul: np.ndarray
    alpha: np.ndarray


class SyntheticClip:
    """A panning shot with a logo; ``frame(i)`` renders frame ``i`` (0-based) on demand.

    Sizes are pixels; ``logo_size`` is the logo's width (its height is about 0.6x that).
    The camera path keeps a scene logo inside the frame for the whole clip.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        frames: int = 150,
        rate: float = 30,
        motion: str = "pan",
        logo: str = "fixed",
        logo_size: int = 100,
        seed: int = 0,
    ) -> None:
        if width < 32 or height < 32:
            raise PropertyError(f"clip size must be at least 32x32, got {width}x{height}")
        if frames < 1:
            raise PropertyError(f"clip frames must be >= 1, got {frames}")
        if motion not in MOTIONS:
            raise PropertyError(f"clip motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
        if logo not in LOGOS:
            raise PropertyError(f"clip logo must be one of {', '.join(LOGOS)}, got {logo!r}")
        largest = min(width - 16, int((height - 16) / 0.6))
        if logo == "none":
            logo_size = max(8, min(logo_size, largest))
        if not 8 <= logo_size <= largest:
            raise PropertyError(f"logo_size must be 8..{largest} for a {width}x{height} clip, got {logo_size}")
        self.width, self.height, self.frames, self.rate = width, height, frames, rate
        self.motion, self.logo, self.logo_size, self.seed = motion, logo, logo_size, seed
        rng = np.random.default_rng(seed)
        self._logo_h = max(4, round(0.6 * logo_size))
        self._path = _Path.plan(width, height, logo_size, self._logo_h, motion, rng)
        self._scene = _render_scene(self._path.scene_size, rng)
        self._sprite: _Sprite | None = None
        self._fixed_at = (0, 0)
        self._scene_at = (0.0, 0.0)
        if logo == "fixed":
            self._sprite = _channel_bug(logo_size, self._logo_h)
            inset = max(4, round(0.03 * width))
            self._fixed_at = (width - inset - logo_size, max(4, round(0.03 * height)))
        elif logo == "scene":
            self._sprite = _printed_sign(logo_size, self._logo_h)
            cx, cy = self._path.centre
            self._scene_at = (cx - logo_size / 2 + 0.25, cy - self._logo_h / 2 + 0.4)

    def __len__(self) -> int:
        return self.frames

    def __iter__(self) -> Iterator[ClipFrame]:
        return (self.frame(i) for i in range(self.frames))

    # -- geometry ----------------------------------------------------------------------------
    def camera(self, index: int) -> np.ndarray:
        """2x3 float64 affine mapping frame pixel (x, y) of frame ``index`` to scene pixels."""
        cx, cy, zoom = self._path.at(index)
        ox, oy = (self.width - 1) / 2, (self.height - 1) / 2
        return np.array([[zoom, 0.0, cx - zoom * ox], [0.0, zoom, cy - zoom * oy]])

    def motion_between(self, src: int, dst: int) -> np.ndarray:
        """3x3 float64 homography taking a scene point's pixel in frame ``src`` to its pixel in ``dst``."""
        a, b = np.eye(3), np.eye(3)
        a[:2] = self.camera(src)
        b[:2] = self.camera(dst)
        return np.linalg.inv(b) @ a

    def truth_region(self, index: int, grow: int) -> np.ndarray:
        """HxW bool: frame ``index``'s true logo mask grown by ``grow`` px (elliptical), where removal is scored."""
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        return cv2.dilate(self.frame(index).mask.view(np.uint8), kernel) > 0

    # -- rendering ---------------------------------------------------------------------------
    def frame(self, index: int) -> ClipFrame:
        if not 0 <= index < self.frames:
            raise IndexError(f"frame index must be 0..{self.frames - 1}, got {index}")
        cam = self.camera(index)
        clean = cv2.warpAffine(
            self._scene, cam, (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT,
        )
        mask = np.zeros((self.height, self.width), bool)
        if self._sprite is None:
            return ClipFrame(clean, clean.copy(), mask, (0, 0, 0, 0))
        if self.logo == "fixed":
            x0, y0 = self._fixed_at
            premul, alpha = self._sprite.premul, self._sprite.alpha
        else:
            x0, y0, premul, alpha = self._warp_scene_logo(self._sprite, cam)
        h, w = alpha.shape
        image = clean.copy()
        region = image[y0 : y0 + h, x0 : x0 + w]
        region[...] = np.clip(region * (1.0 - alpha[..., None]) + premul + 0.5, 0, 255).astype(np.uint8)
        support = alpha > 1e-3
        mask[y0 : y0 + h, x0 : x0 + w] = support
        bx, by, bw, bh = cv2.boundingRect(support.astype(np.uint8))
        box = (x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh) if bw else (0, 0, 0, 0)
        return ClipFrame(image, clean, mask, box)

    def _warp_scene_logo(self, sprite: _Sprite, cam: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
        """The printed sign as this frame sees it: its frame region and warped sprite."""
        zoom, tx, ty = cam[0, 0], cam[0, 2], cam[1, 2]
        sx, sy = self._scene_at
        h, w = sprite.alpha.shape
        fx0, fy0 = (sx - tx) / zoom, (sy - ty) / zoom
        fx1, fy1 = (sx + w - tx) / zoom, (sy + h - ty) / zoom
        x0, y0 = max(0, math.floor(fx0) - 2), max(0, math.floor(fy0) - 2)
        x1, y1 = min(self.width, math.ceil(fx1) + 3), min(self.height, math.ceil(fy1) + 3)
        if x1 <= x0 or y1 <= y0:
            return 0, 0, np.zeros((0, 0, 3), np.float32), np.zeros((0, 0), np.float32)
        # region pixel (u, v) -> sprite pixel: zoom * (x0 + u) + tx - sx
        m = np.array([[zoom, 0.0, zoom * x0 + tx - sx], [0.0, zoom, zoom * y0 + ty - sy]])
        size = (x1 - x0, y1 - y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        premul = cv2.warpAffine(sprite.premul, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(sprite.alpha, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        return x0, y0, premul, alpha


@dataclass(frozen=True)
class _Path:
    """The camera's centre (scene pixels) and zoom over time: an ellipse run at 2-6 px/frame."""

    scene_size: tuple[int, int]
    centre: tuple[float, float]
    radii: tuple[float, float]
    phase: float
    speed: float  # radians per frame
    motion: str

    @classmethod
    def plan(cls, width: int, height: int, logo_w: int, logo_h: int, motion: str, rng: np.random.Generator) -> _Path:
        # the radii keep a scene logo placed at the centre inside the frame at every position
        ax = max(4.0, min(240.0, 0.9 * ((width - logo_w) / 2 - 8)))
        ay = max(2.0, min(ax / 3, 0.9 * ((height - logo_h) / 2 - 8)))
        pad = 16
        size = (int(width + 2 * ax + 2 * pad), int(height + 2 * ay + 2 * pad))
        centre = (size[0] / 2 + float(rng.uniform(-0.5, 0.5)), size[1] / 2 + float(rng.uniform(-0.5, 0.5)))
        phase = math.pi / 2 + float(rng.uniform(-0.3, 0.3))
        return cls(size, centre, (ax, ay), phase, 6.0 / ax, motion)

    def at(self, index: int) -> tuple[float, float, float]:
        theta = self.phase if self.motion == "static" else self.phase + self.speed * index
        cx = self.centre[0] + self.radii[0] * math.cos(theta)
        cy = self.centre[1] + self.radii[1] * math.sin(theta)
        zoom = 1.0
        if self.motion == "zoom":
            zoom = 1.0 - 0.1 * (1.0 - math.cos(2 * math.pi * index / 90))
        return cx, cy, zoom


def _smooth_field(rng: np.random.Generator, size: tuple[int, int], cell: int, channels: int = 1) -> np.ndarray:
    """Value noise: random values on a grid of ``cell`` px, cubic-interpolated; float32 in ~[-1, 1]."""
    w, h = size
    gw, gh = max(2, w // cell + 2), max(2, h // cell + 2)
    grid = rng.uniform(-1, 1, (gh, gw, channels)).astype(np.float32)
    field = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_CUBIC)
    field = field.reshape(gh * cell, gw * cell, channels)
    return field[:h, :w]


def _render_scene(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An earthy, natural-ish landscape of texture: gradients, shapes and noise at several scales."""
    w, h = size
    palette = np.array(
        [[92, 120, 60], [140, 118, 80], [70, 96, 110], [168, 160, 140], [60, 70, 50], [120, 90, 60]], np.float32
    )
    weights = np.abs(_smooth_field(rng, size, 256, len(palette))) + 0.05
    weights /= weights.sum(axis=2, keepdims=True)
    img = weights @ palette  # HxWx3 float32
    img += 40 * _smooth_field(rng, size, 128)  # broad light and shade
    canvas = np.clip(img, 0, 255).astype(np.uint8)
    area = w * h
    for scale, count in ((60, area // 9000), (24, area // 2500), (8, area // 1200)):
        layer = canvas.copy()
        for _ in range(max(1, count)):
            colour = palette[rng.integers(len(palette))] + rng.normal(0, 16, 3)
            colour_t = tuple(int(c) for c in np.clip(colour, 0, 255))
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = max(2, int(rng.uniform(0.4, 1.6) * scale))
            kind = rng.integers(4)
            if kind == 0:
                axes = (r, max(1, int(r * rng.uniform(0.3, 1.0))))
                cv2.ellipse(layer, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour_t, -1, cv2.LINE_AA)
            elif kind == 1:
                n = int(rng.integers(3, 7))
                angles = np.sort(rng.uniform(0, 2 * np.pi, n))
                radii = r * rng.uniform(0.5, 1.2, n)
                pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
                cv2.fillPoly(layer, [pts], colour_t, cv2.LINE_AA)
            elif kind == 2:
                end = (cx + int(rng.normal(0, 2 * r)), cy + int(rng.normal(0, 2 * r)))
                cv2.line(layer, (cx, cy), end, colour_t, max(1, r // 6), cv2.LINE_AA)
            else:
                cv2.rectangle(layer, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour_t, -1, cv2.LINE_AA)
        canvas = cv2.addWeighted(canvas, 0.45, layer, 0.55, 0)
    img = canvas.astype(np.float32)
    for cell, amp in ((32, 14.0), (8, 10.0), (3, 8.0)):
        img += amp * _smooth_field(rng, size, cell)
    img += rng.normal(0, 3.0, (h, w, 1)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    return np.clip(img, 0, 255).astype(np.uint8)


def _finish_sprite(colour: np.ndarray, alpha: np.ndarray, width: int, height: int) -> _Sprite:
    """Averages a supersampled drawing down to its size and premultiplies."""
    colour = cv2.resize(colour.astype(np.float32) * alpha[..., None], (width, height), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
    alpha[alpha < 1e-3] = 0.0
    return _Sprite(colour.astype(np.float32), alpha.astype(np.float32))


def _fit_text(text: str, font: int, height: int, width: int, thickness: int) -> float:
    """The font scale that makes ``text`` ``height`` px tall, or narrower if it would exceed ``width``."""
    scale = cv2.getFontScaleFromHeight(font, max(1, height), thickness)
    (tw, _), _ = cv2.getTextSize(text, font, scale, thickness)
    return scale * min(1.0, width / max(1, tw))


def _channel_bug(width: int, height: int) -> _Sprite:
    """A disc emblem with a banner of text to its right: semi-opaque fills, opaque lettering."""
    s = _SUPERSAMPLE
    w, h = width * s, height * s
    colour = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.float32)
    r = h // 2 - s
    centre = (h // 2, h // 2)
    top, bottom = int(0.3 * h), int(0.72 * h)
    banner = np.zeros((h, w), np.uint8)
    cv2.rectangle(banner, (h // 2, top), (w - s - (bottom - top) // 2, bottom), 255, -1)
    cv2.circle(banner, (w - s - (bottom - top) // 2, (top + bottom) // 2), (bottom - top) // 2, 255, -1)
    colour[banner > 0] = (200, 28, 40)
    alpha[banner > 0] = 0.8
    disc = np.zeros((h, w), np.uint8)
    cv2.circle(disc, centre, r, 255, -1)
    colour[disc > 0] = (24, 44, 150)
    alpha[disc > 0] = 0.88
    ink = np.zeros((h, w), np.uint8)
    cv2.circle(ink, centre, r, 255, max(1, int(0.07 * h)))
    cv2.ellipse(ink, centre, (r // 2, r // 2), 0, 40, 320, 255, max(1, int(0.1 * h)))
    text_h = bottom - top
    left, right = h // 2 + r + 2 * s, w - (bottom - top) // 3
    thick = max(1, text_h // 8)
    scale = _fit_text("NEWS 24", cv2.FONT_HERSHEY_SIMPLEX, int(0.6 * text_h), right - left, thick)
    cv2.putText(ink, "NEWS 24", (left, bottom - int(0.22 * text_h)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, 255, thick, cv2.LINE_AA)
    ink &= np.maximum(banner, disc)
    colour[ink > 0] = (250, 250, 245)
    alpha[ink > 0] = 1.0
    return _finish_sprite(colour, alpha, width, height)


def _printed_sign(width: int, height: int) -> _Sprite:
    """A yellow diamond sign with a red border and dark lettering, fully opaque (printed)."""
    s = _SUPERSAMPLE
    w, h = width * s, height * s
    colour = np.zeros((h, w, 3), np.uint8)
    shape = np.zeros((h, w), np.uint8)
    diamond = np.array([[w // 2, s], [w - s, h // 2], [w // 2, h - s], [s, h // 2]], np.int32)
    cv2.fillPoly(shape, [diamond], 255)
    colour[shape > 0] = (200, 30, 30)
    inner = np.zeros((h, w), np.uint8)
    shrink = (diamond - [w // 2, h // 2]) * 0.82 + [w // 2, h // 2]
    cv2.fillPoly(inner, [shrink.astype(np.int32)], 255)
    colour[inner > 0] = (245, 205, 30)
    text_h = int(0.22 * h)
    thick = max(1, text_h // 6)
    scale = _fit_text("SALE", cv2.FONT_HERSHEY_DUPLEX, text_h, int(0.5 * w), thick)
    (tw, th), _ = cv2.getTextSize("SALE", cv2.FONT_HERSHEY_DUPLEX, scale, thick)
    ink = np.zeros((h, w), np.uint8)
    cv2.putText(ink, "SALE", ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_DUPLEX, scale, 255, thick, cv2.LINE_AA)
    colour[(ink > 0) & (inner > 0)] = (30, 30, 40)
    return _finish_sprite(colour, (shape > 0).astype(np.float32), width, height)


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """PSNR in dB of two uint8 images over the ``where`` pixels (all channels); mse floored at 1e-9
    so identical regions score ~138 dB rather than infinity, keeping means finite."""
    diff = a[where].astype(np.float64) - b[where].astype(np.float64)
    mse = float(np.mean(diff * diff)) if diff.size else 0.0
    return float(10 * np.log10(255.0**2 / max(1e-9, mse)))
