"""logofind: finds a known logo on every frame and writes its mask, as new objects, for the inpainter."""

from __future__ import annotations

import logging
import math
import time
from typing import ClassVar

import numpy as np

from cleanfeed.engines.detect.cuts import THUMB, CutDetector
from cleanfeed.engines.detect.finder import KEYPOINTS, Detection
from cleanfeed.engines.detect.reference import load_reference
from cleanfeed.errors import PropertyError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.logos import contains, load_finder, merge, split_paths
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

log = logging.getLogger(__name__)

SHED_SHARE = 0.8
"""Share of a frame's interval the full search may take on average in a live run before it is spread out."""


@register
class LogoFind(Filter):
    factory: ClassVar[str] = "logofind"
    klass: ClassVar[str] = "Filter/Video/Detect"
    description: ClassVar[str] = (
        "Finds every appearance of a known logo (reference images) and masks it, frame by frame.\n\n"
        "Classical: ORB keypoints matched to the reference at several sizes and a RANSAC homography "
        "(0.4x-2.5x its size, rotated, in perspective, partly hidden), or template matching for a "
        "reference too flat for keypoints (one warning). The whole frame is searched on every frame "
        "while no logo is known, on every shot cut, every `every` frames while logos are known, and "
        "whenever an appearance known on the previous frame is not found again around where it was; "
        "otherwise each known appearance is followed by aligning the reference's pixels (ECC) from where its "
        "motion predicts it, and where that fails only the region around it is searched for keypoints, which is "
        "cheaper than the whole frame and finds small logos better. Each "
        "appearance's mask is the reference's shape carried into the frame by the homography, grown "
        "by `grow` pixels, written with a new object id from first_id on (never over a pixel another "
        "object holds, so it is never merged into one). An appearance not found again stays masked "
        "for up to `coast` frames, moved on as it moved. Meta logos lists each frame's appearances.\n\n"
        "Live runs: the full search's measured cost is counted against the frame interval; when it "
        "would make frames late it runs on fewer frames (said once; counter logofind_spread). "
        "Counters: logo_frames, logo_full_searches, logo_local_searches, logo_followed (appearances the local "
        "search found by aligning the reference's pixels alone), logo_cuts, logo_coasted."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! logofind logo=brand.png ! dilate ! inpaint ! filesink location=out.mp4"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("logo", "reference image(s): a PNG with alpha or a tight crop; several separated by ;", None),
        Property.int("every", "while logos are known, search the whole frame for new ones every this many frames "
                     "(and on cuts; with no logo known every frame is searched): above 1, a second logo entering "
                     "while one is tracked may air until the next search", 2, 1, 10_000),
        Property.int("grow", "grow each appearance's mask by this many pixels", 3, 0, 64),
        Property.int("coast", "frames an appearance not found again stays masked where its motion takes it "
                     "(it may be leaving the frame or passing behind something)", 4, 0, 100),
        Property.int("first_id", "object id of the first appearance (the next ones count up)", 101, 1, 255),
        Property.float("cut_threshold", "shot cut: histogram distance (0..1) above which a frame starts a new shot",
                       0.4, 0.0, 1.0),
    )

    def configure(self) -> None:
        self.paths = split_paths(self.logo)
        if not self.paths:
            raise PropertyError("logofind needs logo=IMAGE")
        for path in self.paths:
            load_reference(path)  # a bad file is refused before anything runs

    def reads(self) -> list[str]:
        return list(self.paths)

    def start(self, caps: Caps) -> Caps:
        self._finder = load_finder(self.paths, caps.width, caps.height)
        self._cuts = CutDetector(self.cut_threshold)
        self._grey = all(method == KEYPOINTS for method in self._finder.methods())
        self._previous: list[Detection] = []
        self._last_full = -(10**9)
        self._stride = self.every
        self._idle_stride = 1  # full searches apart while no logo is known (more only to keep a live run on time)
        self._full_ms: float | None = None
        self._interval_ms = 1000 / float(caps.rate) if caps.rate else None
        self._seen = [0] * len(self.paths)
        self._motion: dict[int, tuple[float, float, int]] = {}
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        cut = self._cuts.is_cut(frame.picture.thumbnail(*THUMB))
        # keypoints need grey only: the decoded luma costs nothing, a full RGB conversion ~3 ms at 720p
        image = frame.picture.luma() if self._grey else frame.image
        if cut:
            self.count("logo_cuts")
        # nothing known: every frame is searched whole (an appearance must not air on its first frame)
        due = cut or frame.seq - self._last_full >= (self._stride if self._previous else self._idle_stride)
        local: list[Detection] | None = []
        if self._previous and not cut:
            self.count("logo_local_searches")
            # where each appearance is expected now: ECC follows it from there (see FinderConfig.follow)
            predicted = [d.moved(*self._motion.get(k, (0.0, 0.0, 0))[:2], frame.width, frame.height)
                         for k, d in enumerate(self._previous)]
            before = self._finder.followed
            local = self._finder.find_near(image, self._previous, predicted=predicted)
            self.count("logo_followed", self._finder.followed - before)
        # an appearance not found again around where it was: the whole frame says whether it left or moved
        lost = local is None or len(local) < len(self._previous)
        found = local or []
        # (in a live run whose full search is spread out, a lost appearance waits for its turn, coasting)
        if due or (lost and self._previous and self._idle_stride == 1):
            found = merge(found, self._full(image, frame.seq, found))
        found = self._with_coasting(found, cut, frame.width, frame.height)
        self._previous = found
        self._paint(frame, found)
        return [frame]

    def _with_coasting(self, found: list[Detection], cut: bool, width: int, height: int) -> list[Detection]:
        """``found``, plus the appearances of the previous frame not found again, moved on as they were
        moving, for at most ``coast`` frames: a logo leaving the frame or passing behind something
        loses its keypoints before it loses its last visible pixels. A cut ends every appearance."""
        motion: dict[int, tuple[float, float, int]] = {}
        if cut:
            self._motion = {}
            return found
        out = list(found)
        for k, det in enumerate(found):
            before = next((p for p in self._previous if p.reference == det.reference and contains(p.box, det.centre)), None)
            if before is not None:
                dx, dy = (det.centre - before.centre).tolist()
                motion[k] = (dx, dy, 0)
        for k, det in enumerate(self._previous):
            if any(d.reference == det.reference and contains(det.box, d.centre) for d in found):
                continue
            dx, dy, age = self._motion.get(k, (0.0, 0.0, 0))
            if age >= self.coast:
                continue
            moved = det.moved(dx, dy, width, height)
            if moved.box[2] <= moved.box[0] or moved.box[3] <= moved.box[1]:
                continue  # gone out of the frame
            motion[len(out)] = (dx, dy, age + 1)
            out.append(moved)
            self.count("logo_coasted")
        self._motion = motion
        return out

    def _full(self, image: np.ndarray, seq: int, known: list[Detection]) -> list[Detection]:
        start = time.perf_counter()
        found = self._finder.find(image, known=known)
        ms = 1000 * (time.perf_counter() - start)
        self._full_ms = ms if self._full_ms is None else 0.8 * self._full_ms + 0.2 * ms
        self._last_full = seq
        self.count("logo_full_searches")
        self._spread()
        return found

    def _spread(self) -> None:
        """In a live run, searches the whole frame less often when its cost would make frames late."""
        if not self.live or self.deadline is None or self._interval_ms is None or self._full_ms is None:
            return
        needed = math.ceil(self._full_ms / (SHED_SHARE * self._interval_ms))
        if needed > self._idle_stride:
            log.warning("%s: the full logo search takes %.0f ms a frame (%.0f ms between frames): it now runs on "
                        "one frame in %d", self.name, self._full_ms, self._interval_ms, needed)
            self.count("logofind_spread")
            self._idle_stride = needed
            self._stride = max(self.every, needed)

    def _paint(self, frame: VideoFrame, found: list[Detection]) -> None:
        if not found:
            return
        self.count("logo_frames")
        free = frame.mask == 0
        for k, det in enumerate(found):
            object_id = min(255, self.first_id + k)
            region = det.mask(frame.width, frame.height, self.grow) & free
            frame.mask[region] = object_id
            self._seen[det.reference] += 1
        frame.meta["logos"] = [{"name": d.name, "box": list(d.box), "score": round(d.score, 3), "method": d.method}
                               for d in found]

    def flush(self) -> list[VideoFrame]:
        for path, seen in zip(self.paths, self._seen, strict=True):
            if not seen:
                log.warning("%s: logo %s appeared on no frame: nothing of it was removed", self.name, path)
        return []

