"""E2FGVI's flow-guided feature propagation: second-order deformable alignment, both directions.

Ported from MCG-NKU/E2FGVI@709cbe3 (CC BY-NC 4.0), model/modules/feat_prop.py, itself adapted
from BasicVSR++. The generator holds a ``BidirectionalPropagation(channel=128)`` as
``feat_prop_module``; parameter names match upstream's so official checkpoints load strictly:
``deform_align.{backward_,forward_}.{weight,bias,conv_offset.<0|2|4|6>.*}``,
``backbone.{backward_,forward_}.<0|2>.*`` and ``fusion.*``.

Upstream's indexing is kept exactly, including the part that looks wrong, because the official
weights were trained with it (see :meth:`BidirectionalPropagation.forward`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cleanfeed.engines.e2fgvi.deform_conv import ModulatedDeformConv2d, modulated_deform_conv2d
from cleanfeed.engines.e2fgvi.flow import flow_warp

DIRECTIONS = ("backward_", "forward_")
"""Branch names in upstream's order: the backward pass runs first and the forward pass reads it."""


def _to_grid(flow: torch.Tensor) -> torch.Tensor:
    """``[N, 2, H, W]`` flow to the channels-last ``[N, H, W, 2]`` that :func:`flow_warp` takes."""
    return flow.permute(0, 2, 3, 1)


class SecondOrderDeformableAlignment(ModulatedDeformConv2d):
    """Aligns the two previously propagated features to the current frame.

    The deformable offsets are the flows (to the previous and the one-before-previous frame)
    plus a bounded learned residual; the mask is a learned sigmoid. The input's first half of
    deform groups (the previous feature's channels) follows ``flow_1``, the second half
    (the one-before-previous feature's) follows ``flow_2``.
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
        max_residue_magnitude: float = 10.0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deform_groups, bias)
        self.max_residue_magnitude = max_residue_magnitude
        taps = self.kernel_size[0] * self.kernel_size[1]
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * out_channels + 4, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(out_channels, 3 * taps * deform_groups, 3, 1, 1),
        )
        # Zero residuals at first: the alignment starts as pure flow warping (upstream's init_offset).
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, extra_feat: torch.Tensor, flow_1: torch.Tensor, flow_2: torch.Tensor
    ) -> torch.Tensor:
        """Align ``x`` to the current frame.

        Args:
            x: ``[N, in_channels, H, W]``, the previous and the one-before-previous propagated
                features, concatenated in that order (unwarped).
            extra_feat: ``[N, 3 * out_channels, H, W]``, the conditions (warped previous feature,
                current feature, warped one-before-previous feature).
            flow_1, flow_2: ``[N, 2, H, W]`` pixel flows ``(dx, dy)`` from the current frame to the
                previous and to the one-before-previous frame.

        Returns:
            ``[N, out_channels, H, W]``.
        """
        out = self.conv_offset(torch.cat([extra_feat, flow_1, flow_2], dim=1))
        offset_raw_1, offset_raw_2, mask = torch.chunk(out, 3, dim=1)
        offset = self.max_residue_magnitude * torch.tanh(torch.cat((offset_raw_1, offset_raw_2), dim=1))
        offset_1, offset_2 = torch.chunk(offset, 2, dim=1)
        # Offsets are (dy, dx) per tap; flows are (dx, dy): flip, then repeat for every tap and group.
        offset_1 = offset_1 + flow_1.flip(1).repeat(1, offset_1.shape[1] // 2, 1, 1)
        offset_2 = offset_2 + flow_2.flip(1).repeat(1, offset_2.shape[1] // 2, 1, 1)
        return modulated_deform_conv2d(
            x,
            torch.cat([offset_1, offset_2], dim=1),
            torch.sigmoid(mask),
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.deform_groups,
        )


class BidirectionalPropagation(nn.Module):
    """Propagates features through a clip backward, then forward, and fuses both into each frame."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel
        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, name in enumerate(DIRECTIONS):
            self.deform_align[name] = SecondOrderDeformableAlignment(
                2 * channel, channel, 3, padding=1, deform_groups=16
            )
            # The forward branch also reads the backward branch's output, hence (2 + i) inputs.
            self.backbone[name] = nn.Sequential(
                nn.Conv2d((2 + i) * channel, channel, 3, 1, 1),
                nn.LeakyReLU(negative_slope=0.1, inplace=True),
                nn.Conv2d(channel, channel, 3, 1, 1),
            )
        self.fusion = nn.Conv2d(2 * channel, channel, 1, 1, 0)

    def forward(self, x: torch.Tensor, flows_backward: torch.Tensor, flows_forward: torch.Tensor) -> torch.Tensor:
        """Propagate ``[N, T, C, H, W]`` features; returns the same shape (a residual on ``x``).

        ``flows_backward`` / ``flows_forward`` are ``[N, T - 1, 2, H, W]`` pixel flows, ``(dx, dy)``.
        The names say which branch uses them, not the flows' direction (upstream issues #43, #80;
        the authors confirm it is intended): E2FGVI's generator passes its
        ``pred_flows_forward`` (``flows[:, k]`` = flow from frame ``k`` to ``k + 1``) as
        ``flows_backward`` and its backward flows (``k + 1`` to ``k``) as ``flows_forward``.

        The backward branch visits frames ``T-1, ..., 0``, but reads its flows by STEP, exactly as
        upstream does (issues #33, #58; kept "for reproducibility" by the authors): at step
        ``s >= 1`` (frame ``T-1-s``) it warps with ``flows_backward[:, s - 1]`` and, for the
        second order, composes it with ``flows_backward[:, s - 2]``. BasicVSR++ would use
        ``flows_backward[:, T-1-s]`` (and ``[:, T-s]``), which differs except at ``s = T / 2``. The
        forward branch's step and frame coincide, so it uses ``flows_forward[:, t - 1]`` at frame
        ``t`` as intended. The checkpoints were trained with this indexing, so it stays.
        """
        frames = list(x.unbind(dim=1))
        t = len(frames)
        backward = self._propagate("backward_", frames, list(range(t - 1, -1, -1)), flows_backward, [])
        forward = self._propagate("forward_", frames, list(range(t)), flows_forward, [backward])
        fused = [self.fusion(torch.cat([backward[i], forward[i]], dim=1)) for i in range(t)]
        return torch.stack(fused, dim=1) + x

    def _propagate(
        self,
        name: str,
        frames: Sequence[torch.Tensor],
        order: Sequence[int],
        flows: torch.Tensor,
        earlier: Sequence[dict[int, torch.Tensor]],
    ) -> dict[int, torch.Tensor]:
        """One direction: frame index -> propagated feature, visiting ``order``.

        ``earlier`` holds the outputs of branches already run (frame index -> feature), which
        the backbone reads beside the current frame's own feature.
        """
        align, backbone = self.deform_align[name], self.backbone[name]
        steps: list[torch.Tensor] = []
        out: dict[int, torch.Tensor] = {}
        feat_prop = frames[0].new_zeros(frames[0].shape[0], self.channel, *frames[0].shape[2:])
        for step, idx in enumerate(order):
            current = frames[idx]
            if step > 0:
                flow_n1 = flows[:, step - 1]  # by step, not by frame: see forward()
                cond_n1 = flow_warp(feat_prop, _to_grid(flow_n1))
                if step > 1:
                    feat_n2 = steps[-2]
                    # Second order: previous flow, then the flow before it read where that leads.
                    flow_n2 = flow_n1 + flow_warp(flows[:, step - 2], _to_grid(flow_n1))
                    cond_n2 = flow_warp(feat_n2, _to_grid(flow_n2))
                else:
                    feat_n2 = torch.zeros_like(feat_prop)
                    flow_n2 = torch.zeros_like(flow_n1)
                    cond_n2 = torch.zeros_like(cond_n1)
                feat_prop = align(
                    torch.cat([feat_prop, feat_n2], dim=1),
                    torch.cat([cond_n1, current, cond_n2], dim=1),
                    flow_n1,
                    flow_n2,
                )
            feat = torch.cat([current, *(branch[idx] for branch in earlier), feat_prop], dim=1)
            feat_prop = feat_prop + backbone(feat)
            steps.append(feat_prop)
            out[idx] = feat_prop
        return out
