"""DeAOT behind the `track` element: which checkpoint, on which backend, and frames to label maps.

Kept apart from the element so that torch is imported only when DeAOT is chosen: a pipeline
with the classical tracker starts as fast as before and runs where torch is not installed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from cleanfeed.engines.deaot.variants import OFFICIAL_FILES, PREFERENCE
from cleanfeed.engines.deaot.variants import VARIANTS as DEAOT_VARIANTS
from cleanfeed.engines.models import Choice, Family, auto_device
from cleanfeed.errors import BackendError
from cleanfeed.stream.adapters.base import ModelAdapter, ModelSettings
from cleanfeed.stream.adapters.model_choice import ModelFamily

log = logging.getLogger(__name__)

VARIANTS = tuple(DEAOT_VARIANTS)

DEAOT = ModelFamily(Family(name="DeAOT", engine="deaot", files=OFFICIAL_FILES, prefer=PREFERENCE),
                    element="track", flag="--deaot", classical="optical flow")


def choose(engine: str, checkpoint: str | None, model: str, models: str | None) -> tuple[Choice | None, str]:
    """DeAOT or the classical engine for these properties, and why (ModelFamily.choose)."""
    return DEAOT.choose(engine, checkpoint, model, models)


class DeaotEngine(ModelAdapter):
    """One DeAOT tracker for the element's lifetime, opened for one frame size.

    ``long_term_gap`` None keeps upstream's gap for the recognised variant; ``max_long_term``
    and ``lost_after`` are the tracker's memory slots and patience (TrackerConfig).
    """

    family = DEAOT

    def __init__(self, choice: Choice, settings: ModelSettings, *, long_term_gap: int | None,
                 max_long_term: int, lost_after: int) -> None:
        super().__init__(choice, settings)
        self.long_term_gap = long_term_gap
        self.max_long_term = max_long_term
        self.lost_after = lost_after
        self._tracker: Any = None

    def load(self) -> None:
        """backend=torch needs no frame size to load: the element does it in ``prepare``, before
        the first frame (an exported backend's graphs are per size, so they wait for ``open``)."""
        if self.settings.backend == "torch" and self._tracker is None:
            self._tracker = self._open_tracker(None)

    def open(self, width: int, height: int) -> str:
        """Loads the checkpoint onto its backend (unless ``load`` did); returns what runs, in words."""
        if self._tracker is None:
            self._tracker = self._open_tracker((width, height))
        s = self.settings
        arch = self._tracker.arch
        gap = "reference frames only" if arch.long_term_gap >= 9999 else f"every {arch.long_term_gap} frames"
        modes = "".join(f", {m}" for m, on in (("torch.compile", s.compile), ("CUDA graphs", s.cuda_graphs)) if on)
        self.description = (
            f"{arch.title} on {s.backend} {auto_device(s.device)} {s.precision}{modes}; long-term memory {gap}, "
            f"at most {self.max_long_term} frames"
        )
        return self.description

    def _open_tracker(self, size: tuple[int, int] | None) -> Any:
        try:
            from cleanfeed.engines.deaot.tracker import TrackerConfig, open_tracker
        except ImportError as err:
            raise BackendError(f"DeAOT needs torch: pip install 'cleanfeed[torch]' ({err})") from None
        config = self.settings.resolved()
        onnx_dir = self._exported(*size) if self.settings.backend != "torch" and size is not None else None
        tracking = TrackerConfig(max_long_term=self.max_long_term, lost_after=self.lost_after)
        return open_tracker(self.choice.checkpoint, self.choice.model or "auto", config, tracking, self.long_term_gap,
                            onnx_dir)

    def _exported(self, width: int, height: int) -> Any:
        """The ONNX graphs of this checkpoint at this frame size (the step graph's shapes are static)."""
        def spec() -> Any:
            from cleanfeed.export.deaot import deaot_spec

            return deaot_spec(self.choice.checkpoint, self.choice.model, size=(height, width),
                              max_long_term=self.max_long_term)

        options = {"size": [height, width], "max_long_term": self.max_long_term}
        return self.exported(spec, options, f" at {width}x{height}")

    @property
    def ids(self) -> list[int]:
        return self._tracker.ids

    @property
    def lost(self) -> list[int]:
        return self._tracker.lost

    def track(self, rgb: np.ndarray, mask: np.ndarray, refs: list[int]) -> dict[str, str]:
        """Writes the tracked objects into ``mask`` (in place) and memorises the frame; returns each object's mode.

        On a reference frame the referenced objects' pixels in ``mask`` are the truth and the other
        objects are predicted around them; a referenced id with no pixels stops being tracked.
        """
        tracker = self._tracker
        modes: dict[str, str] = {}
        if tracker.ids:
            predicted = tracker.track(rgb).labels
            modes = {str(i): "deaot" for i in tracker.ids}
            if not refs:
                np.copyto(mask, predicted, where=predicted > 0)
                tracker.update(rgb, predicted)  # upstream memorises its own prediction
                return modes
            predicted = np.where(np.isin(predicted, refs), 0, predicted)
            np.copyto(mask, predicted, where=(predicted > 0) & (mask == 0))
        tracker.update(rgb, mask, set(refs))
        for obj in refs:
            if obj in tracker.ids:
                modes[str(obj)] = "reference"
            else:
                modes.pop(str(obj), None)
        return modes

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
