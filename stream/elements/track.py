"""track: carries each object's mask from its reference frame through every following frame."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import ClassVar

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.tracker import MODELS, MaskTracker, TrackerConfig
from cleanfeed.stream.adapters.base import ModelSettings
from cleanfeed.stream.adapters.model_choice import check_device, model_properties
from cleanfeed.stream.adapters.track_deaot import DEAOT, VARIANTS, DeaotEngine, choose
from cleanfeed.stream.adapters.track_live import PunctualTracker
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import EngineChoice, Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register
from cleanfeed.stream.shedding import Shedder

log = logging.getLogger(__name__)



@register
class Track(Filter):
    factory: ClassVar[str] = "track"
    klass: ClassVar[str] = "Filter/Video/Track"
    description: ClassVar[str] = (
        "Tracks every referenced object's mask through the following frames (DeAOT, or optical flow).\n\n"
        "A frame whose meta reference lists object ids (written by `segment`, or any element that "
        "corrects a mask) (re)starts those objects from the frame's mask; the other objects keep "
        "tracking. On every other frame the tracked masks are written into the frame's mask (object "
        "ids). Frames before the first reference pass through. An object unseen for longer than "
        "lost_after frames is listed in meta objects_lost (it is still looked for).\n\n"
        "engine=auto uses DeAOT when a checkpoint is found (checkpoint=PATH, or the official file "
        "names in the models folder: models=DIR, $CLEANFEED_MODELS, ~/.cache/cleanfeed/models) and "
        "the classical engine otherwise, and says which and why. DeAOT's variant is read from the "
        "checkpoint; its long-term memory takes the reference frames and one frame every "
        "long_term_gap frames (upstream's gap for the variant unless set), capped at max_long_term "
        "frames without ever dropping the first reference. More than ten objects run one sub-engine "
        "per ten.\n\n"
        "The classical engine fits each object's motion (DIS optical flow) on its own pixels and "
        "re-aligns it to its reference, on a region around each object: the cost follows the "
        "objects' size, not the frame's.\n\n"
        "Live runs with a latency budget: DeAOT runs in a thread of its own and the element holds up "
        "to 8 frames; a frame whose masks are not back by its deadline leaves on time with the newest "
        "masks known grown by stale_grow pixels, flagged meta degraded=true (track: stale; counter "
        "stale_masks). When DeAOT falls further behind, queued frames without a reference are skipped "
        "(counter track_skipped); reference frames never are.\n\n"
        "Shedding (classical engine, live runs with a budget): a frame whose slack (its deadline less "
        "now) is less than the flow's measured cost per frame skips the flow: it gets the last masks "
        "tracked, grown by stale_grow pixels (never uncovering), flagged degraded (track: stale); "
        "shedding goes on until the slack came back for half a second of frames in a row. Reference "
        "frames are never shed. Counters: shed_late, shed_backlog, shed_entered, stale_masks, slack_le_*ms."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! savemask location=masks "
        "! fakesink"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        *model_properties(DEAOT, "Tracking", VARIANTS, "R50_DeAOTL_PRE_YTB_DAV.pth, ..."),
        Property.int("long_term_gap", "DeAOT: frames between long-term memory writes (0: the variant's own; "
                     "9999: reference frames only)", 0, 0, 100000),
        Property.int("max_long_term", "DeAOT: long-term memory frames kept, references included", 8, 2, 256),
        Property.bool("cuda_graphs", "DeAOT on torch/CUDA: replay captured CUDA graphs (fixed memory shapes)", False),
        Property.bool("compile", "DeAOT on torch: run the graphs through torch.compile", False),
        Property.int("lost_after", "DeAOT: frames an object may go unseen before meta objects_lost lists it", 30, 0, None),
        Property.enum("motion", "Classical engine: motion model fitted inside each object", MODELS, "similarity"),
        Property.int("max_side", "Classical engine: downscale flow regions whose longer side exceeds this (pixels)", 160, 32, 4096),
        Property.float("margin", "Classical engine: search region around each object, as a fraction of its size", 0.5, 0.1, 4.0),
        Property.bool("anchor", "Classical engine: re-align each object to its reference every frame (no drift)", True),
        Property.int("stale_grow", "Live runs: pixels the newest masks grow by on a frame DeAOT could not "
                     "answer in time, or the classical engine shed", 16, 0, 512),
    )

    HELD_LIVE = 8
    """Frames DeAOT may hold under a deadline (the shared-memory slots it may keep)."""

    def configure(self) -> None:
        check_device(self.factory, self.device)
        self._choice, self._why = choose(self.engine, self.checkpoint, self.model, self.models)
        self._deaot: DeaotEngine | None = None
        self._punctual: PunctualTracker | None = None
        self._stopped_busy_s = 0.0

    @property
    def held_max(self) -> int:
        return self.HELD_LIVE if self._choice is not None else 0

    def prepare(self) -> None:
        if self._choice is not None:
            self._deaot_engine().load()

    def _deaot_engine(self) -> DeaotEngine:
        if self._deaot is None:
            assert self._choice is not None
            settings = ModelSettings(backend=self.backend, device=self.device, precision=self.precision,
                                     cuda_graphs=self.cuda_graphs, compile=self.compile)
            self._deaot = DeaotEngine(self._choice, settings, long_term_gap=self.long_term_gap or None,
                                      max_long_term=self.max_long_term, lost_after=self.lost_after)
        return self._deaot

    def engine_choice(self) -> EngineChoice:
        return DEAOT.engine_choice(self._choice, self.engine, self.models)

    def start(self, caps: Caps) -> Caps:
        if self._choice is not None:
            self._deaot = self._deaot_engine()
            said = self._deaot.open(caps.width, caps.height)
            if self.deadline is not None:
                self._punctual = PunctualTracker(self._deaot, self.name, self.HELD_LIVE, self.stale_grow, self.count)
                said += "; in a thread of its own (live deadline)"
            log.debug("%s: using %s (%s)", self.name, self._why, said)
            return caps
        config = TrackerConfig(model=self.motion, max_side=self.max_side, margin=self.margin, anchor=self.anchor)
        self._tracker = MaskTracker(config)
        self._shed = Shedder(self.deadline, caps.rate, self.count) if self.deadline is not None else None
        self._last: tuple[regions.Box, np.ndarray] | None = None  # the last tracked masks (ids), a crop
        return caps

    def stop(self) -> None:
        if self._punctual is not None:
            self._stopped_busy_s = self._punctual.busy_s  # still reported after the stream
            self._punctual.close()
            self._punctual = None
        if self._deaot is not None:
            self._deaot.close()
            self._deaot = None

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if self._punctual is not None:
            return self._punctual.process(frame)
        if self._deaot is not None:
            return self._process_deaot(frame, self._deaot)
        tracker = self._tracker
        refs = [int(i) for i in frame.meta.get("reference", [])]
        if not tracker.ids and not refs:
            return [frame]
        shed = self._shed
        if shed is None or refs:
            return self._track(frame, refs)
        t0 = time.monotonic()
        reason = shed.decide(frame, t0)
        if reason is not None and self._last is not None:
            self._stale(frame, reason)
            shed.cheap.add(time.monotonic() - t0)
            return [frame]
        out = self._track(frame, refs)
        shed.full.add(time.monotonic() - t0)
        return out

    def _stale(self, frame: VideoFrame, reason: str) -> None:
        """The cheap path: the last tracked masks grown by stale_grow, no flow (see the description)."""
        assert self._last is not None
        box, ids = self._last
        height, width = frame.mask.shape
        grown_box = regions.grow(box, self.stale_grow, width, height)
        canvas = np.zeros((grown_box[3] - grown_box[1], grown_box[2] - grown_box[0]), np.uint8)
        ox, oy = box[0] - grown_box[0], box[1] - grown_box[1]
        canvas[oy : oy + ids.shape[0], ox : ox + ids.shape[1]] = ids
        if self.stale_grow:
            canvas = cv2.dilate(canvas, regions.ellipse(self.stale_grow))
        view = regions.crop(frame.mask, grown_box)
        np.copyto(view, canvas, where=(canvas > 0) & (view == 0))
        frame.meta["degraded"] = True
        frame.meta["track"] = {str(i): "stale" for i in self._tracker.ids}
        frame.meta["objects_lost"] = sorted(self._tracker.lost)
        self.count("stale_masks")
        self.count(f"shed_{reason}")

    def _track(self, frame: VideoFrame, refs: list[int]) -> list[VideoFrame]:
        tracker = self._tracker
        luma = frame.picture.luma()
        modes: dict[str, str] = {}
        if tracker.ids:
            for obj_id, found in tracker.track_regions(luma).items():
                modes[str(obj_id)] = found.mode
                if obj_id in refs or found.box is None:
                    continue
                view = regions.crop(frame.mask, found.box)
                np.copyto(view, np.uint8(obj_id), where=found.mask & (view == 0) if refs else found.mask)
        for obj_id in refs:
            mask = frame.mask == obj_id
            if mask.any():
                tracker.add_reference(obj_id, luma, mask)
                modes[str(obj_id)] = "reference"
            else:
                tracker.remove(obj_id)
        frame.meta["objects_lost"] = sorted(tracker.lost)
        frame.meta["track"] = modes
        if self._shed is not None:
            box = regions.mask_box(frame.mask)
            self._last = None if box is None else (box, regions.crop(frame.mask, box).copy())
        return [frame]

    def background_busy_s(self) -> float:
        return self._punctual.busy_s if self._punctual is not None else self._stopped_busy_s

    def expire(self, now: float) -> list[VideoFrame]:
        deadline = self.deadline
        if self._punctual is None or deadline is None:
            return []
        return self._punctual.expire(lambda f: deadline.due(f) <= now)

    def flush(self) -> list[VideoFrame] | Iterator[VideoFrame]:
        deadline = self.deadline
        if self._punctual is None or deadline is None:
            return []
        return self._punctual.flush(lambda f: deadline.due(f) <= time.monotonic())

    def reseed(self, previous: VideoFrame) -> None:
        """Re-seeds a tracker whose process died and was restarted (cleanfeed.stream.crews.processes).

        ``previous`` is a copy of the last frame the dead process emitted (kept by the next
        stage): every object id in its mask becomes a reference again, with that frame's
        pixels, so the frames that follow (the ones that were in flight first) are tracked
        from where the objects last were, not from their first reference, whose frame is
        gone. Called after ``start``, before the first frame.
        """
        ids = [int(i) for i in np.unique(previous.mask) if i]
        if not ids:
            return
        if self._deaot is not None:
            self._deaot.track(previous.picture.rgb(), previous.mask, ids)
        else:
            luma = previous.picture.luma()
            for obj_id in ids:
                self._tracker.add_reference(obj_id, luma, previous.mask == obj_id)
        self.count("reseeded")
        log.info("%s: re-seeded objects %s from frame %d after a restart", self.name, ids, previous.seq)

    def _process_deaot(self, frame: VideoFrame, deaot: DeaotEngine) -> list[VideoFrame]:
        refs = sorted(int(i) for i in frame.meta.get("reference", []))
        if not deaot.ids and not refs:
            return [frame]
        frame.meta["track"] = deaot.track(frame.picture.rgb(), frame.mask, refs)
        frame.meta["objects_lost"] = deaot.lost
        return [frame]
