"""E2FGVI-HQ behind the `inpaint` element: which checkpoint, on which backend, and frames in and out.

Kept apart from the element so that torch is imported only when E2FGVI is chosen. Two ways to
hold frames, one per mode:

- ``stream``: the frames themselves are held (their shared-memory slots count in the element's
  lookahead, ``neighbor_stride`` frames) and RGB copies of the few past frames later windows still
  use; each frame leaves as soon as its windows have run. With a live deadline the windows run
  in a thread of their own (stream/adapters/inpaint_windows.py), so frames can leave on time,
  covered by the fallback, while a window is still computing: then up to ``held_max`` frames
  are held, and a frame beyond that leaves covered at once (the engine is too far behind).
- ``offline``: every frame is copied to a spill file on disk (stream/spill.py) and its slot given
  back at once; the windows run at the end of the stream, in test.py's order, and frames leave as
  they are finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from cleanfeed.engines.e2fgvi.checkpoint import OFFICIAL_FILES, TITLES
from cleanfeed.engines.e2fgvi.checkpoint import VARIANTS as E2FGVI_VARIANTS
from cleanfeed.engines.e2fgvi.schedule import SlidingConfig
from cleanfeed.engines.models import Choice, Family, auto_device
from cleanfeed.engines.runners.base import RunnerConfig
from cleanfeed.errors import BackendError, ElementError, PropertyError
from cleanfeed.stream.adapters.base import ModelAdapter, ModelSettings
from cleanfeed.stream.adapters.inpaint_windows import BackgroundWindows, InlineWindows
from cleanfeed.stream.adapters.model_choice import ModelFamily
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.held import HeldFrames
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.spill import FrameSpill

log = logging.getLogger(__name__)

VARIANTS = tuple(E2FGVI_VARIANTS)
MODES = ("stream", "offline")

E2FGVI = ModelFamily(Family(name="E2FGVI", engine="e2fgvi", files=OFFICIAL_FILES, prefer=("e2fgvi_hq", "e2fgvi")),
                     element="inpaint", flag="--e2fgvi", classical="flow-guided propagation")


def choose(engine: str, checkpoint: str | None, model: str, models: str | None) -> tuple[Choice | None, str]:
    """E2FGVI or the classical engine for these properties, and why (ModelFamily.choose)."""
    return E2FGVI.choose(engine, checkpoint, model, models)


class TorchWindow:
    """The generator as a window model, in the asked precision (autocast; weights stay fp32, as
    upstream's fp16 run does) and optionally through torch.compile."""

    def __init__(self, net: Any, device: str, precision: str, compile: bool) -> None:
        import torch

        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.forward = torch.compile(self.net, dynamic=True) if compile else self.net

    def __call__(self, masked: Any, local: int) -> tuple[Any, None]:
        import torch

        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            output, _ = self.forward(masked, local)
        return output.float(), None


class SpillStore:
    """The offline engine's frames, read back from the spill as RGB when a window needs them."""

    def __init__(self, spill: FrameSpill) -> None:
        self.spill = spill

    def put(self, index: int, rgb: np.ndarray) -> None:
        """Already in the spill."""

    def rgb(self, index: int) -> np.ndarray:
        return self.spill.picture(index).rgb()

    def discard(self, index: int) -> None:
        """The spill is append-only; it goes as a whole."""


def write_patch(picture: Picture, patch: Any) -> int:
    """Writes a finished patch's hole pixels into ``picture`` (aligned for yuv420p); returns how many."""
    box = patch.box
    xyxy = (box.x0, box.y0, box.x1, box.y1)
    aligned = picture.align(xyxy)
    if aligned == xyxy:
        picture.put_rgb(patch.rgb, xyxy, where=patch.where)
    else:
        ax0, ay0 = aligned[0], aligned[1]
        base = picture.rgb(aligned)
        where = np.zeros(base.shape[:2], bool)
        rows = slice(box.y0 - ay0, box.y1 - ay0)
        cols = slice(box.x0 - ax0, box.x1 - ax0)
        np.copyto(base[rows, cols], patch.rgb, where=patch.where[..., None])
        where[rows, cols] = patch.where
        picture.put_rgb(base, aligned, where=where)
    return int(patch.where.sum())


Cover = Callable[[VideoFrame], VideoFrame]


class E2fgviEngine(ModelAdapter):
    """One E2FGVI inpainter for the element's lifetime, opened for one frame size.

    ``sliding`` is the window schedule (checked when built); ``spill_dir`` where offline mode
    keeps its spill file (None: the system's temp folder).
    """

    family = E2FGVI

    def __init__(self, choice: Choice, settings: ModelSettings, *, sliding: SlidingConfig | None = None,
                 spill_dir: str | None = None) -> None:
        super().__init__(choice, settings)
        self.sliding = sliding or SlidingConfig()
        self.spill_dir = spill_dir
        self._engine: Any = None  # offline: the sliding inpainter itself
        self._windows: InlineWindows | BackgroundWindows | None = None  # stream
        self._held = HeldFrames(self.held_max)
        self._cover: Cover | None = None
        self._spill: FrameSpill | None = None
        self._loaded: tuple[TorchWindow, str] | None = None
        self._closed_busy_s = 0.0

    @property
    def lookahead(self) -> int:
        w = self.sliding
        return w.neighbor_stride if w.mode == "stream" else 0

    @property
    def held_max(self) -> int:
        """The lookahead plus one window's worth of frames arriving while it computes."""
        w = self.sliding
        return 2 * w.neighbor_stride + 1 if w.mode == "stream" else 0

    def open(self, caps: Caps, cover: Cover | None = None, count: Callable[[str], None] | None = None) -> str:
        """Loads the checkpoint onto its backend; returns what runs, in words. ``cover`` (live
        runs with a deadline: the element's fallback fill) runs the windows in a thread;
        ``count`` is told each resync of that thread's engine."""
        s, w = self.settings, self.sliding
        if w.mode == "offline" and caps.live:
            raise PropertyError(
                "inpaint mode=offline needs the whole clip before its first frame can leave, got a live input: "
                "use mode=stream (reference frames from the past only)"
            )
        try:
            from cleanfeed.engines.e2fgvi.sliding import SlidingInpainter
        except ImportError as err:
            raise BackendError(f"E2FGVI needs torch: pip install 'cleanfeed[torch]' ({err})") from None
        device = auto_device(s.device)
        fixed = resize_to = None
        region = w.region
        if s.backend == "torch":
            model, variant = self.load()
            resize_to = model.net.fixed_size  # the 432x240 E2FGVI: whole frames resized to it, as test.py does
            if resize_to is not None:
                region = "full"
                log.info("inpaint: %s takes %dx%d frames only: frames are resized to it and back, region=full "
                         "(region=%s does not apply)", TITLES[variant], resize_to[1], resize_to[0], w.region)
        else:
            if self.choice.model == "e2fgvi":
                raise PropertyError(f"inpaint model=e2fgvi runs on backend=torch only (the exported window is "
                                    f"E2FGVI-HQ's), got backend={s.backend}")
            if w.mode == "offline":
                raise PropertyError(
                    f"inpaint mode=offline runs on backend=torch: test.py's windows change length along the clip and an "
                    f"exported window has fixed frame counts; use mode=stream with backend={s.backend}"
                )
            fixed = (2 * w.neighbor_stride + 1, w.stream_refs)
            model, variant = self._exported(caps, fixed, device)
        config = replace(w, region=region, fixed=fixed, resize_to=resize_to)
        if w.mode == "offline":
            self._spill = FrameSpill(caps, self.spill_dir)
            self._engine = SlidingInpainter(model, config, caps.height, caps.width, store=SpillStore(self._spill),
                                            device=device)
        elif cover is not None:
            self._cover = cover
            self._count = count
            self._windows = BackgroundWindows(
                lambda: SlidingInpainter(model, config, caps.height, caps.width, device=device), "inpaint",
                max_backlog=2 * self.held_max, on_resync=count)
        else:
            self._windows = InlineWindows(SlidingInpainter(model, config, caps.height, caps.width, device=device))
        refs = (f"every {w.ref_step}th frame of the clip" if w.num_ref == -1 else f"{w.num_ref + 1} around each window"
                ) if w.mode == "offline" else f"the {config.stream_refs} latest every-{w.ref_step}th past frames"
        compiled = ", torch.compile" if s.compile else (f", exported window of {fixed[0]}+{fixed[1]} frames" if fixed else "")
        self.description = (
            f"{TITLES[variant]} on {s.backend} {device} {s.precision}{compiled}; {w.mode} mode, windows of "
            f"{2 * w.neighbor_stride + 1} frames every {w.neighbor_stride}, references: {refs}; region={region}"
            + (f" (margin {w.margin} px)" if region == "auto" else "")
            + (f", frames resized to {resize_to[1]}x{resize_to[0]} and back" if resize_to else "")
            + ("; windows in a background thread (live deadline)" if self._cover is not None else "")
        )
        return self.description

    def load(self) -> tuple[TorchWindow, str]:
        """The checkpoint on its device (backend=torch; once): no caps needed, so the element
        can do it in ``prepare`` before the first frame. Returns the window model and variant."""
        if self._loaded is None:
            try:
                from cleanfeed.engines.e2fgvi.checkpoint import load_e2fgvi
            except ImportError as err:
                raise BackendError(f"E2FGVI needs torch: pip install 'cleanfeed[torch]' ({err})") from None
            s = self.settings
            net, variant = load_e2fgvi(self.choice.checkpoint, self.choice.model or "auto")
            self._loaded = (TorchWindow(net, auto_device(s.device), s.precision, s.compile), variant)
        return self._loaded

    def _exported(self, caps: Caps, fixed: tuple[int, int], device: str) -> tuple[Any, str]:
        """The exported window for these frame counts, from the engine cache (exported there the first time)."""
        try:
            from cleanfeed.engines.e2fgvi.exported import open_exported_window
            from cleanfeed.engines.e2fgvi.windows import padding
            from cleanfeed.export.e2fgvi import window_options
        except ImportError as err:
            raise BackendError(
                f"backend={self.settings.backend} needs onnx and onnxruntime: pip install 'cleanfeed[onnx]' ({err})"
            ) from None
        pad_h, pad_w = padding(caps.height, caps.width)
        size = (min(caps.height + pad_h, 1080), min(caps.width + pad_w, 1944))

        def spec() -> Any:
            from cleanfeed.export.e2fgvi import e2fgvi_spec

            return e2fgvi_spec(self.choice.checkpoint, self.choice.model, local=fixed[0], refs=fixed[1], size=size)

        folder = self.exported(spec, window_options(*fixed, size=size),
                               f", a window of {fixed[0]}+{fixed[1]} frames (minutes on a CPU)")
        config = RunnerConfig(backend=self.settings.backend, device=device, precision=self.settings.precision)
        return open_exported_window(folder, config), "e2fgvi_hq"

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if self._spill is not None:
            self._spill.append(frame)
            self._engine.push(None, frame.mask)
            return []
        assert self._windows is not None
        index = self._held.add(frame)
        rgb, mask = frame.picture.rgb(), frame.mask
        if self._cover is not None:  # the frame may leave, its slot reused, while the thread reads these
            rgb = rgb if rgb.flags.owndata else rgb.copy()
            mask = mask.copy()
        self._windows.submit(index, rgb, mask)
        return self._collect()

    def flush(self, overdue: Callable[[VideoFrame], bool] | None = None) -> Iterator[VideoFrame]:
        """The frames still held, in order. ``overdue`` (live, with the windows in a thread): the
        last windows run while held frames leave on their deadlines, covered when not answered
        by then, so the end of a live stream is as punctual as the rest of it."""
        if self._spill is not None:
            for patch in self._engine.finish():
                frame = self._spill.frame(patch.index)
                if patch.box is not None:
                    frame.meta["inpaint"] = {"e2fgvi": write_patch(frame.picture, patch)}
                yield frame
            return
        windows = self._windows
        assert windows is not None
        if isinstance(windows, BackgroundWindows) and overdue is not None:
            yield from self._held.flush_live(windows, self._collect, overdue, self._late)
            return
        for index, patch in windows.finish():
            self._apply(index, patch)
            yield from self._held.ready(None)
        yield from self._held.rest(self._late)  # frames a resync dropped from the engine: never answered

    def expire(self, overdue: Callable[[VideoFrame], bool], cover: Cover) -> list[VideoFrame]:
        """Live deadlines: frames whose windows have answered leave, then the held frames
        ``overdue`` says must leave now, in order, each passed through ``cover`` (the element's
        fallback fill). The engine keeps its own RGB copy and mask of them for later windows;
        its answer for them is dropped (see :meth:`_apply`)."""
        return self._collect() + self._held.overdue(overdue, cover)

    def _collect(self) -> list[VideoFrame]:
        """Writes the windows' answers so far; the finished frames at the head leave, and so
        does the oldest beyond ``held_max``, covered (live: the engine is too far behind)."""
        assert self._windows is not None
        for index, patch in self._windows.ready():
            self._apply(index, patch)
        return self._held.ready(self._cover)

    def _apply(self, index: int, patch: Any) -> None:
        frame = self._held.answer(index)
        if frame is not None and patch.box is not None:  # None: it left on its deadline, covered
            frame.meta["inpaint"] = {"e2fgvi": write_patch(frame.picture, patch)}
        elif frame is None and patch.box is not None and getattr(self, "_count", None) is not None:
            self._count("discarded")  # computed for a frame that had left (no shedding for E2FGVI yet)

    def _late(self, frame: VideoFrame) -> VideoFrame:
        if self._cover is None:
            raise ElementError("inpaint", "a frame was left without an answer from E2FGVI")  # a bug, not bad input
        return self._cover(frame)

    @property
    def background_busy_s(self) -> float:
        """Seconds the windows' thread has computed (live runs with a deadline)."""
        return self._windows.busy_s if isinstance(self._windows, BackgroundWindows) else self._closed_busy_s

    def statistics(self) -> dict[str, int]:
        if self._windows is not None:
            return {**self._windows.statistics(), "resyncs": self._windows.resyncs}
        e = self._engine
        return {} if e is None else {"windows_run": e.windows_run, "windows_skipped": e.windows_skipped}

    def close(self) -> None:
        """Frees the window thread and the spill file too."""
        if self._windows is not None:
            self._closed_busy_s = self.background_busy_s  # still reported after the stream
            self._windows.close()
            self._windows = None
        self._engine = self._loaded = None
        self._held = HeldFrames(self.held_max)
        if self._spill is not None:
            self._spill.close()
            self._spill = None
