"""Runners on a CUDA GPU: CUDA graphs replay equals eager, reduced precision stays near fp32, onnxruntime
binds device tensors, and the native TensorRT engine is built, cached and reused.

These run wherever torch sees a CUDA device (the lent H100, any NVIDIA machine) and skip elsewhere;
the TensorRT ones also need the tensorrt package, which cannot be installed on the CPU machines.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the runners need torch (pip install cleanfeed[torch])")

from torch import nn  # noqa: E402

from cleanfeed.engines.runners import RunnerConfig, TensorSpec, get_runner  # noqa: E402
from cleanfeed.errors import BackendError  # noqa: E402

NO_CUDA = "needs a CUDA GPU: torch sees none on this machine (these run on the lent H100 or any NVIDIA machine)"
NO_TRT = "TensorRT is not installed (no build can be installed on these machines)"


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
tensorrt = pytest.mark.skipif(not _has_tensorrt(), reason=NO_TRT)

INPUTS = (TensorSpec("image", (1, 3, 32, 32)), TensorSpec("tokens", (1, "num_tokens", 2)),
          TensorSpec("labels", (1, "num_tokens"), "int64"))
OUTPUTS = (TensorSpec("features", (1, 16, 32, 32)), TensorSpec("scores", (1, "num_tokens")))
PROFILES = {"tokens": ((1, 1, 2), (1, 4, 2), (1, 16, 2)), "labels": ((1, 1), (1, 4), (1, 16))}


class Tiny(nn.Module):
    """Two convs, layer norm and a softmax over a variable number of tokens: enough for fp16 to show."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.norm = nn.LayerNorm(16)
        self.proj = nn.Linear(2, 16)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.conv2(torch.relu(self.conv1(image)))
        pooled = self.norm(features.mean(dim=(2, 3)))
        logits = (self.proj(tokens) * pooled[:, None, :]).sum(-1) + labels.to(tokens.dtype)
        return features, torch.softmax(logits, dim=-1)


def sample(n: int, seed: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inputs = {"image": torch.randn(1, 3, 32, 32, generator=g), "tokens": torch.randn(1, n, 2, generator=g),
              "labels": torch.randint(0, 3, (1, n), generator=g)}
    return {k: v.to(device) for k, v in inputs.items()}


def reference(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    with torch.no_grad():
        return Tiny().eval()(*sample(n, seed).values())


def fresh(**config: object):
    torch.manual_seed(0)
    return get_runner(RunnerConfig(**config), module=Tiny(), inputs=INPUTS, outputs=OUTPUTS)  # type: ignore[arg-type]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max())


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    n = torch.export.Dim("num_tokens", min=1, max=64)
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    torch.onnx.export(Tiny().eval(), tuple(sample(5, 0).values()), str(path), input_names=[s.name for s in INPUTS],
                      output_names=[s.name for s in OUTPUTS],
                      dynamic_shapes={"image": None, "tokens": {1: n}, "labels": {1: n}}, dynamo=True)
    return path


@cuda
def test_outputs_live_on_the_runner_device_whatever_the_input_device() -> None:
    runner = fresh(device="cuda")
    assert runner.device.type == "cuda"
    out = runner(**sample(3, 1))  # CPU inputs are moved
    assert all(t.device == runner.device and t.dtype == torch.float32 for t in out.values())
    assert max_diff(out["scores"], reference(3, 1)[1]) < 1e-4


@cuda
def test_cuda_graph_replay_equals_eager_and_recaptures_per_shape() -> None:
    eager, graphs = fresh(device="cuda"), fresh(device="cuda", cuda_graphs=True)
    assert graphs.description == f"torch eager + CUDA graphs fp32 on {graphs.device}"
    for n, seed in ((4, 0), (4, 1), (9, 2), (4, 3), (1, 4)):  # replay, new shape, back to an old one
        want, got = eager(**sample(n, seed, "cuda")), graphs(**sample(n, seed, "cuda"))
        for name in want:
            assert max_diff(want[name], got[name]) < 1e-5, (n, seed, name)
    assert len(graphs._graphs) == 3
    first = graphs(**sample(4, 5, "cuda"))["scores"]
    graphs(**sample(4, 6, "cuda"))
    assert max_diff(first, eager(**sample(4, 5, "cuda"))["scores"]) < 1e-5  # returned tensors are not overwritten


@cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_is_near_fp32_with_a_float32_boundary(precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    full, low = fresh(device="cuda"), fresh(device="cuda", precision=precision, cuda_graphs=True)
    want, got = full(**sample(6, 7)), low(**sample(6, 7))
    assert got["features"].dtype == torch.float32
    scale = float(want["features"].abs().max())
    assert 0 < max_diff(got["features"], want["features"]) < 0.02 * scale
    assert max_diff(got["scores"], want["scores"]) < 0.02


@cuda
def test_compile_with_cuda_graphs_matches_eager() -> None:
    eager, compiled = fresh(device="cuda"), fresh(device="cuda", compile=True, cuda_graphs=True)
    for n in (3, 3, 5):
        want, got = eager(**sample(n, n, "cuda")), compiled(**sample(n, n, "cuda"))
        assert max_diff(got["scores"], want["scores"]) < 1e-5


@cuda
def test_a_cuda_device_that_does_not_exist() -> None:
    count = torch.cuda.device_count()
    with pytest.raises(BackendError, match=f"device must be one of cuda:0..cuda:{count - 1} on this machine, got 'cuda:{count}'"):
        fresh(device=f"cuda:{count}")


@cuda
def test_onnxruntime_on_cuda_binds_device_tensors(tiny_onnx: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime-gpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (this onnxruntime has no CUDA provider)")
    runner = get_runner(RunnerConfig(backend="onnxruntime", device="cuda"), onnx_path=tiny_onnx,
                        inputs=INPUTS, outputs=OUTPUTS, profiles=PROFILES)
    assert runner.description.split()[1] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    for n in (2, 7, 2):
        out = runner(**sample(n, n, "cuda"))
        want = reference(n, n)
        assert out["scores"].device == runner.device and out["scores"].shape == (1, n)
        assert max_diff(out["features"], want[0]) < 1e-3 and max_diff(out["scores"], want[1]) < 1e-4


@cuda
@tensorrt
@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_tensorrt_engine_matches_torch_and_is_cached(tiny_onnx: Path, tmp_path: Path, precision: str,
                                                     tolerance: float) -> None:
    config = RunnerConfig(backend="tensorrt", device="cuda", precision=precision, cache_dir=tmp_path)
    runner = get_runner(config, onnx_path=tiny_onnx, inputs=INPUTS, outputs=OUTPUTS, profiles=PROFILES)
    assert runner.description.startswith("tensorrt ") and precision in runner.description
    engine = runner.engine_path
    assert engine.is_file() and engine.with_suffix(".json").is_file()
    assert list((tmp_path / "tensorrt").glob("timing-*.cache"))
    for n in (1, 4, 16):
        out = runner(**sample(n, n, "cuda"))
        want = reference(n, n)
        assert out["scores"].shape == (1, n) and out["scores"].device == runner.device
        assert max_diff(out["scores"], want[1]) < tolerance
        assert max_diff(out["features"], want[0]) < tolerance * float(want[0].abs().max())
    stamp = engine.stat().st_mtime_ns
    again = get_runner(config, onnx_path=tiny_onnx, inputs=INPUTS, outputs=OUTPUTS, profiles=PROFILES)
    assert again.engine_path == engine and engine.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    with pytest.raises(BackendError, match="must fit the engine's optimization profile"):
        again(**sample(17, 0, "cuda"))


@cuda
@tensorrt
def test_tensorrt_rebuilds_a_corrupt_engine_and_needs_profiles(tiny_onnx: Path, tmp_path: Path) -> None:
    config = RunnerConfig(backend="tensorrt", device="cuda", cache_dir=tmp_path)
    with pytest.raises(BackendError, match="tensorrt needs a profile .* for dynamic input tokens"):
        get_runner(config, onnx_path=tiny_onnx, inputs=INPUTS, outputs=OUTPUTS)
    engine = get_runner(config, onnx_path=tiny_onnx, inputs=INPUTS, outputs=OUTPUTS, profiles=PROFILES).engine_path
    engine.write_bytes(b"truncated")
    runner = get_runner(config, onnx_path=tiny_onnx, inputs=INPUTS, outputs=OUTPUTS, profiles=PROFILES)
    assert engine.stat().st_size > 1000
    assert max_diff(runner(**sample(3, 3, "cuda"))["scores"], reference(3, 3)[1]) < 1e-3
