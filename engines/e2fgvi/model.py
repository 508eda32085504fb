"""E2FGVI's generator: encoder, flow completion, feature propagation, transformer, decoder.

Ported from MCG-NKU/E2FGVI@709cbe3 (CC BY-NC 4.0), model/e2fgvi_hq.py (``InpaintGenerator``,
``Encoder``, ``deconv``), for inference only. The fixed-432x240 release (model/e2fgvi.py) is the
same network but for the soft composition's bias, a learned map of the 240x432 frame's
features (``sc.bias``): ``InpaintGenerator(fixed_size=FIXED_FRAME)`` builds it, and it refuses
every other frame size. (Its encoder takes the feature size from the input, HQ's from the stem's
output: at 240x432 both are 60x108.) Attribute names equal upstream's — ``encoder``,
``decoder``, ``feat_prop_module``, ``ss``, ``sc``, ``transformer``, ``update_spynet``, registered in
upstream's order — so E2FGVI-HQ-CVPR22.pth loads with ``strict=True``. Upstream's weight
initialisation and training-only discriminator are not ported: weights always come from a checkpoint.

Frame sizes: every side must be a multiple of 4 (the flows are computed at a quarter of the frame
size and the encoder's strided convolutions round up), and the quarter-size feature map must cut
into a token grid that 5x9 attention windows tile. Upstream's test.py pads frames by mirroring up to
multiples of :data:`MOD_SIZE` (60x108), which always satisfies both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cleanfeed.engines.e2fgvi.flow import SPyNet
from cleanfeed.engines.e2fgvi.propagation import BidirectionalPropagation
from cleanfeed.engines.e2fgvi.transformer import DIM, T2T, SoftComp, SoftSplit, build_blocks, check_grid

CHANNELS = 128
"""Width of the quarter-resolution features the encoder makes and the decoder reads (upstream's channel // 2)."""
MOD_SIZE = (60, 108)
"""Upstream's test.py pads frames to multiples of this (height, width) before the generator."""
FIXED_FRAME = (240, 432)
"""The fixed-432x240 E2FGVI's one frame size (height, width); test.py resizes every frame to it."""


class Encoder(nn.Module):
    """RGB frames to quarter-resolution features: a plain stem, then five convolutions that each also
    re-read the stem's output, interleaved group by group with their input (upstream's grouped encoder).

    ``layers`` keeps upstream's flat list (convolutions at even indices, LeakyReLUs after them) so
    the checkpoint's ``encoder.layers.<i>.*`` names apply.
    """

    GROUPS = (1, 2, 4, 8, 1)
    """Groups of the convolutions after the stem; the first reads the stem's output alone."""
    STEM = 8
    """Layers (four convolutions and their activations) before the grouped part."""

    def __init__(self) -> None:
        super().__init__()
        # (in, out, stride, groups) per convolution; the grouped ones read 256 stem channels too.
        convs = [
            (3, 64, 2, 1), (64, 64, 1, 1), (64, 128, 2, 1), (128, 256, 1, 1),
            (256, 384, 1, 1), (640, 512, 1, 2), (768, 384, 1, 4), (640, 256, 1, 8), (512, 128, 1, 1),
        ]  # fmt: skip
        layers: list[nn.Module] = []
        for c_in, c_out, stride, groups in convs:
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, groups=groups))
            layers.append(nn.LeakyReLU(0.2))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` to ``[N, 128, ceil(H/4), ceil(W/4)]``."""
        for layer in self.layers[: self.STEM]:
            x = layer(x)
        stem, out = x, x
        n, _, h, w = stem.shape
        for i, groups in enumerate(self.GROUPS):
            if i > 0:
                # Each group of the convolution sees its share of the stem next to its share of ``out``.
                out = torch.cat([stem.view(n, groups, -1, h, w), out.view(n, groups, -1, h, w)], 2).view(n, -1, h, w)
            conv, act = self.layers[self.STEM + 2 * i], self.layers[self.STEM + 2 * i + 1]
            out = act(conv(out))
        return out


class deconv(nn.Module):  # upstream's (lower-case) class name, kept so the port reads against it
    """Upsampling by 2 (bilinear, corners aligned) then a stride-1 convolution."""

    def __init__(self, input_channel: int, output_channel: int, kernel_size: int = 3, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(input_channel, output_channel, kernel_size=kernel_size, stride=1, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))


def check_frame_size(height: int, width: int) -> None:
    """Raise ``ValueError`` unless the generator can run on frames of this size (see the module docstring)."""
    if height % 4 or width % 4:
        raise ValueError(f"E2FGVI frame size must be a multiple of 4 on each side, got {height}x{width}")
    check_grid(T2T.grid((height // 4, width // 4)))


class InpaintGenerator(nn.Module):
    """E2FGVI(-HQ): fills the masked parts of a window of frames from what the other frames show.

    The first ``num_local_frames`` frames are consecutive neighbours: flows between them (SPyNet at
    quarter size) guide a bidirectional propagation of their features. The remaining frames are
    sparse references that only the transformer reads. Every frame is decoded; callers keep the
    local ones.

    ``fixed_size=None`` is E2FGVI-HQ (any frame size the module docstring allows);
    ``fixed_size=FIXED_FRAME`` the fixed-432x240 E2FGVI, which takes frames of exactly that size.
    """

    def __init__(self, fixed_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        if fixed_size is not None:
            check_frame_size(*fixed_size)
        self.fixed_size = None if fixed_size is None else (int(fixed_size[0]), int(fixed_size[1]))
        self.encoder = Encoder()
        self.decoder = nn.Sequential(
            deconv(CHANNELS, 128, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(128, 64, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(0.2),
            deconv(64, 64, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 3, kernel_size=3, stride=1, padding=1),
        )
        self.feat_prop_module = BidirectionalPropagation(CHANNELS)
        self.ss = SoftSplit(CHANNELS, DIM, T2T)
        features = None if fixed_size is None else (fixed_size[0] // 4, fixed_size[1] // 4)
        self.sc = SoftComp(CHANNELS, DIM, T2T, fixed_size=features)
        self.transformer = build_blocks()
        self.update_spynet = SPyNet()

    def forward_bidirect_flow(self, local_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, L, 3, H, W]`` RGB in [0, 1] to flows between consecutive frames at quarter size, each
        ``[B, L-1, 2, H/4, W/4]`` in quarter-size pixels: forward (frame k to k+1), then backward."""
        b, frames, c, h, w = local_frames.shape
        small = F.interpolate(local_frames.reshape(-1, c, h, w), size=(h // 4, w // 4), mode="bilinear",
                              align_corners=True)  # fmt: skip
        small = small.view(b, frames, c, h // 4, w // 4)
        earlier = small[:, :-1].reshape(-1, c, h // 4, w // 4)
        later = small[:, 1:].reshape(-1, c, h // 4, w // 4)
        forward = self.update_spynet(earlier, later).view(b, frames - 1, 2, h // 4, w // 4)
        backward = self.update_spynet(later, earlier).view(b, frames - 1, 2, h // 4, w // 4)
        return forward, backward

    def forward(
        self, masked_frames: torch.Tensor, num_local_frames: int
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Inpaint ``[B, T, 3, H, W]`` RGB frames in [-1, 1] whose holes are already zeroed.

        Returns ``[B*T, 3, H, W]`` in [-1, 1] (tanh) and the local frames' (forward, backward) flows
        from :meth:`forward_bidirect_flow`. Raises ``ValueError`` for sizes the model cannot take and for
        ``num_local_frames`` outside 1..T (upstream fails inside the propagation on 0).
        """
        b, t, c, height, width = masked_frames.shape
        if self.fixed_size is not None and (height, width) != self.fixed_size:
            raise ValueError(
                f"E2FGVI (fixed 432x240) frame size must be {self.fixed_size[0]}x{self.fixed_size[1]} "
                f"(resize frames to it, as test.py does), got {height}x{width}"
            )
        check_frame_size(height, width)
        if not 1 <= num_local_frames <= t:
            raise ValueError(f"E2FGVI num_local_frames must be 1..{t} (the frames given), got {num_local_frames}")
        local = num_local_frames
        flows = self.forward_bidirect_flow((masked_frames[:, :local] + 1) / 2)

        feats = self.encoder(masked_frames.reshape(b * t, c, height, width))
        _, channels, h, w = feats.shape
        feats = feats.view(b, t, channels, h, w)
        # Upstream hands the forward flows to the branch it calls "backward" (see propagation.py).
        propagated = self.feat_prop_module(feats[:, :local], flows[0], flows[1])
        feats = torch.cat([propagated, feats[:, local:]], dim=1)

        tokens = self.ss(feats.view(-1, channels, h, w), b, (h, w))
        for block in self.transformer:
            tokens = block(tokens, (h, w))
        feats = feats + self.sc(tokens, t, (h, w)).view(b, t, -1, h, w)

        out = self.decoder(feats.view(b * t, channels, h, w))
        return torch.tanh(out), flows
