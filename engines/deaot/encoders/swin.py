"""Swin-B as SwinB-DeAOT-L's image encoder: its first three stages, inference only.

Ported from yoxu515/aot-benchmark@601c138 (BSD-3-Clause), networks/encoders/swin/ (itself after
Microsoft's Swin Transformer, MIT), as ``build_swin_model('swin_base')`` makes it. Upstream is
configured with four stages (depths 2, 2, 18, 2) but builds only the first three, so the
deepest map is at stride 16 and is returned twice. Names follow upstream's, including the
persistent ``relative_position_index`` buffers the checkpoints carry, so they load strictly.
Dropout and drop-path are training-only and left out.

Upstream's quirks kept for equal outputs: shifted windows stay on even when a stage's map is
no larger than one window; feature maps are zero-padded to whole windows *after* ``norm1``, and
those zero tokens are attended to (they are not masked); the shift mask uses -100, not -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SHIFT_MASK_VALUE = -100.0


@dataclass(frozen=True)
class SwinConfig:
    """The numbers that shape a Swin encoder; ``SWIN_BASE`` is the one DeAOT uses."""

    embed_dim: int = 128
    """Channels at stride 4; each later stage doubles them."""
    depths: tuple[int, ...] = (2, 2, 18)
    """Blocks per built stage (upstream's fourth stage, 2 blocks of 32 heads, is never built)."""
    num_heads: tuple[int, ...] = (4, 8, 16)
    window: int = 7
    """Side of the square attention window, in tokens."""
    patch: int = 4
    mlp_ratio: float = 4.0


SWIN_BASE = SwinConfig()


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _relative_position_index(window: int) -> torch.Tensor:
    """(window², window²) int64: for tokens i, j of a window (row-major), the row of the bias
    table holding their offset ``(dr, dc)``, i.e. ``(dr + window - 1) * (2 * window - 1) + dc + window - 1``."""
    rows = torch.arange(window).repeat_interleave(window)
    cols = torch.arange(window).repeat(window)
    dr = rows[:, None] - rows[None, :] + window - 1
    dc = cols[:, None] - cols[None, :] + window - 1
    return dr * (2 * window - 1) + dc


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus a learned bias per relative offset."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", _relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """windows (B*nW, N, C) with N = window², batch-major; mask (nW, N, N) of 0 / -100, or None."""
        count, tokens, channels = windows.shape
        q, k, v = self.qkv(windows).view(count, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)  # heads, N, N
        if mask is None:
            attn_bias = bias.unsqueeze(0)
        else:
            per_window = bias.unsqueeze(0) + mask.unsqueeze(1)  # nW, heads, N, N
            attn_bias = per_window.repeat(count // mask.shape[0], 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(count, tokens, channels))


def _to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, Hp, Wp, C) with sides multiples of ``window`` to (B*nW, window², C), windows row-major per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def _from_windows(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of ``_to_windows`` for a (height, width) padded map."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height, width, c)


def _shift_mask(height: int, width: int, window: int, shift: int, like: torch.Tensor) -> torch.Tensor:
    """(nW, N, N) additive mask for shifted windows of a padded (height, width) map.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to three
    bands per axis that were not neighbours; pairs from different bands get -100.
    """

    def bands(side: int) -> torch.Tensor:
        pos = torch.arange(side, device=like.device)
        return (pos >= side - window).long() + (pos >= side - shift).long()

    region = bands(height)[:, None] * 3 + bands(width)[None, :]
    region = _to_windows(region.view(1, height, width, 1), window).squeeze(-1)  # nW, N
    different = region.unsqueeze(1) != region.unsqueeze(2)
    zeros = torch.zeros(different.shape, dtype=like.dtype, device=like.device)
    return zeros.masked_fill(different, SHIFT_MASK_VALUE)


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention then MLP, each with a residual, on (B, H*W, C) tokens."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, height: int, width: int, mask: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        ws = self.window
        y = self.norm1(x).view(b, height, width, c)
        pad_h, pad_w = (-height) % ws, (-width) % ws
        y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = height + pad_h, width + pad_w
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(_to_windows(y, ws), mask if self.shift else None)
        y = _from_windows(y, ws, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        y = y[:, :height, :width, :].reshape(b, height * width, c)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Halve the resolution (odd sides zero-padded) by stacking each 2x2 group's tokens, then 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b, _, c = x.shape
        x = F.pad(x.view(b, height, width, c), (0, 0, 0, width % 2, 0, height % 2))
        # Upstream's channel order: (even row, even col), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, r::2, col::2, :] for col in (0, 1) for r in (0, 1)], dim=-1)
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """Blocks alternating plain and shifted windows, then optional patch merging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float, merge: bool) -> None:
        super().__init__()
        self.window = window
        self.shift = window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else self.shift, mlp_ratio) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if merge else None

    def forward(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens (B, H*W, C) to (this stage's tokens, merged tokens at half size or None)."""
        ws = self.window
        mask = _shift_mask(-(-height // ws) * ws, -(-width // ws) * ws, ws, self.shift, x)
        for block in self.blocks:
            x = block(x, height, width, mask)
        merged = None if self.downsample is None else self.downsample(x, height, width)
        return x, merged


class PatchEmbed(nn.Module):
    """Non-overlapping patches (image zero-padded right/bottom to whole patches) to normalised tokens."""

    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(N,3,H,W) to tokens (N, h*w, C) and the token grid's (h, w)."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, (-width) % self.patch, 0, (-height) % self.patch))
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class SwinEncoder(nn.Module):
    """Image (N,3,H,W), ImageNet-normalised RGB, to features at strides 4, 8, 16, 16.

    For Swin-B channels 128, 256, 512, 512; the last two are the same tensor, as upstream
    returns it. Sides that are not multiples of 4 are padded; DeAOT feeds 16k sides, e.g.
    96x176 gives 24x44, 12x22, 6x11, 6x11.
    """

    def __init__(self, config: SwinConfig = SWIN_BASE) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(config.patch, config.embed_dim)
        stages = len(config.depths)
        self.dims = [config.embed_dim * 2**i for i in range(stages)]
        self.layers = nn.ModuleList(
            SwinStage(
                self.dims[i], config.depths[i], config.num_heads[i], config.window, config.mlp_ratio, i < stages - 1
            )
            for i in range(stages)
        )
        for i, dim in enumerate(self.dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, height, width = self.patch_embed(x)
        b = x.shape[0]
        outputs = []
        for i, stage in enumerate(self.layers):
            tokens, merged = stage(x, height, width)
            tokens = getattr(self, f"norm{i}")(tokens)
            outputs.append(tokens.view(b, height, width, self.dims[i]).permute(0, 3, 1, 2).contiguous())
            if merged is not None:
                x, height, width = merged, (height + 1) // 2, (width + 1) // 2
        outputs.append(outputs[-1])
        return outputs
