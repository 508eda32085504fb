"""Loading a SAM checkpoint: its size read from the weights themselves, then a strict load.

A user names a file and perhaps a size (``model=vit_h``); the file decides. The image encoder's
width comes from the patch embedding, its depth from the number of blocks, the head count from
the relative-position tables' width (the head dimension) and the global-attention blocks from
those tables' length (2*64-1 rows attend over the whole 64x64 grid, 2*14-1 over a 14x14 window).
The package's Sam is then built on the meta device and the checkpoint's tensors are assigned
into it, so nothing is initialised or copied that the file already holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cleanfeed.engines.checkpoints import check_layout, checkpoint_sha256, read_state_dict, require_family
from cleanfeed.engines.sam.variants import (
    EMBEDDING_SIZE,
    PATCH_SIZE,
    PIXEL_MEAN,
    PIXEL_STD,
    VARIANTS,
    WINDOW_SIZE,
    SamArch,
    build,
)
from cleanfeed.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from segment_anything.modeling import Sam

__all__ = ["arch_from_state_dict", "checkpoint_sha256", "load_sam", "sam_from_state_dict"]

_BLOCK = re.compile(r"image_encoder\.blocks\.(\d+)\.")
_GLOBAL_ROWS = 2 * EMBEDDING_SIZE - 1
_WINDOW_ROWS = 2 * WINDOW_SIZE - 1


def load_sam(path: str | Path, model: str | None = None) -> tuple[Sam, SamArch]:
    """segment-anything's Sam (eval mode, CPU, fp32, no grad) with the weights in ``path``, and its size.

    ``model`` (``vit_b``/``vit_l``/``vit_h``), when given, must be the size the file holds.
    CheckpointError for a missing, truncated or foreign file, another model's weights, or a size mismatch.
    """
    _check_model(model)
    state = read_state_dict(path)
    return sam_from_state_dict(state, model, source=f"'{path}'")


def sam_from_state_dict(
    state: Mapping[str, torch.Tensor], model: str | None = None, source: str = "the checkpoint"
) -> tuple[Sam, SamArch]:
    """``load_sam`` for weights already in memory (meta tensors give a meta model: layout checks only)."""
    import torch

    _check_model(model)
    require_family(state, "SAM", source, model or "vit_b, vit_l or vit_h")
    arch = arch_from_state_dict(state, source)
    if model is not None and arch.name != model:
        found = f"SAM {arch.name} checkpoint" if arch.name != "custom" else "SAM checkpoint of a custom size"
        raise CheckpointError(
            f"{source} is a {found} ({arch.describe()}), expected {model} ({VARIANTS[model].describe()})"
        )
    sam = build(arch, "meta")
    check_layout(sam.state_dict(), state, f"the SAM {arch.name} layout ({arch.describe()})", source)
    sam.load_state_dict(state, strict=True, assign=True)
    # pixel_mean/std are non-persistent buffers: not in any checkpoint, so rebuilt here from the package's values
    sam.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
    sam.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)
    sam.float().eval().requires_grad_(False)
    return sam, arch


def arch_from_state_dict(state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> SamArch:
    """The image-encoder size these SAM weights were trained at, named when it is an official one."""
    patch = state.get("image_encoder.patch_embed.proj.weight")
    if patch is None or patch.ndim != 4 or tuple(patch.shape[1:]) != (3, PATCH_SIZE, PATCH_SIZE):
        got = "missing" if patch is None else f"of shape {tuple(patch.shape)}"
        raise CheckpointError(
            f"{source} must have image_encoder.patch_embed.proj.weight of shape (dim, 3, 16, 16), got {got}"
        )
    embed_dim = int(patch.shape[0])
    blocks = sorted({int(m.group(1)) for key in state if (m := _BLOCK.match(key))})
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"{source} must have image-encoder blocks numbered 0..N-1, got {blocks[:8]}")
    head_dims: set[int] = set()
    global_blocks: list[int] = []
    for i in blocks:
        rel = state.get(f"image_encoder.blocks.{i}.attn.rel_pos_h")
        if rel is None or rel.ndim != 2 or int(rel.shape[0]) not in (_GLOBAL_ROWS, _WINDOW_ROWS):
            got = "missing" if rel is None else f"of shape {tuple(rel.shape)}"
            raise CheckpointError(
                f"{source} block {i} must have attn.rel_pos_h with {_GLOBAL_ROWS} (global) or "
                f"{_WINDOW_ROWS} (windowed) rows, got {got}"
            )
        head_dims.add(int(rel.shape[1]))
        if int(rel.shape[0]) == _GLOBAL_ROWS:
            global_blocks.append(i)
    head_dim = head_dims.pop()
    if head_dims or embed_dim % head_dim:
        raise CheckpointError(
            f"{source} must have one attention head width dividing the embed dim {embed_dim}, "
            f"got {sorted(head_dims | {head_dim})}"
        )
    return SamArch("custom", embed_dim, len(blocks), embed_dim // head_dim, tuple(global_blocks)).named()


def _check_model(model: str | None) -> None:
    if model is not None and model not in VARIANTS:
        raise CheckpointError(f"SAM model must be one of {', '.join(VARIANTS)}, got {model!r}")
