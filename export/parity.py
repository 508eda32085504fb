"""Does the exported graph compute what the torch module computes? Figures, limits, verdict.

Each sample is a fresh set of random inputs from ``GraphSpec.sample``; the torch module (fp32,
CPU) gives the expected outputs, the exported graph runs through the same runner interface the
engines use (cleanfeed.engines.runners, backend onnxruntime or tensorrt), and ``GraphSpec.compare`` turns
each pair into figures. The verdict uses the worst figure over all samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanfeed.export.onnx_export import sample_inputs
from cleanfeed.export.spec import COMPARISONS, GraphSpec, Limits

if TYPE_CHECKING:
    import numpy as np
    import torch

    from cleanfeed.engines.runners.base import Runner


@dataclass
class ParityResult:
    """Parity of one graph on one backend."""

    backend: str
    precision: str
    samples: int
    figures: dict[str, float]
    """Worst value of each figure over the samples (max for upper bounds, min for lower bounds)."""
    limits: dict[str, tuple[str, float]]
    failures: list[str] = field(default_factory=list)
    """One line per missed limit or malformed output, e.g. "max_abs_logits 2.1e-03 must be < 0.001"."""
    per_sample: list[dict[str, float]] = field(default_factory=list)
    description: str = ""
    """The runner's own description (backend, provider, precision)."""

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "runner": self.description, "precision": self.precision,
                "samples": self.samples, "passed": self.passed, "figures": self.figures,
                "limits": {k: [op, bound] for k, (op, bound) in self.limits.items()},
                "failures": self.failures, "per_sample": self.per_sample}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParityResult:
        return cls(backend=data["backend"], precision=data["precision"], samples=data["samples"],
                   figures=dict(data["figures"]), limits={k: (v[0], float(v[1])) for k, v in data["limits"].items()},
                   failures=list(data["failures"]), per_sample=list(data.get("per_sample", [])),
                   description=data.get("runner", ""))


def meets(value: float, op: str, bound: float) -> bool:
    """``value op bound``; NaN never meets a limit."""
    if math.isnan(value):
        return False
    return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[op]


def worst(values: list[float], op: str | None) -> float:
    """The sample that comes closest to breaking the limit (NaN wins: it always breaks)."""
    if any(math.isnan(v) for v in values):
        return math.nan
    return min(values) if op in (">", ">=") else max(values)


def judge(per_sample: list[dict[str, float]], limits: Limits) -> tuple[dict[str, float], list[str]]:
    """Worst figures over the samples, and one failure line per missed (or missing) limit."""
    names = list(dict.fromkeys(k for figures in per_sample for k in figures))
    figures = {k: worst([f[k] for f in per_sample if k in f], limits.get(k, ("<", 0.0))[0]) for k in names}
    failures = []
    for name, (op, bound) in limits.items():
        if op not in COMPARISONS:
            failures.append(f"limit {name} must compare with one of {', '.join(COMPARISONS)}, got {op!r}")
        elif name not in figures:
            failures.append(f"{name} must be computed by compare() to check {op} {bound:g}, got no such figure")
        elif not meets(figures[name], op, bound):
            failures.append(f"{name} {figures[name]:.3g} must be {op} {bound:g}")
    return figures, failures


def check_parity(graph: GraphSpec, onnx_path: Path, *, precision: str, samples: int, rng: np.random.Generator,
                 backend: str = "onnxruntime", device: str = "cpu",
                 open_runner: Callable[..., Runner] | None = None) -> ParityResult:
    """Runs the torch module and the exported graph on ``samples`` fresh random inputs.

    ``open_runner`` defaults to cleanfeed.engines.runners.get_runner (backend, device, precision from the
    arguments; TensorRT profiles from the graph).
    """
    if open_runner is None:
        from cleanfeed.engines.runners import get_runner
        from cleanfeed.engines.runners.base import RunnerConfig

        def open_runner() -> Runner:
            return get_runner(RunnerConfig(backend=backend, device=device, precision=precision),
                              onnx_path=Path(onnx_path), inputs=graph.inputs, outputs=graph.outputs,
                              profiles=dict(graph.profiles) or None)

    limits = dict(graph.limits_for(precision))
    runner = open_runner()
    per_sample: list[dict[str, float]] = []
    shape_failures: list[str] = []
    try:
        for _ in range(samples):
            inputs = sample_inputs(graph, rng)
            expected = run_torch(graph, inputs)
            actual = {k: v.detach().to("cpu") for k, v in runner(**inputs).items()}
            malformed = _check_outputs(graph, expected, actual)
            shape_failures += malformed
            if not malformed:
                per_sample.append({k: float(v) for k, v in graph.compare(expected, actual).items()})
        description = getattr(runner, "description", backend)
    finally:
        runner.close()
    figures, failures = judge(per_sample, limits) if per_sample else ({}, [])
    return ParityResult(backend=backend, precision=precision, samples=samples, figures=figures, limits=limits,
                        failures=list(dict.fromkeys(shape_failures)) + failures, per_sample=per_sample,
                        description=description)


def run_torch(graph: GraphSpec, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference: the fp32 module on CPU, outputs keyed by the graph's output names."""
    import torch

    with torch.no_grad():
        result = graph.module.eval()(*(inputs[spec.name] for spec in graph.inputs))
    if isinstance(result, torch.Tensor):
        result = (result,)
    return {spec.name: t.detach().to("cpu") for spec, t in zip(graph.outputs, result, strict=True)}


def _check_outputs(graph: GraphSpec, expected: Mapping[str, torch.Tensor],
                   actual: Mapping[str, torch.Tensor]) -> list[str]:
    failures = []
    for spec in graph.outputs:
        if spec.name not in actual:
            failures.append(f"output {spec.name} must be produced by the exported graph, got {sorted(actual)}")
            continue
        want, got = tuple(expected[spec.name].shape), tuple(actual[spec.name].shape)
        if want != got:
            failures.append(f"output {spec.name} must have shape {want}, got {got}")
        if str(actual[spec.name].dtype).removeprefix("torch.") != spec.dtype:
            failures.append(f"output {spec.name} must be {spec.dtype}, got {actual[spec.name].dtype}")
    return failures
