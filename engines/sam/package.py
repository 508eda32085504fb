"""Reach segment-anything's model code without its top-level ``__init__``.

The package's ``__init__`` imports its predictor and mask generator, which import torchvision
(for a resize and NMS we never use); torchvision is not installed everywhere torch is. The model
definitions (``modeling/``) and the builders (``build_sam.py``) need only torch, so they are
imported as submodules of a package object whose ``__init__`` was never run. That placeholder is
removed from ``sys.modules`` afterwards: a later ``import segment_anything`` (where torchvision
exists) still runs the real ``__init__``, which then reuses the submodules loaded here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from types import ModuleType

from cleanfeed.errors import BackendError

_PACKAGE = "segment_anything"
_INSTALL = "pip install cleanfeed[torch] (torch and segment-anything)"


@dataclass(frozen=True)
class SamPackage:
    """The two modules of segment-anything we use: ``modeling`` (Sam and its parts) and ``build_sam``."""

    modeling: ModuleType
    build_sam: ModuleType


def sam_package() -> SamPackage:
    """segment-anything's ``modeling`` and ``build_sam`` modules; BackendError when torch or the package is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise BackendError(f"SAM needs torch, which is not installed: {_INSTALL}") from None
    if _PACKAGE in sys.modules and hasattr(sys.modules[_PACKAGE], "build_sam"):
        return SamPackage(sys.modules[f"{_PACKAGE}.modeling"], sys.modules[f"{_PACKAGE}.build_sam"])
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise BackendError(f"SAM needs the segment-anything package, which is not installed: {_INSTALL}")
    placeholder = _PACKAGE not in sys.modules
    if placeholder:
        sys.modules[_PACKAGE] = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run
    try:
        modeling = importlib.import_module(f"{_PACKAGE}.modeling")
        build_sam = importlib.import_module(f"{_PACKAGE}.build_sam")
    finally:
        if placeholder:
            del sys.modules[_PACKAGE]
    return SamPackage(modeling, build_sam)
