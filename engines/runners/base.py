"""The one interface every backend implements, so engines never care where a model runs.

Inputs and outputs are torch tensors named as in the model's graph. Floating tensors are float32
at the boundary whatever precision the backend computes in; integer and bool tensors keep the
dtype their ``TensorSpec`` names. Inputs may come on any device; outputs live on ``runner.device``.

``Runner.__call__`` is the same for every backend: it checks the inputs against the specs (names,
rank, static sizes, one size per named dynamic axis), moves and converts them, and hands the
backend a list in spec order; the backend's ``_run`` returns the outputs in spec order.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cleanfeed.errors import BackendError

if TYPE_CHECKING:
    import torch

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = ("float32", "int64", "int32", "bool")
"""The dtypes a ``TensorSpec`` may name: what crosses the boundary, not what the backend computes in."""

Shape = tuple[int, ...]
Profile = tuple[Shape, Shape, Shape]
"""TensorRT optimization profile of one input: its (min, opt, max) shapes."""

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output; a ``str`` axis is dynamic and named (``"num_points"``)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class RunnerConfig:
    """Where and how a model runs."""

    backend: str = "torch"
    """``torch`` | ``onnxruntime`` | ``tensorrt``."""
    device: str = "cpu"
    """``cpu`` | ``cuda`` | ``cuda:N``."""
    precision: str = "fp32"
    """``fp32`` | ``fp16`` | ``bf16``: what the backend computes in; the boundary stays float32."""
    cuda_graphs: bool = False
    """torch on CUDA: capture the forward once per input shape and replay it."""
    compile: bool = False
    """torch: run the module through ``torch.compile``."""
    cache_dir: Path | None = None
    """Where built engines are kept; None means ``engine_cache_dir()``."""


def _listing(tokens: Sequence[str]) -> str:
    return ", ".join(tokens)


def parse_device(device: str) -> tuple[str, int | None]:
    """``"cpu"`` -> ("cpu", None), ``"cuda"`` -> ("cuda", None), ``"cuda:1"`` -> ("cuda", 1)."""
    match = _DEVICE.match(device) if isinstance(device, str) else None
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        raise BackendError(f"runner device must be cpu, cuda or cuda:N, got {device!r}")
    index = match.group(2)
    return match.group(1), None if index is None else int(index)


def validate_config(config: RunnerConfig) -> None:
    """Rejects tokens and combinations no backend accepts, before anything is imported or built."""
    if config.backend not in BACKENDS:
        raise BackendError(f"runner backend must be one of {_listing(BACKENDS)}, got {config.backend!r}")
    if config.precision not in PRECISIONS:
        raise BackendError(f"runner precision must be one of {_listing(PRECISIONS)}, got {config.precision!r}")
    kind, _ = parse_device(config.device)
    if config.backend != "torch":
        for flag in ("cuda_graphs", "compile"):
            if getattr(config, flag):
                raise BackendError(f"{flag} must be used with backend torch, got backend {config.backend}")
    if config.cuda_graphs and kind != "cuda":
        raise BackendError(f"cuda_graphs must run on a CUDA device, got device {config.device!r}")
    if config.backend == "tensorrt" and kind != "cuda":
        raise BackendError(f"backend tensorrt must run on a CUDA device, got device {config.device!r}")


def validate_specs(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
    """Names unique and present, dtypes known, axes positive ints or non-empty names."""
    for role, specs in (("inputs", inputs), ("outputs", outputs)):
        if not specs:
            raise BackendError(f"runner {role} must name at least one tensor, got none")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise BackendError(f"runner {role} must have unique names, got {_listing(names)}")
        for spec in specs:
            if spec.dtype not in DTYPES:
                raise BackendError(f"{spec.name} dtype must be one of {_listing(DTYPES)}, got {spec.dtype!r}")
            for axis in spec.shape:
                if not ((isinstance(axis, int) and axis >= 0) or (isinstance(axis, str) and axis)):
                    raise BackendError(f"{spec.name} axes must be sizes >= 0 or axis names, got {spec.shape}")


def validate_profiles(profiles: Mapping[str, Profile], inputs: Sequence[TensorSpec]) -> dict[str, Profile]:
    """Each profile names a dynamic input; its shapes have the input's rank, keep its static sizes,
    and grow min <= opt <= max. Returns them as plain int tuples (hashable, JSON-able)."""
    by_name = {s.name: s for s in inputs}
    clean: dict[str, Profile] = {}
    for name, shapes in profiles.items():
        spec = by_name.get(name)
        if spec is None:
            raise BackendError(f"profile names must be inputs ({_listing(list(by_name))}), got {name!r}")
        if len(shapes) != 3:
            raise BackendError(f"profile {name} must be (min, opt, max) shapes, got {shapes}")
        lo, opt, hi = (tuple(int(d) for d in shape) for shape in shapes)
        for shape in (lo, opt, hi):
            if len(shape) != len(spec.shape) or any(
                isinstance(axis, int) and axis != d for axis, d in zip(spec.shape, shape, strict=False)
            ):
                raise BackendError(f"profile {name} shapes must fit {spec.shape}, got {shape}")
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
            raise BackendError(f"profile {name} must grow min <= opt <= max, got {lo}, {opt}, {hi}")
        clean[name] = (lo, opt, hi)
    return clean


def torch_dtype(dtype: str) -> torch.dtype:
    import torch

    return {"float32": torch.float32, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}[dtype]


def resolve_device(device: str) -> torch.device:
    """The torch device a config names, checked against what this machine has."""
    import torch

    kind, index = parse_device(device)
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise BackendError(
            f"device {device!r} needs a CUDA GPU, but torch {torch.__version__} ({build}) sees none: "
            "run on a machine with an NVIDIA GPU and a CUDA build of torch, or use device=cpu"
        )
    count = torch.cuda.device_count()
    if index is None:
        index = torch.cuda.current_device()
    if index >= count:
        raise BackendError(f"device must be one of cuda:0..cuda:{count - 1} on this machine, got {device!r}")
    return torch.device("cuda", index)


def resolve_shape(shape: Sequence[int | str | None], axes: Mapping[str, int]) -> Shape | None:
    """A concrete shape, with named axes looked up in ``axes``; None if one is unknown."""
    out: list[int] = []
    for axis in shape:
        if isinstance(axis, int) and axis >= 0:
            out.append(axis)
        elif isinstance(axis, str) and axis in axes:
            out.append(axes[axis])
        else:
            return None
    return tuple(out)


def _shape_text(shape: Sequence[int | str]) -> str:
    return "(" + ", ".join(str(a) for a in shape) + ("," if len(shape) == 1 else "") + ")"


class Runner(ABC):
    """A model ready to run: call it with its inputs by name, get its outputs by name.

    Backends implement ``_run`` (inputs in spec order, on ``device``, in the specs' dtypes ->
    outputs in spec order, any float dtype) and ``close``.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    config: RunnerConfig
    device: torch.device
    description: str

    def __init__(self, config: RunnerConfig, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 device: torch.device) -> None:
        self.config = config
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.device = device
        self.description = config.backend
        self._input_dtypes = tuple(torch_dtype(s.dtype) for s in self.inputs)
        self._output_dtypes = tuple(torch_dtype(s.dtype) for s in self.outputs)

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        tensors, _ = self.prepare(inputs)
        results = self._run(tensors)
        if len(results) != len(self.outputs):
            raise BackendError(f"{self.description} must return {len(self.outputs)} outputs, got {len(results)}")
        return {
            spec.name: (t if t.dtype == dtype else t.to(dtype))
            for spec, dtype, t in zip(self.outputs, self._output_dtypes, results, strict=True)
        }

    def prepare(self, inputs: Mapping[str, torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, int]]:
        """The inputs in spec order, on ``device`` and in the specs' dtypes, plus the size of each
        named axis; a missing, unexpected or misshapen input is a BackendError naming it."""
        expected = [s.name for s in self.inputs]
        if set(inputs) != set(expected):
            raise BackendError(f"runner inputs must be {_listing(expected)}, got {_listing(list(inputs))}")
        axes: dict[str, int] = {}
        where: dict[str, str] = {}
        ordered = []
        for spec, dtype in zip(self.inputs, self._input_dtypes, strict=True):
            tensor = inputs[spec.name]
            shape = tuple(tensor.shape)
            if len(shape) != len(spec.shape) or any(
                isinstance(axis, int) and axis != size for axis, size in zip(spec.shape, shape, strict=True)
            ):
                raise BackendError(f"input {spec.name} must have shape {_shape_text(spec.shape)}, got {_shape_text(shape)}")
            for axis, size in zip(spec.shape, shape, strict=True):
                if isinstance(axis, str):
                    if axes.setdefault(axis, size) != size:
                        raise BackendError(
                            f"input {spec.name} axis {axis} must be {axes[axis]} as in {where[axis]}, got {size}"
                        )
                    where.setdefault(axis, spec.name)
            if tensor.device != self.device or tensor.dtype != dtype:
                tensor = tensor.to(device=self.device, dtype=dtype, non_blocking=tensor.device.type == "cpu")
            ordered.append(tensor)
        return ordered, axes

    @abstractmethod
    def _run(self, inputs: list[torch.Tensor]) -> Sequence[torch.Tensor]: ...

    @abstractmethod
    def close(self) -> None:
        """Frees what the backend holds (sessions, engines, graphs); the runner is unusable after."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"
