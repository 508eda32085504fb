"""Make the E2FGVI reference data by running UPSTREAM's own code (MCG-NKU/E2FGVI @ 709cbe3).

Why this exists: our port must load the official checkpoints with ``strict=True`` and reproduce
upstream's numbers. Both facts come from upstream itself, never from our port, so this script
imports upstream's ``model`` package from a folder given on the command line and writes

* ``tests/engines/e2fgvi/data/e2fgvi_layouts.json``: every ``state_dict()`` name and shape of
  ``InpaintGenerator`` for ``model/e2fgvi_hq.py`` and ``model/e2fgvi.py`` (parameters and
  persistent buffers);
* ``tests/engines/e2fgvi/goldens/<case>*.npz``: upstream's ``test.py`` procedure, run end to end
  on a synthetic clip with seeded weights (raw model outputs and final composited frames).

Upstream needs mmcv, which is not installed here (and too slow to build); the few names it
imports are replaced by shim modules defined below (see ``install_mmcv_shims``). The one that
computes something, ``modulated_deform_conv2d``, is written naively from the semantics of mmcv's
im2col kernel. It is committed for reproducibility but never run by CI::

    mkdir -p /work/scratch/e2fgvi
    git -C <E2FGVI mirror> archive 709cbe3 model core test.py | tar -x -C /work/scratch/e2fgvi
    python tests/engines/e2fgvi/goldens/make_goldens.py --upstream /work/scratch/e2fgvi

Weights and frames are NOT stored: tests regenerate both with ``tests/e2fgvi_weights.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import math
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.nn.modules.utils import _pair, _single

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[2]
LAYOUTS_PATH = TESTS / "engines" / "e2fgvi" / "data" / "e2fgvi_layouts.json"
UPSTREAM_REPO = "https://github.com/MCG-NKU/E2FGVI"
UPSTREAM_COMMIT = "709cbe3"
VARIANTS = ("e2fgvi_hq", "e2fgvi")

sys.path.insert(0, str(TESTS))
import e2fgvi_weights  # noqa: E402  (tests/ helper: seeded weights and the synthetic clip)

# ---------------------------------------------------------------------------------------------
# mmcv shims
# ---------------------------------------------------------------------------------------------


def modulated_deform_conv2d_naive(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    deform_groups: int = 1,
) -> torch.Tensor:
    """Modulated deformable convolution (DCNv2) with the semantics of mmcv's im2col kernel.

    Why naive: this is the reference the port's fast version is checked against, so every rule is
    spelled out and the arithmetic runs in float64 (rounded to float32 once at the end):

    * output pixel (ho, wo), kernel tap (i, j), k = i * kw + j, deform group g (input channels
      g*C/dg .. (g+1)*C/dg - 1) samples the input at
      ``h = ho*stride_h - pad_h + i*dil_h + offset[:, g*2*K + 2*k]`` and
      ``w = wo*stride_w - pad_w + j*dil_w + offset[:, g*2*K + 2*k + 1]`` (offsets are (dy, dx)
      pairs per tap, tap-major, per deform group);
    * the sample is 0 unless ``-1 < h < H and -1 < w < W``; inside that, bilinear interpolation of
      the four corners floor(h)/floor(h)+1 x floor(w)/floor(w)+1, a corner outside the image
      counting as 0 (not clamped, not renormalised);
    * the sample is multiplied by ``mask[:, g*K + k]``, then the columns go through the ordinary
      (grouped) convolution weight, plus bias.
    """
    stride_h, stride_w = _pair(stride)
    pad_h, pad_w = _pair(padding)
    dil_h, dil_w = _pair(dilation)
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    out_h = (height + 2 * pad_h - (dil_h * (kh - 1) + 1)) // stride_h + 1
    out_w = (width + 2 * pad_w - (dil_w * (kw - 1) + 1)) // stride_w + 1
    if offset.shape != (n, deform_groups * 2 * taps, out_h, out_w):
        raise ValueError(
            f"offset shape must be {(n, deform_groups * 2 * taps, out_h, out_w)}, got {tuple(offset.shape)}"
        )
    if mask.shape != (n, deform_groups * taps, out_h, out_w):
        raise ValueError(f"mask shape must be {(n, deform_groups * taps, out_h, out_w)}, got {tuple(mask.shape)}")

    xd = x.double()
    off = offset.double().view(n, deform_groups, taps, 2, out_h, out_w)
    mod = mask.double().view(n, deform_groups, taps, out_h, out_w)
    tap_i = torch.arange(kh, dtype=torch.float64).repeat_interleave(kw)  # [K]
    tap_j = torch.arange(kw, dtype=torch.float64).repeat(kh)
    base_h = torch.arange(out_h, dtype=torch.float64) * stride_h - pad_h
    base_w = torch.arange(out_w, dtype=torch.float64) * stride_w - pad_w
    # sampling positions [n, dg, K, out_h, out_w]
    pos_h = base_h.view(1, 1, 1, out_h, 1) + (tap_i * dil_h).view(1, 1, taps, 1, 1) + off[:, :, :, 0]
    pos_w = base_w.view(1, 1, 1, 1, out_w) + (tap_j * dil_w).view(1, 1, taps, 1, 1) + off[:, :, :, 1]
    inside = (pos_h > -1) & (pos_w > -1) & (pos_h < height) & (pos_w < width)
    h_low = torch.floor(pos_h)
    w_low = torch.floor(pos_w)
    lh, lw = pos_h - h_low, pos_w - w_low
    hh, hw = 1 - lh, 1 - lw

    per_group = channels // deform_groups
    flat = xd.view(n, deform_groups, per_group, height * width)
    columns = torch.zeros(n, deform_groups, per_group, taps, out_h, out_w, dtype=torch.float64)
    for dy, dx, corner_weight in ((0, 0, hh * hw), (0, 1, hh * lw), (1, 0, lh * hw), (1, 1, lh * lw)):
        ch = h_low + dy
        cw = w_low + dx
        valid = inside & (ch >= 0) & (ch <= height - 1) & (cw >= 0) & (cw <= width - 1)
        index = (ch.clamp(0, height - 1) * width + cw.clamp(0, width - 1)).long()  # [n, dg, K, oh, ow]
        index = index.view(n, deform_groups, 1, -1).expand(n, deform_groups, per_group, -1)
        values = torch.gather(flat, 3, index).view(n, deform_groups, per_group, taps, out_h, out_w)
        factor = torch.where(valid, corner_weight, torch.zeros_like(corner_weight)).unsqueeze(2)
        columns += values * factor
    columns = columns * (inside.to(torch.float64) * mod).unsqueeze(2)

    # grouped convolution of the columns: [n, groups, C/groups * K, oh*ow]
    columns = columns.view(n, groups, (channels // groups) * taps, out_h * out_w)
    w = weight.double().view(groups, out_channels // groups, (channels // groups) * taps)
    out = torch.einsum("gok,ngkp->ngop", w, columns).reshape(n, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.double().view(1, -1, 1, 1)
    return out.to(x.dtype)


def check_deform_conv_shim() -> None:
    """The naive kernel against cases with a closed form (run before every golden generation)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 7, 9, generator=gen)
    weight = torch.randn(6, 8, 3, 3, generator=gen)
    bias = torch.randn(6, generator=gen)
    groups = 2  # deform groups: channels 0-3 and 4-7
    zero = torch.zeros(2, groups * 18, 7, 9)
    ones = torch.ones(2, groups * 9, 7, 9)
    worst = {}
    # zero offsets and unit masks: an ordinary convolution (also grouped)
    grouped = torch.randn(6, 4, 3, 3, generator=gen)
    out = modulated_deform_conv2d_naive(x, zero, ones, grouped, bias, 1, 1, 1, 2, groups)
    worst["zero offsets"] = float((out - F.conv2d(x, grouped, bias, 1, 1, 1, 2)).abs().max())
    # dy = +1 on every tap of deform group 1: those channels shift up by a row
    offset = zero.clone()
    offset[:, 18:36:2] = 1.0
    padded = F.pad(x, (1, 1, 1, 2))
    shifted = padded[:, :, :-1].clone()
    shifted[:, 4:] = padded[:, 4:, 1:]
    out = modulated_deform_conv2d_naive(x, offset, ones, weight, None, 1, 1, 1, 1, groups)
    worst["integer offsets"] = float((out - F.conv2d(shifted, weight, None, 1, 0)).abs().max())
    # dx = +0.5 everywhere: the mean of two columns, corners outside the image counting 0
    offset = zero.clone()
    offset[:, 1::2] = 0.5
    padded = F.pad(x, (1, 2, 1, 1))
    averaged = 0.5 * (padded[..., :-1] + padded[..., 1:])
    out = modulated_deform_conv2d_naive(x, offset, ones, weight, None, 1, 1, 1, 1, groups)
    worst["half-pixel offsets"] = float((out - F.conv2d(averaged, weight, None, 1, 0)[..., :9]).abs().max())
    # masks multiply each tap's sample
    mask = torch.rand(2, groups * 9, 7, 9, generator=gen)
    columns = F.unfold(x, 3, padding=1).view(2, groups, 4, 9, 63) * mask.view(2, groups, 1, 9, 63)
    expected = (weight.view(6, -1) @ columns.view(2, 72, 63)).view(2, 6, 7, 9)
    out = modulated_deform_conv2d_naive(x, zero, mask, weight, None, 1, 1, 1, 1, groups)
    worst["masks"] = float((out - expected).abs().max())
    # samples at h <= -1 are 0: only the bias is left
    offset = zero.clone()
    offset[:, 0::2] = -10.0
    out = modulated_deform_conv2d_naive(x, offset, ones, weight, bias, 1, 1, 1, 1, groups)
    worst["outside"] = float((out - bias.view(1, -1, 1, 1)).abs().max())
    if max(worst.values()) > 1e-4:
        raise RuntimeError(f"the naive modulated_deform_conv2d disagrees with its closed forms: {worst}")


class ShimModulatedDeformConv2d(nn.Module):
    """Stands in for ``mmcv.ops.ModulatedDeformConv2d``: same registered tensors, naive forward.

    mmcv's module registers exactly ``weight`` [out, in/groups, kh, kw] and ``bias`` [out] (or a
    None ``bias`` when bias=False) and no buffers; the official checkpoints hold those two names.
    Attribute names match mmcv's, because upstream's subclass reads them.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        self.transposed = False
        self.output_padding = _single(0)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.init_weights()

    def init_weights(self) -> None:
        fan_in = self.in_channels * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        self.weight.data.uniform_(-bound, bound)
        if self.bias is not None:
            self.bias.data.zero_()

    def forward(self, x, offset, mask):
        return modulated_deform_conv2d_naive(
            x,
            offset,
            mask,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.deform_groups,
        )


class ShimConvModule(nn.Module):
    """Stands in for ``mmcv.cnn.ConvModule`` as SPyNet uses it: conv (+ bias) then an activation.

    Only the no-norm case is needed (norm_cfg=None everywhere in upstream), where mmcv's
    bias='auto' means a bias; the conv is registered as ``conv``, so names are ``*.conv.weight``
    and ``*.conv.bias`` as in mmcv. act_cfg None means no activation, dict(type='ReLU') a ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias="auto",
        conv_cfg=None,
        norm_cfg=None,
        act_cfg=None,
        **unused,
    ) -> None:
        super().__init__()
        if norm_cfg is not None or conv_cfg is not None or unused:
            raise NotImplementedError(
                f"shim ConvModule supports no norm/conv cfg, got {norm_cfg}, {conv_cfg}, {unused}"
            )
        with_bias = True if bias == "auto" else bool(bias)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=with_bias)
        if act_cfg is None:
            self.activate = None
        elif act_cfg.get("type") == "ReLU":
            self.activate = nn.ReLU(inplace=act_cfg.get("inplace", True))
        else:
            raise NotImplementedError(f"shim ConvModule supports ReLU or None, got {act_cfg}")

    def forward(self, x):
        x = self.conv(x)
        return self.activate(x) if self.activate is not None else x


def _constant_init(module: nn.Module, val: float, bias: float = 0) -> None:
    """mmcv.cnn.constant_init: weight := val, bias := bias (where present)."""
    if getattr(module, "weight", None) is not None:
        nn.init.constant_(module.weight, val)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def _load_checkpoint_refused(model, filename, *args, **kwargs):
    """SPyNet's constructor asks mmcv to download pretrained weights; we never do (no network,
    and seeded weights replace them anyway)."""
    return None


def install_mmcv_shims() -> None:
    """Register ``mmcv``, ``mmcv.ops``, ``mmcv.cnn`` and ``mmcv.runner`` with the names upstream
    imports, before upstream is imported."""
    if "mmcv" in sys.modules and not getattr(sys.modules["mmcv"], "_cleanfeed_shim", False):
        raise RuntimeError("a real mmcv is imported; the goldens are defined by the naive shim")
    mmcv = types.ModuleType("mmcv")
    mmcv._cleanfeed_shim = True
    ops = types.ModuleType("mmcv.ops")
    ops.ModulatedDeformConv2d = ShimModulatedDeformConv2d
    ops.modulated_deform_conv2d = modulated_deform_conv2d_naive
    cnn = types.ModuleType("mmcv.cnn")
    cnn.ConvModule = ShimConvModule
    cnn.constant_init = _constant_init
    runner = types.ModuleType("mmcv.runner")
    runner.load_checkpoint = _load_checkpoint_refused
    mmcv.ops, mmcv.cnn, mmcv.runner = ops, cnn, runner
    sys.modules.update({"mmcv": mmcv, "mmcv.ops": ops, "mmcv.cnn": cnn, "mmcv.runner": runner})


def import_upstream(root: Path) -> dict[str, types.ModuleType]:
    """upstream's ``model.e2fgvi_hq`` and ``model.e2fgvi`` (as test.py: importlib 'model.' + name)."""
    install_mmcv_shims()
    sys.path.insert(0, str(root))
    return {variant: importlib.import_module("model." + variant) for variant in VARIANTS}


def build_model(up: dict[str, types.ModuleType], variant: str) -> nn.Module:
    """``InpaintGenerator()`` with its defaults (init_weights=True), as test.py builds it."""
    return up[variant].InpaintGenerator().eval()


# ---------------------------------------------------------------------------------------------
# layouts
# ---------------------------------------------------------------------------------------------


def write_layouts(up: dict[str, types.ModuleType], path: Path) -> dict[str, int]:
    layouts: dict[str, object] = {
        "_source": {
            "repo": UPSTREAM_REPO,
            "commit": UPSTREAM_COMMIT,
            "how": (
                "model = importlib.import_module('model.' + <variant>).InpaintGenerator() (init_weights=True, "
                "on CPU); {name: list(t.shape) for name, t in model.state_dict().items()} (parameters and "
                "persistent buffers, in state_dict order); mmcv replaced by shims whose "
                "ModulatedDeformConv2d registers mmcv's weight [out, in/groups, kh, kw] and bias [out], "
                "ConvModule a Conv2d named 'conv', load_checkpoint a no-op (SPyNet not downloaded); "
                "made by tests/engines/e2fgvi/goldens/make_goldens.py"
            ),
            "non_float_buffers": "*.attn.valid_ind_rolled are int64 (a constant index); all else float32",
            "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
        }
    }
    counts: dict[str, int] = {}
    for variant in VARIANTS:
        model = build_model(up, variant)
        state = model.state_dict()
        layouts[variant] = {name: list(t.shape) for name, t in state.items()}
        counts[variant] = len(state)
        odd = {name: str(t.dtype) for name, t in state.items() if t.dtype != torch.float32}
        if any(not (n.endswith(".valid_ind_rolled") and d == "torch.int64") for n, d in odd.items()):
            raise RuntimeError(f"unexpected non-float32 entries in {variant}: {odd}")
        # the buffers must be the constants seeded_state_dict fills them with
        seeded = e2fgvi_weights.seeded_state_dict(
            {n: s for n, s in layouts[variant].items() if n.endswith(("valid_ind_rolled", "spynet.mean", "spynet.std"))}
        )
        for name, tensor in seeded.items():
            if not torch.equal(tensor, state[name]):
                raise RuntimeError(f"seeded_state_dict's constant for {name} differs from upstream's buffer")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(layouts, indent=1) + "\n")
    return counts


# ---------------------------------------------------------------------------------------------
# upstream's test.py, as a function of (frames, masks)
# ---------------------------------------------------------------------------------------------

# test.py's defaults: --neighbor_stride 5, --step 10 (ref_length), --num_ref -1
NEIGHBOR_STRIDE = 5
REF_LENGTH = 10
NUM_REF = -1
MOD_SIZE = (60, 108)  # test.py pads the model input to multiples of (mod_size_h, mod_size_w)
E2FGVI_SIZE = (432, 240)  # test.py's fixed (width, height) for the non-HQ model
# A pixel's uint8 value is int((out + 1) / 2 * 255) (truncation): where the float lies within this
# of an integer, a port within 1e-4 of upstream's output (0.0128 on this scale) may land on the
# other side, so `near_step` marks it.
NEAR_STEP = 0.02


def get_ref_index(f: int, neighbor_ids: list[int], length: int) -> list[int]:
    """test.py's reference frames: with num_ref -1, every ref_length-th frame not in the window."""
    if NUM_REF != -1:
        raise NotImplementedError("only test.py's default num_ref=-1 is reproduced")
    return [i for i in range(0, length, REF_LENGTH) if i not in neighbor_ids]


def window_plan(length: int) -> list[tuple[list[int], list[int]]]:
    """(neighbor_ids, ref_ids) per window, in test.py's order (f = 0, 5, 10, ...)."""
    plan = []
    for f in range(0, length, NEIGHBOR_STRIDE):
        neighbor_ids = list(range(max(0, f - NEIGHBOR_STRIDE), min(length, f + NEIGHBOR_STRIDE + 1)))
        plan.append((neighbor_ids, get_ref_index(f, neighbor_ids, length)))
    return plan


def read_masks(masks: np.ndarray, size: tuple[int, int]) -> list[Image.Image]:
    """test.py's read_mask on in-memory masks (as if saved as 0/255 PNGs): resize NEAREST to
    (w, h), convert 'L', binarise (> 0), dilate with a 3x3 cross 4 times, back to 0/255 'L'."""
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = []
    for mask in masks:
        m = Image.fromarray(mask.astype(np.uint8) * 255)
        m = m.resize(size, Image.NEAREST)
        m = np.array(m.convert("L"))
        m = np.array(m > 0).astype(np.uint8)
        m = cv2.dilate(m, kernel, iterations=4)
        out.append(Image.fromarray(m * 255))
    return out


def to_tensors(images: list[Image.Image]) -> torch.Tensor:
    """core.utils.to_tensors() (Stack then ToTorchFormatTensor): [T, C, H, W] float32 in [0, 1].

    Stack puts time on axis 2 (H, W, T, C); the tensor is permuted to (T, C, H, W) and divided
    by 255 in float32. Rewritten here because core.utils imports torchvision and matplotlib.
    """
    if images[0].mode == "L":
        stacked = np.stack([np.expand_dims(np.asarray(x), 2) for x in images], axis=2)
    else:
        stacked = np.stack([np.asarray(x) for x in images], axis=2)
    return torch.from_numpy(stacked).permute(2, 3, 0, 1).contiguous().float().div(255)


def pad_like_test_py(masked_imgs: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pad [1, T, C, h, w] to multiples of MOD_SIZE by concatenating the flipped clip (the edge
    row/column repeats: symmetric padding); short when the pad exceeds the frame (h < 30, ...)."""
    h_pad = (MOD_SIZE[0] - h % MOD_SIZE[0]) % MOD_SIZE[0]
    w_pad = (MOD_SIZE[1] - w % MOD_SIZE[1]) % MOD_SIZE[1]
    masked_imgs = torch.cat([masked_imgs, torch.flip(masked_imgs, [3])], 3)[:, :, :, : h + h_pad, :]
    return torch.cat([masked_imgs, torch.flip(masked_imgs, [4])], 4)[:, :, :, :, : w + w_pad]


@dataclasses.dataclass
class Prepared:
    """test.py's state before its window loop."""

    frames: list[np.ndarray]  # uint8 RGB [h, w, 3] after resizing
    imgs: torch.Tensor  # [1, T, 3, h, w] in [-1, 1]
    masks: torch.Tensor  # [1, T, 1, h, w] in {0, 1}
    binary_masks: list[np.ndarray]  # uint8 [h, w, 1] in {0, 1}: the dilated masks
    size: tuple[int, int]  # (w, h)


def prepare(frames: np.ndarray, masks: np.ndarray, variant: str) -> Prepared:
    """test.py's main_worker up to the loop: resize (non-HQ only), tensors, dilated masks."""
    size = E2FGVI_SIZE if variant == "e2fgvi" else None
    images = [Image.fromarray(f) for f in frames]
    if size is not None:
        images = [im.resize(size) for im in images]
    else:
        size = images[0].size
    imgs = to_tensors(images).unsqueeze(0) * 2 - 1
    rgb = [np.array(im).astype(np.uint8) for im in images]
    mask_images = read_masks(masks, size)
    binary_masks = [np.expand_dims((np.array(m) != 0).astype(np.uint8), 2) for m in mask_images]
    return Prepared(rgb, imgs, to_tensors(mask_images).unsqueeze(0), binary_masks, size)


def window_input(prep: Prepared, neighbor_ids: list[int], ref_ids: list[int]) -> torch.Tensor:
    """The padded masked clip test.py feeds the model for one window: [1, T, 3, H', W']."""
    w, h = prep.size
    selected_imgs = prep.imgs[:1, neighbor_ids + ref_ids, :, :, :]
    selected_masks = prep.masks[:1, neighbor_ids + ref_ids, :, :, :]
    masked_imgs = selected_imgs * (1 - selected_masks)
    return pad_like_test_py(masked_imgs, h, w)


@torch.no_grad()
def run_test_procedure(model: nn.Module, frames: np.ndarray, masks: np.ndarray, variant: str) -> dict:
    """upstream test.py main_worker on in-memory frames: every window's model output and the
    final composited frames (what test.py writes to its video, before the BGR swap)."""
    prep = prepare(frames, masks, variant)
    w, h = prep.size
    length = len(prep.frames)
    comp_frames: list[np.ndarray | None] = [None] * length
    near_step = np.zeros((length, h, w, 3), dtype=bool)
    outputs, flows, input_crc32 = [], [], []
    for neighbor_ids, ref_ids in window_plan(length):
        masked_imgs = window_input(prep, neighbor_ids, ref_ids)
        input_crc32.append(e2fgvi_weights.crc32_of([masked_imgs]))
        pred_imgs, pred_flows = model(masked_imgs, len(neighbor_ids))
        outputs.append(pred_imgs.clone())
        flows.append(tuple(f.clone() for f in pred_flows))
        pred_imgs = pred_imgs[:, :, :h, :w]
        pred_imgs = (pred_imgs + 1) / 2
        pred_imgs = pred_imgs.cpu().permute(0, 2, 3, 1).numpy() * 255
        for i in range(len(neighbor_ids)):
            idx = neighbor_ids[i]
            frac = np.asarray(pred_imgs[i]) % 1.0
            near = (frac < NEAR_STEP) | (frac > 1 - NEAR_STEP)
            near_step[idx] |= near & (prep.binary_masks[idx] != 0)
            img = np.array(pred_imgs[i]).astype(np.uint8) * prep.binary_masks[idx] + prep.frames[idx] * (
                1 - prep.binary_masks[idx]
            )
            if comp_frames[idx] is None:
                comp_frames[idx] = img
            else:
                comp_frames[idx] = comp_frames[idx].astype(np.float32) * 0.5 + img.astype(np.float32) * 0.5
    final = np.stack([c.astype(np.uint8) for c in comp_frames])
    return {
        "outputs": outputs,
        "flows": flows,
        "final": final,
        "near_step": near_step,
        "input_crc32": input_crc32,
        "dilated": np.stack([m[:, :, 0] != 0 for m in prep.binary_masks]),
        "prepared": prep,
    }


# ---------------------------------------------------------------------------------------------
# golden cases
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GoldenCase:
    """One golden run of test.py's procedure: which model, which clip, what raw output to keep."""

    name: str
    variant: str
    frames: int
    height: int
    width: int
    seed: int = 0
    raw_windows: tuple[int, ...] = (0, 1)  # windows whose model output is stored
    raw_stride: int = 2  # ... on this subgrid of the cropped output (keeps the files small)
    full_first_output: bool = True  # also window 0's first output at full (padded) resolution
    full_checks: bool = True  # False: only weight noise on window 0 (the 432x240 model is slow on CPU)


CASES = (
    # 100x200 pads to 120x216: 2x2 attention windows of 5x9 tokens, padding exercised both ways.
    GoldenCase("e2fgvi_hq_20f", "e2fgvi_hq", 20, 100, 200),
    # test.py resizes to 432x240 for the non-HQ model; a clip of that size is left as it is.
    GoldenCase(
        "e2fgvi_11f", "e2fgvi", 11, 240, 432, raw_windows=(0,), raw_stride=4, full_first_output=False, full_checks=False
    ),
)


def seeded_model(up: dict[str, types.ModuleType], case: GoldenCase) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    model = build_model(up, case.variant)
    weights = e2fgvi_weights.seeded_state_dict(e2fgvi_weights.load_layout(case.variant), seed=case.seed)
    model.load_state_dict(weights, strict=True)
    return model, weights


def golden_arrays(case: GoldenCase, result: dict, weights: dict[str, torch.Tensor], clip) -> dict[str, np.ndarray]:
    prep: Prepared = result["prepared"]
    w, h = prep.size
    plan = window_plan(case.frames)
    longest = max(len(n) + len(r) for n, r in plan)
    window_frames = np.full((len(plan), longest), -1, dtype=np.int64)
    for k, (neighbor_ids, ref_ids) in enumerate(plan):
        window_frames[k, : len(neighbor_ids) + len(ref_ids)] = neighbor_ids + ref_ids
    arrays = {
        "variant": np.array(case.variant),
        "frames": np.array(case.frames),
        "height": np.array(case.height),
        "width": np.array(case.width),
        "seed": np.array(case.seed),
        "neighbor_stride": np.array(NEIGHBOR_STRIDE),
        "ref_length": np.array(REF_LENGTH),
        "num_ref": np.array(NUM_REF),
        "size": np.array([h, w], dtype=np.int64),
        "model_size": np.array(result["outputs"][0].shape[-2:], dtype=np.int64),
        "window_frames": window_frames,
        "window_local": np.array([len(n) for n, _ in plan], dtype=np.int64),
        "window_input_crc32": np.array(result["input_crc32"], dtype=np.int64),
        "raw_stride": np.array(case.raw_stride),
        "flows_forward_w0": result["flows"][0][0][0].numpy().astype(np.float32),
        "flows_backward_w0": result["flows"][0][1][0].numpy().astype(np.float32),
        "dilated": result["dilated"],
        "final_masked": result["final"][result["dilated"]],
        "near_step": result["near_step"],
        "near_step_margin": np.array(NEAR_STEP),
        "clip_crc32": np.array(e2fgvi_weights.crc32_of(clip), dtype=np.int64),
        "weights_crc32": np.array(e2fgvi_weights.crc32_of(weights.values()), dtype=np.int64),
    }
    if case.full_first_output:
        arrays["raw_full_w0_t0"] = result["outputs"][0][0].numpy().astype(np.float32)
    s = case.raw_stride
    for k in case.raw_windows:
        arrays[f"raw_w{k}"] = result["outputs"][k][:, :, :h:s, :w:s].numpy().astype(np.float32)
    return arrays


# ---------------------------------------------------------------------------------------------
# checks: is the golden healthy, and is a 1e-4 tolerance meaningful on it?
# ---------------------------------------------------------------------------------------------


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


@torch.no_grad()
def _window_outputs(model: nn.Module, prep: Prepared, plan) -> list[torch.Tensor]:
    return [model(window_input(prep, n, r), len(n))[0] for n, r in plan]


@torch.no_grad()
def weight_noise_sensitivity(model: nn.Module, prep: Prepared, plan, base: list[torch.Tensor], rel: float) -> float:
    """Max output change when every float weight is multiplied by (1 + rel * N(0, 1)): what fp32
    rounding in a port (rel ~1e-7) can do to the output."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1234)
    noisy = {
        k: (v * (1 + rel * torch.randn(v.shape, generator=gen, dtype=torch.float64))).to(v.dtype)
        if v.is_floating_point()
        else v
        for k, v in saved.items()
    }
    model.load_state_dict(noisy)
    try:
        return _max_diff(_window_outputs(model, prep, plan), base)
    finally:
        model.load_state_dict(saved)


@torch.no_grad()
def final_frame_stability(model: nn.Module, clip, variant: str, base: dict, rel: float = 1e-6) -> dict:
    """The whole procedure again with noisy weights: do uint8 values change only where
    `near_step` says they may, and by at most 1?"""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(4321)
    model.load_state_dict(
        {
            k: (v * (1 + rel * torch.randn(v.shape, generator=gen, dtype=torch.float64))).to(v.dtype)
            if v.is_floating_point()
            else v
            for k, v in saved.items()
        }
    )
    try:
        noisy = run_test_procedure(model, *clip, variant)
    finally:
        model.load_state_dict(saved)
    diff = np.abs(noisy["final"].astype(int) - base["final"].astype(int))
    return {
        "max output change": float(
            max((a - b).abs().max() for a, b in zip(noisy["outputs"], base["outputs"], strict=True))
        ),
        "values changed": int((diff > 0).sum()),
        "changed outside near_step": int(((diff > 0) & ~base["near_step"]).sum()),
        "max uint8 change": int(diff.max()),
    }


def _masked_change(a: torch.Tensor, b: torch.Tensor, prep: Prepared, ids: list[int]) -> tuple[float, float]:
    """(mean, max) |a - b| over the dilated-mask pixels of the local frames ``ids``."""
    w, h = prep.size
    diffs = []
    for i, idx in enumerate(ids):
        inside = torch.from_numpy(prep.binary_masks[idx][:, :, 0] != 0)
        diffs.append((a[i, :, :h, :w] - b[i, :, :h, :w]).abs()[:, inside].flatten())
    d = torch.cat(diffs)
    return float(d.mean()), float(d.max())


@torch.no_grad()
def path_checks(model: nn.Module, prep: Prepared, plan, base: list[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """How much each path moves window 0's local outputs inside the masks: each must matter far
    more than 1e-4, or a port could get it wrong and still pass."""
    neighbor_ids, ref_ids = plan[0]
    local = len(neighbor_ids)
    ref0 = base[0][:local]
    checks = {}
    # reference frames: window 0 without its reference frame(s)
    out = model(window_input(prep, neighbor_ids, []), local)[0]
    checks["drop reference frames"] = _masked_change(out[:local], ref0, prep, neighbor_ids)
    # optical flow: SPyNet replaced by zero flow
    spynet_forward = model.update_spynet.forward
    model.update_spynet.forward = lambda ref, supp: torch.zeros_like(ref[:, :2])
    try:
        out = model(window_input(prep, neighbor_ids, ref_ids), local)[0]
    finally:
        model.update_spynet.forward = spynet_forward
    checks["zero flow"] = _masked_change(out[:local], ref0, prep, neighbor_ids)
    # deformable residual offsets and masks: offset head zeroed (offset = flow, mask = 0.5)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    state = dict(saved)
    for key in saved:
        if ".conv_offset.6." in key:
            state[key] = torch.zeros_like(saved[key])
    model.load_state_dict(state)
    out = model(window_input(prep, neighbor_ids, ref_ids), local)[0]
    model.load_state_dict(saved)
    checks["zero offset head"] = _masked_change(out[:local], ref0, prep, neighbor_ids)
    # transformer: SoftComp output zeroed (the encoder features pass straight to the decoder)
    state = dict(saved)
    for key in ("sc.embedding.weight", "sc.embedding.bias"):
        state[key] = torch.zeros_like(saved[key])
    model.load_state_dict(state, strict=False)
    out = model(window_input(prep, neighbor_ids, ref_ids), local)[0]
    model.load_state_dict(saved)
    checks["zero transformer residual"] = _masked_change(out[:local], ref0, prep, neighbor_ids)
    # temporal mixing: the last local frame replaced by the first one's pixels
    swapped = dataclasses.replace(prep, imgs=prep.imgs.clone())
    swapped.imgs[:, neighbor_ids[-1]] = prep.imgs[:, neighbor_ids[0]]
    out = model(window_input(swapped, neighbor_ids, ref_ids), local)[0]
    checks["last local frame replaced (frame 0 only)"] = _masked_change(out[:1], ref0[:1], prep, neighbor_ids[:1])
    return checks


def describe(case: GoldenCase, result: dict) -> dict:
    outs = torch.cat([o.flatten() for o in result["outputs"]])
    w, h = result["prepared"].size
    per_frame_std = torch.cat([o[:, :, :h, :w].std(dim=(1, 2, 3)) for o in result["outputs"]])
    flows = torch.cat([f.flatten() for pair in result["flows"] for f in pair])
    dilated = result["dilated"]
    return {
        "out min/max/mean/std": [
            round(float(outs.min()), 4),
            round(float(outs.max()), 4),
            round(float(outs.mean()), 4),
            round(float(outs.std()), 4),
        ],
        "out |x|>0.99 share": float((outs.abs() > 0.99).double().mean()),
        "out per-frame std min": round(float(per_frame_std.min()), 4),
        "flow |x| mean/max": [round(float(flows.abs().mean()), 4), round(float(flows.abs().max()), 4)],
        "dilated mask share": round(float(dilated.mean()), 4),
        "near_step share of masked values": round(float(result["near_step"].sum() / (3 * dilated.sum())), 4),
    }


def offset_statistics(model: nn.Module, prep: Prepared, plan) -> dict:
    """Offsets and modulation masks the deformable alignment really uses in window 0."""
    feat_prop = sys.modules[type(model.feat_prop_module).__module__]
    recorded = []
    original = feat_prop.modulated_deform_conv2d

    def recording(x, offset, mask, *args):
        recorded.append((offset.detach().clone(), mask.detach().clone()))
        return original(x, offset, mask, *args)

    feat_prop.modulated_deform_conv2d = recording
    try:
        with torch.no_grad():
            model(window_input(prep, *plan[0]), len(plan[0][0]))
    finally:
        feat_prop.modulated_deform_conv2d = original
    offsets = torch.cat([o.flatten() for o, _ in recorded])
    masks = torch.cat([m.flatten() for _, m in recorded])
    return {
        "deform calls": len(recorded),
        "offset |x| mean/max": [round(float(offsets.abs().mean()), 4), round(float(offsets.abs().max()), 4)],
        "modulation min/mean/max": [
            round(float(masks.min()), 4),
            round(float(masks.mean()), 4),
            round(float(masks.max()), 4),
        ],
    }


def write_goldens(up: dict[str, types.ModuleType], cases: tuple[GoldenCase, ...], checks: bool) -> None:
    for case in cases:
        started = time.perf_counter()
        model, weights = seeded_model(up, case)
        clip = e2fgvi_weights.golden_clip(case.frames, case.height, case.width)
        first = run_test_procedure(model, *clip, case.variant)
        elapsed = time.perf_counter() - started
        second = run_test_procedure(model, *clip, case.variant)
        outside = ~first["dilated"]
        if not np.array_equal(first["final"][outside], clip[0][outside]):
            raise RuntimeError("test.py's composition changed pixels outside the dilated masks")
        arrays = golden_arrays(case, first, weights, clip)
        again = golden_arrays(case, second, weights, clip)
        for key in arrays:
            if not np.array_equal(arrays[key], again[key]):
                raise RuntimeError(f"upstream is not deterministic on {case.name}: {key} differs")
        path = HERE / f"{case.name}.npz"
        np.savez_compressed(path, **arrays)
        print(
            f"{case.name}: {elapsed:.1f}s per run, deterministic over two runs; wrote {path.name} ({path.stat().st_size} bytes)"
        )
        print("  plan:", window_plan(case.frames))
        print("  stats:", describe(case, first))
        if checks:
            prep, plan = first["prepared"], window_plan(case.frames)
            print("  offsets:", offset_statistics(model, prep, plan))
            windows = len(plan) if case.full_checks else 1
            for rel in (1e-7, 1e-6)[: 2 if case.full_checks else 1]:
                change = weight_noise_sensitivity(model, prep, plan[:windows], first["outputs"][:windows], rel)
                print(f"  weight noise {rel:g} (windows 0..{windows - 1}): max output change {change:.3g}")
            if not case.full_checks:
                continue
            print("  final frames under 1e-6 weight noise:", final_frame_stability(model, clip, case.variant, first))
            for what, (mean, worst) in path_checks(model, prep, plan, first["outputs"]).items():
                print(f"  {what}: masked-pixel output change mean {mean:.3g} max {worst:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="E2FGVI checkout (model/ core/ test.py)")
    parser.add_argument("--only", choices=("layouts", "goldens", "all"), default="all")
    parser.add_argument("--case", action="append", help="only this golden case (repeatable)")
    parser.add_argument("--no-checks", action="store_true", help="skip the sensitivity checks")
    args = parser.parse_args()
    torch.set_num_threads(2)
    up = import_upstream(args.upstream.resolve())
    if args.only in ("layouts", "all"):
        print("layouts:", write_layouts(up, LAYOUTS_PATH))
    if args.only in ("goldens", "all"):
        check_deform_conv_shim()
        cases = CASES if not args.case else tuple(c for c in CASES if c.name in args.case)
        write_goldens(up, cases, checks=not args.no_checks)


if __name__ == "__main__":
    main()
