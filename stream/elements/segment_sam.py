"""SAM behind the `segment` element: which checkpoint, on which backend, and prompts to masks.

Kept apart from the element so that the element stays about prompts and frames, and so that
torch, segment-anything and onnxruntime are imported only when SAM is actually chosen: a
pipeline without SAM starts as fast as before and runs where torch is not installed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.models import find_checkpoint, models_dir
from engines.sam.variants import OFFICIAL_FILES
from engines.sam.variants import VARIANTS as SAM_VARIANTS
from prompts.shapes import ObjectPrompt
from stream.errors import BackendError, CheckpointError

log = logging.getLogger(__name__)

VARIANTS = tuple(SAM_VARIANTS)
PREFERENCE = ("vit_h", "vit_l", "vit_b")  # the largest found: it segments best, and runs once per prompt


@dataclass(frozen=True)
class SamChoice:
    """The checkpoint SAM will load, and why that one."""

    checkpoint: Path
    model: str | None
    """The variant asked for (checked against the file), or None to take the file's own."""
    why: str


def choose(engine: str, checkpoint: str | None, model: str, models: str | None) -> tuple[SamChoice | None, str]:
    """Decides between SAM and the classical engine; returns (choice or None, the reason in words).

    ``engine=sam`` without a checkpoint to be found is an error; ``auto`` falls back to the
    classical engine and says why.
    """
    wanted = None if model == "auto" else model
    if engine == "classical":
        return None, "asked for with engine=classical"
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"SAM checkpoint {str(path)!r} must be a file, got {'a folder' if path.is_dir() else 'nothing there'}")
        return SamChoice(path, wanted, f"checkpoint={path}"), f"SAM from {path}"
    folder = models_dir(models)
    found = find_checkpoint(OFFICIAL_FILES, folder, (wanted,) if wanted else PREFERENCE)
    names = ", ".join(OFFICIAL_FILES[v] for v in ((wanted,) if wanted else PREFERENCE))
    if found is None:
        if engine == "sam":
            raise CheckpointError(
                f"segment engine=sam needs a SAM checkpoint: give checkpoint=PATH (run: --sam FILE) or put "
                f"{names} in {folder} (--models DIR or $CLEANFEED_MODELS), found none"
            )
        return None, f"no SAM checkpoint in {folder} (looked for {names})"
    _, path = found
    # the file's own architecture decides (a renamed file still loads as what it is)
    return SamChoice(path, wanted, f"found {path.name} in {folder}"), f"SAM, {path.name} found in {folder}"


def resolve_device(device: str) -> str:
    """``auto`` is the first CUDA device when torch sees one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SamEngine:
    """One SAM model for the element's lifetime: the encoder runs once per prompted frame and the
    decoder once per object on it."""

    def __init__(self, choice: SamChoice, *, backend: str, device: str, precision: str,
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
            from engines.runners.base import RunnerConfig
            from engines.sam.predictor import open_segmenter
        except ImportError as err:
            raise BackendError(f"SAM needs torch and segment-anything: pip install 'cleanfeed[torch]' ({err})") from None
        config = RunnerConfig(backend=self.backend, device=resolve_device(self.device), precision=self.precision)
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
            from engines.runners import engine_cache_dir
            from export.model_export import ensure_export
            from export.sam import sam_spec
        except ImportError as err:
            raise BackendError(
                f"backend={self.backend} needs onnx and onnxruntime: pip install 'cleanfeed[onnx]' ({err})"
            ) from None
        from engines.checkpoints import checkpoint_sha256
        from export.model_export import find_export

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
        from engines.sam.predictor import SamPrompt
        from engines.sam.transforms import mask_to_logits

        self._segmenter.set_image(rgb)
        out: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        for p in prompts:
            points = np.array([[pt.x, pt.y] for pt in p.points], np.float32).reshape(-1, 2)
            labels = np.array([int(pt.positive) for pt in p.points], np.int64)
            given = masks.get(p.obj_id)
            logits = mask_to_logits(given) if given is not None else None
            box = tuple(float(v) for v in p.box.as_tuple()) if p.box is not None else None
            result = self._segmenter.predict(SamPrompt(points, labels, box, logits),
                                             multimask=self.multimask, refine=self.refine)
            out[p.obj_id] = (result.mask, {"score": round(float(result.score), 4), "mask_index": int(result.index)})
        return out
