"""Click to mask: one object's mask on one frame, computed the way the run's `segment` computes it.

The classical masker runs the `segment` element itself (engine=classical) on the frame, so the
mask on screen is the mask the run starts tracking from. The SAM masker keeps the frame's
image embedding between clicks (the encoder is the slow part; each click then runs only the
prompt decoder) and uses the element's defaults (multimask, refine); where SAM finds nothing
it falls back to the classical engine, as the element does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cleanfeed.errors import CleanfeedError
from cleanfeed.prompts.shapes import ObjectPrompt
from cleanfeed.stream import registry
from cleanfeed.stream.adapters.segment_sam import choose, sam_prompt
from cleanfeed.stream.buffers import Caps, VideoFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskResult:
    """mask: HxW bool of the frame; method: "grabcut", "box", "mask" or "sam"; reason: why a fallback."""

    mask: np.ndarray
    method: str
    reason: str = ""


class Masker(Protocol):
    name: str
    """What segments, in words, for the page."""

    def mask(self, caps: Caps, frame: VideoFrame, prompt: ObjectPrompt) -> MaskResult: ...

    def close(self) -> None: ...


class ClassicalMasker:
    """GrabCut through the `segment` element (see the module doc)."""

    def __init__(self, iterations: int = 4, why: str = "") -> None:
        self.iterations = iterations
        self.name = "classical (GrabCut)" + (f": {why}" if why else "")

    def mask(self, caps: Caps, frame: VideoFrame, prompt: ObjectPrompt) -> MaskResult:
        props: dict[str, Any] = {"engine": "classical", "iterations": self.iterations, "frame": frame.seq,
                                 "object_id": prompt.obj_id}
        if prompt.box is not None:
            props["box"] = prompt.box.as_tuple()
        if prompt.points:
            props["points"] = ";".join(map(str, prompt.points))
        if prompt.mask is not None:
            props["mask_file"] = prompt.mask
        seg = registry.create("segment", props)
        seg.start(caps)
        work = VideoFrame.new(frame.seq, frame.pts, frame.time_base, frame.picture)
        out = seg.process(work)[0]
        said = out.meta.get("segment", [{}])[0]
        return MaskResult(out.mask == prompt.obj_id, str(said.get("method", "")), str(said.get("reason", "")))

    def close(self) -> None:
        """Nothing held."""


class SamMasker:
    """SAM on torch with the frame's embedding kept between clicks."""

    def __init__(self, checkpoint: str, model: str | None, device: str = "auto", precision: str = "fp32",
                 why: str = "") -> None:
        from cleanfeed.engines.models import auto_device
        from cleanfeed.engines.runners.base import RunnerConfig
        from cleanfeed.engines.sam.predictor import open_segmenter

        config = RunnerConfig(backend="torch", device=auto_device(device), precision=precision)
        self._segmenter: Any = open_segmenter(checkpoint, model, config)
        self._image_key: int | None = None
        self._fallback = ClassicalMasker()
        self.name = f"SAM ({why or checkpoint}) on {config.device}"

    def embed(self, frame: VideoFrame) -> None:
        """Encodes the frame unless it is the one encoded last (the slow step, once per frame)."""
        if frame.seq != self._image_key:
            self._segmenter.set_image(frame.picture.rgb())
            self._image_key = frame.seq

    def mask(self, caps: Caps, frame: VideoFrame, prompt: ObjectPrompt) -> MaskResult:
        if prompt.box is None and not prompt.points:
            return self._fallback.mask(caps, frame, prompt)
        self.embed(frame)
        result = self._segmenter.predict(sam_prompt(prompt), multimask=True, refine=True)
        if not result.mask.any():
            fallback = self._fallback.mask(caps, frame, prompt)
            return MaskResult(fallback.mask, fallback.method, "SAM found nothing; " + (fallback.reason or "GrabCut used"))
        return MaskResult(result.mask, "sam", f"score {float(result.score):.3f}")

    def forget(self) -> None:
        """A new video: the kept embedding belongs to the old one."""
        self._image_key = None

    def close(self) -> None:
        self._segmenter.close()


def open_masker(engine: str = "auto", checkpoint: str | None = None, models: str | None = None,
                device: str = "auto") -> tuple[Masker, str]:
    """The masker for these settings and a note for the page: which engine, and why.

    A checkpoint that fails to load is not fatal here: the note says why, and GrabCut masks
    meanwhile (the run itself would fail with the same message, so the page shows it early).
    """
    try:
        choice, why = choose(engine if engine in ("auto", "sam", "classical") else "auto", checkpoint, "auto", models)
    except CleanfeedError as err:
        masker = ClassicalMasker(why="no usable SAM checkpoint")
        return masker, f"SAM is not available: {err}. Masks by {masker.name} meanwhile."
    if choice is None:
        masker = ClassicalMasker(why=why)
        return masker, f"Masks by {masker.name}"
    try:
        sam = SamMasker(str(choice.checkpoint), choice.model, device=device, why=why)
    except (CleanfeedError, ImportError, OSError, RuntimeError) as err:
        masker = ClassicalMasker(why="SAM could not be loaded")
        return masker, f"SAM checkpoint failed to load: {err}. Masks by {masker.name} meanwhile."
    return sam, f"Masks by {sam.name}"
