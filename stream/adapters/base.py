"""The shape every model adapter shares: one settings type, one base, one way to get an export.

An adapter holds one model for an element's lifetime. It is built from the element's properties
(a :class:`~cleanfeed.engines.models.Choice` of checkpoint and :class:`ModelSettings`), loads
when the element prepares (or when the first frame's size is known, for an exported backend
whose graphs are made per size), and frees its model when the element stops. SAM, DeAOT and
E2FGVI on onnxruntime or TensorRT all need the same thing first: their checkpoint's ONNX export,
made once into the engine cache and found there afterwards (:func:`find_or_export`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cleanfeed.engines.models import Choice, auto_device
from cleanfeed.engines.runners.base import RunnerConfig
from cleanfeed.errors import BackendError

if TYPE_CHECKING:
    from cleanfeed.stream.adapters.model_choice import ModelFamily

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSettings(RunnerConfig):
    """Where and how an adapter's model runs, as the element's properties say it.

    RunnerConfig's fields, except that ``device`` may be ``auto``: it is resolved only when the
    model loads (:meth:`resolved`), because resolving it imports torch, which an element must not
    pay for before its model is chosen. A family's own knobs (SAM's multimask, DeAOT's memory,
    E2FGVI's windows) are its adapter's arguments, not settings every family would carry.
    """

    device: str = "auto"
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``."""

    def resolved(self) -> RunnerConfig:
        """The runner's config, ``auto`` replaced by the device this machine has."""
        values = {f.name: getattr(self, f.name) for f in fields(RunnerConfig)}
        return RunnerConfig(**{**values, "device": auto_device(self.device)})


class ModelAdapter:
    """One model of ``family`` for the element's lifetime.

    Subclasses open the model (their own ``open``, whose arguments differ: SAM needs nothing,
    DeAOT a frame size, E2FGVI the caps), may load it earlier in :meth:`load`, and free it in
    :meth:`close`. ``description`` says what runs, in words, once it is open.
    """

    family: ClassVar[ModelFamily]

    def __init__(self, choice: Choice, settings: ModelSettings) -> None:
        self.choice = choice
        self.settings = settings
        self.description = ""

    def load(self) -> None:
        """Loads what needs no frame size yet (the element's ``prepare``, before the first frame)."""

    def close(self) -> None:
        """Frees the model (and its GPU memory) now rather than whenever it is collected."""

    def exported(self, spec: Callable[[], Any], options: Mapping[str, Any] | None = None, what: str = "") -> Path:
        """This checkpoint's ONNX export (:func:`find_or_export`) for this adapter's family and settings."""
        return find_or_export(self.family, self.choice, self.settings, spec, options, what)


def find_or_export(family: ModelFamily, choice: Choice, settings: ModelSettings, spec: Callable[[], Any],
                   options: Mapping[str, Any] | None = None, what: str = "") -> Path:
    """The export of ``choice``'s checkpoint at ``settings.precision`` (and ``options``) in the engine cache,
    exported there the first time.

    An export made earlier from the same file is found by the file's hash, so no weights are
    loaded; only otherwise is ``spec()`` called (it imports the exporter and loads the
    checkpoint) and the export made. ``options`` None accepts an export of any options;
    ``what`` adds to the log line (`` at 854x480``). A missing onnx or onnxruntime is a
    BackendError in one line saying what to install.
    """
    def missing(err: ImportError) -> BackendError:
        return BackendError(f"backend={settings.backend} needs onnx and onnxruntime: pip install 'cleanfeed[onnx]' ({err})")

    try:
        from cleanfeed.engines.checkpoints import checkpoint_sha256
        from cleanfeed.engines.runners import engine_cache_dir
        from cleanfeed.export.model_export import ensure_export, find_export
    except ImportError as err:
        raise missing(err) from None
    cache = engine_cache_dir() / "exports"
    made = find_export(cache, checkpoint_sha256(choice.checkpoint), settings.precision, options=options)
    if made is not None:
        return made
    log.info("%s: exporting %s to ONNX once for backend %s%s (kept in %s)", family.element, family.name,
             settings.backend, what, cache)
    try:
        model_spec = spec()
    except ImportError as err:
        raise missing(err) from None
    return ensure_export(model_spec, cache, settings.precision)
