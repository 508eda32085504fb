"""torch and onnxruntime runners on CPU: same names, dtypes and values for a tiny model with a dynamic axis."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the runners need torch (pip install cleanfeed[torch])")
pytest.importorskip("onnxruntime", reason="the onnxruntime runner needs onnxruntime (pip install cleanfeed[onnx])")
pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")

from torch import nn  # noqa: E402

from cleanfeed.engines.runners import RunnerConfig, TensorSpec, get_runner  # noqa: E402
from cleanfeed.errors import BackendError  # noqa: E402

INPUTS = (
    TensorSpec("image", (1, 3, 16, 16)),
    TensorSpec("tokens", (1, "num_tokens", 2)),
    TensorSpec("labels", (1, "num_tokens"), "int64"),
)
OUTPUTS = (TensorSpec("features", (1, 4, 16, 16)), TensorSpec("scores", (1, "num_tokens")))


class Tiny(nn.Module):
    """A conv over an image and a projection of a variable number of tokens, mixed; labels are integers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.proj = nn.Linear(2, 4)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = torch.relu(self.conv(image))
        pooled = features.mean(dim=(2, 3))
        scores = (self.proj(tokens) * pooled[:, None, :]).sum(-1) + labels.to(tokens.dtype)
        return features, scores


def sample(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(1, 3, 16, 16, generator=g), "tokens": torch.randn(1, n, 2, generator=g),
            "labels": torch.randint(0, 3, (1, n), generator=g)}


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    torch.manual_seed(0)
    return Tiny().eval()


@pytest.fixture(scope="module")
def tiny_onnx(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    n = torch.export.Dim("num_tokens", min=1, max=64)
    args = tuple(sample(5, 0).values())
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    torch.onnx.export(tiny, args, str(path), input_names=[s.name for s in INPUTS],
                      output_names=[s.name for s in OUTPUTS],
                      dynamic_shapes={"image": None, "tokens": {1: n}, "labels": {1: n}}, dynamo=True)
    return path


def torch_runner(tiny: Tiny, precision: str = "fp32"):
    return get_runner(RunnerConfig(precision=precision), module=tiny, inputs=INPUTS, outputs=OUTPUTS)


def ort_runner(path: Path, precision: str = "fp32"):
    return get_runner(RunnerConfig(backend="onnxruntime", precision=precision), onnx_path=path,
                      inputs=INPUTS, outputs=OUTPUTS)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


@pytest.mark.parametrize("n", [1, 2, 7, 33])
def test_torch_and_onnxruntime_agree_for_every_length(tiny: Tiny, tiny_onnx: Path, n: int) -> None:
    expected = tiny(*sample(n, n).values())
    with torch_runner(tiny) as eager, ort_runner(tiny_onnx) as ort:
        got_torch, got_ort = eager(**sample(n, n)), ort(**sample(n, n))
    for spec, want in zip(OUTPUTS, expected, strict=True):
        assert got_torch[spec.name].shape == want.shape == got_ort[spec.name].shape
        assert max_diff(got_torch[spec.name], want) == 0.0, spec.name
        assert max_diff(got_ort[spec.name], want) < 1e-5, spec.name


def test_one_runner_serves_several_lengths_in_turn(tiny: Tiny, tiny_onnx: Path) -> None:
    ort = ort_runner(tiny_onnx)
    for n in (4, 1, 9, 4):
        scores = ort(**sample(n, 10 + n))["scores"]
        assert scores.shape == (1, n)
        assert max_diff(scores, tiny(*sample(n, 10 + n).values())[1]) < 1e-5


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_outputs_are_named_float32_on_the_runner_device(tiny: Tiny, tiny_onnx: Path, backend: str) -> None:
    runner = torch_runner(tiny) if backend == "torch" else ort_runner(tiny_onnx)
    inputs = sample(3, 1)
    inputs["image"] = inputs["image"].double()  # any float dtype in, float32 out
    inputs["labels"] = inputs["labels"].int()
    out = runner(**inputs)
    assert list(out) == ["features", "scores"]
    assert all(t.dtype == torch.float32 and t.device == runner.device == torch.device("cpu") for t in out.values())
    assert runner.inputs == INPUTS and runner.outputs == OUTPUTS


@pytest.mark.parametrize("precision,tolerance", [("bf16", 0.05), ("fp16", 0.01)])
def test_reduced_precision_torch_on_cpu_keeps_a_float32_boundary(tiny: Tiny, precision: str, tolerance: float) -> None:
    runner = torch_runner(tiny, precision)
    assert runner.description == f"torch eager autocast {precision} on cpu"
    out = runner(**sample(6, 2))
    want = tiny(*sample(6, 2).values())
    assert out["features"].dtype == out["scores"].dtype == torch.float32
    assert 0 < max_diff(out["features"], want[0]) < tolerance  # computed in 16 bits, not silently fp32
    assert max_diff(out["scores"], want[1]) < 10 * tolerance
    assert next(tiny.parameters()).dtype == torch.float32  # autocast: the weights stay float32


def test_onnxruntime_cpu_chooses_the_cpu_provider_and_logs_it(tiny_onnx: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cleanfeed.engines.runners"):
        runner = ort_runner(tiny_onnx)
    assert runner.description.startswith("onnxruntime CPUExecutionProvider fp32")
    assert [r.getMessage() for r in caplog.records if r.name == "cleanfeed.engines.runners"] == [f"runner: {runner.description}"]


def test_onnxruntime_fp16_on_cpu_needs_an_fp16_export(tiny_onnx: Path) -> None:
    with pytest.raises(BackendError, match=r"onnxruntime precision fp16 on CPUExecutionProvider needs a graph "
                                           r"exported in float16 .* got a float32 graph: export with --precision fp16"):
        ort_runner(tiny_onnx, "fp16")


def test_onnx_graph_names_must_match_the_specs(tiny_onnx: Path) -> None:
    renamed = (TensorSpec("picture", (1, 3, 16, 16)),) + INPUTS[1:]
    with pytest.raises(BackendError, match="onnx graph inputs must be picture, tokens, labels, got image, tokens, labels"):
        get_runner(RunnerConfig(backend="onnxruntime"), onnx_path=tiny_onnx, inputs=renamed, outputs=OUTPUTS)


def test_a_file_that_is_not_onnx_is_a_backend_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match=f"onnxruntime could not load {bad}"):
        get_runner(RunnerConfig(backend="onnxruntime"), onnx_path=bad, inputs=INPUTS, outputs=OUTPUTS)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_inputs_are_checked_by_name_shape_and_axis(tiny: Tiny, tiny_onnx: Path, backend: str) -> None:
    runner = torch_runner(tiny) if backend == "torch" else ort_runner(tiny_onnx)
    good = sample(3, 0)
    with pytest.raises(BackendError, match="runner inputs must be image, tokens, labels, got image, tokens"):
        runner(image=good["image"], tokens=good["tokens"])
    with pytest.raises(BackendError, match=r"input image must have shape \(1, 3, 16, 16\), got \(1, 3, 8, 8\)"):
        runner(**{**good, "image": torch.zeros(1, 3, 8, 8)})
    with pytest.raises(BackendError, match=r"input tokens must have shape \(1, num_tokens, 2\), got \(1, 3\)"):
        runner(**{**good, "tokens": torch.zeros(1, 3)})
    with pytest.raises(BackendError, match="input labels axis num_tokens must be 3 as in tokens, got 2"):
        runner(**{**good, "labels": torch.zeros(1, 2, dtype=torch.int64)})


def test_a_module_returning_the_wrong_outputs_is_named(tiny: Tiny) -> None:
    class One(nn.Module):
        def forward(self, image, tokens, labels):  # noqa: ANN001, ANN202
            return image

    runner = get_runner(RunnerConfig(), module=One(), inputs=INPUTS, outputs=OUTPUTS)
    with pytest.raises(BackendError, match=r"module must return a tuple of 2 tensors \(features, scores\), got 1"):
        runner(**sample(2, 0))


def test_an_fp16_export_runs_at_fp16_behind_a_float32_boundary(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="writing ONNX files needs onnx (pip install cleanfeed[onnx])")
    import numpy as np
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.full(8, 1 / 3, dtype=np.float16), "w")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, ["n", 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, ["n", 8])], [weight])
    path = tmp_path / "half.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    specs = dict(inputs=(TensorSpec("x", ("n", 8)),), outputs=(TensorSpec("y", ("n", 8)),))
    with pytest.raises(BackendError, match="got a float16 graph: use an fp32 export, or ask for precision fp16"):
        get_runner(RunnerConfig(backend="onnxruntime"), onnx_path=path, **specs)
    runner = get_runner(RunnerConfig(backend="onnxruntime", precision="fp16"), onnx_path=path, **specs)
    y = runner(x=torch.ones(3, 8))["y"]
    assert y.dtype == torch.float32 and y.shape == (3, 8)
    assert float(y[0, 0]) == float(np.float16(1 / 3)) != 1 / 3  # computed in half precision


@pytest.mark.slow
def test_torch_compile_matches_eager_across_lengths(tiny: Tiny) -> None:
    compiled = get_runner(RunnerConfig(compile=True), module=tiny, inputs=INPUTS, outputs=OUTPUTS)
    assert compiled.description == "torch torch.compile fp32 on cpu"
    for n in (3, 5, 3):  # a new length recompiles (dynamic), an old one reuses
        with torch.no_grad():
            want = tiny(*sample(n, n).values())
        got = compiled(**sample(n, n))
        assert max_diff(got["features"], want[0]) < 1e-5 and max_diff(got["scores"], want[1]) < 1e-5
