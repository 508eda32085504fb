"""Modulated deformable convolution (DCNv2) in plain PyTorch, with mmcv's arithmetic.

Semantics of open-mmlab/mmcv@a8073c7 (Apache-2.0), ``mmcv.ops.modulated_deform_conv2d``, which
E2FGVI (MCG-NKU/E2FGVI@709cbe3, CC BY-NC 4.0) aligns its features with. mmcv's op is a compiled
CPU/CUDA kernel that cannot be exported; this one is two ordinary ops, so it runs wherever PyTorch
runs and exports to ONNX (GridSample + MatMul):

1. Every kernel tap of every output pixel is sampled with ONE ``grid_sample`` call per batch:
   the input is viewed as ``N * deform_groups`` images of ``C / deform_groups`` channels, and the
   grid holds ``taps * H_out`` rows of ``W_out`` points.
2. The sampled columns, scaled by the mask, meet the weights in one (grouped) matrix product.

mmcv's sampling rule, which ``grid_sample`` reproduces: a tap of output pixel ``(y, x)`` reads
the input at ``(y * stride - pad + i * dilation + dy, x * stride - pad + j * dilation + dx)`` in
pixel units of the unpadded input, bilinearly, and every one of the four neighbours that lies
outside the image counts as 0 (so a point with ``h <= -1`` or ``h >= H`` reads exactly 0, as does
mmcv's explicit range test). ``grid_sample`` with zero padding treats absent neighbours the same
way. The grid is normalised with ``align_corners=False`` (pixel ``p`` sits at ``(2p + 1) / W - 1``)
rather than ``True`` because ``True`` divides by ``W - 1`` and cannot address a one-pixel-wide
input; both give the same samples otherwise.

Layouts (mmcv's): ``offset`` is ``[N, deform_groups * taps * 2, H_out, W_out]`` with, per deform
group, one ``(dy, dx)`` pair per tap in row-major tap order; ``mask`` is
``[N, deform_groups * taps, H_out, W_out]`` and multiplies each sampled value before the weights.
Deform group ``g`` covers the input channels ``[g * C / dg, (g + 1) * C / dg)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, tuple):
        return value
    return (value, value)


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    deform_groups: int = 1,
) -> torch.Tensor:
    """Deformable convolution with per-tap offsets and modulation, as mmcv computes it.

    Args:
        x: ``[N, C_in, H, W]`` input.
        offset: ``[N, deform_groups * kh * kw * 2, H_out, W_out]``, ``(dy, dx)`` per tap, in input pixels.
        mask: ``[N, deform_groups * kh * kw, H_out, W_out]`` modulation (E2FGVI passes sigmoids).
        weight: ``[C_out, C_in / groups, kh, kw]``.
        bias: ``[C_out]`` or None.

    Returns:
        ``[N, C_out, H_out, W_out]`` with ``H_out = (H + 2 * pad - dilation * (kh - 1) - 1) // stride + 1``.
    """
    stride_h, stride_w = _pair(stride)
    pad_h, pad_w = _pair(padding)
    dil_h, dil_w = _pair(dilation)
    n, c_in, height, width = x.shape
    c_out, c_in_per_group, kernel_h, kernel_w = weight.shape
    taps = kernel_h * kernel_w
    if c_in % deform_groups or c_in_per_group * groups != c_in or c_out % groups:
        raise ValueError(
            f"channels must split evenly: input {c_in} into {deform_groups} deform groups and "
            f"{groups} groups of {c_in_per_group}, output {c_out} into {groups}, got a mismatch"
        )
    if offset.shape[1] != deform_groups * taps * 2 or mask.shape[1] != deform_groups * taps:
        raise ValueError(
            f"offset and mask must have {deform_groups * taps * 2} and {deform_groups * taps} channels, "
            f"got {offset.shape[1]} and {mask.shape[1]}"
        )
    out_h = (height + 2 * pad_h - dil_h * (kernel_h - 1) - 1) // stride_h + 1
    out_w = (width + 2 * pad_w - dil_w * (kernel_w - 1) - 1) // stride_w + 1
    if tuple(offset.shape[2:]) != (out_h, out_w) or tuple(mask.shape[2:]) != (out_h, out_w):
        raise ValueError(
            f"offset and mask must cover the {out_h}x{out_w} output, "
            f"got {tuple(offset.shape[2:])} and {tuple(mask.shape[2:])}"
        )

    # Where each tap of each output pixel lands before its offset: rows depend on (tap row, y),
    # columns on (tap column, x). Shapes broadcast to [taps, H_out, W_out].
    dtype, device = x.dtype, x.device
    rows = torch.arange(out_h, dtype=dtype, device=device) * stride_h - pad_h
    cols = torch.arange(out_w, dtype=dtype, device=device) * stride_w - pad_w
    tap_rows = torch.arange(kernel_h, dtype=dtype, device=device) * dil_h
    tap_cols = torch.arange(kernel_w, dtype=dtype, device=device) * dil_w
    base_y = (tap_rows[:, None, None, None] + rows[None, None, :, None]).expand(kernel_h, kernel_w, out_h, 1)
    base_x = (tap_cols[None, :, None, None] + cols[None, None, None, :]).expand(kernel_h, kernel_w, 1, out_w)
    base_y = base_y.reshape(taps, out_h, 1)
    base_x = base_x.reshape(taps, 1, out_w)

    offset = offset.to(dtype).reshape(n, deform_groups, taps, 2, out_h, out_w)
    sample_y = base_y + offset[:, :, :, 0]
    sample_x = base_x + offset[:, :, :, 1]
    grid = torch.stack(((2 * sample_x + 1) / width - 1, (2 * sample_y + 1) / height - 1), dim=-1)
    grid = grid.reshape(n * deform_groups, taps * out_h, out_w, 2)

    images = x.reshape(n * deform_groups, c_in // deform_groups, height, width)
    sampled = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(n, deform_groups, c_in // deform_groups, taps, out_h, out_w)
    sampled = sampled * mask.to(dtype).reshape(n, deform_groups, 1, taps, out_h, out_w)

    # [N, C_in, taps, P] regrouped so each conv group's (channel, tap) pairs form one matrix,
    # ordered like the weight's flattened [C_in / groups, kh, kw].
    columns = sampled.reshape(n, groups, c_in_per_group * taps, out_h * out_w)
    kernels = weight.to(dtype).reshape(groups, c_out // groups, c_in_per_group * taps)
    out = torch.matmul(kernels, columns).reshape(n, c_out, out_h, out_w)
    if bias is not None:
        out = out + bias.to(dtype).reshape(1, c_out, 1, 1)
    return out


class ModulatedDeformConv2d(nn.Module):
    """Holds a deformable convolution's weights under mmcv's names (``weight``, ``bias``).

    Subclasses (E2FGVI's alignment) compute the offsets and mask themselves and call
    :func:`modulated_deform_conv2d`; mmcv's base class likewise owns no offset branch (its
    ``conv_offset`` lives only in the ``...Pack`` subclass), so checkpoints map one to one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
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
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mmcv's initialisation (uniform in +-1/sqrt(fan_in), zero bias); checkpoints overwrite it."""
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[N, C_in, H, W]``; offset and mask laid out as :func:`modulated_deform_conv2d` says."""
        return modulated_deform_conv2d(
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
