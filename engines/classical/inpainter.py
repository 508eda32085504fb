"""Flow-guided temporal inpainting: fill a hole with what neighbouring frames show behind it.

A logo hides part of the scene in frame t, but when the camera moves, frames t-W..t+W show
(parts of) that scene. For each hole pixel the inpainter finds where it lies in a neighbour
frame s, nearest frames first, and copies the pixel from s where s's own mask does not cover
it. The motion t -> s is estimated from the pixels AROUND the hole (the hole is the logo: its
own motion lies): DIS optical flow on a region around the masks of two consecutive frames,
with the masks (grown by a gap) excluded, fitted with a RANSAC homography; motions to farther
frames are products of consecutive ones. A brightness gain per source frame, measured on the
ring of known pixels around the hole, matches exposure changes.

Pixels that no frame in the window shows may still have been filled in the previous output
(a screen-fixed logo over a panning shot uncovers the scene on one side while hiding it on
the other): they are carried from the previous output along the same motion, at most
``chain`` times in a row, and never when they came from the spatial fallback. What remains
is filled with cv2.inpaint (Telea) on the region, and seams between sources are feathered.

Streaming: frames are pushed in order; frame t is finished once frames t+1..t+W are known
(lookahead W), so results come out W frames after their input, in order; ``flush()`` finishes
the rest. Only regions are touched: the luma around the masks for flow, RGB regions around
the holes (and where they map in neighbour frames), so the cost follows the mask's size.
Memory is bounded: at most 2W+1 frames' records, each holding region crops.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.cover import fill
from cleanfeed.engines.classical.regions import Box

RegionReader = Callable[[Box], np.ndarray]
"""Returns the RGB pixels of a box of the frame: (y1-y0)x(x1-x0)x3 uint8, a new array."""

METHODS = ("propagate", "telea", "ns")

_SPATIAL = 255  # depth of a pixel filled by cv2.inpaint: never carried to the next output


@dataclass(frozen=True)
class InpaintConfig:
    """How the inpainter works; distances are pixels of the full-resolution frame."""

    window: int = 5
    """Neighbour frames used on each side (and the lookahead); 0 = spatial cv2.inpaint only."""
    method: str = "propagate"
    """propagate = flow-guided temporal filling; telea / ns = per-frame cv2.inpaint."""
    margin: int = 16
    """Known pixels kept around the hole for the spatial fill and the brightness ring."""
    flow_margin: int = 32
    """Width of the region around the masks whose motion is estimated."""
    radius: int = 5
    """cv2.inpaint neighbourhood radius."""
    align: int = 1
    """Boxes handed to the reader and returned are rounded outward to multiples of this (2 for 4:2:0)."""
    chain: int = 48
    """How many outputs in a row a filled pixel may be carried through."""
    feather: bool = True
    """Soften the seams between pixels taken from different frames."""
    flow_max_side: int = 256
    """Flow regions larger than this are downscaled first."""
    spatial_max_px: int = 8192
    """Pixels no frame shows are filled by cv2.inpaint on the region scaled down until they are
    about this many (Telea's cost grows with the hole: ~170 ms for 200x200 at full size)."""
    max_ring_error: float = 24.0
    """A source whose ring pixels differ from ours by more than this (mean abs, 0..255) is skipped."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"inpaint method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 0 <= self.window <= 100:
            raise ValueError(f"inpaint window must be 0..100, got {self.window}")
        if self.align < 1:
            raise ValueError(f"inpaint align must be >= 1, got {self.align}")

    @property
    def temporal(self) -> bool:
        return self.method == "propagate" and self.window > 0

    @property
    def lookahead(self) -> int:
        return self.window if self.temporal else 0


@dataclass
class Filled:
    """The result for one pushed frame (``index``: 0, 1, ... in push order).

    ``box`` is the region written (aligned), ``rgb`` its new pixels (HxWx3 uint8) and
    ``where`` (HxW bool) the hole pixels to write; all three are None when the frame had no
    hole. ``counts`` says how many hole pixels came from neighbour frames ("propagated"), from
    the previous output ("carried") and from cv2.inpaint ("spatial").
    """

    index: int
    box: Box | None = None
    rgb: np.ndarray | None = None
    where: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Record:
    """What the inpainter knows about one pushed frame."""

    index: int
    reader: RegionReader | None
    hole_box: Box | None
    hole: np.ndarray | None  # bool crop of the mask at hole_box
    link: np.ndarray | None = None  # 3x3 motion from frame index-1 to this one
    cache_box: Box | None = None
    cache: np.ndarray | None = None  # RGB crop at cache_box (original pixels)
    guard_box: Box | None = None
    guard: np.ndarray | None = None  # uint8 0/255: the hole grown by 2 px (interpolation footprint)
    abandoned: bool = False  # the frame left already: no fill is computed for it


@dataclass
class _Output:
    """The previous finished frame's filled region, for carrying."""

    index: int
    box: Box
    rgb: np.ndarray
    depth: np.ndarray  # uint8: 0 original, 1.. resamples since a real frame, 255 spatial


class FlowInpainter:
    """Streaming flow-guided inpainter (see the module doc).

    ``push(luma, rgb, mask)`` for each frame in order; it returns the frames it could finish.
    ``luma`` is the HxW uint8 Y plane; ``rgb`` reads RGB regions of the same frame (see
    :data:`RegionReader`); ``mask`` is HxW (bool or uint8 ids; non-zero = hole). The three must
    stay unchanged until that frame's :class:`Filled` is returned; the inpainter copies what it
    keeps for later frames.
    """

    def __init__(self, config: InpaintConfig | None = None, **overrides: object) -> None:
        base = config or InpaintConfig()
        self.config = InpaintConfig(**{**base.__dict__, **overrides}) if overrides else base
        self._records: deque[_Record] = deque()
        self._next = 0  # index of the next pushed frame
        self._emit = 0  # index of the next frame to finish
        self._size: tuple[int, int] | None = None
        self._prev_luma: np.ndarray | None = None
        self._carried: _Output | None = None
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._flow.setFinestScale(0)

    @property
    def lookahead(self) -> int:
        return self.config.lookahead

    @property
    def pending(self) -> int:
        """Frames pushed but not finished yet."""
        return self._next - self._emit

    # -- streaming -----------------------------------------------------------------------------
    def push(self, luma: np.ndarray, rgb: RegionReader, mask: np.ndarray) -> list[Filled]:
        height, width = luma.shape[:2]
        if self._size is None:
            self._size = (width, height)
        if (width, height) != self._size or mask.shape[:2] != (height, width):
            w0, h0 = self._size
            raise ValueError(f"frame and mask must be {w0}x{h0} like the first frame, got {width}x{height} "
                             f"and {mask.shape[1]}x{mask.shape[0]}")
        hole_box = regions.mask_box(mask)
        hole = None if hole_box is None else regions.crop(mask, hole_box) > 0
        record = _Record(self._next, rgb, hole_box, hole)
        if self.config.temporal:
            previous = self._records[-1] if self._records else None
            if previous is not None and self._prev_luma is not None and previous.index == self._next - 1:
                record.link = self._estimate_motion(self._prev_luma, previous, luma, record)
            self._prev_luma = luma
        self._records.append(record)
        self._next += 1
        out = []
        while self._emit < self._next and self._next - 1 - self._emit >= self.lookahead:
            out.append(self._finish(self._emit))
        return out

    def flush(self) -> list[Filled]:
        """Finishes every frame still held, in order (end of stream)."""
        out = [self._finish(self._emit) for _ in range(self.pending)]
        self._prev_luma = None
        return out

    def abandon(self, index: int) -> None:
        """The frame ``index`` left already (covered some cheaper way): its fill is not computed
        when its turn comes (its pixels and motion still serve its neighbours)."""
        record = self._record(index)
        if record is not None:
            record.abandoned = True

    # -- records -------------------------------------------------------------------------------
    def _record(self, index: int) -> _Record | None:
        if not self._records:
            return None
        pos = index - self._records[0].index
        if 0 <= pos < len(self._records):
            return self._records[pos]
        return None

    def _read(self, record: _Record, box: Box) -> tuple[Box, np.ndarray] | None:
        """RGB of ``box`` (aligned, clamped) of a frame: from its cache, or read (and cached) while held.

        Past frames answer only from what was cached for them; None if that misses ``box``.
        """
        width, height = self._frame_size()
        box = regions.clamp(box, width, height, self.config.align)
        if regions.is_empty(box):
            return None
        if record.cache_box is not None and regions.contains(record.cache_box, box):
            cx, cy = record.cache_box[:2]
            assert record.cache is not None
            return box, record.cache[box[1] - cy : box[3] - cy, box[0] - cx : box[2] - cx]
        if record.reader is None:
            if record.cache_box is None or record.cache is None:
                return None
            inter = (max(box[0], record.cache_box[0]), max(box[1], record.cache_box[1]),
                     min(box[2], record.cache_box[2]), min(box[3], record.cache_box[3]))
            if regions.is_empty(inter):
                return None
            cx, cy = record.cache_box[:2]
            return inter, record.cache[inter[1] - cy : inter[3] - cy, inter[0] - cx : inter[2] - cx]
        wanted = regions.union(record.cache_box, box)
        assert wanted is not None
        pixels = record.reader(wanted)
        expected = (wanted[3] - wanted[1], wanted[2] - wanted[0], 3)
        if pixels.shape != expected:
            raise ValueError(f"region reader must return {expected} uint8 RGB for box {wanted}, got {pixels.shape}")
        record.cache_box, record.cache = wanted, pixels
        return self._read(record, box)

    def _frame_size(self) -> tuple[int, int]:
        assert self._size is not None
        return self._size

    def _guard(self, record: _Record) -> tuple[Box, np.ndarray] | None:
        """The frame's hole grown by 2 px (uint8 0/255): a source pixel whose footprint touches it is not used."""
        if record.hole_box is None or record.hole is None:
            return None
        if record.guard is None:
            width, height = self._frame_size()
            box = regions.grow(record.hole_box, 2, width, height)
            canvas = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
            ox, oy = record.hole_box[0] - box[0], record.hole_box[1] - box[1]
            h, w = record.hole.shape
            canvas[oy : oy + h, ox : ox + w][record.hole] = 255
            record.guard_box, record.guard = box, cv2.dilate(canvas, regions.ellipse(2))
        assert record.guard_box is not None
        return record.guard_box, record.guard

    # -- motion --------------------------------------------------------------------------------
    def _estimate_motion(self, luma0: np.ndarray, rec0: _Record, luma1: np.ndarray, rec1: _Record) -> np.ndarray | None:
        """3x3 motion taking frame rec0's pixels to rec1's, fitted on the ring around both holes."""
        around = regions.union(rec0.hole_box, rec1.hole_box)
        if around is None:
            return None
        width, height = self._frame_size()
        box = regions.grow(around, self.config.flow_margin, width, height)
        bw, bh = regions.box_size(box)
        if bw < 16 or bh < 16:
            return None
        scale = min(1.0, self.config.flow_max_side / max(bw, bh))
        a = np.ascontiguousarray(regions.crop(luma0, box))
        b = np.ascontiguousarray(regions.crop(luma1, box))
        holes = np.zeros((bh, bw), np.uint8)
        for rec in (rec0, rec1):
            if rec.hole_box is not None and rec.hole is not None:
                x0, y0, x1, y1 = rec.hole_box
                regions.crop(holes, (x0 - box[0], y0 - box[1], x1 - box[0], y1 - box[1]))[rec.hole] = 1
        if scale < 1.0:
            size = (max(16, round(bw * scale)), max(16, round(bh * scale)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
            holes = cv2.resize(holes, size, interpolation=cv2.INTER_NEAREST)
        sx, sy = a.shape[1] / bw, a.shape[0] / bh
        flow = self._flow.calc(a, b, None)
        ring = cv2.dilate(holes, regions.ellipse(4)) == 0
        return _fit_motion(ring, flow, (sx, sy), box[:2])

    def _motion(self, src: int, dst: int) -> np.ndarray | None:
        """3x3 motion from frame ``src`` to frame ``dst``, chained through consecutive links."""
        total = np.eye(3)
        step = 1 if dst > src else -1
        for i in range(src, dst, step):
            later = self._record(max(i, i + step))
            if later is None or later.link is None:
                return None
            move = later.link if step > 0 else _inverse(later.link)
            if move is None:
                return None
            total = move @ total
        return total

    # -- filling -------------------------------------------------------------------------------
    def _finish(self, index: int) -> Filled:
        record = self._record(index)
        assert record is not None
        self._emit = index + 1
        result = Filled(index)
        if record.hole_box is not None and record.hole is not None and not record.abandoned:
            result = self._fill(record)
        if self.config.temporal:
            self._keep_for_later(record)
        record.reader = None
        while self._records and self._records[0].index < self._emit - self.config.window:
            self._records.popleft()
        return result

    def _fill(self, record: _Record) -> Filled:
        assert record.hole_box is not None and record.hole is not None
        cfg = self.config
        width, height = self._frame_size()
        box = regions.grow(record.hole_box, max(cfg.margin, cfg.radius + 2), width, height, cfg.align)
        read = self._read(record, box)
        assert read is not None
        out = read[1].copy()
        hole = np.zeros(out.shape[:2], bool)
        hx, hy = record.hole_box[0] - box[0], record.hole_box[1] - box[1]
        hh, hw = record.hole.shape
        hole[hy : hy + hh, hx : hx + hw] = record.hole
        if not cfg.temporal:
            flag = cv2.INPAINT_NS if cfg.method == "ns" else cv2.INPAINT_TELEA
            filled = cv2.inpaint(out, hole.view(np.uint8), cfg.radius, flag)  # asked for: full size
            return Filled(record.index, box, filled, hole, {"propagated": 0, "carried": 0, "spatial": int(hole.sum())})
        depth = np.zeros(hole.shape, np.uint8)
        label = np.zeros(hole.shape, np.uint8)
        todo = hole.copy()
        counts = {"propagated": 0, "carried": 0, "spatial": 0}
        for rank, s in enumerate(self._neighbours(record.index), start=1):
            if not todo.any():
                break
            source = self._record(s)
            motion = self._motion(record.index, s)
            if source is None or motion is None:
                continue
            n = self._pull_frame(source, motion, box, out, todo, hole)
            if n is not None:
                label[n] = rank
                depth[n] = 1
                counts["propagated"] += int(n.sum())
        carried = self._carried
        if todo.any() and carried is not None and carried.index == record.index - 1:
            motion = self._motion(record.index, carried.index)
            if motion is not None:
                n, d = self._pull_output(carried, motion, box, out, todo, hole)
                if n is not None:
                    label[n] = 254
                    depth[n] = d[n]
                    counts["carried"] += int(n.sum())
        if todo.any():
            filled = fill(out, todo, "inpaint", cfg.radius, cfg.spatial_max_px)
            np.copyto(out, filled, where=todo[..., None])
            label[todo] = _SPATIAL
            depth[todo] = _SPATIAL
            counts["spatial"] = int(todo.sum())
        if cfg.feather:
            _feather(out, label, hole)
        self._carried = _Output(record.index, box, out, depth)
        return Filled(record.index, box, out, hole, counts)

    def _neighbours(self, index: int) -> list[int]:
        """Frames within the window, nearest first (past before future at equal distance)."""
        order = []
        for k in range(1, self.config.window + 1):
            for s in (index - k, index + k):
                if self._record(s) is not None:
                    order.append(s)
        return order

    def _sample_grid(self, box: Box, todo: np.ndarray, motion: np.ndarray) -> tuple[Box, np.ndarray, np.ndarray] | None:
        """The work box (frame coords) around the unfilled pixels and where its pixels land (float32 maps)."""
        local = regions.mask_box(todo)
        if local is None:
            return None
        h, w = todo.shape
        lx0, ly0, lx1, ly1 = regions.grow(local, 4, w, h)
        work = (box[0] + lx0, box[1] + ly0, box[0] + lx1, box[1] + ly1)
        xs, ys = np.meshgrid(np.arange(work[0], work[2], dtype=np.float64),
                             np.arange(work[1], work[3], dtype=np.float64))
        den = motion[2, 0] * xs + motion[2, 1] * ys + motion[2, 2]
        den = np.where(np.abs(den) < 1e-9, 1e-9, den)
        mx = (motion[0, 0] * xs + motion[0, 1] * ys + motion[0, 2]) / den
        my = (motion[1, 0] * xs + motion[1, 1] * ys + motion[1, 2]) / den
        return work, mx, my

    def _pull_frame(self, source: _Record, motion: np.ndarray, box: Box, out: np.ndarray,
                    todo: np.ndarray, hole: np.ndarray) -> np.ndarray | None:
        """Copies into ``out`` the unfilled pixels that ``source`` shows unmasked; returns what it filled."""
        grid = self._sample_grid(box, todo, motion)
        if grid is None:
            return None
        work, mx, my = grid
        need = (math.floor(mx.min()) - 3, math.floor(my.min()) - 3, math.ceil(mx.max()) + 4, math.ceil(my.max()) + 4)
        read = self._read(source, need)
        if read is None:
            return None
        sbox, pixels = read
        mapx, mapy = (mx - sbox[0]).astype(np.float32), (my - sbox[1]).astype(np.float32)
        sh, sw = pixels.shape[:2]
        ok = (mapx >= 0) & (mapy >= 0) & (mapx <= sw - 1) & (mapy <= sh - 1)
        guard = self._guard(source)
        if guard is not None:
            gbox, gmask = guard
            covered = cv2.remap(gmask, (mx - gbox[0]).astype(np.float32), (my - gbox[1]).astype(np.float32),
                                cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            ok &= covered == 0
        warped = cv2.remap(pixels, mapx, mapy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        return self._accept(work, box, warped, ok, out, todo, hole)

    def _accept(self, work: Box, box: Box, warped: np.ndarray, ok: np.ndarray, out: np.ndarray,
                todo: np.ndarray, hole: np.ndarray) -> np.ndarray | None:
        """Writes ``warped`` into ``out`` where ``ok`` and still unfilled, matched in brightness.

        The ring of known pixels around the hole that the source also shows gives a gain per
        channel (exposure changes between frames); a source that still disagrees there is
        misaligned (the motion is wrong) and is not used.
        """
        local = (work[0] - box[0], work[1] - box[1], work[2] - box[0], work[3] - box[1])
        todo_w = regions.crop(todo, local)
        out_w = regions.crop(out, local)
        take = ok & todo_w
        if not take.any():
            return None
        ring = ok & ~regions.crop(hole, local)
        if ring.sum() >= 24:
            ours = out_w[ring].astype(np.float32)
            theirs = warped[ring].astype(np.float32)
            gain = np.clip(ours.mean(axis=0) / np.maximum(theirs.mean(axis=0), 1.0), 0.7, 1.4)
            if np.any(np.abs(gain - 1.0) > 0.015):
                warped = np.clip(warped.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
                theirs = theirs * gain
            if float(np.abs(ours - theirs).mean()) > self.config.max_ring_error:
                return None
        np.copyto(out_w, warped, where=take[..., None])
        todo_w[take] = False
        filled = np.zeros(todo.shape, bool)
        regions.crop(filled, local)[...] = take
        return filled

    def _pull_output(self, carried: _Output, motion: np.ndarray, box: Box, out: np.ndarray,
                     todo: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Carries filled pixels of the previous output; returns what it filled and their new depth."""
        depth = np.zeros(todo.shape, np.uint8)
        grid = self._sample_grid(box, todo, motion)
        if grid is None:
            return None, depth
        work, mx, my = grid
        mapx = (mx - carried.box[0]).astype(np.float32)
        mapy = (my - carried.box[1]).astype(np.float32)
        sh, sw = carried.rgb.shape[:2]
        ok = (mapx >= 0) & (mapy >= 0) & (mapx <= sw - 1) & (mapy <= sh - 1)
        stale = np.where(carried.depth >= self.config.chain, 255, 0).astype(np.uint8)
        touched = cv2.remap(stale, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
        ok &= touched == 0
        warped = cv2.remap(carried.rgb, mapx, mapy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        older = cv2.remap(carried.depth, mapx, mapy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
        filled = self._accept(work, box, warped, ok, out, todo, hole)
        if filled is not None:
            local = (work[0] - box[0], work[1] - box[1], work[2] - box[0], work[3] - box[1])
            regions.crop(depth, local)[...] = np.minimum(older.astype(np.int32) + 1, _SPATIAL - 1).astype(np.uint8)
        return filled, depth

    def _keep_for_later(self, record: _Record) -> None:
        """Caches the RGB that frames after this one will pull from it, before its reader goes away."""
        width, height = self._frame_size()
        need: Box | None = None
        for later in range(record.index + 1, min(self._next, record.index + self.config.window + 1)):
            rec = self._record(later)
            motion = self._motion(later, record.index) if rec is not None and rec.hole_box is not None else None
            if rec is None or rec.hole_box is None or motion is None:
                continue
            mapped = regions.map_box(regions.grow(rec.hole_box, 5, width, height), motion)
            if mapped is not None:
                need = regions.union(need, regions.grow(mapped, 4, width, height))
        if need is not None and not regions.is_empty(need) and record.reader is not None:
            self._read(record, need)


def _inverse(motion: np.ndarray) -> np.ndarray | None:
    try:
        return np.linalg.inv(motion)
    except np.linalg.LinAlgError:
        return None


def _fit_motion(ring: np.ndarray, flow: np.ndarray, scale: tuple[float, float], origin: tuple[int, int]) -> np.ndarray | None:
    """Fits a homography (RANSAC) to flow vectors on the ``ring`` pixels; full-frame coordinates."""
    pairs = regions.flow_pairs(ring, flow, scale, origin, budget=800, minimum=12)
    if pairs is None:
        return None
    src, dst = pairs
    motion, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 1.0, maxIters=500)
    if motion is None or inliers is None or inliers.sum() < max(8, 0.25 * len(src)):
        affine, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0)
        if affine is None or inliers is None or inliers.sum() < max(6, 0.25 * len(src)):
            return None
        motion = np.vstack([affine, [0.0, 0.0, 1.0]])
    return motion.astype(np.float64)


def _feather(out: np.ndarray, label: np.ndarray, hole: np.ndarray) -> None:
    """Blends pixels along seams between sources (inside the hole only) with a 3x3 blur."""
    kernel = np.ones((3, 3), np.uint8)
    seams = (cv2.dilate(label, kernel) != cv2.erode(label, kernel)) & (cv2.erode(hole.view(np.uint8), kernel) > 0)
    if seams.any():
        blurred = cv2.GaussianBlur(out, (3, 3), 0)
        np.copyto(out, blurred, where=seams[..., None])
