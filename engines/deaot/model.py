"""The DeAOT network: encoder, identity bank, propagation layers and FPN decoder, under upstream's names.

The module tree mirrors aot-benchmark's ``DeAOT`` (networks/models/deaot.py) attribute for
attribute — ``encoder``, ``encoder_projector``, ``LSTT``, ``decoder``, ``patch_wise_id_bank``,
``id_norm`` — so an official state dict loads with ``strict=True``. The methods are the steps
the tracker and the exported graphs compose; none keeps state between frames.
"""

from __future__ import annotations

import torch
from torch import nn

from cleanfeed.engines.deaot.decoder import FpnDecoder
from cleanfeed.engines.deaot.encoders import build_encoder
from cleanfeed.engines.deaot.propagation import Propagator, map_to_tokens, tokens_to_map
from cleanfeed.engines.deaot.variants import EMBED_DIM, ID_CHANNELS, PIXEL_MEAN, PIXEL_STD, STRIDE, DeaotArch


class DeAOT(nn.Module):
    """One DeAOT variant's network, in eval mode."""

    def __init__(self, arch: DeaotArch) -> None:
        super().__init__()
        self.arch = arch
        dims = arch.encoder_dims
        self.encoder = build_encoder(arch.encoder)
        self.encoder_projector = nn.Conv2d(dims[-1], EMBED_DIM, kernel_size=1)
        self.LSTT = Propagator(arch.layers, EMBED_DIM)
        self.decoder = FpnDecoder(2 * EMBED_DIM, ID_CHANNELS, EMBED_DIM, dims, arch.align_corners)
        # Corner-aligned variants patchify 16k+1 masks with a 17x17 kernel centred on every 16th pixel.
        kernel, padding = (STRIDE + 1, STRIDE // 2) if arch.align_corners else (STRIDE, 0)
        self.patch_wise_id_bank = nn.Conv2d(ID_CHANNELS, EMBED_DIM, kernel, stride=STRIDE, padding=padding)
        self.id_norm = nn.LayerNorm(EMBED_DIM)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1) * 255, persistent=False)
        self.eval()

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Features of ``[N, 3, H, W]`` RGB in 0..255 at model size: strides 4, 8, 16, and 16 projected to 256 channels."""
        features = list(self.encoder((image - self.pixel_mean) / self.pixel_std))
        features[-1] = self.encoder_projector(features[-1])
        return features

    def embed_ids(self, one_hot: torch.Tensor) -> torch.Tensor:
        """``[N, T, 256]`` identity tokens of a ``[N, 11, H, W]`` one-hot mask (channel 0 = background)."""
        return self.id_norm(map_to_tokens(self.patch_wise_id_bank(one_hot)))

    def decode(self, propagated: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """``[N, 11, H/4, W/4]``-ish id logits from the propagated tokens and the encoder's shortcuts."""
        size = features[-1].shape[-2:]
        return self.decoder(tokens_to_map(propagated, (int(size[0]), int(size[1]))), features)
