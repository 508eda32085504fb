"""The torch backend: the module itself, eager, compiled, or replayed from CUDA graphs.

Precision is autocast, not a cast of the weights. Measured on this project's 2-core AMD EPYC CPU
(avx512_bf16), SAM vit_b's image encoder at 1024x1024 with random weights, bf16, alternating runs
(min of 3): autocast 3.94 s, weights cast to bf16 3.87 s (fp32: 13.9 s) — the same speed; relative
L2 error of the embeddings against fp32: 0.78 % with autocast, 1.12 % with cast weights. Autocast
keeps the ops that need range or accumulation in float32 (on CUDA: layer_norm, softmax, pow, exp,
sum), which matters for SAM: its LayerNorm2d squares activations by hand, and its random-Fourier
positional encoding turns pixel coordinates into phases; casting every weight puts both in 16
bits. Its cost is one cast of each weight per call (for vit_h about 3.8 GB of memory traffic,
~1 ms on an H100), and the weights stay float32, so runners of several precisions can share one
module. fp16 on a CPU is honoured but slow where the CPU has no fp16 arithmetic (vit_b: ~260 s on
this one, emulated); bf16 is the CPU's reduced precision.

CUDA graphs: one graph per input-shape key (the prompt decoder sees a few point counts), each with
its own static input buffers; the forward is warmed up three times on a side stream (cuDNN picks
its kernels, torch.compile compiles) before capture, then every call copies the inputs into the
static buffers, replays, and clones the outputs (the next replay overwrites them). At most
``MAX_GRAPHS`` shapes are kept, the least recently used dropped first.

The runner takes ownership of the module: it is put in eval mode and moved to the device.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from cleanfeed.engines.runners.base import Runner, RunnerConfig, TensorSpec
from cleanfeed.errors import BackendError

MAX_GRAPHS = 16
WARMUP = 3
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]


class TorchRunner(Runner):
    def __init__(self, config: RunnerConfig, module: torch.nn.Module, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec], device: torch.device) -> None:
        super().__init__(config, inputs, outputs, device)
        if not isinstance(module, torch.nn.Module):
            raise BackendError(f"backend torch needs module (a torch.nn.Module), got {type(module).__name__}")
        self.module = module.eval().to(device)
        self._autocast_dtype = _AUTOCAST.get(config.precision)
        self._forward = torch.compile(self.module) if config.compile else self.module
        self._graphs: OrderedDict[tuple[Any, ...], _Captured] = OrderedDict()
        mode = "torch.compile" if config.compile else "eager"
        if config.cuda_graphs:
            mode += " + CUDA graphs"
        amp = f"autocast {config.precision}" if self._autocast_dtype is not None else "fp32"
        self.description = f"torch {mode} {amp} on {device}"

    def _autocast(self) -> Any:
        if self._autocast_dtype is None:
            return nullcontext()
        # Autocast's weight-cast cache must be off while a graph is captured (the cached casts would
        # be allocated outside the graph's pool and freed under it).
        return torch.autocast(self.device.type, dtype=self._autocast_dtype, cache_enabled=not self.config.cuda_graphs)

    def _call_module(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        with self._autocast():
            result = self._forward(*inputs)
        if isinstance(result, torch.Tensor):
            result = (result,)
        if not isinstance(result, (tuple, list)) or len(result) != len(self.outputs):
            got = len(result) if isinstance(result, (tuple, list)) else type(result).__name__
            raise BackendError(f"module must return a tuple of {len(self.outputs)} tensors "
                               f"({', '.join(s.name for s in self.outputs)}), got {got}")
        return [t if t.dtype == d or not t.is_floating_point() else t.to(d)
                for t, d in zip(result, self._output_dtypes, strict=True)]

    def _run(self, inputs: list[torch.Tensor]) -> Sequence[torch.Tensor]:
        with torch.inference_mode():
            if not self.config.cuda_graphs:
                return self._call_module(inputs)
            with torch.cuda.device(self.device):
                captured = self._graph_for(inputs)
                for static, tensor in zip(captured.inputs, inputs, strict=True):
                    static.copy_(tensor)
                captured.graph.replay()
                return [t.clone() for t in captured.outputs]

    def _graph_for(self, inputs: list[torch.Tensor]) -> _Captured:
        key = tuple((tuple(t.shape), t.dtype) for t in inputs)
        captured = self._graphs.get(key)
        if captured is not None:
            self._graphs.move_to_end(key)
            return captured
        while len(self._graphs) >= MAX_GRAPHS:
            self._graphs.popitem(last=False)
        static = [t.clone() for t in inputs]
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                self._call_module(static)
        main.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self._call_module(static)
        captured = _Captured(graph, static, outputs)
        self._graphs[key] = captured
        return captured

    def close(self) -> None:
        self._graphs.clear()
        self._forward = None  # type: ignore[assignment]
        self.module = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

