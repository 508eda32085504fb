"""Reference inputs for E2FGVI tests: official parameter layouts, seeded weights, a synthetic clip.

Why: the port is checked against goldens made by upstream's own code (see
tests/engines/e2fgvi/goldens/). Neither weights nor frames are stored there; both are regenerated
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

LAYOUTS_PATH = Path(__file__).resolve().parent / "engines" / "e2fgvi" / "data" / "e2fgvi_layouts.json"

# E2FGVI's temporal focal windows are 5x9 tokens everywhere, expanded by half a window (2, 4).
_WINDOW = (5, 9)
# SPyNet's input normalisation (ImageNet), registered by upstream as float32 buffers.
_SPYNET_MEAN = (0.485, 0.456, 0.406)
_SPYNET_STD = (0.229, 0.224, 0.225)

# Gains (variance gain / fan_in of a uniform fill), tuned on the golden clip; make_goldens.py
# prints the checks. The aim: the output tanh neither saturates nor goes flat, every path (flow,
# deformable alignment, transformer, reference frames) moves the output by far more than 1e-4, and
# fp32 rounding (1e-7 relative weight noise) moves it by far less.
#
# Convs followed by LeakyReLU (slope 0.1 / 0.2): He gain keeps activations O(1).
_LEAKY_GAIN = 1.9
_LINEAR_GAIN = 1.0
# SPyNet's last conv of each level predicts a flow residual that later levels upsample and double.
# Its bias, summed over the levels with that doubling (x32 from the coarsest), made a uniform
# ~1 px field that ignored the frames (spatial std 0.04 px), so it is nearly zero; the weights
# get gain 4, which gives flows of spatial std ~0.5 px, up to ~3 px, at quarter resolution.
_FLOW_RESIDUAL_GAIN = 4.0
_FLOW_RESIDUAL_BIAS = 0.002
# Deformable alignment's offset/mask head: 10 * tanh(o) px residual offsets and sigmoid(o) masks;
# small, so offsets are ~1 px on top of the flow and masks vary around 0.5.
_OFFSET_HEAD_GAIN = 0.02
# Attention temperature: sharper than uniform, so which frame a token looks at matters.
_QKV_GAIN = 2.0
# SoftComp sums up to 9 overlapping 7x7 patches (stride 3): damped so the transformer's residual
# joins the encoder features at their scale instead of drowning them.
_SOFTCOMP_GAIN = 0.05
# Decoder's last conv feeds tanh: output std ~0.4, |output| < 0.96, nothing saturated.
_OUTPUT_GAIN = 0.6


def load_layout(variant: str) -> dict[str, tuple[int, ...]]:
    """Upstream's ``InpaintGenerator.state_dict()`` names and shapes ("e2fgvi_hq" or "e2fgvi")."""
    return read_layout(LAYOUTS_PATH, variant)


def seeded_state_dict(layout: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A deterministic, numerically healthy state dict for a layout (float32 on CPU).

    Each tensor comes from its own ``torch.Generator`` seeded with crc32 of ``"<seed>/<name>"``, so
    the same name and shape give the same values whatever else is in the layout. Fill rules:

    * ``*.attn.valid_ind_rolled`` (int64) and ``update_spynet.mean`` / ``.std`` are upstream's
      constants, never noise (the official checkpoints hold exactly these);
    * any ``bias`` (including the non-HQ ``sc.bias`` [128, 60, 108]): uniform +-0.05, except
      SPyNet's flow-residual convs (``update_spynet.basic_module.<level>.basic_module.4.conv``)
      +-0.002;
    * other 1-D ``weight`` (LayerNorm): 1 +- 10%;
    * >=2-D weights: uniform with variance gain / fan_in; gain 1 except convs followed by
      LeakyReLU or GELU 1.9, SPyNet's convs followed by ReLU 2 and its flow-residual convs 4,
      ``*.attn.qkv`` 2, the offset/mask head ``conv_offset.6`` 0.02, ``sc.embedding`` 0.05
      and the decoder's last conv 0.6;
      ``decoder.*`` filters are then centred to sum 0 per output channel, so the tanh output
      is driven by spatial structure, not by the positive mean of LeakyReLU activations.
    """
    return {name: _seeded_tensor(name, tuple(int(s) for s in shape), seed) for name, shape in layout.items()}


def _seeded_tensor(name: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    constant = _constant(name, shape)
    if constant is not None:
        return constant
    # Arithmetic in float64, rounded once: the float32 result is then the same on any CPU even
    # where a vectorised reduction (the centring mean) sums in a different order.
    return _seeded_values(name, shape, generator(name, seed)).to(torch.float32)


def _constant(name: str, shape: tuple[int, ...]) -> torch.Tensor | None:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "valid_ind_rolled":
        index = _valid_ind_rolled(_WINDOW)
        if shape != tuple(index.shape):
            raise ValueError(f"valid_ind_rolled shape must be {tuple(index.shape)} for a {_WINDOW} window, got {shape}")
        return index
    if name.endswith("spynet.mean") or name.endswith("spynet.std"):
        values = _SPYNET_MEAN if leaf == "mean" else _SPYNET_STD
        if shape != (1, 3, 1, 1):
            raise ValueError(f"{name} shape must be (1, 3, 1, 1), got {shape}")
        return torch.tensor(values, dtype=torch.float32).view(shape)
    return None


def _seeded_values(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "bias":
        bound = _FLOW_RESIDUAL_BIAS if _is_flow_head(name) else 0.05
        return uniform(shape, -bound, bound, gen)
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        bound = math.sqrt(3.0 * _weight_gain(name, shape) / fan_in)
        weight = uniform(shape, -bound, bound, gen)
        if name.startswith("decoder."):
            weight -= weight.mean(dim=tuple(range(1, len(shape))), keepdim=True)
        return weight
    return uniform(shape, 0.9, 1.1, gen)


def _weight_gain(name: str, shape: tuple[int, ...]) -> float:
    if name.startswith("update_spynet."):
        return _FLOW_RESIDUAL_GAIN if _is_flow_head(name) else 2.0  # ReLU between convs
    if name.endswith("conv_offset.6.weight"):
        return _OFFSET_HEAD_GAIN
    if name.endswith(".attn.qkv.weight"):
        return _QKV_GAIN
    if name == "sc.embedding.weight":
        return _SOFTCOMP_GAIN
    if name == "decoder.6.weight":
        return _OUTPUT_GAIN
    if _leaky_relu_follows(name):
        return _LEAKY_GAIN
    return _LINEAR_GAIN


def _is_flow_head(name: str) -> bool:
    """SPyNet's last conv of a pyramid level (it predicts the flow residual)."""
    return name.startswith("update_spynet.") and ".basic_module.4.conv." in name


def _leaky_relu_follows(name: str) -> bool:
    """Convs whose output goes through a LeakyReLU in upstream's forward."""
    if name.startswith("encoder.layers."):
        return True
    if name.startswith("decoder.") and not name.startswith("decoder.6."):
        return True
    if ".conv_offset." in name:
        return not name.endswith("conv_offset.6.weight")
    if ".backbone." in name:
        return ".0." in name
    if ".mlp.conv1." in name:
        return True  # GELU follows
    return False


def _valid_ind_rolled(window: tuple[int, int]) -> torch.Tensor:
    """Upstream's index of the rolled key/value tokens a window attends to: the four corner
    rolls (top-left, top-right, bottom-left, bottom-right by half a window), each keeping only
    the tokens that fall outside the window itself, flattened in that order."""
    wh, ww = window
    eh, ew = wh // 2, ww // 2
    rows, cols = np.mgrid[0:wh, 0:ww]
    near_top, near_bottom = rows < eh, rows >= wh - eh
    near_left, near_right = cols < ew, cols >= ww - ew
    corners = (
        near_bottom | near_right,  # rolled from the top-left: keeps what lies below or right
        near_bottom | near_left,
        near_top | near_right,
        near_top | near_left,
    )
    keep = np.concatenate([c.reshape(-1) for c in corners])
    return torch.from_numpy(np.flatnonzero(keep).astype(np.int64))


def golden_clip(frames: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic inpainting clip: a panning textured scene, a logo, and a mask that covers it.

    Returns ``frames`` uint8 RGB [T, H, W, 3] and ``masks`` bool [T, H, W] (True = to inpaint).
    The scene pans by (1, 2) px per frame, so what the mask hides in one frame is visible in
    others (what E2FGVI's flow propagation and reference frames exploit). The mask is an ellipse
    that moves and changes size every frame, plus a small bar on every third frame (the mask's
    topology changes). A solid "logo" is drawn inside the mask: a correct pipeline never sees it.
    Pure integer arithmetic: identical on every machine.
    """
    if frames < 1 or height < 16 or width < 16:
        raise ValueError(f"clip must be at least 1 frame of 16x16, got {frames}x{height}x{width}")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.int64)
    clip = np.empty((frames, height, width, 3), dtype=np.uint8)
    masks = np.zeros((frames, height, width), dtype=bool)
    for t in range(frames):
        sy, sx = yy + t, xx + 2 * t  # scene coordinates: the camera pans
        scene = np.stack(
            [
                40 + (sx * 3 + sy * 2) % 97 + ((sx // 12 + sy // 12) % 2) * 60,
                60 + (sx * sx // 37 + sy * 5) % 83 + (sy // 9 % 3) * 25,
                50 + (sx * sy // 23) % 61 + ((sx + 2 * sy) // 16 % 2) * 70,
            ],
            axis=-1,
        )
        cy = height // 2 + (t % 7) - 3
        cx = width // 3 + 3 * t
        ry = max(3, height // 7 + t % 4)
        rx = max(3, width // 9 + (3 * t) % 7)
        dy, dx = yy - cy, xx - cx
        mask = dy * dy * rx * rx + dx * dx * ry * ry <= rx * rx * ry * ry
        if t % 3 == 0:
            top, left = height // 5, (width * 2) // 3 - t
            mask |= (yy >= top) & (yy < top + max(2, height // 20)) & (xx >= left) & (xx < left + max(4, width // 8))
        logo = (dy * dy * 4 * rx * rx + dx * dx * 4 * ry * ry <= rx * rx * ry * ry) | (
            (np.abs(dy) * 3 < ry) & (np.abs(dx) < rx)
        )
        scene[logo & mask] = (235, 40, 200)
        clip[t] = scene.clip(0, 255).astype(np.uint8)
        masks[t] = mask
    return clip, masks
