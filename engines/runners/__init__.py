"""Runners: one model, three backends (torch, onnxruntime, tensorrt), the same tensors in and out.

``get_runner`` checks the config and what it was given, imports only the backend asked for (so a
missing onnxruntime or TensorRT fails when the pipeline is built, with a line saying how to get
it) and logs once which backend, provider and precision it chose.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cleanfeed.engines.runners.base import (
    BACKENDS,
    DTYPES,
    PRECISIONS,
    Profile,
    Runner,
    RunnerConfig,
    TensorSpec,
    resolve_device,
    validate_config,
    validate_profiles,
    validate_specs,
)
from cleanfeed.engines.runners.engine_cache import engine_cache_dir
from cleanfeed.errors import BackendError

if TYPE_CHECKING:
    import torch

__all__ = ["BACKENDS", "DTYPES", "PRECISIONS", "Profile", "Runner", "RunnerConfig", "TensorSpec", "engine_cache_dir",
           "get_runner"]

log = logging.getLogger(__name__)


def get_runner(config: RunnerConfig, *, module: torch.nn.Module | None = None, onnx_path: Path | None = None,
               inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
               profiles: Mapping[str, Profile] | None = None) -> Runner:
    """A runner for ``config``: backend torch runs ``module`` (its forward takes the inputs
    positionally in ``inputs`` order and returns a tuple in ``outputs`` order; the runner takes it
    over: eval mode, moved to the device); onnxruntime and tensorrt run ``onnx_path``. ``profiles``
    gives (min, opt, max) shapes per dynamic input, for TensorRT (native or onnxruntime's EP)."""
    validate_config(config)
    validate_specs(inputs, outputs)
    clean_profiles = validate_profiles(profiles or {}, inputs)
    try:
        import torch  # noqa: F401  (every backend takes and returns torch tensors)
    except ImportError as err:
        raise BackendError("runners need torch: pip install cleanfeed[torch]") from err
    runner: Runner
    if config.backend == "torch":
        if module is None:
            raise BackendError("backend torch needs module (a torch.nn.Module), got None")
        from cleanfeed.engines.runners.torch_runner import TorchRunner

        runner = TorchRunner(config, module, inputs, outputs, resolve_device(config.device))
    else:
        if onnx_path is None:
            raise BackendError(f"backend {config.backend} needs onnx_path (an ONNX file), got None")
        if not Path(onnx_path).is_file():
            raise BackendError(f"onnx_path must be an existing ONNX file, got {str(onnx_path)!r}")
        if config.backend == "onnxruntime":
            from cleanfeed.engines.runners.onnxruntime_runner import OnnxRuntimeRunner

            runner = OnnxRuntimeRunner(config, Path(onnx_path), inputs, outputs, clean_profiles)
        else:
            from cleanfeed.engines.runners.tensorrt_runner import TensorRTRunner

            runner = TensorRTRunner(config, Path(onnx_path), inputs, outputs, clean_profiles)
    log.info("runner: %s", runner.description)
    return runner

