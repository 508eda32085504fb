"""Reference inputs for DeAOT tests: official parameter layouts, seeded weights, a synthetic clip.

Why: the port is checked against goldens made by upstream's own code (see
tests/engines/deaot/goldens/). Neither weights nor frames are stored there; both are regenerated
here, so this module must produce bit-identical tensors and frames on every machine:

* weights depend only on (seed, parameter NAME, shape), never on module order or the model class,
  so upstream's model and our port receive the same tensors for the same names;
* the clip is pure integer numpy arithmetic (no RNG stream, no cv2 drawing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from seeded import crc32_of, generator, read_layout, uniform

__all__ = ["LAYOUTS_PATH", "crc32_of", "golden_clip", "load_layout", "seeded_state_dict"]

LAYOUTS_PATH = Path(__file__).resolve().parent / "engines" / "deaot" / "data" / "deaot_layouts.json"

# The gains below were tuned on the golden clip (make_goldens.py prints the checks); each keeps
# the network in a regime where fp32 rounding stays ~1e-5 on the logits while the propagated
# identities move them by ~0.2, so a 1e-4 tolerance is both reachable and meaningful.
#
# Encoder convs (ReLU/ReLU6 follow): He gain 2 puts the 19-block MobileNetV2 in a chaotic regime
# (a 1e-7 weight change grew to 1e-4 relative at stride 16 and ~3e-4 on the logits); gain 1 lets
# activations fade to std 0.07. Gain 1.5 keeps them O(1) with errors ~2e-6 relative.
_ENCODER_CONV_GAIN = 1.5
_LINEAR_GAIN = 1.0
# Output conv: logit std ~2, |logit| up to ~12, so 1e-4 absolute is ~1e-5 of the logit range.
_OUTPUT_GAIN = 16.0
# Memory attention temperature: with unit gain the softmax over the memory is nearly uniform (row
# max 0.07 over 84 keys) and propagated identities blur into one average; gain 4 sharpens it.
_QUERY_GAIN = 4.0
# Decoder skip adapters: at unit gain the skips swamp the propagated identities (swapping two ids
# in the reference moved the logits by <1e-3); at 0.2 the same swap moves them by ~0.2 on average.
_SHORTCUT_GAIN = 0.2
# ResNet bottlenecks' last FrozenBN scale (bn3): small, so the residual stream does not grow with
# every block (FrozenBN does not renormalise), in the spirit of zero-init-gamma.
_RESIDUAL_BRANCH_SCALE = 0.3


def load_layout(variant: str) -> dict[str, tuple[int, ...]]:
    """Upstream's ``state_dict()`` names and shapes for a variant (deaott, ..., swinb_deaotl)."""
    return read_layout(LAYOUTS_PATH, variant)


def seeded_state_dict(layout: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A deterministic, numerically healthy state dict for a layout (float32 on CPU).

    Each tensor comes from its own ``torch.Generator`` seeded with crc32 of ``"<seed>/<name>"``, so
    the same name and shape give the same values whatever else is in the layout. Fill rules:

    * >=2-D weights (conv, linear, id bank): uniform, variance gain/fan_in; gain 1 except encoder
      convs 1.5, ``*.linear_QV`` 4, ``decoder.adapter_*`` 0.2, ``decoder.conv_out`` 16; every
      ``decoder.*`` filter is then centred to sum 0, so no id wins every pixel by a constant;
    * 1-D ``weight`` (LayerNorm, GroupNorm, FrozenBN scale): 1 +- 10% (ResNet ``bn3``: 0.3 +- 10%);
    * other 1-D (biases, FrozenBN ``bias``): uniform +-0.05;
    * FrozenBN ``running_mean`` uniform +-0.1, ``running_var`` uniform [0.75, 1.25];
    * Swin ``relative_position_bias_table`` +-0.04; ``relative_position_index`` is the exact int64
      index upstream computes (a constant, not a weight).
    """
    return {name: _seeded_tensor(name, tuple(int(s) for s in shape), seed) for name, shape in layout.items()}


def _seeded_tensor(name: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    if name.rsplit(".", 1)[-1] == "relative_position_index":
        return _relative_position_index(shape)
    # Arithmetic in float64, rounded once: the float32 result is then the same on any CPU even
    # where a vectorised reduction (the centring mean) sums in a different order.
    return _seeded_values(name, shape, generator(name, seed)).to(torch.float32)


def _seeded_values(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_mean":
        return uniform(shape, -0.1, 0.1, gen)
    if leaf == "running_var":
        return uniform(shape, 0.75, 1.25, gen)
    if leaf == "relative_position_bias_table":
        return uniform(shape, -0.04, 0.04, gen)
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        bound = math.sqrt(3.0 * _weight_gain(name, shape) / fan_in)
        weight = uniform(shape, -bound, bound, gen)
        if name.startswith("decoder."):
            # Zero-sum filters: the decoder's inputs are ReLU outputs, all positive, and their
            # shared mean passed through random filters lets one output id win on every pixel.
            weight -= weight.mean(dim=tuple(range(1, len(shape))), keepdim=True)
        return weight
    if leaf == "weight":
        centre = _RESIDUAL_BRANCH_SCALE if _closes_residual_branch(name) else 1.0
        return uniform(shape, centre - 0.1 * centre, centre + 0.1 * centre, gen)
    return uniform(shape, -0.05, 0.05, gen)


def _weight_gain(name: str, shape: tuple[int, ...]) -> float:
    if name == "decoder.conv_out.weight":
        return _OUTPUT_GAIN
    if name.endswith(".linear_QV.weight"):
        return _QUERY_GAIN
    if name.startswith("decoder.adapter_"):
        return _SHORTCUT_GAIN
    if name.startswith("encoder.") and len(shape) == 4:
        return _ENCODER_CONV_GAIN
    return _LINEAR_GAIN


def _closes_residual_branch(name: str) -> bool:
    """FrozenBN scales that end a ResNet bottleneck's residual branch (``bn3``).

    MobileNetV2 needs no such rule: ReLU6 caps its activations and its residual stream stays O(1).
    """
    return name.startswith("encoder.") and name.endswith(".bn3.weight")


def _relative_position_index(shape: tuple[int, ...]) -> torch.Tensor:
    """Swin's pairwise index into the (2W-1)^2 bias table for a square W x W window."""
    if len(shape) != 2 or shape[0] != shape[1] or math.isqrt(shape[0]) ** 2 != shape[0]:
        raise ValueError(f"relative_position_index shape must be (W*W, W*W), got {shape}")
    window = math.isqrt(shape[0])
    rows, cols = np.divmod(np.arange(window * window), window)
    d_row = rows[:, None] - rows[None, :] + window - 1
    d_col = cols[:, None] - cols[None, :] + window - 1
    return torch.from_numpy((d_row * (2 * window - 1) + d_col).astype(np.int64))


def golden_clip(num_objects: int, frames: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic clip: textured background and ``num_objects`` coloured shapes moving slowly.

    Returns ``frames`` uint8 RGB [T, H, W, 3] and ``label0`` uint8 [H, W], the visible ids (1..N,
    0 background) in frame 0. Objects sit on a grid, one per cell, drift 1..3 px per frame and are
    drawn in id order (higher ids on top). Pure integer arithmetic: identical on every machine.
    """
    if num_objects < 1 or num_objects > 255:
        raise ValueError(f"num_objects must be in 1..255, got {num_objects}")
    if frames < 1 or height < 16 or width < 16:
        raise ValueError(f"clip must be at least 1 frame of 16x16, got {frames}x{height}x{width}")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.int64)
    background = np.stack(
        [
            60 + (xx * 3 + yy * 5) % 41 + ((xx // 8 + yy // 8) % 2) * 20,
            70 + (xx * 7 + yy * 2) % 37,
            50 + (xx * yy) % 29 + (yy * 2) % 23,
        ],
        axis=-1,
    )
    cols = max(1, math.ceil(math.sqrt(num_objects * width / height)))
    rows = math.ceil(num_objects / cols)
    cell_h, cell_w = height // rows, width // cols
    clip = np.empty((frames, height, width, 3), dtype=np.uint8)
    label0 = np.zeros((height, width), dtype=np.uint8)
    for t in range(frames):
        image = background.copy()
        for idx in range(num_objects):
            obj = idx + 1
            inside = _object_mask(obj, idx // cols, idx % cols, cell_h, cell_w, t, yy, xx)
            colour = np.array([(obj * 97) % 200 + 40, (obj * 53 + 90) % 200 + 40, (obj * 151 + 30) % 200 + 40])
            shade = ((xx + yy + 3 * obj) % 7 - 3) * 4
            image[inside] = (colour[None, :] + shade[inside][:, None]).clip(0, 255)
            if t == 0:
                label0[inside] = obj
        clip[t] = image.astype(np.uint8)
    return clip, label0


def _object_mask(
    obj: int, row: int, col: int, cell_h: int, cell_w: int, t: int, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    ry = max(3, cell_h * (3 + obj % 2) // 10)
    rx = max(3, cell_w * (3 + (obj // 2) % 2) // 10)
    vy = (obj % 3) - 1 if obj % 3 != 1 else 2
    vx = ((obj * 2) % 5) - 2 or 1
    cy = row * cell_h + cell_h // 2 + vy * t
    cx = col * cell_w + cell_w // 2 + vx * t
    dy, dx = yy - cy, xx - cx
    kind = obj % 3
    if kind == 0:
        return (np.abs(dy) <= ry) & (np.abs(dx) <= rx)
    if kind == 1:
        return dy * dy * rx * rx + dx * dx * ry * ry <= rx * rx * ry * ry
    return np.abs(dy) * rx + np.abs(dx) * ry <= rx * ry
