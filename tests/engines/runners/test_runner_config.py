"""get_runner's checks and the provider plan: every refusal says what was asked and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the runners need torch (pip install cleanfeed[torch])")

from cleanfeed.engines.runners import BACKENDS, PRECISIONS, RunnerConfig, TensorSpec, get_runner  # noqa: E402
from cleanfeed.engines.runners.base import parse_device, validate_profiles  # noqa: E402
from cleanfeed.engines.runners.onnxruntime_runner import (  # noqa: E402
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    check_precision,
    plan_providers,
)
from cleanfeed.errors import BackendError, CleanfeedError  # noqa: E402

INPUTS = (TensorSpec("x", (1, "n", 2)),)
OUTPUTS = (TensorSpec("y", (1, "n")),)
NO_CUDA = "this machine has a CUDA device, so a CUDA request does not fail here"
HAS_TRT = "tensorrt is installed here, so its absence cannot be tested"


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def runner(config: RunnerConfig, **kwargs: object):
    kwargs.setdefault("module", torch.nn.Identity())
    return get_runner(config, inputs=INPUTS, outputs=OUTPUTS, **kwargs)  # type: ignore[arg-type]


def test_tokens_are_the_ones_users_type() -> None:
    assert BACKENDS == ("torch", "onnxruntime", "tensorrt")
    assert PRECISIONS == ("fp32", "fp16", "bf16")
    assert parse_device("cpu") == ("cpu", None) and parse_device("cuda") == ("cuda", None)
    assert parse_device("cuda:2") == ("cuda", 2)


@pytest.mark.parametrize("config,message", [
    (RunnerConfig(backend="onnx"), "runner backend must be one of torch, onnxruntime, tensorrt, got 'onnx'"),
    (RunnerConfig(precision="int8"), "runner precision must be one of fp32, fp16, bf16, got 'int8'"),
    (RunnerConfig(device="gpu"), "runner device must be cpu, cuda or cuda:N, got 'gpu'"),
    (RunnerConfig(device="cpu:1"), "runner device must be cpu, cuda or cuda:N, got 'cpu:1'"),
    (RunnerConfig(cuda_graphs=True), "cuda_graphs must run on a CUDA device, got device 'cpu'"),
    (RunnerConfig(backend="onnxruntime", cuda_graphs=True), "cuda_graphs must be used with backend torch, got backend onnxruntime"),
    (RunnerConfig(backend="tensorrt", compile=True), "compile must be used with backend torch, got backend tensorrt"),
    (RunnerConfig(backend="tensorrt"), "backend tensorrt must run on a CUDA device, got device 'cpu'"),
])
def test_bad_configs_are_refused_before_anything_is_built(config: RunnerConfig, message: str) -> None:
    with pytest.raises(BackendError, match="^" + message.replace("(", r"\(") + "$"):
        runner(config)


def test_backend_errors_are_cleanfeed_errors_with_exit_code_2() -> None:
    with pytest.raises(CleanfeedError) as info:
        runner(RunnerConfig(backend="nope"))
    assert isinstance(info.value, RuntimeError) and info.value.exit_code == 2


def test_specs_are_checked() -> None:
    with pytest.raises(BackendError, match="runner outputs must name at least one tensor, got none"):
        get_runner(RunnerConfig(), module=torch.nn.Identity(), inputs=INPUTS, outputs=())
    with pytest.raises(BackendError, match="runner inputs must have unique names, got x, x"):
        get_runner(RunnerConfig(), module=torch.nn.Identity(), inputs=INPUTS * 2, outputs=OUTPUTS)
    with pytest.raises(BackendError, match="x dtype must be one of float32, int64, int32, bool, got 'float16'"):
        get_runner(RunnerConfig(), module=torch.nn.Identity(), inputs=(TensorSpec("x", (1,), "float16"),), outputs=OUTPUTS)


def test_missing_module_or_onnx_file(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"^backend torch needs module \(a torch.nn.Module\), got None$"):
        runner(RunnerConfig(), module=None)
    with pytest.raises(BackendError, match=r"^backend onnxruntime needs onnx_path \(an ONNX file\), got None$"):
        runner(RunnerConfig(backend="onnxruntime"))
    missing = tmp_path / "gone.onnx"
    with pytest.raises(BackendError, match=f"^onnx_path must be an existing ONNX file, got '{missing}'$"):
        runner(RunnerConfig(backend="onnxruntime"), onnx_path=missing)


@pytest.mark.skipif(torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_a_cuda_device_on_a_cpu_only_machine_says_how_to_get_one(device: str) -> None:
    with pytest.raises(BackendError, match=f"^device '{device}' needs a CUDA GPU, but torch .* sees none: "
                                           "run on a machine with an NVIDIA GPU and a CUDA build of torch"):
        runner(RunnerConfig(device=device))


def test_onnxruntime_cuda_with_only_the_cpu_provider_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=f"^device cuda needs onnxruntime's {TRT_EP} or {CUDA_EP}, but this "
                                           f"onnxruntime offers AzureExecutionProvider, {CPU_EP}: pip install onnxruntime-gpu"):
        plan_providers("cuda", "fp32", ["AzureExecutionProvider", CPU_EP])
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install cleanfeed[onnx])")
    if CUDA_EP in ort.get_available_providers() or TRT_EP in ort.get_available_providers():
        pytest.skip("this onnxruntime has a GPU provider: the refusal was checked on the made-up list above")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")  # never read: the provider check comes first
    with pytest.raises(BackendError, match="^device cuda needs onnxruntime's .* pip install onnxruntime-gpu"):
        runner(RunnerConfig(backend="onnxruntime", device="cuda"), onnx_path=model)


@pytest.mark.skipif(_has_tensorrt(), reason=HAS_TRT)
def test_tensorrt_missing_says_how_to_install_it(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(BackendError, match=r"^tensorrt backend needs TensorRT \(the tensorrt Python package\): "
                                           r"pip install cleanfeed\[trt\] on a machine with an NVIDIA GPU$"):
        runner(RunnerConfig(backend="tensorrt", device="cuda"), onnx_path=model)


def test_provider_plan_prefers_tensorrt_then_cuda_then_cpu(tmp_path: Path) -> None:
    everything = [TRT_EP, CUDA_EP, CPU_EP]
    assert plan_providers("cpu", "fp32", everything) == [(CPU_EP, {})]
    profiles = {"x": ((1, 1, 2), (1, 4, 2), (1, 34, 2))}
    plan = plan_providers("cuda", "fp16", everything, device_index=1, trt_cache=tmp_path, profiles=profiles)
    assert [name for name, _ in plan] == everything
    trt = plan[0][1]
    assert trt["device_id"] == "1" and trt["trt_fp16_enable"] == "True" and "trt_bf16_enable" not in trt
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path)
    assert (trt["trt_profile_min_shapes"], trt["trt_profile_opt_shapes"], trt["trt_profile_max_shapes"]) == (
        "x:1x1x2", "x:1x4x2", "x:1x34x2")
    assert plan[1] == (CUDA_EP, {"device_id": "1"})
    assert [name for name, _ in plan_providers("cuda", "fp32", [CUDA_EP, CPU_EP])] == [CUDA_EP, CPU_EP]
    bf16 = plan_providers("cuda", "bf16", everything)[0][1]
    assert (bf16["trt_fp16_enable"], bf16["trt_bf16_enable"]) == ("False", "True")
    assert "trt_engine_cache_path" not in bf16 and "trt_profile_min_shapes" not in bf16


def test_precision_must_match_the_graph_except_on_tensorrt() -> None:
    check_precision("fp16", TRT_EP, "float32")
    check_precision("fp16", CUDA_EP, "float16")
    check_precision("fp32", CPU_EP, "float32")
    with pytest.raises(BackendError, match="precision bf16 on CUDAExecutionProvider needs a graph exported in "
                                           "bfloat16 .* got a float32 graph: bf16 needs onnxruntime's TensorRT provider, or backend torch or tensorrt"):
        check_precision("bf16", CUDA_EP, "float32")
    with pytest.raises(BackendError, match="got a float16 graph: use an fp32 export, or ask for precision fp16"):
        check_precision("fp32", CPU_EP, "float16")


def test_profiles_are_checked_against_the_inputs() -> None:
    good = {"x": ((1, 1, 2), (1, 4, 2), (1, 8, 2))}
    assert validate_profiles(good, INPUTS) == good
    with pytest.raises(BackendError, match=r"profile names must be inputs \(x\), got 'z'"):
        validate_profiles({"z": good["x"]}, INPUTS)
    with pytest.raises(BackendError, match=r"profile x shapes must fit \(1, 'n', 2\), got \(1, 4, 3\)"):
        validate_profiles({"x": ((1, 1, 2), (1, 4, 3), (1, 8, 2))}, INPUTS)
    with pytest.raises(BackendError, match=r"profile x must grow min <= opt <= max, got \(1, 4, 2\), \(1, 1, 2\)"):
        validate_profiles({"x": ((1, 4, 2), (1, 1, 2), (1, 8, 2))}, INPUTS)
    with pytest.raises(BackendError, match="profile x must be"):
        runner(RunnerConfig(), profiles={"x": ((1, 1, 2),)})
