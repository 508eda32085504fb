"""Batch normalisation with fixed statistics, the norm layer of DeAOT's CNN encoders.

Ported from yoxu515/aot-benchmark@601c138 (BSD-3-Clause), networks/layers/normalization.py.
The official checkpoints store these four tensors as buffers (not parameters), so the class
keeps them as buffers under the same names; nothing here ever updates them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel of NCHW input.

    ``running_var`` starts at ``1 - eps`` as upstream's does, so an unloaded layer is the
    identity; loaded weights overwrite it anyway.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
