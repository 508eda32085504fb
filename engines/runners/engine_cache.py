"""Where built engines live and what names them, so an engine is rebuilt exactly when it must be.

A TensorRT engine is only valid for the graph it was built from (the ONNX file and its external
data), the GPU model (name and compute capability), the TensorRT version and the build settings
(precision, optimization profiles). The cache key hashes all of these; everything here is a pure
function of its arguments (plus the files it reads) so it is tested without TensorRT or a GPU.

Layout under the cache dir (default ``engine_cache_dir()``)::

    digests/<path hash>.json          sha256 of an ONNX file + its external data, keyed by size/mtime
    tensorrt/<stem>-<key>.engine      serialized native engines (+ .json: what the key was made of)
    tensorrt/timing-<gpu>-sm<cc>-trt<version>.cache    TensorRT timing cache, shared by builds
    ort-trt/<onnx sha256>/            onnxruntime TensorRT-EP engine and timing caches
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from cleanfeed.engines.runners.base import Profile
from cleanfeed.errors import BackendError

_CHUNK = 1 << 20


def engine_cache_dir() -> Path:
    """``$CLEANFEED_CACHE`` if set, else ``~/.cache/cleanfeed/engines``; not created here."""
    configured = os.environ.get("CLEANFEED_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "cleanfeed" / "engines"


def external_data_files(onnx_path: Path) -> list[Path]:
    """The external data files an ONNX model's tensors point to (sorted, existing or not).

    Read with ``onnx`` without loading the data; without ``onnx`` installed, the files beside the
    model whose names appear verbatim in its bytes (the proto stores locations as plain strings).
    """
    onnx_path = Path(onnx_path)
    try:
        import onnx
    except ImportError:
        blob = onnx_path.read_bytes()
        return sorted(p for p in onnx_path.parent.iterdir()
                      if p.is_file() and p != onnx_path and p.name.encode() in blob)
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise BackendError(f"onnx_path must be an ONNX model, got {str(onnx_path)!r} ({type(err).__name__})") from err
    locations: set[str] = set()

    def visit(graph: onnx.GraphProto) -> None:
        tensors = list(graph.initializer)
        for node in graph.node:
            for attr in node.attribute:
                tensors.extend([attr.t] if attr.HasField("t") else [])
                tensors.extend(attr.tensors)
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    visit(sub)
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                locations.update(e.value for e in tensor.external_data if e.key == "location")

    visit(model.graph)
    return sorted(onnx_path.parent / loc for loc in locations)


def files_sha256(paths: Sequence[Path]) -> str:
    """One sha256 over several files: each one's name, size and bytes, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def onnx_sha256(onnx_path: Path, memo_dir: Path | None = None) -> str:
    """sha256 of an ONNX model and its external data files.

    Hashing a 2.5 GB vit_h export takes seconds, so with ``memo_dir`` the digest is remembered in a
    small JSON file, valid while every file keeps its size and mtime.
    """
    onnx_path = Path(onnx_path).resolve()
    files = [onnx_path, *external_data_files(onnx_path)]
    stamp = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo = None
    if memo_dir is not None:
        memo = Path(memo_dir) / "digests" / (hashlib.sha256(str(onnx_path).encode()).hexdigest()[:24] + ".json")
        try:
            saved = json.loads(memo.read_text())
            if saved.get("files") == stamp and isinstance(saved.get("sha256"), str):
                return saved["sha256"]
        except (OSError, ValueError):
            pass
    digest = files_sha256(files)
    if memo is not None:
        write_atomic(memo, json.dumps({"files": stamp, "sha256": digest}).encode())
    return digest


def engine_key(onnx_sha256: str, gpu_name: str, compute_capability: tuple[int, int], trt_version: str,
               precision: str, profiles: Mapping[str, Profile]) -> str:
    """sha256 over everything a serialized engine depends on; profile order does not matter."""
    parts = {
        "onnx_sha256": onnx_sha256,
        "gpu": gpu_name,
        "compute_capability": list(compute_capability),
        "tensorrt": trt_version,
        "precision": precision,
        "profiles": {name: [list(s) for s in shapes] for name, shapes in sorted(profiles.items())},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-").lower() or "unknown"


def engine_path(cache_dir: Path, onnx_path: Path, key: str) -> Path:
    """``<cache>/tensorrt/<onnx stem>-<first 20 hex of the key>.engine``."""
    return Path(cache_dir) / "tensorrt" / f"{_slug(Path(onnx_path).stem)}-{key[:20]}.engine"


def timing_cache_path(cache_dir: Path, gpu_name: str, compute_capability: tuple[int, int], trt_version: str) -> Path:
    """One timing cache per GPU model and TensorRT version: it speeds up every build on them."""
    major, minor = compute_capability
    return Path(cache_dir) / "tensorrt" / f"timing-{_slug(gpu_name)}-sm{major}{minor}-trt{_slug(trt_version)}.cache"


def ort_trt_cache_dir(cache_dir: Path, onnx_sha256: str) -> Path:
    """onnxruntime's TensorRT EP keys its own engines by graph and shapes; one folder per ONNX digest
    keeps the engines of different exports apart."""
    return Path(cache_dir) / "ort-trt" / onnx_sha256[:20]


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so a reader (another process) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
