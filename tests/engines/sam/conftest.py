"""Shared SAM test fixtures: a tiny SAM with random weights, its checkpoint, and the package's own predictor.

The tiny model is tests/tiny_models.py's (the package's ``_build_sam`` at embed dim 32, 2 blocks).

The package's ``SamPredictor`` needs torchvision, which is not installed here, for exactly two
calls on a PIL image: ``to_pil_image`` and ``resize`` (torchvision's PIL path is
``img.resize((w, h), Image.BILINEAR)``). ``package_reference`` stands those in for the duration of
the import, so the reference is the package's own code, not ours.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import TINY_SAM
from tiny_models import tiny_sam as make_tiny_sam

from cleanfeed.engines.sam.package import sam_package
from cleanfeed.engines.sam.variants import SamArch


def natural_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, stripes, a flat red patch and sensor-like noise: edges and flats, like a video frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack(
        [
            128 + 100 * np.sin(x / 37.0 + y / 53.0),
            128 + 90 * np.cos(x / 19.0) * np.sin(y / 23.0),
            (x * 255 / max(width - 1, 1) + y) % 256,
        ],
        axis=-1,
    )
    img += rng.normal(0, 12, img.shape)
    img[height // 3 : height // 2, width // 4 : width // 3] = (250, 20, 30)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_arch() -> SamArch:
    return TINY_SAM


@pytest.fixture(scope="session")
def make_image() -> Any:
    """``make_image(height, width, seed)``: a natural-looking HxWx3 uint8 RGB frame."""
    return natural_image


@pytest.fixture(scope="session")
def tiny_sam() -> Any:
    return make_tiny_sam()


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_sam: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(tiny_sam.state_dict(), path)
    return path


@dataclass(frozen=True)
class PackageReference:
    """segment-anything's ``SamPredictor`` class and ``ResizeLongestSide`` transform."""

    SamPredictor: Any
    ResizeLongestSide: Any


def _fake_torchvision() -> dict[str, types.ModuleType]:
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.to_pil_image = lambda array: Image.fromarray(np.asarray(array))
    functional.resize = lambda img, size: img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
    boxes = types.ModuleType("torchvision.ops.boxes")

    def unused(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("torchvision.ops is not needed by these tests")

    boxes.batched_nms = boxes.box_area = unused
    modules = {
        "torchvision": types.ModuleType("torchvision"),
        "torchvision.transforms": types.ModuleType("torchvision.transforms"),
        "torchvision.transforms.functional": functional,
        "torchvision.ops": types.ModuleType("torchvision.ops"),
        "torchvision.ops.boxes": boxes,
    }
    for module in modules.values():
        module.__path__ = []  # type: ignore[attr-defined]
    return modules


@pytest.fixture(scope="session")
def package_reference() -> Iterator[PackageReference]:
    sam_package()  # the model modules stay as our code loaded them
    before = set(sys.modules)
    saved = {name: sys.modules[name] for name in before if name.startswith(("segment_anything", "torchvision"))}
    sys.modules.update(_fake_torchvision())
    try:
        import segment_anything
        from segment_anything.utils.transforms import ResizeLongestSide

        reference = PackageReference(segment_anything.SamPredictor, ResizeLongestSide)
    finally:
        for name in set(sys.modules) - before:
            if name.startswith(("segment_anything", "torchvision")):
                del sys.modules[name]
        sys.modules.update(saved)
    yield reference
