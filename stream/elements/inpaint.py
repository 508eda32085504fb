"""inpaint: paints the masked objects out with what neighbouring frames show behind them."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import ClassVar

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.cover import CHEAP_PX, FALLBACKS, fill
from cleanfeed.engines.classical.inpainter import METHODS, Filled, FlowInpainter, InpaintConfig
from cleanfeed.engines.e2fgvi.schedule import SlidingConfig
from cleanfeed.errors import ElementError, LateError
from cleanfeed.stream.adapters.base import ModelSettings
from cleanfeed.stream.adapters.inpaint_e2fgvi import E2FGVI, MODES, VARIANTS, E2fgviEngine, choose
from cleanfeed.stream.adapters.model_choice import check_device, model_properties
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import EngineChoice, Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register
from cleanfeed.stream.shedding import Shedder, calibrate_warning, carry_cheap_cost

log = logging.getLogger(__name__)

CALIBRATE_FRAMES = 3
"""Masked frames on which a live run times the cheap path (the fallback fill) at start."""


@register
class Inpaint(Filter):
    factory: ClassVar[str] = "inpaint"
    klass: ClassVar[str] = "Filter/Video/Inpaint"
    description: ClassVar[str] = (
        "Removes every masked object, filling it from neighbouring frames (E2FGVI-HQ, or flow-guided).\n\n"
        "engine=auto uses E2FGVI-HQ when a checkpoint is found (checkpoint=PATH, or E2FGVI-HQ-CVPR22.pth "
        "in the models folder: models=DIR, $CLEANFEED_MODELS, ~/.cache/cleanfeed/models) and the "
        "classical engine otherwise, and says which and why.\n\n"
        "E2FGVI runs windows of 2*neighbor_stride+1 frames centred every neighbor_stride frames, "
        "with reference frames every ref_step frames. mode=stream (live input) takes references "
        "from the past only (num_ref of them; -1 = 3) and emits each frame neighbor_stride frames "
        "after it came in (the lookahead); memory stays constant. mode=offline is upstream's "
        "test.py, frame for frame: references from the whole clip (num_ref=-1: every ref_step-th "
        "frame), every frame averaged over all its windows; it keeps the clip in a spill file on "
        "disk and emits after the end of the stream (refused for live input). region=auto "
        "inpaints a crop around the masks (margin pixels of context, grown to the model's "
        "60x108 multiples), so a small logo in HD costs what a 432x240 frame costs; it takes the "
        "whole frame when the crop would cover half of it; region=full always does. Only mask "
        "pixels are written.\n\n"
        "The classical engine: method=propagate pulls each hidden pixel from the nearest of the `window` frames before and "
        "after that shows it (motion estimated around the mask, never from the logo itself), then "
        "from the previous output, then fills the rest with cv2.inpaint (Telea). It holds `window` "
        "frames (the lookahead: window/rate seconds of latency) and emits in order. window=0, "
        "method=telea or method=ns inpaint each frame on its own with no delay. Only mask pixels are "
        "written (for yuv420p, chroma of the 2x2 blocks they touch); frames with an empty mask pass "
        "through untouched.\n\n"
        "Live runs with a latency budget (cleanfeed run --live --max-latency MS, launch --latency MS): "
        "a held frame whose engine answer is not ready when it is due leaves on time with every "
        "masked pixel covered by the fallback fill (inpaint: cv2.inpaint Telea of the region; blur; "
        "pixelate: 16-px blocks), flagged meta degraded=true; the engine still uses it as context "
        "and its late answer is dropped. E2FGVI then runs its windows in a thread of its own, so "
        "frames leave on time even while a window is computing; it holds at most "
        "2*neighbor_stride+1 frames (older ones leave covered at once), and when it falls hopelessly "
        "behind (a queue of twice that) it drops the queue and starts afresh (counter "
        "e2fgvi_resyncs). Large holes are covered on a scaled-down crop (the cheap path stays a few ms).\n\n"
        "Shedding (classical engine, live runs with a budget): before it starts a frame, the element "
        "compares the frame's slack (its deadline less now) with what the full path needs (the "
        "lookahead's wait plus its measured cost per frame); a frame short of it is covered by the "
        "fallback at once and never enters the engine, the frames held are covered too and the engine "
        "starts afresh; it sheds until the slack came back for half a second of frames in a row "
        "(hysteresis). Counters: shed_late (the frame lacked the slack), shed_backlog (shedding went on "
        "while the backlog cleared), expired (due before the engine answered; its fill is then never "
        "computed), discarded (a fill computed for a frame that had left: 0 once shedding), "
        "shed_entered, slack_le_*ms. On its first masked frames it times the fallback fill and warns "
        "when even that is slower than the input (--fail-on-late: an error)."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! dilate "
        "! inpaint window=5 ! filesink location=out.mp4"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        *model_properties(E2FGVI, "Inpainting", VARIANTS, "E2FGVI-HQ-CVPR22.pth", precision="compute precision (autocast)"),
        Property.bool("compile", "E2FGVI on torch: run the generator through torch.compile", False),
        Property.enum("mode", "E2FGVI: stream (past references, constant memory) or offline (test.py, whole clip)",
                      MODES, "stream"),
        Property.int("neighbor_stride", "E2FGVI: window half-width and step (frames); the stream lookahead", 5, 1, 30),
        Property.int("ref_step", "E2FGVI: frames between reference frames", 10, 1, 1000),
        Property.int("num_ref", "E2FGVI: reference frames per window (-1: offline all, stream 3)", -1, -1, 64),
        Property.enum("region", "E2FGVI: auto (a crop around the masks when small) or full (whole frame)",
                      ("auto", "full"), "auto"),
        Property.int("margin", "Context kept around the mask (pixels; 0 = auto: 16 classical, 64 E2FGVI)", 0, 0, 1024),
        Property.string("spill", "E2FGVI offline: folder for the spill file (default: the system's temp folder)", None),
        Property.int("window", "Classical: frames used before and after each frame (= lookahead); 0 = spatial only",
                     5, 0, 30),
        Property.enum("method", "Classical: propagate (flow-guided from neighbour frames); telea / ns: per-frame "
                      "cv2.inpaint", METHODS, "propagate"),
        Property.int("radius", "Classical: cv2.inpaint neighbourhood radius (pixels)", 5, 1, 32),
        Property.int("flow_margin", "Classical: ring around the mask whose motion guides propagation (pixels)",
                     32, 8, 256),
        Property.int("flow_side", "Classical: the region whose motion is estimated is downscaled to this longer "
                     "side first (pixels; smaller is faster, coarser)", 256, 32, 4096),
        Property.int("spatial_px", "Classical: pixels no frame shows are filled by cv2.inpaint on the region scaled "
                     "down to about this many hole pixels (smaller is faster, blurrier)", 8192, 256, 10_000_000),
        Property.enum("fallback", "Live runs: how a frame the engine cannot finish by its deadline is covered "
                      "(inpaint: cv2.inpaint Telea, blur: heavy Gaussian, pixelate: 16-px blocks)", FALLBACKS,
                      "inpaint"),
    )

    def configure(self) -> None:
        check_device(self.factory, self.device)
        self._choice, self._why = choose(self.engine, self.checkpoint, self.model, self.models)
        self._e2fgvi: E2fgviEngine | None = None
        if self._choice is not None:
            sliding = SlidingConfig(self.mode, self.neighbor_stride, self.ref_step, self.num_ref, self.region,
                                    self.margin or 64)
            settings = ModelSettings(backend=self.backend, device=self.device, precision=self.precision,
                                     compile=self.compile)
            self._e2fgvi = E2fgviEngine(self._choice, settings, sliding=sliding, spill_dir=self.spill)

    def _config(self, align: int = 1) -> InpaintConfig:
        return InpaintConfig(window=self.window, method=self.method, margin=max(4, self.margin or 16),
                             radius=self.radius, flow_margin=self.flow_margin, align=align,
                             flow_max_side=self.flow_side, spatial_max_px=self.spatial_px)

    @property
    def lookahead(self) -> int:
        if self._e2fgvi is not None:
            return self._e2fgvi.lookahead
        return self._config().lookahead

    @property
    def held_max(self) -> int:
        return self._e2fgvi.held_max if self._e2fgvi is not None else self.lookahead

    @property
    def holds_stream(self) -> bool:
        return self._e2fgvi is not None and self.mode == "offline"

    def prepare(self) -> None:
        if self._e2fgvi is not None and self.backend == "torch":
            self._e2fgvi.load()

    def engine_choice(self) -> EngineChoice:
        return E2FGVI.engine_choice(self._choice, self.engine, self.models)

    def start(self, caps: Caps) -> Caps:
        if self._e2fgvi is not None:
            cover = self._cover if self.deadline is not None else None
            log.debug("%s: using %s (%s)", self.name, self._why, self._e2fgvi.open(caps, cover, self.count))
            return caps
        self._engine = FlowInpainter(self._config(align=2 if caps.pix_fmt == "yuv420p" else 1))
        self._held: deque[VideoFrame] = deque()
        self._emitted = 0
        self._rate = caps.rate
        self._calibrated: list[float] = []
        self._cheap: tuple[float, str] | None = None  # the fallback's measured cost, told to the sink
        self._shed: Shedder | None = None
        if self.deadline is not None and self.lookahead > 0:
            self._shed = Shedder(self.deadline, caps.rate, self.count, lookahead=self.lookahead)
        return caps

    def stop(self) -> None:
        if self._e2fgvi is not None:
            self._e2fgvi.close()

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if self._e2fgvi is not None:
            return self._e2fgvi.process(frame)
        shed = self._shed
        if shed is not None:
            self._calibrate(frame)
            t0 = time.monotonic()
            reason = shed.decide(frame, t0)
            if reason is not None:
                out = self._drop_held()
                out.append(self._cover(frame, reason))
                shed.cheap.add(time.monotonic() - t0)
                return self._told(out)
            out = self._full(frame)
            shed.full.add(time.monotonic() - t0)
            return self._told(out)
        return self._full(frame)

    def _told(self, frames: list[VideoFrame]) -> list[VideoFrame]:
        """Frames leave carrying the cheap path's measured cost, for the sink's check of the whole
        chain (cleanfeed.stream.shedding.ChainCheck)."""
        if self._cheap is not None:
            for frame in frames:
                carry_cheap_cost(frame, self.name, *self._cheap)
        return frames

    def _full(self, frame: VideoFrame) -> list[VideoFrame]:
        picture, mask = frame.picture, frame.mask
        if self.deadline is not None and self.lookahead > 0:
            # the frame may leave (expire) while the engine still reads it for later frames
            picture, mask = picture.copy(), mask.copy()
        results = self._engine.push(picture.luma(), picture.rgb, mask)
        self._held.append(frame)
        return [f for f in map(self._write, results) if f is not None]

    def flush(self) -> list[VideoFrame] | Iterator[VideoFrame]:
        if self._e2fgvi is not None:
            deadline = self.deadline
            if deadline is None:
                return self._e2fgvi.flush()
            return self._e2fgvi.flush(lambda f: deadline.due(f) <= time.monotonic())
        return [f for f in map(self._write, self._engine.flush()) if f is not None]

    def background_busy_s(self) -> float:
        return self._e2fgvi.background_busy_s if self._e2fgvi is not None else 0.0

    def expire(self, now: float) -> list[VideoFrame]:
        """Held frames due by ``now`` leave covered by the fallback fill (see the description)."""
        deadline = self.deadline
        if deadline is None:
            return []
        if self._e2fgvi is not None:
            return self._e2fgvi.expire(lambda f: deadline.due(f) <= now, self._cover)
        out = []
        while self._held and deadline.due(self._held[0]) <= now:
            self._engine.abandon(self._emitted)  # its fill is never computed now
            self._emitted += 1
            out.append(self._cover(self._held.popleft(), "expired"))
        return out

    def _drop_held(self) -> list[VideoFrame]:
        """Shedding begins: the frames held leave covered (they are older than the frame that had
        no time, so have less), and the engine starts afresh with the frames after them."""
        out = [self._cover(frame, "shed_late") for frame in self._held]
        self._held.clear()
        self._engine = FlowInpainter(self._engine.config)
        self._emitted = 0
        return out

    def _calibrate(self, frame: VideoFrame) -> None:
        """Times the cheap path on the first masked frames (on a copy of the region, nothing
        written) and warns once, or raises LateError with --fail-on-late, when even it is slower
        than the input's frame rate."""
        if len(self._calibrated) >= CALIBRATE_FRAMES or regions.mask_box(frame.mask) is None:
            return
        t0 = time.monotonic()
        self._fallback(frame, write=False)
        self._calibrated.append(time.monotonic() - t0)
        if len(self._calibrated) < CALIBRATE_FRAMES:
            return
        cost = sorted(self._calibrated)[len(self._calibrated) // 2]
        self.count("cheap_path_us", round(cost * 1e6))
        self._cheap = (cost, f"the {self.fallback} fallback fill")
        said = calibrate_warning(self.name, cost, self._rate, self._cheap[1])
        if said is not None:
            if self.fail_on_late:
                raise LateError(said)
            log.warning("%s", said)

    def recover(self, frame: VideoFrame) -> list[VideoFrame]:
        """A frame that was inside this stage's previous process when it died (the supervisor
        restarted it, cleanfeed.stream.runner ``Resume``): the frames before it, which the engine would
        propagate from, died with that process, and the frame is late already, so it leaves at
        once covered by the fallback fill and flagged degraded, like a frame past its deadline.
        The engine starts afresh with the frames after it."""
        self.count("recovered_frames")
        return [self._cover(frame)]

    def _cover(self, frame: VideoFrame, why: str | None = None) -> VideoFrame:
        """Paints every masked pixel with the fallback fill and flags the frame degraded; ``why``
        (``shed_late``, ``shed_backlog``, ``expired``) is counted for a frame that had a mask."""
        covered = self._fallback(frame, write=True)
        if covered is None:
            return frame  # nothing to hide: the engine would have passed it through as it is
        frame.meta["degraded"] = True
        frame.meta["inpaint"] = {"fallback": self.fallback, "covered": covered}
        self.count("fallback_frames")
        if why is not None:
            self.count(why if why.startswith(("shed_", "expired")) else f"shed_{why}")
        return frame

    def _fallback(self, frame: VideoFrame, write: bool) -> int | None:
        """The fallback fill of the frame's masked pixels (None: no mask); the pixels covered."""
        box = regions.mask_box(frame.mask)
        if box is None:
            return None
        picture = frame.picture
        grow = max(8, self.margin or 16) * (3 if self.fallback == "blur" else 1)
        region = picture.align(regions.grow(box, grow, picture.width, picture.height))
        hole = regions.crop(frame.mask, region) > 0
        filled = fill(picture.rgb(region), hole, self.fallback, self.radius, CHEAP_PX)
        if write:
            picture.put_rgb(filled, region, where=hole)
        return int(hole.sum())

    def _write(self, result: Filled) -> VideoFrame | None:
        if result.index < self._emitted:
            if result.box is not None:
                self.count("discarded")  # computed for a frame that left: the waste shedding avoids
            return None  # it left on its deadline, covered by the fallback
        if result.index != self._emitted or not self._held:
            raise ElementError(self.name, f"result for frame {self._emitted} expected, got {result.index}")
        self._emitted += 1
        frame = self._held.popleft()
        if result.box is not None and result.rgb is not None and result.where is not None:
            frame.picture.put_rgb(result.rgb, result.box, where=result.where)
            frame.meta["inpaint"] = result.counts
        return frame
