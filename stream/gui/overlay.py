"""Drawing what the user said onto a frame: object masks in their colours, points, boxes.

Images are HxWx3 uint8 RGB; masks are HxW uint8 object-id maps (0 = nothing). Drawing is done
on a copy, at a size that stays legible on a 1080p frame shown scaled down in the page.
"""

from __future__ import annotations

import cv2
import numpy as np

from cleanfeed.prompts.shapes import Box, Point

PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 60, 60), (40, 150, 255), (60, 220, 90), (255, 200, 0),
    (200, 90, 255), (0, 215, 215), (255, 130, 20), (255, 100, 200),
)


def colour(obj_id: int) -> tuple[int, int, int]:
    """Object ``obj_id``'s colour (ids 1, 2, ... take the palette in order)."""
    return PALETTE[(obj_id - 1) % len(PALETTE)]


def colour_hex(obj_id: int) -> str:
    r, g, b = colour(obj_id)
    return f"#{r:02x}{g:02x}{b:02x}"


def paint_masks(rgb: np.ndarray, ids: np.ndarray, alpha: float = 0.5, outline: bool = True) -> np.ndarray:
    """``rgb`` with every object of the id map tinted in its colour (and outlined); a new array."""
    out = rgb.copy()
    for obj_id in np.unique(ids):
        if obj_id == 0:
            continue
        where = ids == obj_id
        tint = np.array(colour(int(obj_id)), np.float32)
        out[where] = (out[where] * (1 - alpha) + tint * alpha).astype(np.uint8)
        if outline:
            contours, _ = cv2.findContours(where.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour(int(obj_id)), _thickness(rgb))
    return out


def _thickness(rgb: np.ndarray) -> int:
    return max(1, round(min(rgb.shape[:2]) / 360))


def draw_points(rgb: np.ndarray, points: tuple[Point, ...], obj_id: int) -> None:
    """Positive points as filled discs in the object's colour, negative ones as white-ringed crosses; in place."""
    size = max(3, round(min(rgb.shape[:2]) / 90))
    for p in points:
        centre = (int(round(p.x)), int(round(p.y)))
        if p.positive:
            cv2.circle(rgb, centre, size + 1, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(rgb, centre, size, colour(obj_id), -1, cv2.LINE_AA)
        else:
            cv2.circle(rgb, centre, size + 1, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.drawMarker(rgb, centre, (220, 0, 0), cv2.MARKER_TILTED_CROSS, 2 * size, max(2, size // 2))


def draw_box(rgb: np.ndarray, box: Box, obj_id: int) -> None:
    cv2.rectangle(rgb, (box.x0, box.y0), (box.x1 - 1, box.y1 - 1), colour(obj_id), _thickness(rgb) + 1)


def draw_corner(rgb: np.ndarray, x: int, y: int, obj_id: int) -> None:
    """The first corner of a box being drawn."""
    size = max(6, round(min(rgb.shape[:2]) / 40))
    cv2.drawMarker(rgb, (x, y), colour(obj_id), cv2.MARKER_CROSS, size, _thickness(rgb) + 1)
