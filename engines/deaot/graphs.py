"""The three graphs a DeAOT tracker runs, with every memory an explicit input or output.

A tracker's state lives outside the network, so each graph is a pure function of tensors and
the same graphs run on torch, ONNX Runtime and TensorRT, and export to ONNX unchanged:

- ``ReferenceGraph``: a frame and its mask -> the frame's memory (keys, values, identity values
  per layer). Upstream's ``add_reference_frame``.
- ``StepGraph``: a frame, the long-term memory (``[engines, slots, tokens, C]`` with a
  ``long_valid`` mask, so a fixed number of slots keeps shapes static) and the short-term memory
  -> id logits, plus what the frame's memory will be made of once its mask is chosen.
  Upstream's ``match_propogate_one_frame`` + ``decode_current_logits``.
- ``MemoriseGraph``: the chosen mask and the step's identity states -> the frame's identity
  values. Upstream's ``update_short_term_memory`` (the memory write, not the bookkeeping).

``engines`` is the batch of sub-engines (one per ten objects): they read the same image, which is
encoded once, and differ only in their memories and masks.
"""

from __future__ import annotations

import torch
from torch import nn

from cleanfeed.engines.deaot.model import DeAOT
from cleanfeed.engines.deaot.propagation import Current, Memory, map_to_tokens
from cleanfeed.engines.deaot.variants import EMBED_DIM, ID_CHANNELS
from cleanfeed.engines.runners.base import TensorSpec

D_KEY = EMBED_DIM // 2
D_VALUE = 2 * EMBED_DIM


def memory_names(layers: int, prefix: str) -> list[str]:
    """Input/output names of a per-layer memory: ``{prefix}key_0``, ``{prefix}value_0``, ``{prefix}id_0``, ..."""
    return [f"{prefix}{part}_{i}" for i in range(layers) for part in ("key", "value", "id")]


Size = tuple[int, int] | None
"""A model-size frame (height, width), or None for graphs that take any size (named dynamic axes)."""


def _axes(size: Size) -> tuple[tuple[int | str, int | str], int | str, tuple[int | str, int | str]]:
    """(frame axes, token count, logit axes) for a size; the decoder's logits are at stride 4, rounding up."""
    if size is None:
        return ("height", "width"), "tokens", ("logit_height", "logit_width")
    grid = grid_size(size)
    return size, grid[0] * grid[1], ((size[0] + 3) // 4, (size[1] + 3) // 4)


def _memory_specs(layers: int, prefix: str, lead: tuple[int | str, ...], tokens: int | str) -> list[TensorSpec]:
    widths = {"key": D_KEY, "value": D_VALUE, "id": D_VALUE}
    return [
        TensorSpec(name, (*lead, tokens, widths[name[len(prefix) :].split("_")[0]]))
        for name in memory_names(layers, prefix)
    ]


def _memories(tensors: tuple[torch.Tensor, ...], layers: int) -> list[Memory]:
    return [Memory(*tensors[3 * i : 3 * i + 3]) for i in range(layers)]


class _Graph(nn.Module):
    """A graph over a DeAOT network; ``specs`` gives its TensorSpecs for a frame size (None: any)."""

    def __init__(self, model: DeAOT) -> None:
        super().__init__()
        self.model = model


class ReferenceGraph(_Graph):
    """image ``[1, 3, H, W]`` (RGB 0..255 at model size), one_hot ``[engines, 11, H, W]`` -> memory per layer ``[engines, T, C]``."""

    @staticmethod
    def specs(layers: int, size: Size = None) -> tuple[list[TensorSpec], list[TensorSpec]]:
        frame, tokens, _ = _axes(size)
        inputs = [TensorSpec("image", (1, 3, *frame)), TensorSpec("one_hot", ("engines", ID_CHANNELS, *frame))]
        return inputs, _memory_specs(layers, "", ("engines",), tokens)

    def forward(self, image: torch.Tensor, one_hot: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        features = model.encode(image)
        engines = one_hot.shape[0]
        tokens = map_to_tokens(features[-1]).expand(engines, -1, -1)
        grid = (int(features[-1].shape[-2]), int(features[-1].shape[-1]))
        id_emb = model.embed_ids(one_hot)
        _, seen = model.LSTT(tokens, grid, id_emb=id_emb)
        return tuple(t for memory in model.LSTT.memorise(seen, id_emb) for t in memory)


class StepGraph(_Graph):
    """Tracks one frame against the memories: id logits ``[engines, 11, h, w]`` and the frame's keys, values, identity states."""

    def __init__(self, model: DeAOT) -> None:
        super().__init__(model)
        self.layers = len(model.LSTT.layers)

    @staticmethod
    def specs(layers: int, size: Size = None) -> tuple[list[TensorSpec], list[TensorSpec]]:
        frame, tokens, logit = _axes(size)
        inputs = [TensorSpec("image", (1, 3, *frame))]
        inputs += _memory_specs(layers, "long_", ("engines", "slots"), tokens)
        inputs.append(TensorSpec("long_valid", ("engines", "slots"), "bool"))
        inputs += _memory_specs(layers, "short_", ("engines",), tokens)
        outputs = [TensorSpec("logits", ("engines", ID_CHANNELS, *logit))]
        for i in range(layers):
            outputs += [TensorSpec(f"key_{i}", ("engines", tokens, D_KEY)), TensorSpec(f"value_{i}", ("engines", tokens, D_VALUE))]
            if i:
                outputs.append(TensorSpec(f"id_state_{i}", ("engines", tokens, EMBED_DIM)))
        return inputs, outputs

    def forward(self, image: torch.Tensor, *memory: torch.Tensor) -> tuple[torch.Tensor, ...]:
        layers = self.layers
        long_term = [Memory(*(t.flatten(1, 2) for t in m)) for m in _memories(memory[: 3 * layers], layers)]
        valid = memory[3 * layers]
        short_term = _memories(memory[3 * layers + 1 :], layers)
        model = self.model
        features = model.encode(image)
        engines = valid.shape[0]
        tokens = map_to_tokens(features[-1]).expand(engines, -1, -1)
        grid = (int(features[-1].shape[-2]), int(features[-1].shape[-1]))
        propagated, seen = model.LSTT(tokens, grid, long_term, short_term, long_term_valid=valid)
        shortcuts = [f.expand(engines, -1, -1, -1) for f in features]
        out: list[torch.Tensor] = [model.decode(propagated, shortcuts)]
        for current in seen:
            out += [current.key, current.value]
            if current.id_state is not None:
                out.append(current.id_state)
        return tuple(out)


class MemoriseGraph(_Graph):
    """one_hot ``[engines, 11, H, W]`` + the step's identity states -> identity values per layer ``[engines, T, 512]``."""

    @staticmethod
    def specs(layers: int, size: Size = None) -> tuple[list[TensorSpec], list[TensorSpec]]:
        frame, tokens, _ = _axes(size)
        inputs = [TensorSpec("one_hot", ("engines", ID_CHANNELS, *frame))]
        inputs += [TensorSpec(f"id_state_{i}", ("engines", tokens, EMBED_DIM)) for i in range(1, layers)]
        return inputs, [TensorSpec(f"id_{i}", ("engines", tokens, D_VALUE)) for i in range(layers)]

    def forward(self, one_hot: torch.Tensor, *id_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        id_emb = self.model.embed_ids(one_hot)
        states: list[torch.Tensor | None] = [None, *id_states]
        return tuple(layer.fuse_id(state, id_emb) for layer, state in zip(self.model.LSTT.layers, states, strict=True))


def grid_size(size: tuple[int, int]) -> tuple[int, int]:
    """The token grid of a model-size frame: stride 16, rounding up (17 -> 2, 16 -> 1)."""
    return (size[0] + 15) // 16, (size[1] + 15) // 16


__all__ = ["Current", "MemoriseGraph", "ReferenceGraph", "StepGraph", "grid_size", "memory_names"]
