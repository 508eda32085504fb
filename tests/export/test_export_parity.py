"""Parity verdicts, and the failure path: a missed limit is an ExportError with the manifest marked failed."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from cleanfeed.engines.runners.base import TensorSpec
from cleanfeed.errors import ExportError
from cleanfeed.export.model_export import ParityError, export_model, find_export
from cleanfeed.export.parity import judge, meets, worst
from cleanfeed.export.spec import GraphSpec, ModelSpec


class Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(8, 256)  # 8 KB of weights: big enough to go to external data
        self.linear = nn.Linear(256, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.linear(torch.relu(self.hidden(x))),)


def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
    rows = int(rng.integers(1, 6))
    return {"x": torch.from_numpy(rng.standard_normal((rows, 8), dtype=np.float32))}


def max_abs(expected, actual):
    return {"max_abs": float((expected["y"] - actual["y"]).abs().max())}


def affine_spec(checkpoint, limits, compare=max_abs, sample=sample) -> ModelSpec:
    graph = GraphSpec(name="affine", module=Affine().eval(), inputs=(TensorSpec("x", ("rows", 8)),),
                      outputs=(TensorSpec("y", ("rows", 4)),), sample=sample,
                      profiles={"x": ((1, 8), (4, 8), (16, 8))}, compare=compare, limits=limits)
    return ModelSpec(family="test", model="affine", checkpoint=checkpoint, checkpoint_sha256="ab" * 32, graphs=(graph,))


def test_meets_and_worst():
    assert meets(1e-4, "<", 1e-3) and not meets(1e-3, "<", 1e-3) and meets(1e-3, "<=", 1e-3)
    assert meets(0.9995, ">", 0.999) and not meets(math.nan, ">", 0.0) and not meets(math.nan, "<", 1.0)
    assert worst([0.1, 0.3, 0.2], "<") == 0.3 and worst([0.99, 0.98], ">") == 0.98
    assert math.isnan(worst([0.1, math.nan], "<"))


def test_judge_names_each_missed_limit():
    per_sample = [{"max_abs": 1e-4, "iou": 0.9999}, {"max_abs": 2e-3, "iou": 0.95}]
    figures, failures = judge(per_sample, {"max_abs": ("<", 1e-3), "iou": (">", 0.999), "rel": ("<", 1.0)})
    assert figures == {"max_abs": 2e-3, "iou": 0.95}
    assert failures == ["max_abs 0.002 must be < 0.001", "iou 0.95 must be > 0.999",
                        "rel must be computed by compare() to check < 1, got no such figure"]


@pytest.mark.parametrize("opset", [18, 20])
def test_small_model_passes_and_its_axis_is_dynamic(tmp_path, opset):
    manifest = export_model(affine_spec(tmp_path / "none.pth", {"max_abs": ("<", 1e-5)}), tmp_path / "ok", samples=3,
                            seed=7, opset=opset)
    (graph,) = manifest.graphs
    model = onnx.load(str(tmp_path / "ok" / "affine.onnx"))
    assert manifest.opset == opset and model.opset_import[0].version == opset
    assert manifest.ok and graph.parity[0]["passed"] and graph.parity[0]["figures"]["max_abs"] < 1e-5
    assert graph.dynamic_axes == {"x": {"0": "rows"}, "y": {"0": "rows"}}
    rows = [s["max_abs"] for s in graph.parity[0]["per_sample"]]
    assert len(rows) == 3


def test_missed_limit_raises_and_marks_the_manifest_failed(tmp_path):
    spec = affine_spec(tmp_path / "none.pth", {"max_abs": ("<", 0.0)})  # no export can beat 0
    out = tmp_path / "failed"
    with pytest.raises(ParityError) as caught:
        export_model(spec, out, samples=2, seed=7)
    message = str(caught.value)
    assert message.startswith("exported graphs must match the torch model, got affine: onnxruntime max_abs ")
    assert message.endswith(f"must be < 0 (manifest: {out / 'manifest.json'})")
    assert isinstance(caught.value, ExportError)
    data = json.loads((out / "manifest.json").read_text())
    assert data["status"] == "failed" and data["failure"].startswith("affine: onnxruntime max_abs ")
    assert data["graphs"][0]["parity"][0]["passed"] is False
    assert (out / "affine.onnx").is_file()  # the files stay for inspection
    assert find_export(out, "ab" * 32) is None
    assert caught.value.manifest.status == "failed"


def test_nan_figure_fails(tmp_path):
    spec = affine_spec(tmp_path / "none.pth", {"max_abs": ("<", 1.0)}, compare=lambda e, a: {"max_abs": math.nan})
    with pytest.raises(ParityError, match="max_abs nan must be < 1"):
        export_model(spec, tmp_path / "nan", samples=1, seed=7)


def test_bad_arguments_are_one_line_errors(tmp_path):
    spec = affine_spec(tmp_path / "none.pth", {"max_abs": ("<", 1.0)})
    with pytest.raises(ExportError, match=r"^precision must be one of fp32, fp16, got 'bf16'$"):
        export_model(spec, tmp_path / "x", "bf16")
    with pytest.raises(ExportError, match=r"^opset must be one of 18, 19, 20 \(TensorRT 10.1 parses 9..20; the dynamo exporter writes 18\+\), got 17$"):
        export_model(spec, tmp_path / "x", opset=17)
    with pytest.raises(ExportError, match=r"^samples must be at least 1, got 0$"):
        export_model(spec, tmp_path / "x", samples=0)
    broken = affine_spec(tmp_path / "none.pth", {"max_abs": ("<", 1.0)}, sample=lambda rng: {"z": torch.zeros(2, 8)})
    with pytest.raises(ExportError, match=r"^affine: sample must give input 'x', got \['z'\]$"):
        export_model(broken, tmp_path / "y")
    assert json.loads((tmp_path / "y" / "manifest.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_weights_go_to_external_data_over_the_threshold(tmp_path, monkeypatch, precision):
    from cleanfeed.export import onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_THRESHOLD", 64)  # 2 GiB in real life
    out = tmp_path / precision
    manifest = export_model(affine_spec(tmp_path / "none.pth", {"max_abs": ("<", 1e-2)}), out, precision, samples=2,
                            seed=7)
    (graph,) = manifest.graphs
    assert [f.file for f in graph.external_data] == ["affine.onnx.data"]
    assert graph.external_data[0].size == (out / "affine.onnx.data").stat().st_size > 0
    assert manifest.ok and graph.parity[0]["passed"]
    assert find_export(out, "ab" * 32, precision) == out
    (out / "affine.onnx.data").unlink()
    assert find_export(out, "ab" * 32, precision) is None
