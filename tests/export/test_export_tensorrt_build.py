"""--tensorrt: a native engine built through cleanfeed.engines.runners and checked against torch (GPU machines only)."""

from __future__ import annotations

import importlib.util

import pytest

from cleanfeed.export.model_export import export_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                                reason="TensorRT is not installed (no build can be installed on these machines)")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_matches_torch(tiny_spec, tmp_path, precision):
    manifest = export_model(tiny_spec, tmp_path / precision, precision, tensorrt=True, samples=2, seed=5)
    for graph in manifest.graphs:
        backends = [p["backend"] for p in graph.parity]
        assert backends == ["onnxruntime", "tensorrt"]
        assert all(p["passed"] for p in graph.parity), graph.parity
        assert graph.tensorrt_engine and "tensorrt" in graph.tensorrt_engine["runner"].lower()
