"""SAM's model sizes: the three official image encoders, and how to build any of them.

Every SAM shares the prompt encoder and mask decoder; only the ViT image encoder changes size.
The hyperparameters live in segment-anything's own private ``_build_sam`` (fixed there: 1024
input, 16-pixel patches, 14-token attention windows, 256-channel neck); an architecture here is
just the four numbers the public builders pass to it, so ``build`` makes exactly the package's
modules and official checkpoints load into them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleanfeed.engines.sam.package import sam_package

if TYPE_CHECKING:
    import torch
    from segment_anything.modeling import Sam

IMAGE_SIZE = 1024
"""Side of the square, padded encoder input (pixels)."""
PATCH_SIZE = 16
EMBEDDING_SIZE = IMAGE_SIZE // PATCH_SIZE
"""Side of the image embedding grid (64)."""
WINDOW_SIZE = 14
"""Tokens per side of a windowed-attention block's window."""
MASK_SIZE = 4 * EMBEDDING_SIZE
"""Side of the low-resolution mask logits (256)."""
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
"""RGB normalisation of 0..255 pixels, as segment-anything's ``_build_sam`` gives its Sam."""


@dataclass(frozen=True)
class SamArch:
    """An image-encoder size: ``name`` is ``vit_b``/``vit_l``/``vit_h`` when it equals an official one, else ``custom``."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]

    def describe(self) -> str:
        """The size in the words error messages use: ``embed dim 768, 12 blocks``."""
        return f"embed dim {self.embed_dim}, {self.depth} blocks"

    def named(self) -> SamArch:
        """This architecture under its official name when its numbers equal an official variant's, else ``custom``."""
        for arch in VARIANTS.values():
            if arch.same_shape(self):
                return arch
        return SamArch("custom", self.embed_dim, self.depth, self.num_heads, tuple(self.global_attn_indexes))

    def same_shape(self, other: SamArch) -> bool:
        return (self.embed_dim, self.depth, self.num_heads, tuple(self.global_attn_indexes)) == (
            other.embed_dim,
            other.depth,
            other.num_heads,
            tuple(other.global_attn_indexes),
        )


VARIANTS: dict[str, SamArch] = {
    "vit_b": SamArch("vit_b", 768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArch("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArch("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
}
"""The official variants, with the numbers segment-anything's ``build_sam_vit_*`` use."""

OFFICIAL_FILES: dict[str, str] = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}
"""The file names Meta publishes the weights under (Apache-2.0); the models folder is searched for these."""


def build(arch: SamArch, device: str | torch.device = "cpu") -> Sam:
    """The package's Sam for ``arch``, in eval mode, with freshly initialised (not loaded) weights.

    ``device="meta"`` builds the layout only (shapes, no memory, no init cost).
    """
    import torch

    builder = sam_package().build_sam._build_sam
    with torch.device(device):
        return builder(
            encoder_embed_dim=arch.embed_dim,
            encoder_depth=arch.depth,
            encoder_num_heads=arch.num_heads,
            encoder_global_attn_indexes=list(arch.global_attn_indexes),
        )
