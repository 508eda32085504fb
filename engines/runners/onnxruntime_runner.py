"""The onnxruntime backend: an exported ONNX graph on the best execution provider installed.

Providers. ``device=cpu`` runs on the CPU EP. ``device=cuda[:N]`` asks onnxruntime for, in order,
the TensorRT EP (engines and timing cache kept under ``<cache>/ort-trt/<onnx digest>/``), the CUDA
EP, and the CPU EP for the nodes neither takes; an onnxruntime with neither GPU provider is a
BackendError, never a silent fall back to CPU. The choice is logged once and is in ``description``.

Precision. The TensorRT EP builds its engines in fp16 or bf16 when asked (``trt_fp16_enable``,
``trt_bf16_enable``). The CUDA and CPU EPs compute a graph in the precision it was exported in, so
there ``precision`` must match the graph's own float type: fp16 on the CPU EP with a float32 export
is a BackendError that says to export in fp16 or ask for fp32 (rather than quietly running fp32).

Tensors. On CPU, inputs go through numpy (a view, no copy for float32). On CUDA the torch tensors
are bound in place with IO binding and the outputs are torch tensors allocated on the device and
bound too, so nothing crosses to the host. onnxruntime runs on its own CUDA stream: the caller's
current torch stream is synchronised before the run (the inputs must be ready) and onnxruntime
synchronises its own at the end (the outputs are ready on any stream).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cleanfeed.engines.runners.base import Profile, Runner, RunnerConfig, TensorSpec, resolve_device, resolve_shape
from cleanfeed.engines.runners.engine_cache import engine_cache_dir, onnx_sha256, ort_trt_cache_dir
from cleanfeed.errors import BackendError

log = logging.getLogger(__name__)

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"

_ORT_TYPES: dict[str, tuple[torch.dtype, Any]] = {
    "tensor(float)": (torch.float32, np.float32),
    "tensor(float16)": (torch.float16, np.float16),
    "tensor(bfloat16)": (torch.bfloat16, None),
    "tensor(double)": (torch.float64, np.float64),
    "tensor(int64)": (torch.int64, np.int64),
    "tensor(int32)": (torch.int32, np.int32),
    "tensor(int8)": (torch.int8, np.int8),
    "tensor(uint8)": (torch.uint8, np.uint8),
    "tensor(bool)": (torch.bool, np.bool_),
}
_FLOAT_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendError("backend onnxruntime needs onnxruntime: pip install cleanfeed[onnx] "
                           "(onnxruntime-gpu for CUDA)") from err
    return onnxruntime


def intra_op_threads() -> int:
    """The cores this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _shape_option(profiles: Mapping[str, Profile], which: int) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in shapes[which])}" for name, shapes in sorted(profiles.items()))


def plan_providers(device: str, precision: str, available: Sequence[str], *, device_index: int = 0,
                   trt_cache: Path | None = None,
                   profiles: Mapping[str, Profile] | None = None) -> list[tuple[str, dict[str, str]]]:
    """The providers (with options) a session gets, best first, from what this onnxruntime offers.

    ``device`` is ``"cpu"`` or ``"cuda"``. Pure: tested with made-up ``available`` lists.
    """
    if device == "cpu":
        return [(CPU_EP, {})]
    plan: list[tuple[str, dict[str, str]]] = []
    if TRT_EP in available:
        options = {"device_id": str(device_index), "trt_fp16_enable": str(precision == "fp16")}
        if precision == "bf16":  # a newer option (onnxruntime 1.2x, TensorRT 10): only named when used
            options["trt_bf16_enable"] = "True"
        if trt_cache is not None:
            options.update({"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(trt_cache),
                            "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(trt_cache)})
        if profiles:
            options.update({"trt_profile_min_shapes": _shape_option(profiles, 0),
                            "trt_profile_opt_shapes": _shape_option(profiles, 1),
                            "trt_profile_max_shapes": _shape_option(profiles, 2)})
        plan.append((TRT_EP, options))
    if CUDA_EP in available:
        plan.append((CUDA_EP, {"device_id": str(device_index)}))
    if not plan:
        raise BackendError(
            f"device cuda needs onnxruntime's {TRT_EP} or {CUDA_EP}, but this onnxruntime offers "
            f"{', '.join(available) or 'none'}: pip install onnxruntime-gpu (instead of onnxruntime) "
            "on a machine with an NVIDIA GPU, or use device=cpu"
        )
    plan.append((CPU_EP, {}))
    return plan


def check_precision(precision: str, provider: str, graph_float: str) -> None:
    """Only the TensorRT EP lowers precision itself; elsewhere the graph's float type is the precision."""
    if provider == TRT_EP:
        return
    wanted = _FLOAT_NAMES[precision]
    if graph_float == wanted:
        return
    if precision == "fp16":
        hint = "export with --precision fp16, or ask for precision fp32"
    elif precision == "bf16":
        hint = "bf16 needs onnxruntime's TensorRT provider, or backend torch or tensorrt"
    else:
        hint = f"use an fp32 export, or ask for precision {_reverse_float(graph_float)}"
    raise BackendError(
        f"onnxruntime precision {precision} on {provider} needs a graph exported in {wanted} "
        f"(that provider computes a graph in its own precision), got a {graph_float} graph: {hint}"
    )


def _reverse_float(graph_float: str) -> str:
    return {v: k for k, v in _FLOAT_NAMES.items()}.get(graph_float, graph_float)


def graph_float_type(onnx_path: Path, session: Any, scan: bool) -> str:
    """The float type a graph computes in (float32, float16, bfloat16).

    With ``scan``, the type most of its weights are stored in, read from the initializers' headers
    with ``onnx`` (external data is not loaded, but an inline 375 MB encoder is parsed: a second or
    so, paid only when a reduced precision is asked for). Otherwise, and without ``onnx``, the type
    of the session's first floating input.
    """
    if scan:
        try:
            import onnx
        except ImportError:
            onnx = None
        if onnx is not None:
            model = onnx.load(str(onnx_path), load_external_data=False)
            names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
                     onnx.TensorProto.BFLOAT16: "bfloat16"}
            counts: dict[str, int] = {}
            for tensor in model.graph.initializer:
                if tensor.data_type in names:
                    name = names[tensor.data_type]
                    counts[name] = counts.get(name, 0) + int(np.prod(tensor.dims))
            if counts:
                return max(counts, key=lambda k: counts[k])
    for node in session.get_inputs():
        if node.type in ("tensor(float)", "tensor(float16)", "tensor(bfloat16)"):
            return {"tensor(float)": "float32", "tensor(float16)": "float16"}.get(node.type, "bfloat16")
    return "float32"


class OnnxRuntimeRunner(Runner):
    def __init__(self, config: RunnerConfig, onnx_path: Path, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec], profiles: Mapping[str, Profile]) -> None:
        ort = import_onnxruntime()
        onnx_path = Path(onnx_path)
        kind = "cpu" if config.device == "cpu" else "cuda"
        available = ort.get_available_providers()
        plan_providers(kind, config.precision, available)  # a missing GPU provider fails before torch's check
        device = resolve_device(config.device)
        super().__init__(config, inputs, outputs, device)
        trt_cache = None
        if kind == "cuda" and TRT_EP in available:
            cache = Path(config.cache_dir) if config.cache_dir is not None else engine_cache_dir()
            trt_cache = ort_trt_cache_dir(cache, onnx_sha256(onnx_path, cache))
            trt_cache.mkdir(parents=True, exist_ok=True)
        plan = plan_providers(kind, config.precision, available, device_index=device.index or 0,
                              trt_cache=trt_cache, profiles=profiles)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = intra_op_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its constant-folding notes on fp16 graphs are not ours to act on
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=options,
                                                providers=[name for name, _ in plan],
                                                provider_options=[opts for _, opts in plan])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BackendError(f"onnxruntime could not load {onnx_path}: {str(err).splitlines()[0]}") from err
        active = self.session.get_providers()
        self.provider = active[0]
        if self.provider != TRT_EP:
            scan = config.precision != "fp32"
            check_precision(config.precision, self.provider, graph_float_type(onnx_path, self.session, scan))
        self._check_names()
        self._in_types = [self._ort_type(n.type, n.name) for n in self.session.get_inputs()]
        self._in_order = [n.name for n in self.session.get_inputs()]
        self._out_nodes = {n.name: n for n in self.session.get_outputs()}
        self._out_types = [self._ort_type(self._out_nodes[s.name].type, s.name) for s in self.outputs]
        self._out_shapes: dict[tuple[Any, ...], list[tuple[int, ...]]] = {}
        self._binding = self.session.io_binding() if device.type == "cuda" else None
        rest = f" (then {', '.join(active[1:])})" if len(active) > 1 else ""
        threads = f", {options.intra_op_num_threads} threads" if self.provider == CPU_EP else ""
        self.description = f"onnxruntime {self.provider} {config.precision}{rest}{threads}"

    @staticmethod
    def _ort_type(ort_type: str, name: str) -> tuple[torch.dtype, Any]:
        if ort_type not in _ORT_TYPES:
            raise BackendError(f"onnx tensor {name} must have a supported type, got {ort_type}")
        return _ORT_TYPES[ort_type]

    def _check_names(self) -> None:
        graph_in = [n.name for n in self.session.get_inputs()]
        if sorted(graph_in) != sorted(s.name for s in self.inputs):
            raise BackendError(f"onnx graph inputs must be {', '.join(s.name for s in self.inputs)}, "
                               f"got {', '.join(graph_in)}")
        graph_out = [n.name for n in self.session.get_outputs()]
        missing = [s.name for s in self.outputs if s.name not in graph_out]
        if missing:
            raise BackendError(f"onnx graph outputs must include {', '.join(missing)}, got {', '.join(graph_out)}")

    def _run(self, inputs: list[torch.Tensor]) -> Sequence[torch.Tensor]:
        by_name = {spec.name: t for spec, t in zip(self.inputs, inputs, strict=True)}
        ordered = [by_name[name] for name in self._in_order]
        if self._binding is None:
            feeds = {name: t.detach().to(dtype).numpy()
                     for name, t, (dtype, _) in zip(self._in_order, ordered, self._in_types, strict=True)}
            results = self.session.run([s.name for s in self.outputs], feeds)
            return [torch.from_numpy(np.ascontiguousarray(r)) for r in results]
        return self._run_bound(ordered)

    def _run_bound(self, ordered: list[torch.Tensor]) -> list[torch.Tensor]:
        binding = self._binding
        index = self.device.index or 0
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        keep = []
        axes: dict[str, int] = {}
        for name, tensor, (dtype, np_type) in zip(self._in_order, ordered, self._in_types, strict=True):
            if np_type is None:
                raise BackendError(f"onnx input {name} has a type IO binding cannot take (bfloat16); export it as float32")
            tensor = tensor.detach().to(dtype).contiguous()
            keep.append(tensor)
            binding.bind_input(name, "cuda", index, np_type, tuple(tensor.shape), tensor.data_ptr())
            spec = next(s for s in self.inputs if s.name == name)
            axes.update({a: d for a, d in zip(spec.shape, tensor.shape, strict=True) if isinstance(a, str)})
        key = tuple(tuple(t.shape) for t in keep)
        shapes = self._out_shapes.get(key) or self._declared_output_shapes(axes)
        outputs: list[torch.Tensor] = []
        for spec, shape, (dtype, np_type) in zip(self.outputs, shapes or [None] * len(self.outputs), self._out_types,
                                                 strict=True):
            if shape is None or np_type is None:
                binding.bind_output(spec.name, "cuda", index)
                continue
            out = torch.empty(shape, dtype=dtype, device=self.device)
            outputs.append(out)
            binding.bind_output(spec.name, "cuda", index, np_type, shape, out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        if shapes is not None and len(outputs) == len(self.outputs):
            return outputs
        # Shapes the graph does not declare: learn them from this run (one host copy, once per input shape).
        values = binding.get_outputs()
        learned = [tuple(v.shape()) for v in values]
        self._out_shapes[key] = learned
        host = binding.copy_outputs_to_cpu()
        return [torch.from_numpy(np.ascontiguousarray(h)).to(self.device) for h in host]

    def _declared_output_shapes(self, axes: Mapping[str, int]) -> list[tuple[int, ...]] | None:
        """Each output's shape from the graph's declared dims, named axes resolved from the inputs'
        sizes (the graph's symbolic names first, then the spec's); None when one stays unknown."""
        shapes = []
        for spec in self.outputs:
            declared = self._out_nodes[spec.name].shape
            merged: list[int | str | None] = []
            for i, dim in enumerate(declared):
                if isinstance(dim, int) and dim >= 0:
                    merged.append(dim)
                elif isinstance(dim, str) and dim in axes:
                    merged.append(dim)
                else:
                    merged.append(spec.shape[i] if i < len(spec.shape) else None)
            shape = resolve_shape(merged, axes)
            if shape is None:
                return None
            shapes.append(shape)
        return shapes

    def close(self) -> None:
        self._binding = None
        self.session = None
