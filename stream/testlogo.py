"""Sponsor logos drawn by code, and their placement in a frame by a homography.

The logo finder's tests, the ``testsrc`` scenarios and the benchmark need a logo whose every
appearance is known to the pixel; drawing it here keeps them free of downloaded artwork.
Two textured emblems that differ in shape, colour and words (``variant`` 0 and 1) and one flat
disc (too plain for keypoints: the template fallback's case).
"""

from __future__ import annotations

import cv2
import numpy as np

_SUPERSAMPLE = 4


def emblem(width: int = 240, height: int = 150, variant: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured emblem: (HxWx3 uint8 RGB, HxW uint8 alpha); corners outside its rounded shape are transparent."""
    s = _SUPERSAMPLE
    w, h = width * s, height * s
    rng = np.random.default_rng(1000 + variant)
    colours = [((200, 30, 40), (250, 220, 40)), ((20, 90, 200), (240, 240, 240))][variant % 2]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = colours[0]
    # a chequered band, stars and rings: corners and blobs at several scales for keypoints
    cell = max(4, h // 10)
    for y in range(0, h // 3, cell):
        for x in range(0, w, cell):
            if (x // cell + y // cell) % 2 == 0:
                rgb[y:y + cell, x:x + cell] = colours[1]
    for _ in range(14):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(h // 3, h))
        r = int(rng.integers(h // 24, h // 8))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(rgb, (cx, cy), r, colour, max(2, r // 3), cv2.LINE_AA)
        else:
            star = np.array([[cx + r * np.cos(a) * (1 if i % 2 == 0 else 0.45), cy + r * np.sin(a) * (1 if i % 2 == 0 else 0.45)]
                             for i, a in enumerate(np.linspace(0, 2 * np.pi, 10, endpoint=False))], np.int32)
            cv2.fillPoly(rgb, [star], colour, cv2.LINE_AA)
    words = ("ACME", "ZEPHYR")[variant % 2]
    font = cv2.FONT_HERSHEY_DUPLEX
    size = cv2.getTextSize(words, font, 1.0, 2)[0]
    fs = min(0.8 * w / size[0], 0.3 * h / size[1])
    (tw, th), _ = cv2.getTextSize(words, font, fs, max(2, int(fs * 2)))
    org = ((w - tw) // 2, int(h * 0.62) + th // 2)
    cv2.putText(rgb, words, (org[0] + s * 2, org[1] + s * 2), font, fs, (0, 0, 0), max(2, int(fs * 2)), cv2.LINE_AA)
    cv2.putText(rgb, words, org, font, fs, colours[1], max(2, int(fs * 2)), cv2.LINE_AA)
    cv2.putText(rgb, "OFFICIAL PARTNER", (w // 10, int(h * 0.92)), cv2.FONT_HERSHEY_SIMPLEX, fs * 0.35,
                (255, 255, 255), max(1, int(fs * 0.8)), cv2.LINE_AA)
    alpha = np.zeros((h, w), np.uint8)
    radius = h // 6
    cv2.rectangle(alpha, (radius, 0), (w - radius, h - 1), 255, -1)
    cv2.rectangle(alpha, (0, radius), (w - 1, h - radius), 255, -1)
    for cx, cy in ((radius, radius), (w - radius, radius), (radius, h - radius), (w - radius, h - radius)):
        cv2.circle(alpha, (cx, cy), radius, 255, -1, cv2.LINE_AA)
    cv2.rectangle(rgb, (0, 0), (w - 1, h - 1), (20, 20, 20), s * 3)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), cv2.resize(alpha, (width, height),
                                                                                       interpolation=cv2.INTER_AREA)


def flat_disc(size: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A plain two-tone disc: almost no corners, the case keypoints cannot handle."""
    s = _SUPERSAMPLE
    n = size * s
    rgb = np.zeros((n, n, 3), np.uint8)
    rgb[:] = (30, 160, 60)
    cv2.circle(rgb, (n // 2, n // 2), n // 4, (240, 240, 240), -1, cv2.LINE_AA)
    alpha = np.zeros((n, n), np.uint8)
    cv2.circle(alpha, (n // 2, n // 2), n // 2 - 1, 255, -1, cv2.LINE_AA)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA), cv2.resize(alpha, (size, size),
                                                                                     interpolation=cv2.INTER_AREA)


def placement(width: int, height: int, centre: tuple[float, float], scale: float, angle_deg: float = 0.0,
              tilt: float = 0.0) -> np.ndarray:
    """3x3 homography putting a ``width`` x ``height`` logo at ``centre``, ``scale`` times its size,
    rotated by ``angle_deg`` and seen in perspective (``tilt`` > 0 shrinks its right side by that fraction)."""
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    local = (corners - [width / 2, height / 2]) * scale
    local[1, 1] *= 1 - tilt
    local[2, 1] *= 1 - tilt
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    placed = local @ rot.T + np.array(centre, np.float32)
    return cv2.getPerspectiveTransform(corners, placed.astype(np.float32))


def composite(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Puts the logo into ``frame`` (RGB, changed in place) where ``homography`` says; returns the
    logo's visible support in the frame (HxW bool, alpha > 0)."""
    h, w = frame.shape[:2]
    a = cv2.warpPerspective(alpha, homography, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    colour = cv2.warpPerspective(rgb, homography, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
    mixed = frame.astype(np.float32) * (1 - a[..., None]) + colour * a[..., None]
    np.copyto(frame, np.clip(mixed + 0.5, 0, 255).astype(np.uint8))
    return a > 0


def textured_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A busy RGB scene (noise at several scales, lines and blobs): many keypoints that are not the logo."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for cell in (64, 16, 4):
        small = rng.random((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        img += cv2.resize(small, (width + cell * 2, height + cell * 2), interpolation=cv2.INTER_CUBIC)[:height, :width] * 85
    out = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(40):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(out, p1, p2, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 4)), cv2.LINE_AA)
    return out


SCENARIOS = ("scaled", "rotated", "perspective", "leaving", "cuts", "two")
"""What the ``testsrc`` logo scenarios show (``testsrc scenario=...``):

- ``scaled``: the logo grows from 0.4x to 2.5x its size while it drifts;
- ``rotated``: it turns from -30 to +30 degrees;
- ``perspective``: it tilts away (one side up to 40 % shorter) while turning a little;
- ``leaving``: it slides out of the frame and comes back;
- ``cuts``: three shots (hard cuts): 1x; another scene with the logo at 0.6x, turned; a third
  where it appears mid-shot at 1.6x;
- ``two``: two different logos (``variant`` 0 and 1) on screen at once, moving apart."""


def logo_height(width: int) -> int:
    return max(8, round(width * 0.625))


def write_png(path: str, width: int = 160, variant: int = 0) -> str:
    """The reference PNG (with alpha) of the logo the scenarios show: ``testsrc logo_size`` is its ``width``."""
    rgb, alpha = emblem(width, logo_height(width), variant)
    if not cv2.imwrite(path, np.dstack([rgb[..., ::-1], alpha])):
        raise OSError(f"cannot write {path}")
    return path


class LogoScenes:
    """Frames of one scenario: ``frame(i)`` gives the RGB image and, per logo on screen, its variant
    and its support (HxW bool)."""

    def __init__(self, scenario: str, width: int, height: int, frames: int, logo_width: int, seed: int = 0) -> None:
        self.scenario, self.width, self.height, self.frames = scenario, width, height, frames
        self.logo_w, self.logo_h = logo_width, logo_height(logo_width)
        self._logos = [emblem(self.logo_w, self.logo_h, v) for v in (0, 1)]
        self._pan = 3
        tints = ([1.0, 1.0, 1.0], [0.5, 0.7, 1.0], [1.0, 0.8, 0.5])
        self._scenes = [(textured_background(width + self._pan * frames, height, seed + k) * tints[k]).astype(np.uint8)
                        for k in range(3 if scenario == "cuts" else 1)]

    def shot(self, index: int) -> tuple[int, int]:
        """(shot number, frame within the shot)."""
        if self.scenario != "cuts":
            return 0, index
        length = max(1, -(-self.frames // 3))
        return index // length, index % length

    def placements(self, index: int) -> list[tuple[int, np.ndarray]]:
        """(variant, homography) of every logo on frame ``index``."""
        t = index / max(1, self.frames - 1)
        w, h, lw, lh = self.width, self.height, self.logo_w, self.logo_h
        centre = (w * (0.3 + 0.4 * t), h * 0.5)
        s = self.scenario
        if s == "scaled":
            return [(0, placement(lw, lh, centre, 0.4 * (2.5 / 0.4) ** t))]
        if s == "rotated":
            return [(0, placement(lw, lh, centre, 1.0, angle_deg=-30 + 60 * t))]
        if s == "perspective":
            return [(0, placement(lw, lh, centre, 1.2, angle_deg=10 * t, tilt=0.4 * t))]
        if s == "leaving":
            # out over the right edge by 40 % of the clip, back from 70 %
            x = w * 0.5 + (w * 0.5 + lw) * (min(t, 0.4) / 0.4 if t < 0.7 else max(0.0, 1 - (t - 0.7) / 0.3))
            return [] if 0.4 <= t < 0.7 else [(0, placement(lw, lh, (x, h * 0.5), 1.0))]
        if s == "cuts":
            shot, k = self.shot(index)
            if shot == 0:
                return [(0, placement(lw, lh, (w * 0.35 + 2 * k, h * 0.45), 1.0))]
            if shot == 1:
                return [(0, placement(lw, lh, (w * 0.65 - 2 * k, h * 0.6), 0.6, angle_deg=20))]
            return [] if k < 5 else [(0, placement(lw, lh, (w * 0.5, h * 0.5 + k), 1.6, angle_deg=-8))]
        if s == "two":
            return [(0, placement(lw, lh, (w * (0.3 - 0.1 * t), h * 0.35), 1.0, angle_deg=-10)),
                    (1, placement(lw, lh, (w * (0.7 + 0.1 * t), h * 0.65), 0.9, angle_deg=15))]
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got {s!r}")

    def frame(self, index: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        shot, k = self.shot(index)
        scene = self._scenes[shot]
        image = np.ascontiguousarray(scene[:, self._pan * k:self._pan * k + self.width])
        shown = []
        for variant, homography in self.placements(index):
            rgb, alpha = self._logos[variant]
            support = composite(image, rgb, alpha, homography)
            if support.any():
                shown.append((variant, support))
        return image, shown
