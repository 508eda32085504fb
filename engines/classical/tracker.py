"""Multi-object mask tracking with DIS optical flow, anchored to each object's reference.

Per frame and object, dense DIS flow is computed between the previous and the current luma
on a region around the object's last box (downscaled if large). A robust motion model
(similarity, affine or homography, RANSAC) is fitted to the flow vectors *inside* the
object: the logo's own pixels decide, so a screen-fixed logo over a panning shot stays put
and a logo printed on the scene follows it. Composing per-frame fits would drift over
hundreds of frames, so each frame the predicted position is re-aligned to the reference
appearance (the current frame is warped back into the reference frame and the residual flow
inside the reference mask is fitted again), and the *reference* mask is warped with the
accumulated transform: the mask neither drifts nor erodes. When no good rigid fit exists
(non-rigid motion), the previous mask is warped per pixel along the flow and cleaned up
morphologically, with its area kept within bounds of the reference. An object whose mask
leaves the frame is reported lost, not an error.

Arrays: luma is HxW uint8 (the Y plane); masks are HxW bool (or uint8, non-zero = object).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.regions import Box

MODELS = ("similarity", "affine", "homography", "flow")
PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class TrackerConfig:
    """Tracking settings; distances are pixels of the full-resolution frame."""

    model: str = "similarity"
    """Motion model fitted inside each object: similarity, affine or homography; flow = no model,
    always per-pixel warping (for objects that deform)."""
    preset: str = "ultrafast"
    """DIS optical flow preset (ultrafast, fast, medium); always run down to full resolution."""
    margin: float = 0.5
    """Search region around an object's box, as a fraction of its larger side (at least ``min_margin``)."""
    min_margin: int = 24
    max_side: int = 160
    """Flow regions whose longer side exceeds this are downscaled to it."""
    anchor: bool = True
    """Re-align to the reference appearance every frame (keeps masks from drifting)."""
    area_bounds: tuple[float, float] = (0.5, 2.0)
    """A per-pixel (non-rigid) mask must keep its area within these factors of the expected area."""
    lost_fraction: float = 0.1
    """An object whose visible area falls below this fraction of its expected area is lost."""
    coverage: float = 0.25
    """A pixel joins a warped mask when at least this fraction of it is covered (below 0.5: removal
    errs on the side of covering a logo's edge)."""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"tracker model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"tracker preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")


@dataclass
class ObjectMask:
    """An object's mask on one frame, as a region: ``mask`` (bool) covers ``box`` of the frame.

    ``box`` is None and ``mask`` empty when the object is lost. ``mode`` says how it was
    found: "reference", "rigid" (reference warped by a fitted model), "flow" (per-pixel),
    "coast" (mostly outside the frame: moved on at its last velocity) or "lost".
    """

    box: Box | None
    mask: np.ndarray
    mode: str

    def full(self, width: int, height: int) -> np.ndarray:
        """The HxW bool mask of the whole frame."""
        out = np.zeros((height, width), bool)
        if self.box is not None:
            regions.crop(out, self.box)[...] = self.mask
        return out


@dataclass
class _Object:
    ref_box: Box
    ref_mask: np.ndarray  # bool crop at ref_box
    ref_area: float
    ref_patch_box: Box
    ref_patch: np.ndarray  # luma crop around the reference mask, for anchoring
    transform: np.ndarray  # 3x3: reference frame -> current frame
    box: Box | None  # current mask's box
    mask: np.ndarray  # current mask crop (bool)
    region: Box = (0, 0, 0, 0)  # where prev_luma was cut
    prev_luma: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    lost: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.eye(3))  # last frame-to-frame motion


class MaskTracker:
    """Tracks object masks from frame to frame (predictor pattern: add_reference, then track)."""

    def __init__(self, config: TrackerConfig | None = None, **overrides: object) -> None:
        base = config or TrackerConfig()
        self.config = TrackerConfig(**{**base.__dict__, **overrides}) if overrides else base
        self._objects: dict[int, _Object] = {}
        self._size: tuple[int, int] | None = None
        self._flow = cv2.DISOpticalFlow_create(PRESETS[self.config.preset])
        self._flow.setFinestScale(0)
        self.modes: dict[int, str] = {}
        """How each object was found on the last frame (see :class:`ObjectMask`)."""

    @property
    def ids(self) -> list[int]:
        return sorted(self._objects)

    @property
    def lost(self) -> set[int]:
        """Ids of objects that left the frame (or vanished); they stay lost until a new reference."""
        return {i for i, obj in self._objects.items() if obj.lost}

    def remove(self, obj_id: int) -> None:
        self._objects.pop(obj_id, None)

    def add_reference(self, obj_id: int, luma: np.ndarray, mask: np.ndarray) -> None:
        """Starts (or restarts) tracking ``obj_id`` from its ``mask`` on the frame ``luma``.

        The frame is the one that the next :meth:`track` call moves on from. A correction of an
        object already tracked replaces its reference; other objects are unaffected.
        """
        height, width = luma.shape[:2]
        self._check_size(width, height, mask)
        box = regions.mask_box(mask)
        if box is None:
            raise ValueError(f"reference mask of object {obj_id} must not be empty")
        crop = regions.crop(mask, box) > 0
        patch_box = regions.grow(box, 8, width, height)
        obj = _Object(
            ref_box=box, ref_mask=crop, ref_area=float(crop.sum()),
            ref_patch_box=patch_box, ref_patch=regions.crop(luma, patch_box).copy(),
            transform=np.eye(3), box=box, mask=crop.copy(),
        )
        self._remember(obj, luma)
        self._objects[obj_id] = obj
        self.modes[obj_id] = "reference"

    def track(self, luma: np.ndarray) -> dict[int, np.ndarray]:
        """Moves every object to the next frame; returns id -> HxW bool mask (empty when lost)."""
        height, width = luma.shape[:2]
        return {i: m.full(width, height) for i, m in self.track_regions(luma).items()}

    def track_regions(self, luma: np.ndarray) -> dict[int, ObjectMask]:
        """As :meth:`track`, but each mask as a region (cheap for large frames)."""
        if not self._objects:
            raise RuntimeError("track() needs a reference first: call add_reference(obj_id, luma, mask)")
        height, width = luma.shape[:2]
        self._check_size(width, height, None)
        out: dict[int, ObjectMask] = {}
        for obj_id, obj in self._objects.items():
            if obj.lost:
                result = ObjectMask(None, np.zeros((0, 0), bool), "lost")
            else:
                result = self._step(obj, luma)
            self.modes[obj_id] = result.mode
            out[obj_id] = result
        return out

    # -- internals -----------------------------------------------------------------------------
    def _check_size(self, width: int, height: int, mask: np.ndarray | None) -> None:
        if self._size is None or not self._objects:
            self._size = (width, height)
        if (width, height) != self._size:
            raise ValueError(f"frame must be {self._size[0]}x{self._size[1]} like the reference, got {width}x{height}")
        if mask is not None and mask.shape[:2] != (height, width):
            raise ValueError(f"mask must be {width}x{height} like the frame, got {mask.shape[1]}x{mask.shape[0]}")

    def _remember(self, obj: _Object, luma: np.ndarray) -> None:
        """Keeps the luma around the object's box: the next frame's flow starts from it."""
        height, width = luma.shape[:2]
        if obj.box is None:
            return
        bw, bh = regions.box_size(obj.box)
        pad = max(self.config.min_margin, round(self.config.margin * max(bw, bh)))
        obj.region = regions.grow(obj.box, pad, width, height)
        obj.prev_luma = regions.crop(luma, obj.region).copy()  # the frame moves on downstream

    def _step(self, obj: _Object, luma: np.ndarray) -> ObjectMask:
        height, width = luma.shape[:2]
        region = obj.region
        rw, rh = regions.box_size(region)
        if rw < 8 or rh < 8 or obj.box is None:
            return self._lose(obj)
        if self.config.model != "flow" and obj.mask.sum() < 0.5 * self._expected_area(obj):
            # mostly outside the frame: the few pixels left cannot be trusted to say where it goes
            obj.transform = obj.velocity @ obj.transform
            coasting = self._warp_reference(obj, width, height)
            if coasting is None:
                return self._lose(obj)
            return self._accept(obj, luma, ObjectMask(coasting.box, coasting.mask, "coast"))
        scale = min(1.0, self.config.max_side / max(rw, rh))
        prev = obj.prev_luma
        cur = np.ascontiguousarray(regions.crop(luma, region))
        if scale < 1.0:
            size = (max(8, round(rw * scale)), max(8, round(rh * scale)))
            prev = cv2.resize(prev, size, interpolation=cv2.INTER_AREA)
            cur = cv2.resize(cur, size, interpolation=cv2.INTER_AREA)
        flow = self._flow.calc(prev, cur, None)
        sx, sy = prev.shape[1] / rw, prev.shape[0] / rh
        inside = _rasterise(obj.mask, obj.box, region, prev.shape)  # the object on the previous frame
        core = cv2.erode(inside, regions.ellipse(1))
        if core.sum() < 12:
            core = inside
        motion = None
        if self.config.model != "flow":
            motion = _fit(core > 0, flow, (sx, sy), region[:2], self.config.model, max(1.0, 0.5 / scale))
        if motion is not None:
            predicted = motion @ obj.transform
            if self.config.anchor:
                predicted = self._anchor(obj, luma, predicted)
            if _plausible(predicted):
                obj.velocity = predicted @ np.linalg.inv(obj.transform)
                obj.transform = predicted
                result = self._warp_reference(obj, width, height)
                if result is not None:
                    return self._accept(obj, luma, result)
                return self._lose(obj)
        return self._accept(obj, luma, self._warp_pixels(obj, flow, inside, region, (sx, sy)))

    def _expected_area(self, obj: _Object) -> float:
        """The reference's area scaled by the accumulated transform."""
        return obj.ref_area * abs(float(np.linalg.det(obj.transform[:2, :2])))

    def _anchor(self, obj: _Object, luma: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Corrects ``predicted`` by aligning the current frame to the reference patch."""
        height, width = luma.shape[:2]
        pbox = obj.ref_patch_box
        mapped = regions.map_box(pbox, predicted)
        if mapped is None:
            return predicted
        src = regions.grow(mapped, 2, width, height)
        if regions.box_area(src) < 64:
            return predicted
        # reference-patch pixel (u, v) -> current-frame crop pixel
        m = regions.translation(-src[0], -src[1]) @ predicted @ regions.translation(pbox[0], pbox[1])
        pw, ph = regions.box_size(pbox)
        back = cv2.warpPerspective(np.ascontiguousarray(regions.crop(luma, src)), m, (pw, ph),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        ref = obj.ref_patch
        scale = min(1.0, self.config.max_side / max(pw, ph))
        if scale < 1.0:
            size = (max(8, round(pw * scale)), max(8, round(ph * scale)))
            ref = cv2.resize(ref, size, interpolation=cv2.INTER_AREA)
            back = cv2.resize(back, size, interpolation=cv2.INTER_AREA)
        flow = self._flow.calc(ref, back, None)
        inside = _rasterise(obj.ref_mask, obj.ref_box, pbox, ref.shape)
        core = cv2.erode(inside, regions.ellipse(1))
        correction = _fit(core > 0, flow, (ref.shape[1] / pw, ref.shape[0] / ph), pbox[:2], self.config.model,
                          max(1.0, 0.5 / scale))
        if correction is None:
            return predicted
        # a correction is a small residual; a large one means the alignment failed
        shift = regions.map_box(obj.ref_box, correction)
        if shift is None or max(abs(a - b) for a, b in zip(shift, obj.ref_box, strict=True)) > 0.25 * max(pw, ph):
            return predicted
        return predicted @ correction

    def _warp_reference(self, obj: _Object, width: int, height: int) -> ObjectMask | None:
        mapped = regions.map_box(obj.ref_box, obj.transform)
        if mapped is None:
            return None
        box = regions.grow(mapped, 1, width, height)
        if regions.is_empty(box):
            return None
        # current pixel -> reference crop pixel
        m = regions.translation(-obj.ref_box[0], -obj.ref_box[1]) @ np.linalg.inv(obj.transform)
        m = m @ regions.translation(box[0], box[1])
        src = obj.ref_mask.view(np.uint8) * np.uint8(255)
        warped = cv2.warpPerspective(src, m, regions.box_size(box), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return _tighten(box, warped >= round(255 * self.config.coverage), "rigid")

    def _warp_pixels(self, obj: _Object, flow: np.ndarray, inside: np.ndarray, region: Box,
                     scale: tuple[float, float]) -> ObjectMask:
        """Non-rigid fallback: each pixel looks back along the (smooth) flow into the previous mask."""
        sx, sy = scale
        fh, fw = flow.shape[:2]
        xs, ys = np.meshgrid(np.arange(fw, dtype=np.float32), np.arange(fh, dtype=np.float32))
        back = cv2.remap(inside * np.uint8(255), xs - flow[..., 0], ys - flow[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        rw, rh = regions.box_size(region)
        if (fw, fh) != (rw, rh):
            back = cv2.resize(back, (rw, rh), interpolation=cv2.INTER_LINEAR)
        mask = back >= 128
        kernel = np.ones((3, 3), np.uint8)
        mask = cv2.morphologyEx(cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, kernel),
                                cv2.MORPH_CLOSE, kernel) > 0
        expected = self._expected_area(obj)
        low, high = self.config.area_bounds
        area = float(mask.sum())
        if not low * expected <= area <= high * expected:
            # keep the previous mask, moved by the median flow of its pixels
            ys_in, xs_in = np.nonzero(cv2.resize(inside, (fw, fh), interpolation=cv2.INTER_NEAREST))
            if len(xs_in):
                dx = float(np.median(flow[ys_in, xs_in, 0])) / sx
                dy = float(np.median(flow[ys_in, xs_in, 1])) / sy
            else:
                dx = dy = 0.0
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            full = np.zeros((rh, rw), np.uint8)
            assert obj.box is not None
            ox, oy = obj.box[0] - region[0], obj.box[1] - region[1]
            mh, mw = obj.mask.shape
            full[oy : oy + mh, ox : ox + mw][obj.mask] = 255
            mask = cv2.warpAffine(full, shift, (rw, rh), flags=cv2.INTER_LINEAR) >= 128
            obj.transform = regions.translation(dx, dy) @ obj.transform
        return _tighten(region, mask, "flow")

    def _accept(self, obj: _Object, luma: np.ndarray, result: ObjectMask) -> ObjectMask:
        expected = self._expected_area(obj)
        if result.box is None or result.mask.sum() < max(4.0, self.config.lost_fraction * expected):
            return self._lose(obj)
        obj.box, obj.mask = result.box, result.mask
        self._remember(obj, luma)
        return result

    def _lose(self, obj: _Object) -> ObjectMask:
        obj.lost = True
        obj.box = None
        obj.mask = np.zeros((0, 0), bool)
        return ObjectMask(None, obj.mask, "lost")


def _tighten(box: Box, mask: np.ndarray, mode: str) -> ObjectMask:
    """Shrinks a region mask to its bounding box (None box when empty)."""
    inner = regions.mask_box(mask)
    if inner is None:
        return ObjectMask(None, np.zeros((0, 0), bool), mode)
    crop = regions.crop(mask, inner)
    return ObjectMask((box[0] + inner[0], box[1] + inner[1], box[0] + inner[2], box[1] + inner[3]), crop, mode)


def _plausible(transform: np.ndarray) -> bool:
    """A reference->current transform that has not collapsed, exploded or flipped."""
    det = float(np.linalg.det(transform[:2, :2]))
    return bool(np.all(np.isfinite(transform))) and 1 / 9 < det < 9



def _rasterise(mask: np.ndarray, box: regions.Box, region: regions.Box, shape: tuple[int, ...]) -> np.ndarray:
    """An object's mask (bool, covering ``box``) as a 0/1 uint8 image of ``region``, at the flow's
    ``shape`` (h, w; nearest-neighbour when the flow was computed on a smaller copy)."""
    rw, rh = regions.box_size(region)
    inside = np.zeros((rh, rw), np.uint8)
    ox, oy = box[0] - region[0], box[1] - region[1]
    mh, mw = mask.shape
    inside[oy : oy + mh, ox : ox + mw][mask] = 1
    if tuple(shape[:2]) != (rh, rw):
        inside = cv2.resize(inside, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return inside

def _fit(core: np.ndarray, flow: np.ndarray, scale: tuple[float, float], origin: tuple[int, int],
         model: str, threshold: float) -> np.ndarray | None:
    """Fits ``model`` (RANSAC) to the flow vectors on ``core`` pixels; 3x3 in full-frame coordinates."""
    pairs = regions.flow_pairs(core, flow, scale, origin, budget=600, minimum=8)
    if pairs is None:
        return None
    src, dst = pairs
    if model == "homography":
        motion, inliers = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=500)
    elif model == "affine":
        motion, inliers = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold)
    else:
        motion, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold)
    if motion is None or inliers is None or inliers.sum() < max(6, 0.5 * len(src)):
        return None
    if motion.shape == (2, 3):
        motion = np.vstack([motion, [0.0, 0.0, 1.0]])
    return motion.astype(np.float64)
