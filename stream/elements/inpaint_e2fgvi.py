"""E2FGVI-HQ behind the `inpaint` element: which checkpoint, on which backend, and frames in and out.

Kept apart from the element so that torch is imported only when E2FGVI is chosen. Two ways to
hold frames, one per mode:

- ``stream``: the frames themselves are held (their shared-memory slots count in the element's
  lookahead, ``neighbor_stride`` frames) and RGB copies of the few past frames later windows still
  use; each frame leaves as soon as its windows have run.
- ``offline``: every frame is copied to a spill file on disk (stream/spill.py) and its slot given
  back at once; the windows run at the end of the stream, in test.py's order, and frames leave as
  they are finished.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.e2fgvi.checkpoint import OFFICIAL_FILES, TITLES
from engines.e2fgvi.checkpoint import VARIANTS as E2FGVI_VARIANTS
from engines.models import Choice, Family, auto_device
from engines.models import choose as choose_model
from stream.buffers import Caps, VideoFrame
from stream.errors import BackendError, PropertyError
from stream.picture import Picture
from stream.spill import FrameSpill

log = logging.getLogger(__name__)

VARIANTS = tuple(E2FGVI_VARIANTS)
MODES = ("stream", "offline")

E2FGVI = Family(
    name="E2FGVI",
    element="inpaint",
    engine="e2fgvi",
    flag="--e2fgvi",
    files=OFFICIAL_FILES,
    prefer=("e2fgvi_hq", "e2fgvi"),
    fallback="the classical engine (flow-guided propagation)",
)


def choose(engine: str, checkpoint: str | None, model: str, models: str | None) -> tuple[Choice | None, str]:
    """E2FGVI or the classical engine for these properties, and why (engines.models.choose)."""
    return choose_model(E2FGVI, engine, checkpoint, model, models)


@dataclass(frozen=True)
class E2fgviSettings:
    backend: str = "torch"
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    mode: str = "stream"
    neighbor_stride: int = 5
    ref_step: int = 10
    num_ref: int = -1
    region: str = "auto"
    margin: int = 64
    spill_dir: str | None = None


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


class E2fgviEngine:
    """One E2FGVI inpainter for the element's lifetime, opened for one frame size."""

    def __init__(self, choice: Choice, settings: E2fgviSettings) -> None:
        self.choice = choice
        self.settings = settings
        self.description = ""
        self._engine: Any = None
        self._held: deque[VideoFrame | None] = deque()  # None: it left early (expire)
        self._spill: FrameSpill | None = None

    @property
    def lookahead(self) -> int:
        return self.settings.neighbor_stride if self.settings.mode == "stream" else 0

    def open(self, caps: Caps) -> str:
        """Loads the checkpoint onto its backend; returns what runs, in words."""
        s = self.settings
        if s.mode == "offline" and caps.live:
            raise PropertyError(
                "inpaint mode=offline needs the whole clip before its first frame can leave, got a live input: "
                "use mode=stream (reference frames from the past only)"
            )
        try:
            from engines.e2fgvi.checkpoint import load_e2fgvi
            from engines.e2fgvi.sliding import SlidingConfig, SlidingInpainter
        except ImportError as err:
            raise BackendError(f"E2FGVI needs torch: pip install 'cleanfeed[torch]' ({err})") from None
        device = auto_device(s.device)
        fixed = resize_to = None
        region = s.region
        if s.backend == "torch":
            net, variant = load_e2fgvi(self.choice.checkpoint, self.choice.model or "auto")
            model: Any = TorchWindow(net, device, s.precision, s.compile)
            resize_to = net.fixed_size  # the 432x240 E2FGVI: whole frames resized to it, as test.py does
            if resize_to is not None:
                region = "full"
                log.info("inpaint: %s takes %dx%d frames only: frames are resized to it and back, region=full "
                         "(region=%s does not apply)", TITLES[variant], resize_to[1], resize_to[0], s.region)
        else:
            if self.choice.model == "e2fgvi":
                raise PropertyError(f"inpaint model=e2fgvi runs on backend=torch only (the exported window is "
                                    f"E2FGVI-HQ's), got backend={s.backend}")
            if s.mode == "offline":
                raise PropertyError(
                    f"inpaint mode=offline runs on backend=torch: test.py's windows change length along the clip and an "
                    f"exported window has fixed frame counts; use mode=stream with backend={s.backend}"
                )
            fixed = (2 * s.neighbor_stride + 1, SlidingConfig("stream", num_ref=s.num_ref).stream_refs)
            model, variant = self._exported(caps, fixed, device)
        config = SlidingConfig(s.mode, s.neighbor_stride, s.ref_step, s.num_ref, region, s.margin, fixed, resize_to)
        store = None
        if s.mode == "offline":
            self._spill = FrameSpill(caps, s.spill_dir)
            store = SpillStore(self._spill)
        self._engine = SlidingInpainter(model, config, caps.height, caps.width, store=store, device=device)
        refs = (f"every {s.ref_step}th frame of the clip" if s.num_ref == -1 else f"{s.num_ref + 1} around each window"
                ) if s.mode == "offline" else f"the {config.stream_refs} latest every-{s.ref_step}th past frames"
        compiled = ", torch.compile" if s.compile else (f", exported window of {fixed[0]}+{fixed[1]} frames" if fixed else "")
        self.description = (
            f"{TITLES[variant]} on {s.backend} {device} {s.precision}{compiled}; {s.mode} mode, windows of "
            f"{2 * s.neighbor_stride + 1} frames every {s.neighbor_stride}, references: {refs}; region={region}"
            + (f" (margin {s.margin} px)" if region == "auto" else "")
            + (f", frames resized to {resize_to[1]}x{resize_to[0]} and back" if resize_to else "")
        )
        return self.description

    def _exported(self, caps: Caps, fixed: tuple[int, int], device: str) -> tuple[Any, str]:
        """The exported window for these frame counts, from the engine cache (exported there the first time)."""
        try:
            from engines.checkpoints import checkpoint_sha256
            from engines.e2fgvi.exported import open_exported_window
            from engines.e2fgvi.windows import padding
            from engines.runners import engine_cache_dir
            from engines.runners.base import RunnerConfig
            from export.e2fgvi import e2fgvi_spec, window_options
            from export.model_export import ensure_export, find_export
        except ImportError as err:
            raise BackendError(
                f"backend={self.settings.backend} needs onnx and onnxruntime: pip install 'cleanfeed[onnx]' ({err})"
            ) from None
        s = self.settings
        pad_h, pad_w = padding(caps.height, caps.width)
        size = (min(caps.height + pad_h, 1080), min(caps.width + pad_w, 1944))
        cache = engine_cache_dir() / "exports"
        options = window_options(*fixed, size=size)
        folder = find_export(cache, checkpoint_sha256(self.choice.checkpoint), s.precision, options=options)
        if folder is None:
            log.info("inpaint: exporting E2FGVI's window of %d+%d frames to ONNX once for backend %s (minutes on a "
                     "CPU; kept in %s)", *fixed, s.backend, cache)
            spec = e2fgvi_spec(self.choice.checkpoint, self.choice.model, local=fixed[0], refs=fixed[1], size=size)
            folder = ensure_export(spec, cache, s.precision)
        config = RunnerConfig(backend=s.backend, device=device, precision=s.precision)
        return open_exported_window(folder, config), "e2fgvi_hq"

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        engine = self._engine
        mask = frame.mask
        if self._spill is not None:
            self._spill.append(frame)
            engine.push(None, mask)
            return []
        self._held.append(frame)
        return [f for f in map(self._finish, engine.push(frame.picture.rgb(), mask)) if f is not None]

    def flush(self) -> Iterator[VideoFrame]:
        for patch in self._engine.finish():
            frame = self._finish(patch)
            if frame is not None:
                yield frame

    def expire(self, overdue: Callable[[VideoFrame], bool], cover: Callable[[VideoFrame], VideoFrame]) -> list[VideoFrame]:
        """Live deadlines: the held frames ``overdue`` says must leave now, in order, each passed
        through ``cover`` (the element's fallback fill). The engine keeps its own RGB copy and
        mask of them for later windows; its answer for them is dropped (see :meth:`_finish`)."""
        out: list[VideoFrame] = []
        for i, frame in enumerate(self._held):
            if frame is None:
                continue
            if not overdue(frame):
                break
            self._held[i] = None
            out.append(cover(frame))
        return out

    def _finish(self, patch: Any) -> VideoFrame | None:
        if self._spill is not None:
            frame = self._spill.frame(patch.index)
        else:
            frame = self._held.popleft()
            if frame is None:
                return None  # it left on its deadline, covered by the fallback
        if patch.box is not None:
            frame.meta["inpaint"] = {"e2fgvi": write_patch(frame.picture, patch)}
        return frame

    def statistics(self) -> dict[str, int]:
        e = self._engine
        return {} if e is None else {"windows_run": e.windows_run, "windows_skipped": e.windows_skipped}

    def close(self) -> None:
        """Frees the model (and its GPU memory) and the spill file now."""
        self._engine = None
        self._held.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
