"""What a model contributes to the exporter: its graphs, how to feed them, and how to judge a copy.

The export, parity, TensorRT-check and manifest machinery knows nothing about SAM, DeAOT or
E2FGVI; each model family writes one spec module (export/sam.py, ...) that returns a
:class:`ModelSpec`, and everything else is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanfeed.engines.runners.base import TensorSpec
from cleanfeed.errors import ExportError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

Shape = tuple[int, ...]
Limits = Mapping[str, tuple[str, float]]
"""Parity figure name -> (comparison, bound): ``("<", 1e-3)`` means the figure must stay below 1e-3."""

COMPARISONS = ("<", "<=", ">", ">=")

FAMILIES: Mapping[str, tuple[str, str]] = {
    "sam": ("cleanfeed.export.sam:sam_spec", "SAM (segment-anything): --model vit_b | vit_l | vit_h"),
    "deaot": ("cleanfeed.export.deaot:deaot_spec", "DeAOT (aot-benchmark): --model auto | deaott | deaots | deaotb | deaotl "
                                         "| r50_deaotl | swinb_deaotl, --size WxH of the video, --max-long-term N"),
    "e2fgvi": ("cleanfeed.export.e2fgvi:e2fgvi_spec", "E2FGVI-HQ (one model call): --model e2fgvi_hq, --local N, --refs N, "
                                            "--size WxH padded to multiples of 108x60 (the TensorRT profile's opt)"),
}
"""Model family -> (its spec function ``module:function``, one line of help). DeAOT and E2FGVI
join with one spec module and one line here; imported only when used (they pull in torch)."""


@dataclass(frozen=True, eq=False)
class GraphSpec:
    """One graph to export: a module plus everything needed to export and verify it.

    ``module.forward`` takes the tensors of ``inputs`` positionally, in order, and returns a
    tuple in ``outputs`` order (the same contract as the torch runner), in eval mode and fp32.
    """

    name: str
    """File stem of the exported graph, e.g. ``image_encoder`` -> ``image_encoder.onnx``."""
    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sample: Callable[[np.random.Generator], dict[str, torch.Tensor]]
    """Fresh random inputs (float32 at the boundary), keyed by input name; called once per
    parity sample and once to trace the export, so it should vary the dynamic axes."""
    profiles: Mapping[str, tuple[Shape, Shape, Shape]]
    """TensorRT (min, opt, max) shapes per input with a dynamic axis; also bounds that axis
    in the ONNX export."""
    compare: Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], dict[str, float]]
    """``compare(expected, actual)`` -> parity figures; expected comes from the torch module."""
    limits: Limits
    """Bounds every fp32 export must meet."""
    limits_fp16: Limits | None = None
    """Looser bounds for fp16 exports (compared with the fp32 torch module); None: use ``limits``."""
    keep_fp32: tuple[str, ...] = field(default=())
    """ONNX op types an fp16 export keeps in float32 (e.g. Sin/Cos of large phases), on top of
    the exporter's own list."""
    axis_multiples: Mapping[str, int] = field(default_factory=dict)
    """Named axis -> the step its sizes come in (E2FGVI's frames: multiples of 60 and 108). The
    export traces such an axis as step x a dynamic count, so the model's divisibility checks hold
    for every size instead of failing the trace; its profile bounds must be multiples too."""

    def limits_for(self, precision: str) -> Limits:
        if precision == "fp16" and self.limits_fp16 is not None:
            return self.limits_fp16
        return self.limits

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``{input or output name: {axis index: axis name}}`` for every named (str) axis."""
        axes: dict[str, dict[int, str]] = {}
        for spec in (*self.inputs, *self.outputs):
            named = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
            if named:
                axes[spec.name] = named
        return axes

    def axis_bounds(self) -> dict[str, tuple[int, int]]:
        """``{axis name: (min, max)}`` from the profiles, for every named input axis."""
        bounds: dict[str, tuple[int, int]] = {}
        for spec in self.inputs:
            profile = self.profiles.get(spec.name)
            for i, d in enumerate(spec.shape):
                if isinstance(d, str) and profile is not None:
                    lo, hi = profile[0][i], profile[2][i]
                    old = bounds.get(d, (lo, hi))
                    bounds[d] = (max(lo, old[0]), min(hi, old[1]))
        return bounds


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A model checkpoint ready to export: its family, variant, source file and graphs."""

    family: str
    """``sam`` | ``deaot`` | ``e2fgvi``."""
    model: str
    """The variant, e.g. ``vit_b``."""
    checkpoint: Path
    checkpoint_sha256: str
    graphs: tuple[GraphSpec, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    """What else shaped the export besides the checkpoint (JSON values), e.g. DeAOT's
    ``{"size": [height, width], "max_long_term": 8}``: written into the manifest, and part of what
    find_export matches, so two exports of one checkpoint at two frame sizes are never confused."""


class OptionError(ExportError, ValueError):
    """A family option that is missing, unknown to the family, or malformed (a usage error)."""

    exit_code = 2


def model_spec(family: str, checkpoint: Path, model: str | None = None, **options: Any) -> ModelSpec:
    """The ModelSpec of ``checkpoint`` for a registered family (the spec function loads the weights).

    ``options`` are the family's own keyword-only arguments (DeAOT: ``size``, ``max_long_term``),
    checked first by :func:`check_options`.
    """
    check_options(family, options)
    return _spec_function(family)(Path(checkpoint), model, **options)


def check_options(family: str, options: Mapping[str, Any]) -> None:
    """OptionError (naming the flags) for an option the family does not take or a required one left out."""
    import inspect

    params = {name: p for name, p in inspect.signature(_spec_function(family)).parameters.items()
              if p.kind is p.KEYWORD_ONLY}
    unknown = [name for name in options if name not in params]
    if unknown:
        takes = ", ".join(_flag(n) for n in params) or "no options of its own"
        raise OptionError(f"the {family} export takes {takes}, got {', '.join(_flag(n) for n in unknown)}")
    missing = [name for name, p in params.items() if p.default is p.empty and name not in options]
    if missing:
        raise OptionError(f"the {family} export must be given {', '.join(_flag(n) for n in missing)}, got none")


def _spec_function(family: str) -> Callable[..., ModelSpec]:
    import importlib

    if family not in FAMILIES:
        raise ExportError(f"model family must be one of {', '.join(sorted(FAMILIES))}, got {family!r}")
    module, function = FAMILIES[family][0].split(":")
    return getattr(importlib.import_module(module), function)


def _flag(option: str) -> str:
    """The command-line flag of a family option: ``max_long_term`` -> ``--max-long-term``."""
    return "--" + option.replace("_", "-")
