"""What every model's seeded test weights share: layouts read from JSON, one generator per parameter
name, float64 uniform draws, checksums of what the goldens were made from, and the fingerprints
tests keep of upstream's outputs on those weights.

Goldens (tests/engines/*/goldens) are made by running upstream's own code with these weights and
store checksums of them, so the draws here must stay bit-for-bit what they are.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch


def read_layout(path: Path, variant: str) -> dict[str, tuple[int, ...]]:
    """Upstream's ``state_dict()`` names and shapes for ``variant`` from a layouts JSON file."""
    data = json.loads(path.read_text())
    if variant.startswith("_") or variant not in data:
        known = sorted(k for k in data if not k.startswith("_"))
        raise KeyError(f"variant must be one of {known}, got {variant!r}")
    return {name: tuple(shape) for name, shape in data[variant].items()}


def crc32_of(arrays: Iterable[np.ndarray | torch.Tensor]) -> int:
    """crc32 over the raw bytes of arrays in order: goldens store it for their weights and clip,
    so a change to the fill rules or the clip shows up as a checksum failure, not a parity one."""
    crc = 0
    for array in arrays:
        data = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        crc = zlib.crc32(np.ascontiguousarray(data).tobytes(), crc)
    return crc


def generator(name: str, seed: int) -> torch.Generator:
    """torch's CPU generator keeps only 32 bits of its seed, so seed and name are mixed by crc32."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(zlib.crc32(f"{int(seed)}/{name}".encode()))
    return gen


def uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """Float64 draws (rounded to float32 once by the caller: the same values on any CPU)."""
    return torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low


def fingerprint(t: torch.Tensor, picks: int = 8) -> list[float]:
    """Mean and std, then ``picks`` values spread evenly through the flattened tensor."""
    flat = t.flatten()
    index = torch.linspace(0, flat.numel() - 1, picks).round().long()
    return [float(flat.mean()), float(flat.std())] + [float(v) for v in flat[index]]


def fingerprint_stats(t: torch.Tensor, picks: int = 7) -> dict:
    """Shape, mean, std and largest magnitude (in float64), then ``picks`` values spread evenly through it."""
    flat = t.detach().double().reshape(-1)
    index = torch.linspace(0, flat.numel() - 1, picks).round().long()
    return {
        "shape": list(t.shape),
        "mean": flat.mean().item(),
        "std": flat.std().item(),
        "abs_max": flat.abs().max().item(),
        "values": flat[index].tolist(),
    }
