"""Engine cache: where it is, and keys that change exactly when a built engine would stop being valid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cleanfeed.engines.runners import engine_cache_dir
from cleanfeed.engines.runners.engine_cache import (
    engine_key,
    engine_path,
    external_data_files,
    files_sha256,
    onnx_sha256,
    ort_trt_cache_dir,
    timing_cache_path,
    write_atomic,
)
from cleanfeed.errors import BackendError

H100 = ("NVIDIA H100 80GB HBM3", (9, 0))
PROFILES = {"point_coords": ((1, 1, 2), (1, 4, 2), (1, 34, 2)), "point_labels": ((1, 1), (1, 4), (1, 34))}


def key(**changes: object) -> str:
    args: dict[str, object] = {"onnx_sha256": "ab" * 32, "gpu_name": H100[0], "compute_capability": H100[1],
                               "trt_version": "10.9.0.34", "precision": "fp16", "profiles": PROFILES}
    args.update(changes)
    return engine_key(**args)  # type: ignore[arg-type]


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLEANFEED_CACHE", str(tmp_path / "engines"))
    assert engine_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv("CLEANFEED_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert engine_cache_dir() == tmp_path / ".cache" / "cleanfeed" / "engines"
    assert not (tmp_path / ".cache").exists()  # naming the folder does not create it


def test_engine_key_is_stable_and_ignores_profile_order() -> None:
    assert key() == key()
    reordered = dict(reversed(list(PROFILES.items())))
    assert key(profiles=reordered) == key()
    assert len(key()) == 64


@pytest.mark.parametrize("change", [
    {"onnx_sha256": "cd" * 32},
    {"gpu_name": "NVIDIA H200"},
    {"compute_capability": (8, 9)},
    {"trt_version": "10.9.0.35"},
    {"precision": "fp32"},
    {"profiles": {**PROFILES, "point_coords": ((1, 1, 2), (1, 4, 2), (1, 64, 2))}},
    {"profiles": {}},
])
def test_engine_key_changes_with_everything_an_engine_depends_on(change: dict[str, object]) -> None:
    assert key(**change) != key()


def test_file_names_carry_the_key_gpu_and_version(tmp_path: Path) -> None:
    k = key()
    assert engine_path(tmp_path, Path("/x/prompt_decoder.onnx"), k) == tmp_path / "tensorrt" / f"prompt_decoder-{k[:20]}.engine"
    assert timing_cache_path(tmp_path, *H100, "10.9.0.34").name == "timing-nvidia-h100-80gb-hbm3-sm90-trt10.9.0.34.cache"
    assert ort_trt_cache_dir(tmp_path, "ef" * 32) == tmp_path / "ort-trt" / ("ef" * 10)


def tiny_onnx(path: Path, weights: list[float], external: bool = False) -> Path:
    """A one-node ONNX model (y = x * w) whose weights, inline or in ``<name>.data``, are ``weights``."""
    onnx = pytest.importorskip("onnx", reason="writing ONNX files needs onnx (pip install cleanfeed[onnx])")
    import numpy as np
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.asarray(weights, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [len(weights)])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [len(weights)])], [weight])
    onnx.save_model(helper.make_model(graph), str(path), save_as_external_data=external,
                    all_tensors_to_one_file=True, location=path.name + ".data", size_threshold=0)
    return path


def test_onnx_digest_changes_with_the_bytes_and_is_memoised(tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "m.onnx", [1.0, 2.0])
    first = onnx_sha256(model, tmp_path / "cache")
    assert first == onnx_sha256(model) == files_sha256([model])
    tiny_onnx(model, [1.0, 3.0])
    assert onnx_sha256(model, tmp_path / "cache") != first
    # The memo is trusted while every file keeps its size and mtime (that is what makes it cheap) ...
    (memo,) = (tmp_path / "cache" / "digests").iterdir()
    memo.write_text(memo.read_text().replace(onnx_sha256(model), "0" * 64))
    assert onnx_sha256(model, tmp_path / "cache") == "0" * 64
    # ... and recomputed as soon as one changes.
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert onnx_sha256(model, tmp_path / "cache") == files_sha256([model])


def test_a_file_that_is_not_onnx_cannot_be_keyed(tmp_path: Path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"graph")
    with pytest.raises(BackendError, match=f"onnx_path must be an ONNX model, got '{bad}' "):
        onnx_sha256(bad)


def test_onnx_digest_covers_external_data(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "enc.onnx", [float(i) for i in range(1024)], external=True)
    assert external_data_files(path) == [tmp_path / "enc.onnx.data"]
    before = onnx_sha256(path)
    data = bytearray((tmp_path / "enc.onnx.data").read_bytes())
    data[100] ^= 1
    (tmp_path / "enc.onnx.data").write_bytes(bytes(data))
    assert path.read_bytes() and onnx_sha256(path) != before


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.engine"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["b.engine"]  # no temporary left behind
