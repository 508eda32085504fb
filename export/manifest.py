"""manifest.json, the writer's side: where an export came from and on what machine.

It is written at the end of every export, also a failed one (``status: "failed"`` with the
reason), so a user can see the figures that missed; :func:`cleanfeed.export.model_export.find_export`
only reuses directories whose manifest says ``ok`` and whose files are still the ones listed.
The format itself and its reader are cleanfeed.engines.export_manifest, re-exported here: the
engines that run an export read it, and must not import the exporter.
"""

from __future__ import annotations

import datetime
import platform
import socket
from importlib import metadata
from typing import Any

from cleanfeed.engines.export_manifest import (
    FORMAT,
    MANIFEST_NAME,
    FileRecord,
    GraphRecord,
    Manifest,
    sha256_file,
)
from cleanfeed.engines.runners.base import TensorSpec

__all__ = ["FORMAT", "MANIFEST_NAME", "TOOLS", "FileRecord", "GraphRecord", "Manifest", "host_info", "now",
           "sha256_file", "tensor_json", "tool_versions"]

TOOLS = {"torch": ("torch",), "onnx": ("onnx",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
         "onnxscript": ("onnxscript",), "segment_anything": ("segment-anything",), "cleanfeed": ("cleanfeed",),
         "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13")}
"""Tool name in the manifest -> the distributions that provide it; missing ones are recorded as null."""


def tensor_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}


def tool_versions() -> dict[str, str | None]:
    """Installed versions of everything that shapes an export (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name, dists in TOOLS.items():
        versions[name] = None
        for dist in dists:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def host_info() -> dict[str, str]:
    return {"name": socket.gethostname(), "platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version()}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
