"""The TensorRT backend: a native engine built from the ONNX file, cached on disk, run on torch tensors.

Building an engine takes from seconds (the prompt decoder) to minutes (vit_h's encoder), so it is
done once per (ONNX file + external data, GPU model and compute capability, TensorRT version,
precision, profiles) — see ``engine_cache.engine_key`` — and kept under ``<cache>/tensorrt/``;
a file that no longer deserialises (another driver, a truncated write) is rebuilt. A timing cache
per GPU and TensorRT version makes later builds faster. Files are written atomically, so two
processes building at once leave one whole engine.

Precision: fp32 builds plain; fp16/bf16 set the builder flag, which lets TensorRT pick the lower
precision per layer where it is faster (weakly typed network). Every dynamic input of the network
needs a (min, opt, max) profile from ``profiles``.

Execution: inputs and outputs are torch CUDA tensors whose addresses are handed to the execution
context (``set_input_shape``, ``set_tensor_address``); the outputs are allocated from the shapes
the context infers, and ``execute_async_v3`` is queued on torch's current stream, so the results
are ordered with the caller's other torch work and nothing is copied through the host.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cleanfeed.engines.runners.base import Profile, Runner, RunnerConfig, TensorSpec, resolve_device
from cleanfeed.engines.runners.engine_cache import (
    engine_cache_dir,
    engine_key,
    engine_path,
    onnx_sha256,
    timing_cache_path,
    write_atomic,
)
from cleanfeed.errors import BackendError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install cleanfeed[trt] on a machine with an NVIDIA GPU"


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as err:
        raise BackendError(f"tensorrt backend needs TensorRT (the tensorrt Python package): {INSTALL_HINT}") from err
    return tensorrt


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
             trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool}
    for name, torch_type in (("INT64", torch.int64), ("BF16", torch.bfloat16), ("UINT8", torch.uint8)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = torch_type
    if dtype not in table:
        raise BackendError(f"tensorrt tensor type must be one torch can hold, got {dtype}")
    return table[dtype]


@functools.cache
def shared_logger(trt: Any) -> Any:
    """The process's one TensorRT logger (TensorRT treats its logger as a singleton: every builder and
    runtime must get the same one). It forwards to ``logging`` and keeps the latest errors so a
    failure's BackendError can quote them."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: collections.deque[str] = collections.deque(maxlen=20)

        def log(self, severity: Any, msg: str) -> None:
            levels = trt.ILogger.Severity
            if severity in (levels.INTERNAL_ERROR, levels.ERROR):
                self.errors.append(msg)
                log.error("tensorrt: %s", msg)
            elif severity == levels.WARNING:
                log.warning("tensorrt: %s", msg)
            else:
                log.debug("tensorrt: %s", msg)

        def recent(self) -> str:
            """The last few errors, then forgets them: the text of the next BackendError."""
            text = "; ".join(list(self.errors)[-3:]) or "see the log"
            self.errors.clear()
            return text

    return Logger()


class TensorRTRunner(Runner):
    def __init__(self, config: RunnerConfig, onnx_path: Path, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec], profiles: Mapping[str, Profile]) -> None:
        trt = import_tensorrt()
        device = resolve_device(config.device)
        super().__init__(config, inputs, outputs, device)
        self._trt = trt
        self._logger = shared_logger(trt)
        onnx_path = Path(onnx_path)
        cache = Path(config.cache_dir) if config.cache_dir is not None else engine_cache_dir()
        props = torch.cuda.get_device_properties(device)
        capability = (props.major, props.minor)
        digest = onnx_sha256(onnx_path, cache)
        key = engine_key(digest, props.name, capability, trt.__version__, config.precision, profiles)
        path = engine_path(cache, onnx_path, key)
        with torch.cuda.device(device):
            self.engine = self._load(path)
            if self.engine is None:
                timing = timing_cache_path(cache, props.name, capability, trt.__version__)
                started = time.perf_counter()
                blob = self._build(onnx_path, profiles, timing)
                log.info("tensorrt: built %s in %.1f s -> %s", onnx_path.name, time.perf_counter() - started, path)
                write_atomic(path, blob)
                write_atomic(path.with_suffix(".json"), json.dumps({
                    "onnx": str(onnx_path), "onnx_sha256": digest, "gpu": props.name,
                    "compute_capability": list(capability), "tensorrt": trt.__version__,
                    "precision": config.precision, "profiles": {k: [list(s) for s in v] for k, v in profiles.items()},
                }, indent=2).encode())
                self.engine = self._deserialize(blob)
                if self.engine is None:
                    raise BackendError(f"tensorrt could not load the engine it built from {onnx_path}: "
                                       f"{self._logger.recent()}")
            self.context = self.engine.create_execution_context()
        self._bind_names()
        self.engine_path = path
        self.description = f"tensorrt {trt.__version__} {config.precision} on {props.name}"

    def _deserialize(self, blob: bytes) -> Any:
        runtime = self._trt.Runtime(self._logger)
        self._runtime = runtime
        return runtime.deserialize_cuda_engine(blob)

    def _load(self, path: Path) -> Any:
        if not path.is_file():
            return None
        engine = self._deserialize(path.read_bytes())
        if engine is None:
            log.warning("tensorrt: cached engine %s does not load here; rebuilding it", path)
        return engine

    def _build(self, onnx_path: Path, profiles: Mapping[str, Profile], timing_path: Path) -> bytes:
        trt = self._trt
        self._logger.errors.clear()
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"tensorrt could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        if self.config.precision == "fp32":
            # TensorRT runs fp32 matmuls/convs as TF32 on Ampere and later unless told not to; fp32
            # must mean fp32, or parity against torch (1e-3 on SAM's logits) is out of reach.
            config.clear_flag(trt.BuilderFlag.TF32)
        else:
            flag = getattr(trt.BuilderFlag, {"fp16": "FP16", "bf16": "BF16"}[self.config.precision], None)
            if flag is None:
                raise BackendError(f"precision {self.config.precision} needs a newer TensorRT, got {trt.__version__}")
            config.set_flag(flag)
        profile = builder.create_optimization_profile()
        dynamic = False
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            if all(d >= 0 for d in tensor.shape):
                continue
            dynamic = True
            if tensor.name not in profiles:
                raise BackendError(f"tensorrt needs a profile (min, opt, max shapes) for dynamic input "
                                   f"{tensor.name} of shape {tuple(tensor.shape)}, got none")
            profile.set_shape(tensor.name, *profiles[tensor.name])
        if dynamic:
            config.add_optimization_profile(profile)
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"tensorrt could not build an engine from {onnx_path}: "
                               f"{self._logger.recent()}")
        write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)

    def _bind_names(self) -> None:
        trt = self._trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        engine_in = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        if sorted(engine_in) != sorted(s.name for s in self.inputs):
            raise BackendError(f"tensorrt engine inputs must be {', '.join(s.name for s in self.inputs)}, "
                               f"got {', '.join(engine_in)}")
        missing = [s.name for s in self.outputs if s.name not in names or modes[s.name] != trt.TensorIOMode.OUTPUT]
        if missing:
            raise BackendError(f"tensorrt engine outputs must include {', '.join(missing)}, "
                               f"got {', '.join(n for n in names if n not in engine_in)}")
        self._dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        # Outputs the caller did not ask for still need somewhere to go.
        self._extra_outputs = [n for n in names if n not in engine_in and n not in {s.name for s in self.outputs}]

    def _run(self, inputs: list[torch.Tensor]) -> Sequence[torch.Tensor]:
        context = self.context
        keep = []
        for spec, tensor in zip(self.inputs, inputs, strict=True):
            tensor = tensor.to(self._dtypes[spec.name]).contiguous()
            keep.append(tensor)
            if not context.set_input_shape(spec.name, tuple(tensor.shape)):
                raise BackendError(f"tensorrt input {spec.name} shape {tuple(tensor.shape)} must fit the engine's "
                                   "optimization profile")
            context.set_tensor_address(spec.name, tensor.data_ptr())
        results = []
        for name in [s.name for s in self.outputs] + self._extra_outputs:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise BackendError(f"tensorrt output {name} must have a shape known from the inputs, got {shape}")
            out = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
            context.set_tensor_address(name, out.data_ptr())
            results.append(out)
        stream = torch.cuda.current_stream(self.device)
        with torch.cuda.device(self.device):
            ok = context.execute_async_v3(stream.cuda_stream)
        if not ok:
            raise BackendError(f"tensorrt execution failed: {self._logger.recent()}")
        # ``keep`` may be freed now: the caching allocator reuses its memory only for work queued
        # later on this same stream, which runs after the engine has read it.
        del keep
        return results[: len(self.outputs)]

    def close(self) -> None:
        self.context = None
        self.engine = None
        self._runtime = None
