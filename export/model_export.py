"""The export driver: every graph of a model to ONNX, verified, checked for TensorRT, recorded.

``export_model`` is what ``cleanfeed export`` runs; ``ensure_export`` is what the segment element
(and later the tracker and inpainter) call to get ONNX files for a checkpoint, exporting once per
(checkpoint, precision) into a cache directory and reusing it afterwards (``find_export``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanfeed.errors import BackendError, ExportError
from cleanfeed.export import tensorrt_ops
from cleanfeed.export.manifest import (
    FORMAT,
    FileRecord,
    GraphRecord,
    Manifest,
    host_info,
    now,
    sha256_file,
    tensor_json,
    tool_versions,
)
from cleanfeed.export.onnx_export import (
    DEFAULT_OPSET,
    check_opset,
    check_precision,
    export_graph,
    external_data_files,
    sample_inputs,
)
from cleanfeed.export.parity import ParityResult, check_parity
from cleanfeed.export.spec import GraphSpec, ModelSpec

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class ParityError(ExportError):
    """An exported graph that disagrees with the torch model; ``manifest`` holds the figures."""

    def __init__(self, message: str, manifest: Manifest) -> None:
        super().__init__(message)
        self.manifest = manifest


def export_model(spec: ModelSpec, out_dir: Path, precision: str = "fp32", tensorrt: bool = False, samples: int = 3,
                 *, opset: int = DEFAULT_OPSET, seed: int | None = None, progress: Progress | None = None) -> Manifest:
    """Exports every graph of ``spec`` into ``out_dir`` and writes ``out_dir/manifest.json``.

    For each graph: ``<name>.onnx`` (plus ``<name>.onnx.data`` over 2 GiB), onnx.checker,
    TensorRT operator-matrix findings, and parity of onnxruntime (and with ``tensorrt`` a native
    TensorRT engine, built and cached by cleanfeed.engines.runners) against the torch module on
    ``samples`` fresh random inputs (``seed`` to repeat them). Raises ParityError when a figure
    misses its limit — after writing the manifest, marked failed — and BackendError before any
    work when ``tensorrt`` is asked for but TensorRT does not import.
    """
    import numpy as np

    check_precision(precision)
    check_opset(opset)
    if samples < 1:
        raise ExportError(f"samples must be at least 1, got {samples}")
    if tensorrt:
        require_tensorrt()
    say = progress or (lambda line: log.info("%s", line))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = secrets.randbits(32) if seed is None else seed
    rng = np.random.default_rng(seed)
    matrix = tensorrt_ops.load_matrix()
    manifest = Manifest(family=spec.family, model=spec.model, checkpoint=str(spec.checkpoint),
                        checkpoint_sha256=spec.checkpoint_sha256, opset=opset, precision=precision,
                        options=plain_options(spec.options), tensorrt_matrix=matrix.describe(), seed=seed, tools=tool_versions(), created=now(),
                        host=host_info())
    manifest.save(out_dir)
    failures: list[str] = []
    try:
        for graph in spec.graphs:
            record, missed = _export_one(graph, out_dir, precision, opset, samples, rng, tensorrt, matrix, say)
            manifest.graphs.append(record)
            failures += [f"{graph.name}: {line}" for line in missed]
    except Exception as err:
        manifest.status, manifest.failure = "failed", f"{type(err).__name__}: {err}"
        manifest.save(out_dir)
        raise
    manifest.status = "failed" if failures else "ok"
    manifest.failure = "; ".join(failures) or None
    manifest.save(out_dir)
    if failures:
        raise ParityError(f"exported graphs must match the torch model, got {manifest.failure} "
                          f"(manifest: {out_dir / 'manifest.json'})", manifest)
    return manifest


def _export_one(graph: GraphSpec, out_dir: Path, precision: str, opset: int, samples: int, rng: np.random.Generator,
                tensorrt: bool, matrix: tensorrt_ops.OperatorMatrix, say: Progress) -> tuple[GraphRecord, list[str]]:
    path = out_dir / f"{graph.name}.onnx"
    say(f"{graph.name}: exporting to ONNX (opset {opset}, {precision})")
    export_graph(graph, path, sample_inputs(graph, rng), opset=opset, precision=precision)
    extra = external_data_files(path)
    size = path.stat().st_size + sum(f.stat().st_size for f in extra)
    say(f"{graph.name}: wrote {path.name} ({size / 1e6:.1f} MB{', external data' if extra else ''}), checker ok")

    findings = tensorrt_ops.check_file(path, matrix)
    errors = [f for f in findings if f.severity == "error"]
    say(f"{graph.name}: TensorRT {matrix.tensorrt_version} operator check: "
        f"{len(errors)} node(s) it would reject, {len(findings) - len(errors)} warning(s)")

    record = GraphRecord(
        name=graph.name, onnx=FileRecord.of(path, out_dir), external_data=[FileRecord.of(f, out_dir) for f in extra],
        inputs=[tensor_json(s) for s in graph.inputs], outputs=[tensor_json(s) for s in graph.outputs],
        dynamic_axes={name: {str(i): axis for i, axis in axes.items()} for name, axes in graph.dynamic_axes().items()},
        profiles={name: [list(s) for s in shapes] for name, shapes in graph.profiles.items()},
        tensorrt_findings=[f.to_json() for f in findings])

    results = [check_parity(graph, path, precision=precision, samples=samples, rng=rng, backend="onnxruntime")]
    say(f"{graph.name}: onnxruntime vs torch: {_figures_line(results[-1])}")
    if tensorrt:
        say(f"{graph.name}: building the TensorRT engine ({precision})")
        results.append(check_parity(graph, path, precision=precision, samples=samples, rng=rng,
                                    backend="tensorrt", device="cuda"))
        record.tensorrt_engine = {"runner": results[-1].description}
        say(f"{graph.name}: TensorRT vs torch: {_figures_line(results[-1])}")
    record.parity = [r.to_json() for r in results]
    missed = [f"{r.backend} {line}" for r in results for line in r.failures]
    return record, missed


def _figures_line(result: ParityResult) -> str:
    figures = ", ".join(f"{k} {v:.3g}" for k, v in result.figures.items())
    verdict = "pass" if result.passed else "FAIL: " + "; ".join(result.failures)
    return f"{figures} over {result.samples} sample(s): {verdict}"


def require_tensorrt() -> None:
    """BackendError (one line) unless the tensorrt package imports."""
    try:
        import tensorrt  # noqa: F401
    except Exception as err:  # ImportError, or a broken install raising OSError on a missing libnvinfer
        raise BackendError(f"--tensorrt needs TensorRT, which does not import here ({type(err).__name__}: {err}): "
                           "pip install cleanfeed[trt] on a machine with an NVIDIA GPU") from None


def plain_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` as the manifest stores them (a JSON round trip: tuples become lists), to compare like with like."""
    try:
        return json.loads(json.dumps(dict(options or {}), sort_keys=True))
    except (TypeError, ValueError) as err:
        raise ExportError(f"export options must be JSON values, got {options!r} ({err})") from None


_PLAIN = re.compile(r"^[A-Za-z0-9_.]+$")


def _options_tag(options: Mapping[str, Any]) -> str:
    """``max_long_term8-size480x854``: options readable in a directory name (a short hash if they are not simple)."""
    parts = []
    for key, value in sorted(plain_options(options).items()):
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            text = "x".join(str(v) for v in value)
        elif isinstance(value, (int, str)) and not isinstance(value, bool):
            text = str(value)
        else:
            text = ""
        if not text or not _PLAIN.match(key + text):
            blob = json.dumps(plain_options(options), sort_keys=True).encode("utf-8")
            return "o" + hashlib.sha256(blob).hexdigest()[:12]
        parts.append(key + text)
    return "-".join(parts)


def export_dir_name(family: str, model: str, checkpoint_sha256: str, precision: str,
                    options: Mapping[str, Any] | None = None) -> str:
    """``<family>-<model>-<sha[:12]>-<precision>[-<options>]``: one cache directory per checkpoint,
    precision and options (DeAOT: ``...-fp32-max_long_term8-size480x854``)."""
    name = f"{family}-{model}-{checkpoint_sha256[:12]}-{precision}"
    return f"{name}-{_options_tag(options)}" if options else name


def find_export(out_dir: Path, checkpoint_sha256: str, precision: str = "fp32", *, verify: bool = False,
                options: Mapping[str, Any] | None = None) -> Path | None:
    """An export directory made from this checkpoint at this precision, still intact, or None.

    ``out_dir`` is an export directory or a folder of them (e.g. the cache root). A directory
    qualifies when its manifest says ``ok``, names this checkpoint sha256 and precision, and all
    its files are present with their recorded sizes (``verify`` also rehashes them). ``options``
    (e.g. ``{"size": [480, 854], "max_long_term": 8}``) must then equal the manifest's options
    exactly; None accepts any.
    """
    out_dir = Path(out_dir)
    wanted = None if options is None else plain_options(options)
    candidates = [out_dir] + (sorted(p for p in out_dir.iterdir() if p.is_dir()) if out_dir.is_dir() else [])
    for directory in candidates:
        if _matches(directory, checkpoint_sha256, precision, verify, wanted):
            return directory
    return None


def _matches(directory: Path, checkpoint_sha256: str, precision: str, verify: bool,
             options: dict[str, Any] | None) -> bool:
    if not (directory / "manifest.json").is_file():
        return False
    try:
        manifest = Manifest.load(directory)
    except ExportError as err:
        log.debug("ignoring %s: %s", directory, err)
        return False
    if not (manifest.ok and manifest.format == FORMAT and manifest.checkpoint_sha256 == checkpoint_sha256
            and manifest.precision == precision and manifest.graphs):
        return False
    if options is not None and manifest.options != options:
        return False
    for graph in manifest.graphs:
        for record in graph.files():
            path = directory / record.file
            if not path.is_file() or path.stat().st_size != record.size:
                return False
            if verify and sha256_file(path) != record.sha256:
                return False
    return True


def ensure_export(spec: ModelSpec, cache_root: Path, precision: str = "fp32", *, samples: int = 3,
                  opset: int = DEFAULT_OPSET, progress: Progress | None = None) -> Path:
    """The export directory for ``spec`` (its checkpoint and options) at ``precision`` under ``cache_root``,
    exporting it if needed.

    The export is written into a temporary sibling directory and renamed into place when it
    passed, so a concurrent reader never finds half an export; a failed one is kept as
    ``.<name>.failed`` (manifest included) for inspection, never reused. Raises what export_model raises.
    """
    check_precision(precision)
    cache_root = Path(cache_root)
    target = cache_root / export_dir_name(spec.family, spec.model, spec.checkpoint_sha256, precision, spec.options)
    if find_export(target, spec.checkpoint_sha256, precision, options=spec.options) == target:
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = cache_root / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        export_model(spec, staging, precision, samples=samples, opset=opset, progress=progress)
    except Exception:
        failed = cache_root / f".{target.name}.failed"
        shutil.rmtree(failed, ignore_errors=True)
        if staging.exists():
            os.replace(staging, failed)
        raise
    if target.exists():
        shutil.rmtree(target)
    try:
        os.replace(staging, target)
    except OSError:
        if find_export(target, spec.checkpoint_sha256, precision, options=spec.options) != target:  # lost a race
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return target
