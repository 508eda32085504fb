"""Optical flow for E2FGVI: the SPyNet that completes flows between masked frames, and flow warping.

Ported from MCG-NKU/E2FGVI@709cbe3 (CC BY-NC 4.0), model/modules/flow_comp.py (itself BasicVSR's
SPyNet from MMEditing). The generator holds it as ``update_spynet`` and fine-tunes it, so its
weights come from the E2FGVI checkpoint; nothing is downloaded (upstream fetches MMEditing's
SPyNet weights when it is built, only to overwrite them with the checkpoint's).

Module names follow upstream's state dict: ``basic_module.<level>.basic_module.<k>.conv.weight``
(mmcv's ConvModule keeps its convolution as ``conv``) and the ``mean`` / ``std`` buffers.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 6
"""Pyramid levels: the coarsest is 1/32 of the (padded) input, hence sizes rounded up to 32."""


def flow_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    interpolation: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> torch.Tensor:
    """Sample ``x`` at each pixel displaced by ``flow`` (backward warping), as upstream does.

    Args:
        x: ``[N, C, H, W]`` image or features.
        flow: ``[N, H, W, 2]`` displacement in pixels, ``(dx, dy)`` (channels last).
        interpolation: ``grid_sample`` mode, ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``grid_sample`` padding, ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: passed to ``grid_sample``. The grid is always normalised the
            ``align_corners=True`` way (by ``W - 1``), as upstream does, so only True is consistent.

    Returns:
        ``[N, C, H, W]``: ``x`` read at ``(col + dx, row + dy)``.
    """
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow must cover the input's {tuple(x.shape[-2:])} pixels, got {tuple(flow.shape[1:3])}")
    height, width = x.shape[-2:]
    rows = torch.arange(height, dtype=x.dtype, device=x.device).reshape(height, 1)
    cols = torch.arange(width, dtype=x.dtype, device=x.device).reshape(1, width)
    # Same operation order as upstream ((2 * p) / (size - 1) - 1) so the grid matches bit for bit.
    grid_x = 2.0 * (cols + flow[..., 0]) / max(width - 1, 1) - 1.0
    grid_y = 2.0 * (rows + flow[..., 1]) / max(height - 1, 1) - 1.0
    grid = torch.stack((grid_x, grid_y), dim=3)
    return F.grid_sample(x, grid, mode=interpolation, padding_mode=padding_mode, align_corners=align_corners)


class ConvModule(nn.Module):
    """A convolution and an optional ReLU, named as mmcv's ConvModule names them (``conv``)."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=1, padding=3)
        self.activate = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.activate is None else self.activate(x)


class SPyNetBasicModule(nn.Module):
    """One pyramid level: refines a flow from (reference, warped support, current flow)."""

    def __init__(self) -> None:
        super().__init__()
        widths = (8, 32, 64, 32, 16, 2)
        self.basic_module = nn.Sequential(
            *(ConvModule(c_in, c_out, relu=c_out != 2) for c_in, c_out in pairwise(widths))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 8, H, W]`` (reference RGB, warped support RGB, flow) to a ``[N, 2, H, W]`` residual."""
        return self.basic_module(x)


class SPyNet(nn.Module):
    """Coarse-to-fine flow from ``ref`` to ``supp``: where each ``ref`` pixel lies in ``supp``."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList(SPyNetBasicModule() for _ in range(LEVELS))
        # ImageNet statistics; upstream registers them as (persistent) buffers, so checkpoints hold them.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def compute_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow between ``[N, 3, H, W]`` frames whose sides are multiples of 32, as ``[N, 2, H, W]``."""
        n, _, height, width = ref.shape
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(LEVELS - 1):
            refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2))
            supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2))

        flow = ref.new_zeros(n, 2, height // 32, width // 32)
        for level, block in enumerate(self.basic_module):
            ref_level, supp_level = refs[LEVELS - 1 - level], supps[LEVELS - 1 - level]
            if level > 0:
                # Twice the size: the displacements double with it.
                flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supp_level, flow.permute(0, 2, 3, 1), padding_mode="border")
            flow = flow + block(torch.cat([ref_level, warped, flow], dim=1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow from ``ref`` to ``supp`` (both ``[N, 3, H, W]``, RGB in [0, 1]) as ``[N, 2, H, W]`` pixels.

        Frames are resized (not padded) up to multiples of 32, and the flow is resized back and
        its components rescaled to the original pixel units.
        """
        height, width = ref.shape[2:4]
        # (n + 31) // 32 rather than -(-n // 32): the same for sizes, and ONNX exports integer
        # division of negative sizes as truncation (Div), which would round the wrong way.
        height_up = (height + 31) // 32 * 32
        width_up = (width + 31) // 32 * 32
        ref = F.interpolate(ref, size=(height_up, width_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(height_up, width_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self.compute_flow(ref, supp), size=(height, width), mode="bilinear", align_corners=False)
        scale = torch.tensor([width / width_up, height / height_up], dtype=flow.dtype, device=flow.device)
        return flow * scale.reshape(1, 2, 1, 1)
