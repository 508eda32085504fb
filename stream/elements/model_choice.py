"""The properties every element with a neural engine shares: which engine, which checkpoint, where it runs.

`segment`, `track` and `inpaint` each choose between a model family and a classical engine in
the same words (cleanfeed.engines.models.choose), so users type the same names everywhere and `inspect`
shows them in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from cleanfeed.engines.models import Choice, Family, device_problem, models_dir
from cleanfeed.errors import PropertyError
from cleanfeed.stream.element import EngineChoice
from cleanfeed.stream.properties import Property

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")


def model_properties(family: Family, task: str, variants: Sequence[str], files: str,
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


def engine_choice(family: Family, choice: Choice | None, engine: str, models: str | None,
                  classical: str) -> EngineChoice:
    """What an element with a model family runs: the model and its file, or ``classical`` (the
    classical engine's name, ``GrabCut``) and why no model."""
    if choice is not None:
        return EngineChoice(family.name, choice.why)
    if engine == "classical":
        return EngineChoice(classical, "engine=classical")
    return EngineChoice(classical, f"no {family.name} checkpoint", str(models_dir(models)))


def check_device(factory: str, device: str) -> None:
    """Refuses a device this machine does not have when the element is built (not on its first frame)."""
    rule = device_problem(device)
    if rule is not None:
        raise PropertyError(f"{factory} property device {rule}", element=factory, prop="device", rule=rule)
