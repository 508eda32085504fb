"""SAM behind the `segment` element: which checkpoint, on which backend, and prompts to masks.

Kept apart from the element so that the element stays about prompts and frames, and so that
torch, segment-anything and onnxruntime are imported only when SAM is actually chosen: a
pipeline without SAM starts as fast as before and runs where torch is not installed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cleanfeed.engines.models import Choice, Family, auto_device
from cleanfeed.engines.models import choose as choose_model
from cleanfeed.engines.sam.variants import OFFICIAL_FILES
from cleanfeed.engines.sam.variants import VARIANTS as SAM_VARIANTS
from cleanfeed.errors import BackendError
from cleanfeed.prompts.shapes import ObjectPrompt

log = logging.getLogger(__name__)

VARIANTS = tuple(SAM_VARIANTS)
PREFERENCE = ("vit_h", "vit_l", "vit_b")  # the largest found: it segments best, and runs once per prompt


SAM = Family(
    name="SAM",
    element="segment",
    engine="sam",
    flag="--sam",
    files=OFFICIAL_FILES,
    prefer=PREFERENCE,
    fallback="the classical engine (GrabCut)",
)


def choose(engine: str, checkpoint: str | None, model: str, models: str | None) -> tuple[Choice | None, str]:
    """SAM or the classical engine for these properties, and why (cleanfeed.engines.models.choose)."""
    return choose_model(SAM, engine, checkpoint, model, models)


def sam_prompt(prompt: ObjectPrompt, mask_logits: np.ndarray | None = None) -> Any:
    """SAM's prompt (cleanfeed.engines.sam.predictor.SamPrompt) for one object: its points as an
    (N, 2) float32 array with (N,) int64 labels (1 on the object, 0 off it), its box as floats,
    and ``mask_logits``, a mask prompt already turned into SAM's low-res logits. The one
    conversion from the prompt data to SAM's arrays, for the element and the web app's clicks."""
    from cleanfeed.engines.sam.predictor import SamPrompt

    points = np.array([[pt.x, pt.y] for pt in prompt.points], np.float32).reshape(-1, 2)
    labels = np.array([int(pt.positive) for pt in prompt.points], np.int64)
    box = tuple(float(v) for v in prompt.box.as_tuple()) if prompt.box is not None else None
    return SamPrompt(points, labels, box, mask_logits)


class SamEngine:
    """One SAM model for the element's lifetime: the encoder runs once per prompted frame and the
    decoder once per object on it."""

    def __init__(self, choice: Choice, *, backend: str, device: str, precision: str,
                 multimask: bool, refine: bool) -> None:
        self.choice = choice
        self.backend = backend
        self.device = device
        self.precision = precision
        self.multimask = multimask
        self.refine = refine
        self._segmenter: Any = None
        self.description = ""

    def open(self) -> str:
        """Loads the checkpoint onto its backend; returns what runs, in words."""
        try:
            from cleanfeed.engines.runners.base import RunnerConfig
            from cleanfeed.engines.sam.predictor import open_segmenter
        except ImportError as err:
            raise BackendError(f"SAM needs torch and segment-anything: pip install 'cleanfeed[torch]' ({err})") from None
        config = RunnerConfig(backend=self.backend, device=auto_device(self.device), precision=self.precision)
        onnx_dir = None
        if self.backend != "torch":
            onnx_dir = self._exported()
        self._segmenter = open_segmenter(self.choice.checkpoint, self.choice.model, config, onnx_dir)
        self.description = getattr(self._segmenter, "description", "") or (
            f"{self.backend} on {config.device}, {self.precision}"
        )
        return self.description

    def _exported(self) -> Path:
        """The ONNX graphs of this checkpoint, exported into the engine cache the first time."""
        try:
            from cleanfeed.engines.runners import engine_cache_dir
            from cleanfeed.export.model_export import ensure_export
            from cleanfeed.export.sam import sam_spec
        except ImportError as err:
            raise BackendError(
                f"backend={self.backend} needs onnx and onnxruntime: pip install 'cleanfeed[onnx]' ({err})"
            ) from None
        from cleanfeed.engines.checkpoints import checkpoint_sha256
        from cleanfeed.export.model_export import find_export

        cache = engine_cache_dir() / "exports"
        # an export made earlier from the same file is found by the file's hash: no weights loaded
        made = find_export(cache, checkpoint_sha256(self.choice.checkpoint), self.precision)
        if made is not None:
            return made
        log.info("segment: exporting SAM to ONNX once for backend %s (kept in %s)", self.backend, cache)
        return ensure_export(sam_spec(self.choice.checkpoint, self.choice.model), cache, self.precision)

    def close(self) -> None:
        """Frees the model (and its GPU memory) now rather than whenever it is collected."""
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def segment(self, rgb: np.ndarray, prompts: list[ObjectPrompt],
                masks: dict[int, np.ndarray]) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        """Masks for every prompt with a box or points (HxW bool, with what SAM said of it).

        ``masks`` holds the objects' mask files (already loaded): given with a box or points,
        a mask becomes SAM's mask prompt. The image is encoded once for all objects.
        """
        from cleanfeed.engines.sam.transforms import mask_to_logits

        self._segmenter.set_image(rgb)
        out: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        for p in prompts:
            given = masks.get(p.obj_id)
            logits = mask_to_logits(given) if given is not None else None
            result = self._segmenter.predict(sam_prompt(p, logits), multimask=self.multimask, refine=self.refine)
            out[p.obj_id] = (result.mask, {"score": round(float(result.score), 4), "mask_index": int(result.index)})
        return out
