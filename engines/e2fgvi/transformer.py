"""E2FGVI's content hallucination: soft split, temporal focal transformer blocks, soft composition.

Ported from MCG-NKU/E2FGVI@709cbe3 (CC BY-NC 4.0), model/modules/tfocal_transformer_hq.py, as
model/e2fgvi_hq.py's InpaintGenerator builds it, for inference only; the fixed-432x240 release
(model/modules/tfocal_transformer.py) differs only in :class:`SoftComp`'s bias — its blocks and
feed-forward build their fold/unfold for one frame size, which computes the same numbers.
Module and parameter names equal upstream's (``ss.*``, ``sc.*``, ``transformer.N.*`` of the
official checkpoints); the arithmetic is upstream's, the layout is ours:

- Feature maps are cut into overlapping 7x7 patches every 3 pixels ("soft split", an unfold), so a
  token sees a 7x7 neighbourhood and neighbouring tokens share pixels; "soft composition" folds
  them back by summing the overlaps. The fold's output size is passed at run time, which lets one
  set of weights serve any frame size whose token grid tiles into attention windows.
- Attention runs per window of 5x9 tokens over all frames at once. Each window's queries see
  (1) their own window; (2) the ring of tokens up to (2, 4) beyond its border, gathered from the
  token map rolled by half a window in the four diagonal directions: 120 keys for the 108 ring
  tokens (12 come twice, as upstream has it), and the roll is cyclic, so windows on the border see
  the opposite side of the map; (3) one pooled token per window in a 5x9 neighbourhood of
  windows, zero-padded at the border and held off by a -100 logit (upstream's value).
- Attention is ``F.scaled_dot_product_attention`` on 4-D ``[windows, heads, tokens, head_dim]``
  tensors, so GPUs get fused kernels and the ONNX exporter a plain MatMul/Softmax graph.

Upstream's generality that no E2FGVI checkpoint uses is not ported: one focal level of pooled
windows (focal_level 2), the "fc" pooling, qkv bias on. Its pad/trim branch before pooling never
runs for these sizes (a grid that windows tile never needs it, and upstream fails on any other),
so grids are checked instead. Dropout and drop path do not exist in upstream's HQ block either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DIM = 512
"""Token width (upstream's ``hidden``)."""
HEADS = 4
DEPTH = 8
WINDOW = (5, 9)
"""Attention window in tokens, height x width; also the pooling window and the focal neighbourhood."""
FFN_HIDDEN = 1960
"""The feed-forward's width: 40 channels for each of the 49 pixels of a 7x7 patch."""
MASKED_LOGIT = -100.0
"""What upstream adds to the logits of pooled tokens that lie outside the map."""


@dataclass(frozen=True)
class Patching:
    """The overlapping patches of soft split, soft composition and the feed-forward (upstream's t2t_params)."""

    kernel: tuple[int, int] = (7, 7)
    stride: tuple[int, int] = (3, 3)
    padding: tuple[int, int] = (3, 3)

    @property
    def area(self) -> int:
        return self.kernel[0] * self.kernel[1]

    def grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """Token grid (rows, columns) that a feature map of ``size`` (h, w) is cut into."""
        rows, cols = (
            (s + 2 * p - k) // st + 1 for s, p, k, st in zip(size, self.padding, self.kernel, self.stride, strict=True)
        )
        return rows, cols

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, h, w]`` to ``[N, C * kh * kw, patches]``."""
        return F.unfold(x, self.kernel, padding=self.padding, stride=self.stride)

    def fold(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[N, C * kh * kw, patches]`` back to ``[N, C, h, w]``, summing where patches overlap.

        While torch.export traces (the ONNX export), :func:`fold_by_phases` stands in: ONNX's
        Col2Im, which ``F.fold`` becomes, is not in TensorRT's parser. It gives the same bits as
        ``F.fold`` on CPU, so the exported graph computes what the torch model does.
        """
        if torch.compiler.is_exporting():
            return fold_by_phases(x, size, self.kernel, self.stride, self.padding)
        return F.fold(x, size, self.kernel, padding=self.padding, stride=self.stride)


T2T = Patching()


def fold_by_phases(
    x: torch.Tensor, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> torch.Tensor:
    """``F.fold`` from slices, pads, adds and a pixel shuffle: ops every ONNX backend has.

    Kernel row ``ky = sy * qy + ry`` of patch row ``i`` lands on padded output row
    ``sy * (i + qy) + ry``, so the output rows of phase ``ry`` are a sum, over ``qy``, of the
    patch maps of the ``ky`` with that phase shifted down by ``qy`` (columns likewise); the
    ``sy * sx`` phase maps are then interleaved. Each phase adds its terms in increasing kernel
    index, the order CPU ``col2im`` accumulates them in, and the shifts only add exact zeros, so
    the result equals CPU ``F.fold`` bit for bit.
    """
    (kh, kw), (sy, sx), (py, px) = kernel, stride, padding
    n = x.shape[0]
    rows, cols = ((s + 2 * p - k) // st + 1 for s, p, k, st in zip(size, padding, kernel, stride, strict=True))
    maps = x.view(n, -1, kh, kw, rows, cols)
    qh, qw = -(-kh // sy), -(-kw // sx)  # kernel rows (columns) per phase, at most
    phases = []
    for ry in range(sy):
        for rx in range(sx):
            total = None
            for ky in range(ry, kh, sy):
                for kx in range(rx, kw, sx):
                    qy, qx = ky // sy, kx // sx
                    term = F.pad(maps[:, :, ky, kx], (qx, qw - 1 - qx, qy, qh - 1 - qy))
                    total = term if total is None else total + term
            phases.append(total)
    # [N, C, sy, sx, A, B] -> [N, C, A, sy, B, sx]: padded output row sy * a + ry, column sx * b + rx.
    stacked = torch.stack(phases, 2).view(n, -1, sy, sx, rows + qh - 1, cols + qw - 1)
    out = stacked.permute(0, 1, 4, 2, 5, 3).reshape(n, -1, sy * (rows + qh - 1), sx * (cols + qw - 1))
    # Rows past the last patch get nothing; pad so the crop below always lies inside.
    out = F.pad(out, (0, max(0, sx - 1 - px), 0, max(0, sy - 1 - py)))
    return out[:, :, py : py + size[0], px : px + size[1]]


def check_grid(grid: tuple[int, int], window: tuple[int, int] = WINDOW) -> None:
    """Windows must tile the token grid exactly: upstream's partition has no padding and fails otherwise."""
    if grid[0] % window[0] or grid[1] % window[1]:
        raise ValueError(
            f"E2FGVI token grid must be a multiple of {window[0]}x{window[1]} windows, got {grid[0]}x{grid[1]}"
        )


class SoftSplit(nn.Module):
    """Feature maps to tokens: one token per overlapping 7x7 patch, linearly embedded."""

    def __init__(self, channels: int, hidden: int, patching: Patching = T2T) -> None:
        super().__init__()
        self.patching = patching
        self.embedding = nn.Linear(channels * patching.area, hidden)

    def forward(self, x: torch.Tensor, batch: int, size: tuple[int, int]) -> torch.Tensor:
        """``[B*T, C, h, w]`` features of ``size`` (h, w) to ``[B, T, rows, cols, hidden]`` tokens."""
        rows, cols = self.patching.grid(size)
        tokens = self.embedding(self.patching.unfold(x).transpose(1, 2))
        return tokens.view(batch, -1, rows, cols, tokens.shape[-1])


class SoftComp(nn.Module):
    """Tokens back to feature maps: each token projected to its 7x7 patch, overlaps summed, then a bias.

    The two releases differ only in that bias. E2FGVI-HQ learns it as a 3x3 convolution of the
    folded map (``bias_conv``), so any frame size works. The fixed-432x240 E2FGVI adds a learned
    map of one feature size instead (``bias`` [C, h, w], here ``fixed_size`` = 60x108): its
    weights only mean something at that size, so other sizes are refused rather than broadcast.

    Upstream also builds a LeakyReLU here that its forward never calls; it has no weights, so it
    is left out.
    """

    def __init__(
        self, channels: int, hidden: int, patching: Patching = T2T, fixed_size: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.patching = patching
        self.fixed_size = fixed_size
        if fixed_size is not None:
            # Registered first, as upstream's own parameter comes before its sub-modules' in state_dict().
            self.bias = nn.Parameter(torch.zeros(channels, *fixed_size))
        self.embedding = nn.Linear(hidden, channels * patching.area)
        if fixed_size is None:
            self.bias_conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, frames: int, size: tuple[int, int]) -> torch.Tensor:
        """``[B, T, rows, cols, hidden]`` tokens to ``[B*T, C, h, w]`` features of ``size`` (h, w)."""
        if self.fixed_size is not None and tuple(size) != self.fixed_size:
            raise ValueError(
                f"E2FGVI (fixed 432x240) feature size must be {self.fixed_size[0]}x{self.fixed_size[1]}, "
                f"got {size[0]}x{size[1]}"
            )
        patches = self.embedding(x.flatten(1, 3))
        patches = patches.view(x.shape[0] * frames, -1, patches.shape[-1]).transpose(1, 2)
        folded = self.patching.fold(patches, size)
        if self.fixed_size is not None:
            return folded + self.bias[None]
        return self.bias_conv(folded)


class FusionFeedForward(nn.Module):
    """The MLP, with a soft composition and split between its two layers.

    The hidden vector of each token is read as 40 channels of its 7x7 patch; folding them and
    dividing by how many patches cover each pixel averages what overlapping tokens say about the
    same pixel, and unfolding hands each token its patch of the averaged map. Names are upstream's
    (``conv1.0`` is the first linear layer, ``conv2.1`` the second, after the GELU).
    """

    def __init__(self, dim: int, hidden: int = FFN_HIDDEN, patching: Patching = T2T) -> None:
        super().__init__()
        if hidden % patching.area:
            raise ValueError(f"feed-forward width must be a multiple of {patching.area}, got {hidden}")
        self.patching = patching
        self.conv1 = nn.Sequential(nn.Linear(dim, hidden))
        self.conv2 = nn.Sequential(nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[B, T*rows*cols, dim]`` tokens of ``size`` (h, w) feature maps to the same shape."""
        rows, cols = self.patching.grid(size)
        x = self.conv1(x)
        b, n, c = x.shape
        coverage = self.patching.fold(x.new_ones(1, self.patching.area, rows * cols), size)
        summed = self.patching.fold(x.view(-1, rows * cols, c).transpose(1, 2), size)
        x = self.patching.unfold(summed / coverage).transpose(1, 2).reshape(b, n, c)
        return self.conv2(x)


def _rolled_key_index(window: tuple[int, int], expand: tuple[int, int]) -> torch.Tensor:
    """Which tokens of the four diagonally rolled windows (stacked top-left, top-right, bottom-left,
    bottom-right, each flattened row-major) lie outside the window itself and are kept as keys.

    The map rolled by ``(-eh, -ew)`` shows in each window the tokens ``eh`` rows lower and ``ew``
    columns further right, so its tokens in the last ``eh`` rows or ``ew`` columns are new; the
    other three rolls mirror that.
    """
    (wh, ww), (eh, ew) = window, expand
    rows = torch.arange(wh).view(-1, 1)
    cols = torch.arange(ww).view(1, -1)
    bottom, top = rows >= wh - eh, rows < eh
    right, left = cols >= ww - ew, cols < ew
    kept = [bottom | right, bottom | left, top | right, top | left]
    return torch.cat([k.flatten() for k in kept]).nonzero().view(-1)


def _to_windows(x: torch.Tensor, window: tuple[int, int], heads: int) -> torch.Tensor:
    """``[B, T, H, W, C]`` to ``[B*nWin, heads, T, wh*ww, C/heads]``, windows row-major per batch item."""
    b, t, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, t, h // wh, wh, w // ww, ww, heads, c // heads)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(-1, heads, t, wh * ww, c // heads)


def _from_windows(x: torch.Tensor, window: tuple[int, int], size: tuple[int, int, int, int]) -> torch.Tensor:
    """``[B*nWin, T*wh*ww, C]`` back to ``[B, T, H, W, C]``."""
    b, t, h, w = size
    wh, ww = window
    x = x.view(b, h // wh, w // ww, t, wh, ww, -1)
    return x.permute(0, 3, 1, 4, 2, 5, 6).reshape(b, t, h, w, -1)


class TemporalFocalAttention(nn.Module):
    """Window attention over all frames with rolled neighbours and pooled windows (upstream's WindowAttention).

    Keys per window, in upstream's order: its own ``T*wh*ww`` tokens, the ``T*4*(wh*ww - (wh-eh)*(ww-ew))``
    tokens of the rolled neighbours (``valid_ind_rolled`` picks them), and ``T*kh*kw`` pooled tokens.
    """

    def __init__(self, dim: int = DIM, heads: int = HEADS, window: tuple[int, int] = WINDOW) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.expand = (window[0] // 2, window[1] // 2)
        self.focal_kernel = (2 * (window[0] // 2) + 1, 2 * (window[1] // 2) + 1)
        self.register_buffer("valid_ind_rolled", _rolled_key_index(window, self.expand))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, H, W, C]`` normalised tokens and ``pooled`` ``[B, T, H/wh, W/ww, C]`` (one token per
        window) to ``[B*nWin, T*wh*ww, C]``: the attended tokens of each window."""
        b, t, h, w, c = x.shape
        q, k, v = self.qkv(x).view(b, t, h, w, 3, c).unbind(4)
        _, k_pooled, v_pooled = self.qkv(pooled).view(*pooled.shape[:4], 3, c).unbind(4)
        keys = self._gather(k, k_pooled)
        values = self._gather(v, v_pooled)
        q = _to_windows(q, self.window, self.heads).flatten(2, 3)
        mask = self._mask(pooled.shape[2:4], t, keys.shape[2], x.dtype, x.device).repeat(b, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.proj(out.transpose(1, 2).flatten(2))

    def _gather(self, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Keys (or values) ``[B, T, H, W, C]`` with their pooled map to ``[B*nWin, heads, keys, C/heads]``."""
        own = _to_windows(x, self.window, self.heads)
        eh, ew = self.expand
        rolled = [
            _to_windows(torch.roll(x, shifts=(sh * eh, sw * ew), dims=(2, 3)), self.window, self.heads)
            for sh, sw in ((-1, -1), (-1, 1), (1, -1), (1, 1))
        ]
        rolled = torch.cat(rolled, 3).index_select(3, self.valid_ind_rolled)
        parts = (own, rolled, self._focal(pooled))
        return torch.cat([part.flatten(2, 3) for part in parts], 2)

    def _focal(self, pooled: torch.Tensor) -> torch.Tensor:
        """``[B, T, nh, nw, C]`` pooled keys to each window's zero-padded kh x kw neighbourhood of them,
        ``[B*nh*nw, heads, T, kh*kw, C/heads]``."""
        b, t, nh, nw, c = pooled.shape
        kh, kw = self.focal_kernel
        maps = pooled.permute(0, 1, 4, 2, 3).reshape(b * t, c, nh, nw)
        cols = F.unfold(maps, (kh, kw), padding=(kh // 2, kw // 2))
        cols = cols.view(b, t, self.heads, c // self.heads, kh * kw, nh * nw)
        return cols.permute(0, 5, 2, 1, 4, 3).reshape(b * nh * nw, self.heads, t, kh * kw, c // self.heads)

    def _mask(
        self, grid: tuple[int, int], frames: int, keys: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """Additive logits ``[nh*nw, 1, 1, keys]``: 0, or -100 for pooled windows beyond the map's border."""
        nh, nw = grid
        kh, kw = self.focal_kernel
        rows = torch.arange(nh, device=device).view(-1, 1, 1, 1) + torch.arange(kh, device=device).view(1, 1, -1, 1)
        cols = torch.arange(nw, device=device).view(1, -1, 1, 1) + torch.arange(kw, device=device).view(1, 1, 1, -1)
        rows, cols = rows - kh // 2, cols - kw // 2
        inside = (rows >= 0) & (rows < nh) & (cols >= 0) & (cols < nw)
        zero = torch.zeros((), dtype=dtype, device=device)
        pooled = torch.where(inside, zero, zero + MASKED_LOGIT).view(nh * nw, 1, kh * kw)
        pooled = pooled.expand(nh * nw, frames, kh * kw).reshape(nh * nw, 1, 1, frames * kh * kw)
        local = pooled.new_zeros(nh * nw, 1, 1, keys - frames * kh * kw)
        return torch.cat([local, pooled], 3)


class TemporalFocalTransformerBlock(nn.Module):
    """Pre-norm block: focal window attention, then the fusion feed-forward, each with a residual."""

    def __init__(
        self, dim: int = DIM, heads: int = HEADS, window: tuple[int, int] = WINDOW, patching: Patching = T2T
    ) -> None:
        super().__init__()
        self.window = window
        # Upstream's "fc" pooling: a learned weighted sum over each window's tokens, per channel and frame.
        self.pool_layers = nn.ModuleList([nn.Linear(window[0] * window[1], 1)])
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TemporalFocalAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FusionFeedForward(dim, patching=patching)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[B, T, rows, cols, C]`` tokens of ``size`` (h, w) feature maps to the same shape."""
        b, t, h, w, c = x.shape
        check_grid((h, w), self.window)
        y = self.norm1(x)
        x = x + _from_windows(self.attn(y, self._pool(y)), self.window, (b, t, h, w))
        return x + self.mlp(self.norm2(x).view(b, -1, c), size).view(b, t, h, w, c)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, H, W, C]`` to one token per window, ``[B, T, H/wh, W/ww, C]``."""
        b, t, h, w, c = x.shape
        wh, ww = self.window
        x = x.view(b, t, h // wh, wh, w // ww, ww, c).permute(0, 1, 2, 4, 6, 3, 5)
        return self.pool_layers[0](x.reshape(b, t, h // wh, w // ww, c, wh * ww)).squeeze(-1)


def build_blocks(depth: int = DEPTH) -> nn.ModuleList:
    """The generator's ``transformer``: ``depth`` blocks applied in turn (upstream: an nn.Sequential
    passing ``[tokens, size]`` along; the state-dict names are the same)."""
    return nn.ModuleList(TemporalFocalTransformerBlock() for _ in range(depth))
