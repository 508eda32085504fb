"""DeAOT's FPN head: propagated features at stride 16 to per-identity logits at stride 4.

Ported from yoxu515/aot-benchmark@601c138 (BSD-3-Clause), networks/decoders/fpn.py
(FPNSegmentationHead) with networks/layers/basic.py's ConvGN, as DeAOT builds it: intermediate
propagation outputs are not decoded, so the head reads a single 512-channel map (the last
layer's two branches). Submodule names equal upstream's ``decoder.*`` keys without the prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

GN_GROUPS = 8


class ConvGN(nn.Module):
    """Conv (with bias, 'same' padding for odd kernels) then GroupNorm of 8 groups; no activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
        self.gn = nn.GroupNorm(GN_GROUPS, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gn(self.conv(x))


class FpnDecoder(nn.Module):
    """Top-down head fusing encoder shortcuts at strides 16, 8 and 4.

    Args:
        in_dim: channels of the propagated map (512 in every DeAOT: 256 per branch).
        out_dim: logit channels, one per identity (11: background and 10 objects).
        hidden_dim: width at stride 16 (256); strides 8 and 4 use half of it.
        shortcut_dims: channels of the encoder's four outputs (strides 4, 8, 16, 16). Only the
            first three are read: the fourth is the map DeAOT projects and propagates.
        align_corners: how the head upsamples; True for the CNN encoders (16k+1 inputs), False
            for Swin (16k inputs).
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden_dim: int, shortcut_dims: Sequence[int], align_corners: bool
    ) -> None:
        super().__init__()
        half = hidden_dim // 2
        self.align_corners = align_corners
        self.conv_in = ConvGN(in_dim, hidden_dim, 1)
        self.conv_16x = ConvGN(hidden_dim, hidden_dim, 3)
        self.conv_8x = ConvGN(hidden_dim, half, 3)
        self.conv_4x = ConvGN(half, half, 3)
        self.adapter_16x = nn.Conv2d(shortcut_dims[-2], hidden_dim, 1)
        self.adapter_8x = nn.Conv2d(shortcut_dims[-3], hidden_dim, 1)
        self.adapter_4x = nn.Conv2d(shortcut_dims[-4], half, 1)
        self.conv_out = nn.Conv2d(half, out_dim, 1)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor, shortcuts: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N,in_dim,h,w) at stride 16 and the encoder outputs to (N,out_dim,H4,W4) logits.

        ``shortcuts`` are indexed from the end as upstream does (``[-2]`` stride 16, ``[-3]``
        stride 8, ``[-4]`` stride 4), so a list of four encoder outputs fits; the result has
        the stride-4 shortcut's height and width.
        """
        x = F.relu(self.conv_in(x))
        x = F.relu(self.conv_16x(self.adapter_16x(shortcuts[-2]) + x))
        x = self._upsample(x, shortcuts[-3])
        x = F.relu(self.conv_8x(self.adapter_8x(shortcuts[-3]) + x))
        x = self._upsample(x, shortcuts[-4])
        x = F.relu(self.conv_4x(self.adapter_4x(shortcuts[-4]) + x))
        return self.conv_out(x)

    def _upsample(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=self.align_corners)
