"""DeAOT's propagation layers: gated attention over long-term, short-term and current-frame tokens.

A port of aot-benchmark's DualBranchGPM / GatedPropagationModule for inference, with upstream's
parameter names (official checkpoints load unchanged) and its arithmetic, but not its layout:

- Tokens are batch-first, ``[N, T, C]`` (upstream: ``[T, N, C]``); ``N`` is the batch of
  sub-engines (one per ten objects), which all read the same image.
- Every attention is ``F.scaled_dot_product_attention``, so GPUs get fused kernels and ONNX a plain
  MatMul/Softmax graph. Upstream's local (short-term) attention gathers a 15x15 window per token
  with ``unfold`` and scatters it back into a dense token-by-token matrix before multiplying by
  the values; here the window's relative-position logits are gathered straight into that dense
  matrix (``-inf`` outside the window, which also covers the image border) and the window's
  softmax is the masked row's softmax — the same numbers, with no unfold and no scatter.
- The long-term memory may be a fixed number of slots with a validity mask (``long_term_valid``),
  so exported graphs have static shapes; an invalid slot's logits are ``-inf`` and it weighs
  exactly nothing.
- The sine positional embedding upstream computes is never read by these layers, so it is not built.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

WINDOW = 7
"""Short-term attention reaches 7 tokens each way (a 15x15 window; upstream's max_dis)."""
EXPAND = 2
"""Value and gate channels are twice the layer's width (upstream's expand_ratio)."""


class Memory(NamedTuple):
    """One layer's memory of one or more frames: keys, values and identity values, token-major."""

    key: torch.Tensor
    """``[N, T, d_att]``"""
    value: torch.Tensor
    """``[N, T, 2 * d_model]``"""
    id_value: torch.Tensor
    """``[N, T, 2 * d_model]``: the frame's mask identities fused in (``fuse_id``)."""


class Current(NamedTuple):
    """What a layer saw on the current frame, kept so the frame can be memorised once its mask is known."""

    key: torch.Tensor
    value: torch.Tensor
    id_state: torch.Tensor | None
    """The normalised identity stream entering the layer (None in the first layer, which has none)."""


def tokens_to_map(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    n, _, c = x.shape
    return x.transpose(1, 2).reshape(n, c, size[0], size[1])


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Single-head attention of ``[N, L, E]`` tokens, run as 4D ``[N, 1, L, E]``.

    Both consumers need the head axis: torch's fused CUDA kernels (flash, memory-efficient) take
    only 4D inputs and fall back to the math kernel otherwise, and the ONNX exporter's
    scaled_dot_product_attention translation (onnxscript 0.7) rejects 3D outright.
    """
    mask = None if mask is None else mask[:, None]
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], attn_mask=mask, scale=scale)[:, 0]


class GroupNorm1D(nn.Module):
    """GroupNorm over a token sequence's channels (state dict: ``gn.*``)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gn(x.transpose(1, 2)).transpose(1, 2)


class DepthwiseMix(nn.Module):
    """A 5x5 depthwise convolution over the token grid: attention output gets local spatial context."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 5, padding=2, groups=channels, bias=False)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return map_to_tokens(self.conv(tokens_to_map(x, size)))


class GatedAttention(nn.Module):
    """Softmax attention whose output is gated by ``U``, mixed spatially and projected (upstream GatedPropagation).

    With ``d_in`` set, ``Q = K`` and the two halves of ``V`` and ``U`` are projected first
    (upstream's ``use_linear``: the self-attention); without, the inputs arrive projected (the
    long- and short-term attentions, fed by the layer's own projections).
    """

    def __init__(self, d_att: int, d_value: int, d_out: int, d_in: int | None = None) -> None:
        super().__init__()
        self.d_att = d_att
        if d_in is not None:
            self.linear_QK = nn.Linear(d_in, d_att)
            self.linear_V1 = nn.Linear(d_in // 2, d_value // 2)
            self.linear_V2 = nn.Linear(d_in // 2, d_value // 2)
            self.linear_U1 = nn.Linear(d_in // 2, d_value // 2)
            self.linear_U2 = nn.Linear(d_in // 2, d_value // 2)
        self.projected = d_in is not None
        self.dw_conv = DepthwiseMix(d_value)
        self.projection = nn.Linear(d_value, d_out)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        u: torch.Tensor,
        size: tuple[int, int],
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.projected:
            q = k = self.linear_QK(q)
            v1, v2 = v.chunk(2, dim=-1)
            v = F.silu(torch.cat([self.linear_V1(v1), self.linear_V2(v2)], dim=-1))
            u1, u2 = u.chunk(2, dim=-1)
            u = F.silu(torch.cat([self.linear_U1(u1), self.linear_U2(u2)], dim=-1))
        out = attend(q, k, v, mask, self.d_att**-0.5)
        return self.projection(self.dw_conv(out * u, size))


class LocalGatedAttention(nn.Module):
    """Gated attention of each token over a 15x15 window of the previous frame's tokens (upstream LocalGatedPropagation).

    A learnt relative-position logit per window offset (``relative_emb_k``, computed from the
    unscaled query) is added to the scaled query-key logit.
    """

    def __init__(self, d_att: int, d_value: int, d_out: int) -> None:
        super().__init__()
        self.d_att = d_att
        side = 2 * WINDOW + 1
        self.relative_emb_k = nn.Conv2d(d_att, side * side, kernel_size=1)
        self.dw_conv = DepthwiseMix(d_value)
        self.projection = nn.Linear(d_value, d_out)
        self._windows: dict[tuple[int, int, str], torch.Tensor] = {}

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, u: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        n = q.shape[0]
        relative = map_to_tokens(self.relative_emb_k(tokens_to_map(q, size)))  # [N, T, 225]
        outside = torch.full_like(relative[..., :1], float("-inf"))
        index = self.window_index(size, q.device).expand(n, -1, -1)
        bias = torch.gather(torch.cat([relative, outside], dim=-1), 2, index)  # [N, T, T]
        out = attend(q, k, v, bias, self.d_att**-0.5)
        return self.projection(self.dw_conv(out * u, size))

    def window_index(self, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """``[1, T, T]``: for query token p and key token q, the window offset q sits at from p, or 225 outside it.

        Depends only on the grid size; kept per size (a few MB at 480p) rather than rebuilt per frame.
        """
        key = (size[0], size[1], str(device))
        index = self._windows.get(key)
        if index is None:
            h, w = size
            side = 2 * WINDOW + 1
            ys = torch.arange(h, device=device).repeat_interleave(w)
            xs = torch.arange(w, device=device).repeat(h)
            dy = ys[None, :] - ys[:, None] + WINDOW
            dx = xs[None, :] - xs[:, None] + WINDOW
            inside = (dy >= 0) & (dy < side) & (dx >= 0) & (dx < side)
            index = torch.where(inside, dy * side + dx, torch.full_like(dy, side * side))[None]
            self._windows[key] = index
        return index


class PropagationLayer(nn.Module):
    """One DeAOT layer: long-term + short-term gated attention, then self-attention, on two streams.

    The visual stream (``tgt``) and the identity stream (``tgt_id``) propagate side by side
    ("decoupled"); memories carry keys and visual values shared by both, and identity values
    (``fuse_id``) that tell which object each memorised token belonged to.
    """

    def __init__(self, d_model: int, index: int) -> None:
        super().__init__()
        d_att = d_model // 2  # one attention head: upstream's d_att for att_nhead == 1
        wide = EXPAND * d_model
        self.d_model = d_model
        self.d_att = d_att
        self.index = index
        self.norm1 = nn.LayerNorm(d_model)
        self.linear_QV = nn.Linear(d_model, d_att + wide)
        self.linear_U = nn.Linear(d_model, wide)
        if index == 0:
            self.linear_ID_V = nn.Linear(d_model, wide)
        else:
            self.id_norm1 = nn.LayerNorm(d_model)
            self.linear_ID_V = nn.Linear(2 * d_model, wide)
            self.linear_ID_U = nn.Linear(d_model, wide)
        self.long_term_attn = GatedAttention(d_att, 2 * wide, wide)
        self.short_term_attn = LocalGatedAttention(d_att, 2 * wide, wide)
        self.norm2 = nn.LayerNorm(d_model)
        self.id_norm2 = nn.LayerNorm(d_model)
        self.self_attn = GatedAttention(d_att, 2 * wide, wide, d_in=wide)

    def fuse_id(self, id_state: torch.Tensor | None, id_emb: torch.Tensor) -> torch.Tensor:
        """A frame's identity values: its mask's id embedding, joined in later layers with the identity stream."""
        if id_state is None:
            return F.silu(self.linear_ID_V(id_emb))
        return F.silu(self.linear_ID_V(torch.cat([id_state, id_emb], dim=2)))

    def forward(
        self,
        tgt: torch.Tensor,
        tgt_id: torch.Tensor | None,
        size: tuple[int, int],
        long_term: Memory | None = None,
        short_term: Memory | None = None,
        id_emb: torch.Tensor | None = None,
        long_term_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Current]:
        """Propagates one frame's tokens ``[N, T, d_model]``.

        Tracking: against ``long_term`` and ``short_term``. Reference: with ``id_emb`` (the frame's
        own mask embedded), the frame attends to itself as both memories. ``long_term_valid``
        (``[N, slots]`` bool) marks the filled slots of a fixed-size long-term memory.
        """
        x = self.norm1(tgt)
        q, v = self.linear_QV(x).split([self.d_att, EXPAND * self.d_model], dim=2)
        v = F.silu(v)
        u = self.linear_U(x)
        if tgt_id is None:
            id_state = None
            gate = torch.cat([F.silu(u), torch.ones_like(u)], dim=2)
        else:
            id_state = self.id_norm1(tgt_id)
            gate = F.silu(torch.cat([u, self.linear_ID_U(id_state)], dim=2))

        if id_emb is not None:
            own = Memory(q, v, self.fuse_id(id_state, id_emb))
            long_term = short_term = own
            long_term_valid = None
        if long_term is None or short_term is None:
            raise ValueError("a propagation layer needs both memories, or id_emb for a reference frame")
        mask = None
        if long_term_valid is not None:
            tokens = long_term.key.shape[1] // long_term_valid.shape[1]
            mask = long_term_valid.repeat_interleave(tokens, dim=1)[:, None, :]
        lt = self.long_term_attn(
            q, long_term.key, torch.cat([long_term.value, long_term.id_value], dim=2), gate, size, mask
        )
        st = self.short_term_attn(q, short_term.key, torch.cat([short_term.value, short_term.id_value], dim=2), gate, size)
        found, found_id = (lt + st).split(self.d_model, dim=2)
        tgt = tgt + found
        tgt_id = found_id if tgt_id is None else tgt_id + found_id

        both = torch.cat([self.norm2(tgt), self.id_norm2(tgt_id)], dim=2)
        mixed, mixed_id = self.self_attn(both, both, both, both, size).split(self.d_model, dim=2)
        return tgt + mixed, tgt_id + mixed_id, Current(q, v, id_state)


class Propagator(nn.Module):
    """The stack of propagation layers and the final norm (upstream DualBranchGPM; state dict ``LSTT.*``)."""

    def __init__(self, layers: int, d_model: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(PropagationLayer(d_model, i) for i in range(layers))
        self.decoder_norms = nn.ModuleList([GroupNorm1D(2 * d_model, groups=2)])

    def forward(
        self,
        tokens: torch.Tensor,
        size: tuple[int, int],
        long_term: list[Memory] | None = None,
        short_term: list[Memory] | None = None,
        id_emb: torch.Tensor | None = None,
        long_term_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[Current]]:
        """The propagated ``[N, T, 2 * d_model]`` features for the decoder, and each layer's ``Current``."""
        tgt, tgt_id = tokens, None
        seen = []
        for i, layer in enumerate(self.layers):
            tgt, tgt_id, current = layer(
                tgt,
                tgt_id,
                size,
                None if long_term is None else long_term[i],
                None if short_term is None else short_term[i],
                id_emb,
                long_term_valid,
            )
            seen.append(current)
        return self.decoder_norms[0](torch.cat([tgt, tgt_id], dim=2)), seen

    def memorise(self, seen: list[Current], id_emb: torch.Tensor) -> list[Memory]:
        """Each layer's memory of a frame, once its mask (embedded as ``id_emb``) is known."""
        return [Memory(c.key, c.value, layer.fuse_id(c.id_state, id_emb)) for c, layer in zip(seen, self.layers, strict=True)]
