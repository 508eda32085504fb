"""logofind: finds a known logo on every frame and masks it, or prompts segment and track with it, as new objects."""

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
from cleanfeed.stream.logos import contains, load_finder, merge, overlap, split_paths
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

log = logging.getLogger(__name__)

SHED_SHARE = 0.8
"""Share of a frame's interval the full search may take on average in a live run before it is spread out."""
EMITS = ("masks", "prompts")
MAX_ID = 255
"""Object ids are the values of a uint8 mask."""
RESIZED = 1.25
"""emit=prompts: an appearance whose box's area changed by more than this factor since its last prompt is
prompted again (a tracker carries a mask's shape; it does not grow it as a logo comes into view)."""
SAME = 0.5
"""Two boxes of one logo overlapping by more than this share of the smaller one are one appearance."""


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
        "by `grow` pixels, written with its own object id (never over a pixel another object holds, so it "
        "is never merged into one). An appearance keeps its id while it is found again; a new one (first "
        "sight, after a cut, coming back after it was lost) takes the next id from first_id on. An appearance "
        "not found again stays masked for up to `coast` frames, moved on as it moved. Meta logos lists each "
        "frame's appearances and their ids.\n\n"
        "emit=prompts (placed before `segment detections=true ! track`): nothing is masked here; instead meta "
        "detections lists a box prompt with the appearance's id on the frames where segment and track should "
        "(re)start it: a new appearance, one the whole-frame search found again after the cheap follow had lost "
        "it (the follow's confidence dropped), one whose box grew or shrank by more than a quarter since "
        "its last prompt (coming into view, leaving it), and every `refresh` frames while it is followed. "
        "segment turns each into a mask (SAM, or GrabCut) and track adds the object, or restarts it from the "
        "fresh mask. When an appearance ends (a cut, or not found for `coast` frames), meta reference lists "
        "its id without pixels: the tracker stops following it. The tracker cannot ask for a search (a "
        "chain flows one way): this element's own follow, run on every frame, is the confidence that "
        "decides.\n\n"
        "Live runs: the full search's measured cost is counted against the frame interval; when it "
        "would make frames late it runs on fewer frames (said once; counter logofind_spread). "
        "Counters: logo_frames, logo_full_searches, logo_local_searches, logo_followed (appearances the local "
        "search found by aligning the reference's pixels alone), logo_cuts, logo_coasted, logo_prompts, "
        "logo_released."
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
        Property.int("first_id", "object id of the first appearance (the next ones count up to 255, then start "
                     "again at first_id with an id no appearance on screen holds)", 101, 1, MAX_ID),
        Property.float("cut_threshold", "shot cut: histogram distance (0..1) above which a frame starts a new shot",
                       0.4, 0.0, 1.0),
        Property.enum("emit", "masks: the appearances' exact masks, for the inpainter; prompts: box prompts in "
                      "meta detections, for `segment detections=true ! track`", EMITS, "masks"),
        Property.int("refresh", "emit=prompts: a followed appearance is prompted again every this many frames, "
                     "so the tracker restarts it from a fresh mask (0: only when new or found again)", 5, 0, 100_000),
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
        self._ids: list[int] = []  # the object id of each of self._previous
        self._next_id = self.first_id
        self._prompted: dict[int, tuple[int, int]] = {}  # id -> the frame it was last prompted on, its box's area
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
        searched = len(found)  # the ones after these the whole-frame search found
        if due or (lost and self._previous and self._idle_stride == 1):
            found = merge(found, self._full(image, frame.seq, found))
        regained = [n >= searched for n in range(len(found))]
        if self.emit == "prompts":  # one object per appearance: overlapping finds of it (at a frame's edge) are one
            kept = distinct(found)
            found, regained = [found[n] for n in kept], [regained[n] for n in kept]
        matches = self._match(found, cut)
        ids = self._identify(matches)
        fresh = list(zip(found, ids, matches, regained, strict=True))
        found, ids = self._with_coasting(found, ids, matches, cut, frame.width, frame.height)
        ended = [i for i in self._ids if i and i not in ids]
        self._previous, self._ids = found, ids
        if self.emit == "prompts":
            self._prompt(frame, fresh, cut, ended)
        else:
            self._paint(frame, found, ids)
        self._list(frame, found, ids)
        return [frame]

    def _match(self, found: list[Detection], cut: bool) -> list[int | None]:
        """For each of ``found``, the index of the previous frame's appearance it continues (the same logo,
        its centre inside that appearance's box, or the two boxes mostly overlapping, as at the frame's edge
        where a box is clipped; each continued once), or None: a new appearance. After a cut every
        appearance is new."""
        taken: set[int] = set()
        out: list[int | None] = []
        for det in found:
            match = None if cut else next((k for k, p in enumerate(self._previous) if k not in taken
                                           and p.reference == det.reference
                                           and (contains(p.box, det.centre) or overlap(p.box, det.box) > SAME)),
                                          None)
            if match is not None:
                taken.add(match)
            out.append(match)
        return out

    def _identify(self, matches: list[int | None]) -> list[int]:
        """The object id of each appearance: a continued one keeps its id, a new one takes the next free one
        (0 when all of first_id..255 are on screen: that appearance is left out, said once)."""
        ids: list[int] = []
        for match in matches:
            ids.append(self._ids[match] if match is not None else self._new_id({*self._ids, *ids}))
        return ids

    def _new_id(self, taken: set[int]) -> int:
        span = MAX_ID + 1 - self.first_id
        for step in range(span):
            candidate = self.first_id + (self._next_id - self.first_id + step) % span
            if candidate not in taken:
                self._next_id = candidate + 1
                return candidate
        if not self.counted().get("logo_no_id"):
            log.warning("%s: more than %d logo appearances at once: the ones beyond are not removed", self.name, span)
        self.count("logo_no_id")
        return 0

    def _with_coasting(self, found: list[Detection], ids: list[int], matches: list[int | None], cut: bool,
                       width: int, height: int) -> tuple[list[Detection], list[int]]:
        """``found`` and ``ids``, plus the appearances of the previous frame not found again, moved on as
        they were moving, for at most ``coast`` frames, with their ids: a logo leaving the frame or passing
        behind something loses its keypoints before it loses its last visible pixels. A cut ends every
        appearance."""
        motion: dict[int, tuple[float, float, int]] = {}
        if cut:
            self._motion = {}
            return found, ids
        out, out_ids = list(found), list(ids)
        for k, (det, match) in enumerate(zip(found, matches, strict=True)):
            if match is not None:
                dx, dy = (det.centre - self._previous[match].centre).tolist()
                motion[k] = (dx, dy, 0)
        continued = {m for m in matches if m is not None}
        for k, det in enumerate(self._previous):
            if k in continued:
                continue
            dx, dy, age = self._motion.get(k, (0.0, 0.0, 0))
            if age >= self.coast:
                continue
            moved = det.moved(dx, dy, width, height)
            if moved.box[2] <= moved.box[0] or moved.box[3] <= moved.box[1]:
                continue  # gone out of the frame
            motion[len(out)] = (dx, dy, age + 1)
            out.append(moved)
            out_ids.append(self._ids[k])
            self.count("logo_coasted")
        self._motion = motion
        return out, out_ids

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

    def _paint(self, frame: VideoFrame, found: list[Detection], ids: list[int]) -> None:
        free = frame.mask == 0
        for det, object_id in zip(found, ids, strict=True):
            if object_id:
                region = det.mask(frame.width, frame.height, self.grow) & free
                frame.mask[region] = object_id

    def _prompt(self, frame: VideoFrame, fresh: list[tuple[Detection, int, int | None, bool]], cut: bool,
                ended: list[int]) -> None:
        """emit=prompts: meta detections for the appearances segment and track should (re)start on this
        frame, and the ids of the appearances that ended (a cut, or gone for longer than `coast`) in meta
        reference without pixels, so the tracker stops following them (see the description).

        The tracker downstream cannot tell this element that it is unsure (a chain flows one way), so the
        follow here stands in for it: an appearance the cheap follow lost and the whole-frame search found
        again is prompted at once, as the tracker may have lost it too; so is one whose visible box grew or
        shrank by more than RESIZED since its last prompt (entering or leaving the frame, coming closer),
        which a tracker carrying the last mask by its motion cannot follow; `refresh` bounds how long a
        tracked mask may drift between two prompts."""
        released = sorted(i for i in ended if i in self._prompted)
        if released:
            frame.meta["reference"] = sorted({*frame.meta.get("reference", ()), *released})
            self.count("logo_released", len(released))
        prompts = []
        for det, object_id, match, regained in fresh:
            x0, y0, x1, y1 = det.box
            if not object_id or x1 - x0 < 2 or y1 - y0 < 2:
                continue
            last, area = self._prompted.get(object_id, (None, 0))
            now = (x1 - x0) * (y1 - y0)
            if match is None or last is None:
                why = "cut" if cut else "new"
            elif regained:
                why = "regained"
            elif not 1 / RESIZED <= now / max(1, area) <= RESIZED:
                why = "resized"
            elif self.refresh and frame.seq - last >= self.refresh:
                why = "refresh"
            else:
                continue
            self._prompted[object_id] = (frame.seq, now)
            prompts.append({"id": object_id, "box": [x0, y0, x1, y1], "name": det.name, "why": why})
        alive = set(self._ids)
        self._prompted = {i: seq for i, seq in self._prompted.items() if i in alive}
        if prompts:
            frame.meta["detections"] = list(frame.meta.get("detections", ())) + prompts
            self.count("logo_prompts", len(prompts))

    def _list(self, frame: VideoFrame, found: list[Detection], ids: list[int]) -> None:
        if not found:
            return
        self.count("logo_frames")
        for det in found:
            self._seen[det.reference] += 1
        frame.meta["logos"] = [{"id": i, "name": d.name, "box": list(d.box), "score": round(d.score, 3),
                                "method": d.method} for d, i in zip(found, ids, strict=True)]

    def flush(self) -> list[VideoFrame]:
        for path, seen in zip(self.paths, self._seen, strict=True):
            if not seen:
                log.warning("%s: logo %s appeared on no frame: nothing of it was removed", self.name, path)
        return []



def distinct(found: list[Detection]) -> list[int]:
    """Indexes of ``found`` without the appearances that repeat an earlier one (the same logo, boxes
    overlapping by more than SAME): the whole-frame search can find a logo cut by the frame's edge twice."""
    kept: list[int] = []
    for n, det in enumerate(found):
        if not any(found[k].reference == det.reference and overlap(found[k].box, det.box) > SAME for k in kept):
            kept.append(n)
    return kept
