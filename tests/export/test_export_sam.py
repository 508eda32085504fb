"""SAM through the exporter: files, manifest, parity, dynamic point count, reuse of an export."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cleanfeed.export import model_export
from cleanfeed.export.manifest import Manifest
from cleanfeed.export.model_export import ensure_export, export_dir_name, find_export
from cleanfeed.export.sam import compare_masks
from cleanfeed.export.tensorrt_ops import check_file


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_writes_graphs_and_a_complete_manifest(fp32_export, tiny_checkpoint):
    out, manifest, lines = fp32_export
    data = json.loads((out / "manifest.json").read_text())
    assert data["status"] == "ok" and data["failure"] is None
    assert (data["family"], data["model"], data["opset"], data["precision"]) == ("sam", "custom", 18, "fp32")
    assert data["checkpoint"] == {"path": str(tiny_checkpoint), "sha256": sha256(tiny_checkpoint)}
    assert [g["name"] for g in data["graphs"]] == ["image_encoder", "prompt_decoder"]
    for g in data["graphs"]:
        path = out / g["file"]
        assert g["file"] == f"{g['name']}.onnx" and g["external_data"] == []
        assert (g["sha256"], g["size"]) == (sha256(path), path.stat().st_size)
    enc, dec = data["graphs"]
    assert enc["inputs"] == [{"name": "image", "shape": [1, 3, 1024, 1024], "dtype": "float32"}]
    assert enc["outputs"] == [{"name": "image_embeddings", "shape": [1, 256, 64, 64], "dtype": "float32"}]
    assert [(t["name"], t["shape"]) for t in dec["inputs"]] == [
        ("image_embeddings", [1, 256, 64, 64]), ("point_coords", [1, "num_points", 2]),
        ("point_labels", [1, "num_points"]), ("mask_input", [1, 1, 256, 256]), ("has_mask_input", [1])]
    assert [(t["name"], t["shape"]) for t in dec["outputs"]] == [("low_res_logits", [1, 4, 256, 256]),
                                                                ("iou_predictions", [1, 4])]
    assert dec["dynamic_axes"] == {"point_coords": {"1": "num_points"}, "point_labels": {"1": "num_points"}}
    assert dec["profiles"]["point_coords"][0] == [1, 1, 2]
    assert enc["dynamic_axes"] == {} and enc["profiles"] == {}
    # parity: the fp32 numbers, with the limits written beside the figures
    (ort_dec,) = dec["parity"]
    assert ort_dec["backend"] == "onnxruntime" and ort_dec["passed"] and ort_dec["samples"] == 2
    assert ort_dec["limits"] == {"max_abs_logits": ["<", 1e-3], "mask_iou": [">", 0.999]}
    assert ort_dec["figures"]["max_abs_logits"] < 1e-3 and ort_dec["figures"]["mask_iou"] > 0.999
    assert len(ort_dec["per_sample"]) == 2
    (ort_enc,) = enc["parity"]
    assert ort_enc["figures"]["rel_error"] < 1e-4 and ort_enc["passed"]
    assert set(data["tools"]) == {"torch", "onnx", "onnxruntime", "onnxscript", "segment_anything", "cleanfeed",
                                  "tensorrt"}
    assert data["tools"]["onnx"] == onnx.__version__ and data["tools"]["onnxruntime"] == ort.__version__
    assert data["tensorrt_matrix"]["tensorrt_version"] == "10.1"
    assert data["seed"] == 1234 and data["created"] and data["host"]["name"]
    assert Manifest.load(out).to_json() == data == manifest.to_json()
    assert any("prompt_decoder: onnxruntime vs torch: max_abs_logits" in line for line in lines)


def test_onnx_files_pass_the_checker_and_keep_the_named_axis(fp32_export):
    out, _, _ = fp32_export
    for name in ("image_encoder", "prompt_decoder"):
        onnx.checker.check_model(str(out / f"{name}.onnx"))
    decoder = onnx.load(str(out / "prompt_decoder.onnx"), load_external_data=False)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in decoder.graph.input}
    assert dims["point_coords"] == [1, "num_points", 2] and dims["point_labels"] == [1, "num_points"]
    assert decoder.opset_import[0].version == 18


@pytest.mark.parametrize("num_points", [1, 2, 5])
@pytest.mark.parametrize("with_mask", [False, True])
def test_exported_decoder_takes_any_point_count(fp32_export, tiny_spec, num_points, with_mask):
    out, _, _ = fp32_export
    decoder = tiny_spec.graphs[1]
    rng = np.random.default_rng(num_points)
    coords = rng.uniform(0, 1024, (1, num_points, 2)).astype(np.float32)
    labels = np.array([[1, 0, 2, 3, -1][i % 5] for i in range(num_points)], np.float32)[None]
    feeds = {"image_embeddings": rng.standard_normal((1, 256, 64, 64), dtype=np.float32), "point_coords": coords,
             "point_labels": labels, "mask_input": rng.standard_normal((1, 1, 256, 256), dtype=np.float32) * 8,
             "has_mask_input": np.array([float(with_mask)], np.float32)}
    session = ort.InferenceSession(str(out / "prompt_decoder.onnx"), providers=["CPUExecutionProvider"])
    logits, scores = session.run(None, feeds)
    with torch.no_grad():
        want = decoder.module(*(torch.from_numpy(feeds[s.name]) for s in decoder.inputs))
    assert logits.shape == (1, 4, 256, 256) and scores.shape == (1, 4)
    figures = compare_masks({"low_res_logits": want[0], "iou_predictions": want[1]},
                            {"low_res_logits": torch.from_numpy(logits), "iou_predictions": torch.from_numpy(scores)})
    assert figures["max_abs_logits"] < 1e-3 and figures["mask_iou"] > 0.999, figures


def test_tensorrt_would_take_both_sam_graphs(fp32_export):
    # Measured: the dynamo export of SAM uses only ops TensorRT 10.1 supports, with constant axes.
    out, manifest, _ = fp32_export
    for graph in manifest.graphs:
        findings = check_file(out / graph.onnx.file)
        assert [f.to_json() for f in findings] == graph.tensorrt_findings == []


def copy_export(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_find_export_reuses_only_an_intact_matching_export(fp32_export, tiny_checkpoint, tmp_path):
    out, manifest, _ = fp32_export
    sha = sha256(tiny_checkpoint)
    root = tmp_path / "cache"
    good = copy_export(out, root / "a-good")
    assert find_export(good, sha) == good
    assert find_export(root, sha, "fp32") == good  # a folder of exports is searched
    assert find_export(root, "0" * 64) is None
    assert find_export(root, sha, "fp16") is None
    assert find_export(tmp_path / "nowhere", sha) is None

    truncated = copy_export(out, tmp_path / "truncated")
    data = (truncated / "prompt_decoder.onnx").read_bytes()
    (truncated / "prompt_decoder.onnx").write_bytes(data[: len(data) // 2])
    assert find_export(truncated, sha) is None

    tampered = copy_export(out, tmp_path / "tampered")
    raw = bytearray((tampered / "image_encoder.onnx").read_bytes())
    raw[-1] ^= 0xFF
    (tampered / "image_encoder.onnx").write_bytes(bytes(raw))
    assert find_export(tampered, sha) == tampered  # sizes match: only verify=True rehashes
    assert find_export(tampered, sha, verify=True) is None

    failed = copy_export(out, tmp_path / "failed")
    m = Manifest.load(failed)
    m.status = "failed"
    m.save(failed)
    assert find_export(failed, sha) is None

    (good / "manifest.json").write_text("{not json")
    assert find_export(good, sha) is None


def test_ensure_export_exports_once_then_reuses(tiny_spec, tmp_path, monkeypatch):
    # fp16 here, so this one export also covers the fp16 path end to end
    lines: list[str] = []
    path = ensure_export(tiny_spec, tmp_path, "fp16", samples=2, progress=lines.append)
    assert path == tmp_path / export_dir_name("sam", "custom", tiny_spec.checkpoint_sha256, "fp16")
    assert path.name == f"sam-custom-{tiny_spec.checkpoint_sha256[:12]}-fp16"
    manifest = Manifest.load(path)
    assert manifest.ok and manifest.precision == "fp16"
    enc, dec = manifest.graphs
    assert dec.parity[0]["limits"] == {"rel_logits": ["<", 0.05], "mask_iou": [">", 0.99]}
    assert dec.parity[0]["passed"] and enc.parity[0]["passed"]
    model = onnx.load(str(path / "prompt_decoder.onnx"))
    assert {i.type.tensor_type.elem_type for i in (*model.graph.input, *model.graph.output)} == {onnx.TensorProto.FLOAT}
    assert onnx.TensorProto.FLOAT16 in {t.data_type for t in model.graph.initializer}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no staging directory left behind

    def no_export(*args, **kwargs):
        raise AssertionError("ensure_export must reuse the existing export")

    monkeypatch.setattr(model_export, "export_model", no_export)
    assert ensure_export(tiny_spec, tmp_path, "fp16") == path
