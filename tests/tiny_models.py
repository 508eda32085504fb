"""Small models with random weights, built with the upstream packages' own builders, for tests.

The tiny SAM is segment-anything's ``_build_sam`` (through cleanfeed.engines.sam.variants.build) at embed dim
32, 2 blocks, 2 heads, block 1 global; its prompt encoder and mask decoder are full size. Every
weight is perturbed from the package's init (which zeroes the relative-position tables) so that no
path through the model is trivial. Its image encoder runs in ~0.2 s on a 2-core CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cleanfeed.engines.sam.variants import SamArch, build

TINY_SAM = SamArch("custom", 32, 2, 2, (1,))


def tiny_sam(seed: int = 0) -> Any:
    """The tiny SAM in eval mode, weights drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    sam = build(TINY_SAM)
    with torch.no_grad():
        for param in sam.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return sam.eval()


def save_tiny_sam(path: Path, seed: int = 0) -> Path:
    """Writes the tiny SAM's state dict as a checkpoint file, laid out like the official ones."""
    torch.save(tiny_sam(seed).state_dict(), path)
    return path
