"""MobileNetV2 as DeAOT-T/S/B/L's image encoder: output stride 16, four feature maps.

Ported from yoxu515/aot-benchmark@601c138 (BSD-3-Clause), networks/encoders/mobilenetv2.py as
``build_encoder('mobilenetv2')`` makes it (FrozenBatchNorm2d, output stride 16). Module names
follow upstream's (``features.<i>.conv.<j>``) so the official checkpoints load strictly.

Once the running stride reaches 16, later stages keep it and dilate their depthwise 3x3 convs
instead. Upstream dilates the first block of such a stage by the rate *before* that stage's
multiplier and the rest by the rate after it, which we reproduce: in the stride-2 160-channel
stage that is dilation 1, 2, 2, then 2 for the 320-channel block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cleanfeed.engines.deaot.encoders.frozen_bn import FrozenBatchNorm2d

LAST_CHANNELS = 1280
STEM_CHANNELS = 32
OUTPUT_STRIDE = 16
STAGE_ENDS = (4, 7, 14)
"""``features`` indices where the stride-4, stride-8 and stride-16 outputs are taken (exclusive ends)."""


@dataclass(frozen=True)
class _BlockGroup:
    """A run of inverted residual blocks: expansion factor, output channels, repeats, first stride."""

    expand: int
    channels: int
    repeats: int
    stride: int


_GROUPS = (
    _BlockGroup(1, 16, 1, 1),
    _BlockGroup(6, 24, 2, 2),
    _BlockGroup(6, 32, 3, 2),
    _BlockGroup(6, 64, 4, 2),
    _BlockGroup(6, 96, 3, 1),
    _BlockGroup(6, 160, 3, 2),
    _BlockGroup(6, 320, 1, 1),
)


def _conv_bn_relu6(
    in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1
) -> nn.Sequential:
    """Conv (no bias), frozen BN, ReLU6 as a Sequential, so weights sit at ``.0`` and ``.1``."""
    padding = (kernel - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
        FrozenBatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when ``expand == 1``), depthwise 3x3, linear 1x1 projection; residual when shapes agree."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(in_ch, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, dilation=dilation, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            FrozenBatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2Encoder(nn.Module):
    """Image (N,3,H,W), ImageNet-normalised RGB, to features at strides 4, 8, 16, 16.

    Channels 24, 32, 96, 1280. Any H, W works; each stride-2 conv gives ``(s - 1) // 2 + 1``,
    so 97x177 gives 25x45, 13x23, 7x12, 7x12.
    """

    def __init__(self) -> None:
        super().__init__()
        features: list[nn.Module] = [_conv_bn_relu6(3, STEM_CHANNELS, stride=2)]
        stride, rate, in_ch = 2, 1, STEM_CHANNELS
        for group in _GROUPS:
            if stride == OUTPUT_STRIDE:
                first_stride, first_dilation = 1, rate
                rate *= group.stride
            else:
                first_stride, first_dilation = group.stride, 1
                stride *= group.stride
            for i in range(group.repeats):
                if i == 0:
                    block = InvertedResidual(in_ch, group.channels, first_stride, first_dilation, group.expand)
                else:
                    block = InvertedResidual(in_ch, group.channels, 1, rate, group.expand)
                features.append(block)
                in_ch = group.channels
        features.append(_conv_bn_relu6(in_ch, LAST_CHANNELS, kernel=1))
        self.features = nn.Sequential(*features)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        ends = (*STAGE_ENDS, len(self.features))
        outputs = []
        for index, layer in enumerate(self.features, start=1):
            x = layer(x)
            if index in ends:
                outputs.append(x)
        return outputs
