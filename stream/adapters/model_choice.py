"""How an element offers a model family: the same properties, the same choice, the same words.

`segment`, `track` and `inpaint` each choose between a model family and a classical engine, so
users type the same names everywhere and `inspect` shows them in the same order. The engines
layer knows a family's checkpoints only (cleanfeed.engines.models.Family); which element runs it,
the `cleanfeed run` flag that gives its file, and what runs without it are said here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cleanfeed.engines.models import Choice, Family, device_problem, models_dir, official_names
from cleanfeed.engines.models import choose as choose_checkpoint
from cleanfeed.engines.runners.base import BACKENDS, PRECISIONS
from cleanfeed.errors import CheckpointError, PropertyError
from cleanfeed.stream.element import EngineChoice
from cleanfeed.stream.properties import Property

__all__ = ["BACKENDS", "PRECISIONS", "ModelFamily", "check_device", "model_properties"]


@dataclass(frozen=True)
class ModelFamily:
    """A model family as an element runs it: its checkpoints, and how the runtime names it."""

    model: Family
    element: str
    """The element that runs it (``segment``)."""
    flag: str
    """The ``cleanfeed run`` option giving its checkpoint (``--sam``)."""
    classical: str
    """The classical engine that runs without it, as `cleanfeed run` names it (``GrabCut``)."""

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def engine(self) -> str:
        """The element's ``engine=`` token for it (``sam``)."""
        return self.model.engine

    def choose(self, engine: str, checkpoint: str | None, model: str, models: str | None) -> tuple[Choice | None, str]:
        """The model or the classical engine for these properties; returns (choice or None, the reason in words).

        The engine named after the family without a checkpoint to be found is an error; ``auto``
        falls back to the classical engine and says why.
        """
        if engine == "classical":
            return None, "asked for with engine=classical"
        choice, why = choose_checkpoint(self.model, checkpoint, model, models)
        if choice is None and engine == self.engine:
            name = self.name
            raise CheckpointError(
                f"{self.element} engine={self.engine} needs {'an' if name[0] in 'AEIOU' else 'a'} {name} checkpoint: "
                f"give checkpoint=PATH (run: {self.flag} FILE) or put {official_names(self.model, model)} in "
                f"{models_dir(models)} (--models DIR or $CLEANFEED_MODELS), found none"
            )
        return choice, why

    def engine_choice(self, choice: Choice | None, engine: str, models: str | None) -> EngineChoice:
        """What the element runs: the model and its file, or the classical engine and why no model."""
        if choice is not None:
            return EngineChoice(self.name, choice.why)
        if engine == "classical":
            return EngineChoice(self.classical, "engine=classical")
        return EngineChoice(self.classical, f"no {self.name} checkpoint", str(models_dir(models)))


def model_properties(family: ModelFamily, task: str, variants: Sequence[str], files: str,
                     precision: str = "compute precision") -> tuple[Property, ...]:
    """engine, model, checkpoint, models, backend, device, precision for ``family``.

    ``task`` names the element's work ("Tracking"); ``files`` gives example checkpoint names.
    """
    name = family.name
    return (
        Property.enum("engine", f"{task} engine: auto ({name} when a checkpoint is found), {family.engine}, classical",
                      ("auto", family.engine, "classical"), "auto"),
        Property.enum("model", f"{name} variant (auto: read from the checkpoint)", ("auto", *variants), "auto"),
        Property.string("checkpoint", f"{name} checkpoint file ({files})", None),
        Property.string("models", "Folder searched for official checkpoint names (default $CLEANFEED_MODELS "
                        "or ~/.cache/cleanfeed/models)", None),
        Property.enum("backend", f"Where {name} runs", BACKENDS, "torch"),
        Property.string("device", "auto, cpu, cuda or cuda:N", "auto"),
        Property.enum("precision", f"{name}'s {precision}", PRECISIONS, "fp32"),
    )


def check_device(factory: str, device: str) -> None:
    """Refuses a device this machine does not have when the element is built (not on its first frame)."""
    rule = device_problem(device)
    if rule is not None:
        raise PropertyError(f"{factory} property device {rule}", element=factory, prop="device", rule=rule)
