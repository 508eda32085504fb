"""The prompt shapes every engine takes, defined once.

Coordinates are pixels of the full-resolution frame, x to the right, y down. A box is
``x0,y0,x1,y1`` with x1 > x0 and y1 > y0 (x1, y1 excluded). A point has a label: positive
(1, "this is the object") or negative (0, "this is not"). A mask file is an image of the
frame's size, 0 = background; how its other values become objects is :func:`read_labels`'s rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cleanfeed.errors import PromptError

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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

    def __str__(self) -> str:
        """``X,Y,L`` as :func:`parse_point` reads it (L=1 on the object, 0 off it)."""
        return f"{self.x:g},{self.y:g},{int(self.positive)}"


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


def _is_palette_png(path: Path) -> bool:
    """A PNG whose IHDR colour type is 3 (indexed): its pixels are palette indices, the object ids."""
    with path.open("rb") as f:
        head = f.read(26)
    return len(head) == 26 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and head[25] == 3


def _palette_indices(path: Path) -> np.ndarray | None:
    """The indices of a palette PNG (OpenCV would expand them to colours; PyAV keeps them)."""
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            if frame.format.name != "pal8":
                return None
            out = frame.to_ndarray()
    except (av.error.FFmpegError, StopIteration):
        return None
    return np.ascontiguousarray(out[0] if isinstance(out, tuple) else out, dtype=np.uint8)


def _solid(img: np.ndarray, values: np.ndarray) -> bool:
    """Whether each value has a pixel whose eight neighbours share it: ids fill regions, anti-aliasing only edges."""
    if img.shape[0] < 3 or img.shape[1] < 3:
        return False
    centre = img[1:-1, 1:-1]
    inner = np.ones(centre.shape, bool)
    h, w = img.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                inner &= img[dy:h - 2 + dy, dx:w - 2 + dx] == centre
    return bool(np.isin(values, np.unique(centre[inner])).all())


def read_labels(path: str | Path) -> np.ndarray:
    """Reads a mask image as HxW uint8 object ids, 0 = background.

    A palette PNG (as DAVIS and YouTube-VOS annotate) holds ids as its indices. A single-channel
    image with one non-zero value is one object (id 1: the prompt gives the real id). With
    several values, they are ids when each fills a region (some pixel of it has all eight
    neighbours of the same value), as in a label image; an anti-aliased or feathered mask has
    values only along its edges, so it is one object, non-zero = object, and a warning says so.
    A colour image is one object (non-black = object): the order of its colours says no ids.
    """
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"mask file {str(path)!r} does not exist")
    if _is_palette_png(path):
        indices = _palette_indices(path)
        if indices is not None:
            return indices
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PromptError(f"mask file {str(path)!r} is not a readable image")
    if img.ndim == 3:
        colours = np.unique(img[..., :3].reshape(-1, min(3, img.shape[2])), axis=0)
        if len(colours[colours.any(axis=1)]) > 1:
            log.warning("mask file %r: a colour image is read as one object (non-black = object); "
                        "save several objects as a palette PNG or a single-channel label image", str(path))
        return (img.max(axis=2) > 0).astype(np.uint8)
    values = np.unique(img)
    values = values[values != 0]
    if len(values) <= 1:
        return (img > 0).astype(np.uint8)
    if values[-1] <= 255 and _solid(img, values):
        return img.astype(np.uint8)
    log.warning("mask file %r: its %d non-zero values are not ids 1..255 that each fill a region (anti-aliased "
                "or feathered?), so it is read as one object (non-zero = object); save ids as a palette PNG "
                "or a label image",
                str(path), len(values))
    return (img > 0).astype(np.uint8)


def load_labels(path: str | Path, width: int, height: int) -> np.ndarray:
    """:func:`read_labels`, checked to be of the frame's size."""
    labels = read_labels(path)
    if labels.shape != (height, width):
        raise PromptError(f"mask file {str(path)!r} must be {width}x{height} like the video, "
                          f"got {labels.shape[1]}x{labels.shape[0]}")
    return labels


def mask_ids(path: str | Path) -> list[int]:
    """The object ids a mask file holds under :func:`read_labels`'s rule ([1] for a one-object mask)."""
    labels = read_labels(path)
    return [int(v) for v in np.unique(labels) if v != 0]


def load_mask(path: str | Path, width: int, height: int) -> np.ndarray:
    """Reads a mask image as HxW bool (any object); raises PromptError if missing, unreadable or of another size."""
    return load_labels(path, width, height) > 0
