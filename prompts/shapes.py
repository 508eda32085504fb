"""The prompt shapes every engine takes, defined once.

Coordinates are pixels of the full-resolution frame, x to the right, y down. A box is
``x0,y0,x1,y1`` with x1 > x0 and y1 > y0 (x1, y1 excluded). A point has a label: positive
(1, "this is the object") or negative (0, "this is not"). A mask file is a single-channel
PNG of the frame's size, non-zero = object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stream.errors import PromptError

MAX_BOX_COVER = 0.6
"""The largest share of the frame a box may cover: the object is painted from what surrounds
it, and a box over (nearly) the whole frame leaves nothing to paint from, only minutes of smear."""


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    x1: int
    y1: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    def check(self, width: int, height: int) -> None:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise PromptError(f"box must have x1 > x0 and y1 > y0, got {self}")
        if self.x0 < 0 or self.y0 < 0 or self.x1 > width or self.y1 > height:
            raise PromptError(f"box {self} must lie inside the {width}x{height} frame")
        cover = (self.x1 - self.x0) * (self.y1 - self.y0) / (width * height)
        if cover > MAX_BOX_COVER:
            raise PromptError(
                f"box {self} must cover at most {MAX_BOX_COVER:.0%} of the {width}x{height} frame, got {cover:.0%}: "
                "the object is painted from what surrounds it; draw the box tightly around the object"
            )

    def __str__(self) -> str:
        return f"{self.x0},{self.y0},{self.x1},{self.y1}"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    positive: bool = True

    def check(self, width: int, height: int) -> None:
        if not (0 <= self.x < width and 0 <= self.y < height):
            raise PromptError(f"point {self.x:g},{self.y:g} must lie inside the {width}x{height} frame")


@dataclass(frozen=True)
class ObjectPrompt:
    """One object to remove, prompted on one frame: any of a box, points and a mask file."""

    obj_id: int = 1
    frame: int = 0
    box: Box | None = None
    points: tuple[Point, ...] = ()
    mask: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """What can be checked without the video: the id, the frame, something to find the object by."""
        if not 1 <= self.obj_id <= 255:
            raise PromptError(f"object id must be 1..255, got {self.obj_id}")
        if self.frame < 0:
            raise PromptError(f"prompt frame must be >= 0, got {self.frame}")
        if self.box is None and not self.points and self.mask is None:
            raise PromptError(f"object {self.obj_id} needs a box, a point or a mask")
        if self.box is None and self.mask is None and not any(p.positive for p in self.points):
            raise PromptError(f"object {self.obj_id} must have a point on it (label 1), a box or a mask, got only "
                              "points off it (label 0), which do not say what to remove")

    def check(self, width: int, height: int) -> None:
        self.validate()
        if self.box is not None:
            self.box.check(width, height)
        for p in self.points:
            p.check(width, height)
        if self.mask is not None:
            load_mask(self.mask, width, height)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.obj_id, "frame": self.frame}
        if self.box is not None:
            out["box"] = list(self.box.as_tuple())
        if self.points:
            out["points"] = [[p.x, p.y, int(p.positive)] for p in self.points]
        if self.mask is not None:
            out["mask"] = self.mask
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectPrompt:
        try:
            box = Box(*(int(v) for v in data["box"])) if data.get("box") is not None else None
            points = tuple(
                Point(float(p[0]), float(p[1]), bool(int(p[2])) if len(p) > 2 else True) for p in data.get("points", [])
            )
            mask = data.get("mask")
            if mask is not None and not isinstance(mask, str):
                raise TypeError(f"mask must be a file path, got {type(mask).__name__}")
            return cls(int(data.get("id", 1)), int(data.get("frame", 0)), box, points, mask)
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as err:
            raise PromptError(f"prompt must be {{id, frame, box: [x0,y0,x1,y1], points: [[x,y,label]], mask}}, got {data!r} ({err})") from None


def parse_box(text: str) -> Box:
    try:
        values = [int(round(float(v))) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise PromptError(f"box must be X0,Y0,X1,Y1, got {text!r}")
    box = Box(*values)
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise PromptError(f"box must have X1 > X0 and Y1 > Y0, got {text!r}")
    return box


def parse_point(text: str) -> Point:
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        label = parts[2].strip() if len(parts) == 3 else "1"
        if label not in ("0", "1"):
            raise ValueError
        return Point(float(parts[0]), float(parts[1]), label == "1")
    except ValueError:
        raise PromptError(f"point must be X,Y or X,Y,LABEL with LABEL 1 (object) or 0 (not object), got {text!r}") from None


def load_mask(path: str | Path, width: int, height: int) -> np.ndarray:
    """Reads a mask image as HxW bool; raises PromptError if missing, unreadable or of another size."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"mask file {str(path)!r} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PromptError(f"mask file {str(path)!r} is not a readable image")
    if img.ndim == 3:
        img = img.max(axis=2)
    if img.shape != (height, width):
        raise PromptError(f"mask file {str(path)!r} must be {width}x{height} like the video, got {img.shape[1]}x{img.shape[0]}")
    return img > 0
