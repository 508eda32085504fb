"""SAM behind the `segment` element: which checkpoint, on which backend, and prompts to masks.

Kept apart from the element so that the element stays about prompts and frames, and so that
torch, segment-anything and onnxruntime are imported only when SAM is actually chosen: a
pipeline without SAM starts as fast as before and runs where torch is not installed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from cleanfeed.engines.models import Choice, Family
from cleanfeed.engines.sam.variants import OFFICIAL_FILES
from cleanfeed.engines.sam.variants import VARIANTS as SAM_VARIANTS
from cleanfeed.errors import BackendError
from cleanfeed.prompts.shapes import ObjectPrompt
from cleanfeed.stream.adapters.base import ModelAdapter, ModelSettings
from cleanfeed.stream.adapters.model_choice import ModelFamily

log = logging.getLogger(__name__)

VARIANTS = tuple(SAM_VARIANTS)
PREFERENCE = ("vit_h", "vit_l", "vit_b")  # the largest found: it segments best, and runs once per prompt


SAM = ModelFamily(Family(name="SAM", engine="sam", files=OFFICIAL_FILES, prefer=PREFERENCE),
                  element="segment", flag="--sam", classical="GrabCut")


def choose(engine: str, checkpoint: str | None, model: str, models: str | None) -> tuple[Choice | None, str]:
    """SAM or the classical engine for these properties, and why (ModelFamily.choose)."""
    return SAM.choose(engine, checkpoint, model, models)


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


class SamEngine(ModelAdapter):
    """One SAM model for the element's lifetime: the encoder runs once per prompted frame and the
    decoder once per object on it."""

    family = SAM

    def __init__(self, choice: Choice, settings: ModelSettings, *, multimask: bool, refine: bool) -> None:
        super().__init__(choice, settings)
        self.multimask = multimask
        self.refine = refine
        self._segmenter: Any = None

    def open(self) -> str:
        """Loads the checkpoint onto its backend; returns what runs, in words."""
        try:
            from cleanfeed.engines.sam.predictor import open_segmenter
        except ImportError as err:
            raise BackendError(f"SAM needs torch and segment-anything: pip install 'cleanfeed[torch]' ({err})") from None
        s = self.settings
        config = s.resolved()
        onnx_dir = self.exported(self._spec) if s.backend != "torch" else None
        self._segmenter = open_segmenter(self.choice.checkpoint, self.choice.model, config, onnx_dir)
        self.description = getattr(self._segmenter, "description", "") or (
            f"{s.backend} on {config.device}, {s.precision}"
        )
        return self.description

    def _spec(self) -> Any:
        from cleanfeed.export.sam import sam_spec

        return sam_spec(self.choice.checkpoint, self.choice.model)

    def close(self) -> None:
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
