"""manifest.json, the record an export directory carries, and its one reader.

``cleanfeed export`` writes it (cleanfeed.export); the engines that run an export (SAM, DeAOT,
E2FGVI on onnxruntime or TensorRT) read it back to learn what the graphs were made for. The
format lives here, in the lower layer, so that both sides share one definition and the engines
never import the exporter that imports them. :func:`read_export_manifest` is the reader an
engine calls: one error wording for every family.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanfeed.errors import BackendError, ExportError

FORMAT = 1
"""Bumped when the layout changes; find_export ignores manifests of another format."""
MANIFEST_NAME = "manifest.json"


@dataclass
class FileRecord:
    """One file of the export, relative to the export directory."""

    file: str
    sha256: str
    size: int

    @classmethod
    def of(cls, path: Path, root: Path) -> FileRecord:
        return cls(file=path.relative_to(root).as_posix(), sha256=sha256_file(path), size=path.stat().st_size)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "size": self.size}


@dataclass
class GraphRecord:
    """One exported graph: its files, signature, parity and TensorRT findings."""

    name: str
    onnx: FileRecord
    external_data: list[FileRecord]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    dynamic_axes: dict[str, dict[str, str]]
    profiles: dict[str, list[list[int]]]
    parity: list[dict[str, Any]] = field(default_factory=list)
    """One entry per backend checked (onnxruntime always, tensorrt with --tensorrt)."""
    tensorrt_findings: list[dict[str, str]] = field(default_factory=list)
    tensorrt_engine: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return bool(self.parity) and all(p["passed"] for p in self.parity)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.onnx.to_json(), "external_data": [f.to_json() for f in self.external_data],
                "inputs": self.inputs, "outputs": self.outputs, "dynamic_axes": self.dynamic_axes,
                "profiles": self.profiles, "parity": self.parity, "tensorrt_findings": self.tensorrt_findings,
                "tensorrt_engine": self.tensorrt_engine}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GraphRecord:
        return cls(name=data["name"], onnx=FileRecord(data["file"], data["sha256"], data["size"]),
                   external_data=[FileRecord(**f) for f in data["external_data"]], inputs=data["inputs"],
                   outputs=data["outputs"], dynamic_axes=data["dynamic_axes"], profiles=data["profiles"],
                   parity=data["parity"], tensorrt_findings=data["tensorrt_findings"],
                   tensorrt_engine=data.get("tensorrt_engine"))

    def files(self) -> list[FileRecord]:
        return [self.onnx, *self.external_data]


@dataclass
class Manifest:
    """Everything about one export directory."""

    family: str
    model: str
    checkpoint: str
    checkpoint_sha256: str
    opset: int
    precision: str
    graphs: list[GraphRecord] = field(default_factory=list)
    status: str = "running"
    """``ok`` | ``failed`` | ``running`` (an export that has not finished)."""
    failure: str | None = None
    tensorrt_matrix: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    """Seed of the random parity inputs, to reproduce them."""
    options: dict[str, Any] = field(default_factory=dict)
    """The family's options the export was made with (ModelSpec.options), e.g. DeAOT's frame size;
    absent in manifests written before options existed, read as none."""
    tools: dict[str, str | None] = field(default_factory=dict)
    created: str = ""
    host: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def findings_count(self) -> int:
        return sum(len(g.tensorrt_findings) for g in self.graphs)

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "status": self.status, "failure": self.failure, "family": self.family,
                "model": self.model, "checkpoint": {"path": self.checkpoint, "sha256": self.checkpoint_sha256},
                "opset": self.opset, "precision": self.precision, "options": self.options, "seed": self.seed,
                "graphs": [g.to_json() for g in self.graphs], "tensorrt_matrix": self.tensorrt_matrix,
                "tools": self.tools, "created": self.created, "host": self.host}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(family=data["family"], model=data["model"], checkpoint=data["checkpoint"]["path"],
                   checkpoint_sha256=data["checkpoint"]["sha256"], opset=data["opset"], precision=data["precision"],
                   graphs=[GraphRecord.from_json(g) for g in data["graphs"]], status=data["status"],
                   failure=data.get("failure"), tensorrt_matrix=data.get("tensorrt_matrix", {}),
                   seed=data.get("seed"), options=dict(data.get("options") or {}), tools=data.get("tools", {}),
                   created=data.get("created", ""), host=data.get("host", {}), format=data.get("format", 0))

    def save(self, directory: Path) -> Path:
        """Writes ``directory/manifest.json`` atomically (a reader never sees half a manifest)."""
        path = Path(directory) / MANIFEST_NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        path = Path(directory) / MANIFEST_NAME
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as err:
            raise ExportError(f"{path} must exist (an export directory has a manifest), got no such file") from err
        except (ValueError, KeyError, TypeError) as err:
            raise ExportError(f"{path} must be a cleanfeed export manifest, got unreadable JSON ({err})") from err


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_export_manifest(folder: str | Path, family: str, what: str,
                         fits: Callable[[Manifest], bool] = lambda manifest: True) -> Manifest:
    """``folder``'s manifest, for an engine of ``family`` (``deaot``) about to run its graphs.

    BackendError in one line when there is none, it is unreadable, it is of another family or
    ``fits`` refuses it (``what`` says what it must describe), or the export did not finish.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = Manifest.load(Path(folder))
    except ExportError as err:
        raise BackendError(str(err)) from None
    if manifest.family != family or not fits(manifest):
        raise BackendError(f"{path} must describe {what}, got family {manifest.family!r} with graphs "
                           f"{[g.name for g in manifest.graphs]} and options {manifest.options}")
    if not manifest.ok:
        raise BackendError(f"{path} must record a finished export (status ok), got status {manifest.status!r}: "
                           f"{manifest.failure or 'it did not finish'}")
    return manifest
