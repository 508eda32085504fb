"""ResNet-50 without its last stage, R50-DeAOT-L's image encoder: output stride 16, four feature maps.

Ported from yoxu515/aot-benchmark@601c138 (BSD-3-Clause), networks/encoders/resnet.py as
``ResNet50(16, FrozenBatchNorm2d)`` makes it. Upstream drops ``layer4`` (following STM), so at
output stride 16 no convolution is dilated at all, and the last output repeats ``layer3``.
Bottlenecks stride in their 3x3 conv (torchvision's "v1.5"); names follow upstream's so the
official checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import nn

from cleanfeed.engines.deaot.encoders.frozen_bn import FrozenBatchNorm2d

EXPANSION = 4
STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2))
"""(width, blocks, stride) of layer1..layer3."""


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by four; projected shortcut when shapes change."""

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        out_ch = width * EXPANSION
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


def _stage(in_ch: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    out_ch = width * EXPANSION
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), FrozenBatchNorm2d(out_ch))
    layers = [Bottleneck(in_ch, width, stride, downsample)]
    layers += [Bottleneck(out_ch, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50Encoder(nn.Module):
    """Image (N,3,H,W), ImageNet-normalised RGB, to features at strides 4, 8, 16, 16.

    Channels 256, 512, 1024, 1024; the last two are the same tensor (``layer3``'s output), as
    upstream returns it. 97x177 gives 25x45, 13x23, 7x12, 7x12.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = 64
        stages = []
        for width, blocks, stride in STAGES:
            stages.append(_stage(in_ch, width, blocks, stride))
            in_ch = width * EXPANSION
        self.layer1, self.layer2, self.layer3 = stages

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x4 = self.layer1(x)
        x8 = self.layer2(x4)
        x16 = self.layer3(x8)
        return [x4, x8, x16, x16]
