"""The properties every element with a neural engine shares: which engine, which checkpoint, where it runs.

`segment`, `track` and `inpaint` each choose between a model family and a classical engine in
the same words (engines.models.choose), so users type the same names everywhere and `inspect`
shows them in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from engines.models import Family
from stream.properties import Property

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
