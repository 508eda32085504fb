"""E2FGVI-HQ through the exporter: `cleanfeed export e2fgvi`, its manifest and parity, sizes other than
the trace's, and ExportedWindow standing in for the torch model.

One E2FGVI-HQ with seeded weights (tests/e2fgvi_weights.py) is exported once per module, through
the CLI, as a window of 3 local + 2 reference frames with a 216x120 profile opt; exporting takes
about two and a half minutes here (torch.export and the ONNX translation of an 8-block
transformer with symbolic sizes), the rest of the module about half a minute.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from e2fgvi_weights import load_layout, seeded_state_dict

from cleanfeed.engines.e2fgvi.exported import GRAPH_FILE, ExportedWindow, open_exported_window, read_window_export
from cleanfeed.engines.e2fgvi.model import InpaintGenerator
from cleanfeed.engines.e2fgvi.transformer import fold_by_phases
from cleanfeed.engines.runners.base import RunnerConfig
from cleanfeed.errors import BackendError
from cleanfeed.export.e2fgvi import LIMITS, LIMITS_FP16, compare, e2fgvi_spec, sample_window, window_options
from cleanfeed.export.manifest import Manifest
from cleanfeed.export.model_export import export_dir_name, find_export
from cleanfeed.export.spec import OptionError
from cleanfeed.stream.cli.main import main

LOCAL, REFS = 3, 2
OPT = (120, 216)
SEED = 11
"""Its trace and parity samples are both 120x216 (the cheapest sizes that keep both axes dynamic)."""
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2fgvi") / "e2fgvi_hq_seeded.pth"
    torch.save(seeded_state_dict(load_layout("e2fgvi_hq")), path)  # the authors release a plain state dict
    return path


@pytest.fixture(scope="module")
def net(checkpoint: Path) -> InpaintGenerator:
    model = InpaintGenerator().eval()
    model.load_state_dict(torch.load(checkpoint), strict=True)
    return model


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(export folder, stdout) of `cleanfeed export e2fgvi --local 3 --refs 2 --size 216x120`, fp32, 1 sample."""
    out = tmp_path_factory.mktemp("e2fgvi-export") / "e2fgvi-3+2"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["export", "e2fgvi", "--checkpoint", str(checkpoint), "--local", str(LOCAL), "--refs", str(REFS),
                     "--size", f"{OPT[1]}x{OPT[0]}", "--out", str(out), "--samples", "1", "--seed", str(SEED)])
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()


def _torch_window(net: InpaintGenerator, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {"frames": net(frames, LOCAL)[0]}


def test_cli_writes_one_window_graph_and_a_manifest_with_the_options(exported):
    out, stdout = exported
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", GRAPH_FILE]
    data = json.loads((out / "manifest.json").read_text())
    assert (data["status"], data["family"], data["model"], data["precision"]) == ("ok", "e2fgvi", "e2fgvi_hq", "fp32")
    assert data["options"] == {"local": LOCAL, "refs": REFS, "size": list(OPT)}
    lines = stdout.splitlines()
    assert lines[1].startswith("e2fgvi e2fgvi_hq, sha256 ")
    assert lines[1].endswith(f", 1 graphs, local {LOCAL}, refs {REFS}, size [{OPT[0]}, {OPT[1]}]")
    assert "window: TensorRT 10.1 operator check: 0 node(s) it would reject, 0 warning(s)" in lines
    assert stdout.rstrip().endswith(f"manifest: {out / 'manifest.json'} (ok)")
    (graph,) = Manifest.load(out).graphs
    (parity,) = graph.parity
    assert parity["backend"] == "onnxruntime" and parity["passed"], parity
    assert parity["limits"] == {k: list(v) for k, v in LIMITS.items()}
    assert parity["figures"]["max_abs_frames"] < 1e-4 and parity["figures"]["max_uint8_levels"] <= 1
    assert graph.tensorrt_findings == []


def test_height_and_width_stay_dynamic_in_steps_of_the_padding_multiple(exported):
    out, _ = exported
    model = onnx.load(str(out / GRAPH_FILE), load_external_data=False)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*model.graph.input, *model.graph.output)}
    assert dims == {"masked_frames": [1, 5, 3, "60*height_steps", "108*width_steps"],
                    "frames": [5, 3, "60*height_steps", "108*width_steps"]}
    ops = {node.op_type for node in model.graph.node}
    assert "Col2Im" not in ops and "GridSample" in ops  # fold is decomposed; sampling stays standard
    (graph,) = Manifest.load(out).graphs
    assert graph.profiles == {"masked_frames": [[1, 5, 3, 60, 108], [1, 5, 3, *OPT], [1, 5, 3, 1080, 1944]]}
    facts = read_window_export(out)
    assert (facts.local, facts.refs, facts.frames, facts.precision) == (LOCAL, REFS, 5, "fp32")


@pytest.mark.parametrize("size", [(60, 108), (180, 108)])
def test_exported_window_matches_the_torch_model_at_other_sizes(exported, net, size):
    # The trace and the parity sample were 120x216; one multiple (60x108) is the profile's min.
    out, _ = exported
    frames = sample_window(np.random.default_rng(11), LOCAL, REFS, size)
    with open_exported_window(out, RunnerConfig(backend="onnxruntime")) as window:
        got, flows = window(frames, LOCAL)
    assert flows is None and got.shape == (5, 3, *size) and got.dtype == torch.float32
    figures = compare(_torch_window(net, frames), {"frames": got})
    assert figures["max_abs_frames"] < 1e-4 and figures["max_uint8_levels"] <= 1, figures


def test_fp16_conversion_of_the_window_runs_within_its_limits(exported, checkpoint, tmp_path):
    # The fp32 graph converted as `--precision fp16` converts it, checked by the exporter's own parity.
    from cleanfeed.export.half import to_fp16
    from cleanfeed.export.onnx_export import save_onnx
    from cleanfeed.export.parity import check_parity

    out, _ = exported
    (graph,) = e2fgvi_spec(checkpoint, local=LOCAL, refs=REFS).graphs
    path = tmp_path / GRAPH_FILE
    save_onnx(to_fp16(onnx.load(str(out / GRAPH_FILE)), keep_fp32=graph.keep_fp32), path)
    result = check_parity(graph, path, precision="fp16", samples=1, rng=np.random.default_rng(SEED))
    assert result.passed and result.limits == LIMITS_FP16, result.failures
    assert result.figures["max_abs_frames"] > 1e-4  # fp16 really ran


def test_windows_of_other_counts_or_sizes_are_refused_with_the_export_they_need(exported):
    out, _ = exported
    window = open_exported_window(out, RunnerConfig(backend="onnxruntime"))
    try:
        with pytest.raises(BackendError) as caught:
            window(torch.zeros(1, 6, 3, 60, 108), 4)
        assert str(caught.value) == (
            f"E2FGVI window must have 3 local + 2 reference frames for the export in '{out}', got 4 local + 2 "
            "reference frames (T=6): run `cleanfeed export e2fgvi --local 4 --refs 2` for this window")
        with pytest.raises(BackendError, match=r"got 2 local \+ 3 reference frames \(T=5\)"):
            window(torch.zeros(1, 5, 3, 60, 108), 2)
        with pytest.raises(BackendError, match=r"^E2FGVI frames must be padded to multiples of 108x60 \(WIDTHxHEIGHT\), "
                                               r"got 100x60$"):
            window(torch.zeros(1, 5, 3, 60, 100), LOCAL)
        with pytest.raises(BackendError, match=r"^E2FGVI masked_frames must be \[1, T, 3, H, W\], got \[5, 3, 60, 108\]$"):
            window(torch.zeros(5, 3, 60, 108), LOCAL)
    finally:
        window.close()
    with pytest.raises(BackendError, match="^E2FGVI exports must run on backend onnxruntime or tensorrt, got backend torch"):
        open_exported_window(out, RunnerConfig(backend="torch"))


def test_folders_that_are_not_window_exports_are_refused(exported, tmp_path):
    out, _ = exported
    with pytest.raises(BackendError, match="manifest.json must exist"):
        read_window_export(tmp_path)
    data = json.loads((out / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**data, "family": "deaot"}))
    with pytest.raises(BackendError, match="must describe an E2FGVI window export .* got family 'deaot'"):
        read_window_export(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**data, "status": "failed", "failure": "window: parity"}))
    with pytest.raises(BackendError, match="must record a finished export \\(status ok\\), got status 'failed': window"):
        read_window_export(tmp_path)


def test_find_export_tells_windows_apart(exported, tmp_path):
    out, _ = exported
    sha = Manifest.load(out).checkpoint_sha256
    name = export_dir_name("e2fgvi", "e2fgvi_hq", sha, "fp32", window_options(LOCAL, REFS, OPT))
    assert name == f"e2fgvi-e2fgvi_hq-{sha[:12]}-fp32-local3-refs2-size120x216"
    root = tmp_path / "cache"
    shutil.copytree(out, root / name)
    assert find_export(root, sha, options=window_options(LOCAL, REFS, OPT)) == root / name
    assert find_export(root, sha, options=window_options(LOCAL, 3, OPT)) is None
    assert find_export(root, sha, options=window_options(5, REFS, OPT)) is None


@pytest.mark.skipif(not HAS_TENSORRT, reason="TensorRT is not installable here (it needs an NVIDIA GPU with CUDA; "
                                             "this CPU machine has neither): the TensorRT window runs on GPU machines")
def test_exported_window_on_tensorrt_matches_the_torch_model(exported, net):
    out, _ = exported
    frames = sample_window(np.random.default_rng(12), LOCAL, REFS, OPT)
    with open_exported_window(out, RunnerConfig(backend="tensorrt", device="cuda")) as window:
        got, _ = window(frames, LOCAL)
        with pytest.raises(BackendError, match="within the export's TensorRT profile 108x60 to 1944x1080"):
            window(torch.zeros(1, 5, 3, 1140, 108), LOCAL)
    figures = compare(_torch_window(net, frames), {"frames": got.cpu()})
    # TensorRT may compute fp32 convolutions in TF32: a few uint8 levels, never a different picture.
    assert figures["max_abs_frames"] < 2e-2 and figures["mean_abs_frames"] < 1e-3, figures


def test_cli_errors_are_one_line(checkpoint, tmp_path, capsys):
    def run(*args: str) -> tuple[int, str]:
        code = main(["export", "e2fgvi", "--checkpoint", str(checkpoint), *args, "--out", str(tmp_path / "o")])
        return code, capsys.readouterr().err

    assert run("--local", "3") == (2, "cleanfeed: error: the e2fgvi export must be given --refs, got none\n")
    assert run("--local", "0", "--refs", "2") == (
        2, "cleanfeed: error: --local must be an integer of at least 2 (flows need neighbouring frames), got 0\n")
    assert run("--local", "3", "--refs", "-1") == (2, "cleanfeed: error: --refs must be an integer of at least 0, got -1\n")
    assert run("--local", "3", "--refs", "2", "--size", "854x480") == (
        2, "cleanfeed: error: --size must be the padded frame size WIDTHxHEIGHT, multiples of 108x60, "
           "got (height, width) (480, 854): frames pad to 864x480\n")
    assert run("--local", "3", "--refs", "2", "--max-long-term", "4") == (
        2, "cleanfeed: error: the e2fgvi export takes --local, --refs, --size, got --max-long-term\n")
    code, err = run("--local", "3", "--refs", "2", "--model", "e2fgvi")
    assert code == 2 and err.startswith("cleanfeed: error: ") and "E2FGVI (fixed 432x240)" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_spec_checks_options_before_reading_the_checkpoint(tmp_path):
    missing = tmp_path / "never-read.pth"
    with pytest.raises(OptionError, match="^--local must be an integer of at least 2"):
        e2fgvi_spec(missing, local=True, refs=1)
    with pytest.raises(OptionError, match="^--size must be the padded frame size"):
        e2fgvi_spec(missing, local=3, refs=1, size=(120, 200))


def test_samples_look_like_windows_of_a_video():
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(6):
        frames = sample_window(rng, LOCAL, REFS)
        _, t, c, h, w = frames.shape
        sizes.add((h, w))
        assert (t, c) == (5, 3) and h in (120, 180) and w in (216, 324)
        assert -1 <= frames.min() and frames.max() <= 1 and frames.std() > 0.1
        hole = (frames == 0).all(dim=2, keepdim=True)  # zeroed in every channel
        levels = ((frames + 1) / 2 * 255).masked_select(~hole.expand_as(frames))
        assert torch.allclose(levels, levels.round(), atol=1e-4)  # 8-bit video levels outside the hole
        assert all(0.01 < float(hole[0, i].float().mean()) < 0.3 for i in range(t))
        local_step = (frames[0, 1] - frames[0, 0]).abs().mean()
        ref_step = (frames[0, LOCAL] - frames[0, LOCAL - 1]).abs().mean()
        assert 0 < local_step < ref_step  # neighbours move a little, references (10 frames on) more
    assert len(sizes) > 1


def test_fold_by_phases_equals_torch_fold_bit_for_bit():
    torch.manual_seed(0)
    for kernel, stride, padding, size in [((7, 7), (3, 3), (3, 3), (30, 54)), ((7, 7), (3, 3), (3, 3), (16, 20)),
                                          ((3, 5), (2, 1), (1, 0), (13, 11)), ((4, 4), (4, 4), (0, 0), (9, 7))]:
        rows, cols = ((s + 2 * p - k) // st + 1 for s, p, k, st in zip(size, padding, kernel, stride, strict=True))
        x = torch.randn(2, 3 * kernel[0] * kernel[1], rows * cols)
        want = F.fold(x, size, kernel, padding=padding, stride=stride)
        assert torch.equal(fold_by_phases(x, size, kernel, stride, padding), want), (kernel, stride, padding, size)


def test_exported_window_is_a_drop_in_for_the_model_call(exported):
    out, _ = exported
    window = open_exported_window(out, RunnerConfig(backend="onnxruntime"))
    try:
        assert isinstance(window, ExportedWindow)
        assert window.description.startswith("E2FGVI window (3 local + 2 refs) on onnxruntime")
    finally:
        window.close()


def test_inpaint_element_runs_the_exported_window_from_the_engine_cache(exported, net, checkpoint, tmp_path,
                                                                        monkeypatch):
    """`inpaint backend=onnxruntime` (stream mode, windows of 3 local + 2 references) finds the export in the
    engine cache by checkpoint and frame counts, and paints what torch paints with the same fixed windows."""
    from fractions import Fraction

    from chain import run_filters
    from e2fgvi_weights import golden_clip

    from cleanfeed.engines.e2fgvi.offline import inpaint_clip
    from cleanfeed.engines.e2fgvi.schedule import SlidingConfig
    from cleanfeed.stream.buffers import Caps, VideoFrame
    from cleanfeed.stream.picture import Picture
    from cleanfeed.stream.registry import create

    out, _ = exported
    monkeypatch.setenv("CLEANFEED_CACHE", str(tmp_path))
    shutil.copytree(out, tmp_path / "exports" / out.name)
    rgb, masks = golden_clip(7, *OPT)
    frames = [VideoFrame(i, i, Fraction(1, 25), Picture.from_rgb(image), (m > 0).astype(np.uint8))
              for i, (image, m) in enumerate(zip(rgb, masks, strict=True))]
    caps = Caps(width=OPT[1], height=OPT[0], rate=Fraction(25), time_base=Fraction(1, 25))
    element = create("inpaint", {"checkpoint": str(checkpoint), "backend": "onnxruntime", "device": "cpu",
                                 "neighbor_stride": 1, "ref_step": 2, "num_ref": REFS, "region": "full"})
    result = run_filters(caps, frames, [element])
    assert "exported window of 3+2 frames" in element._e2fgvi.description
    element.stop()
    config = SlidingConfig("stream", 1, 2, REFS, "full", fixed=(LOCAL, REFS))
    expected = inpaint_clip(lambda x, local: (net(x, local)[0], None), list(rgb), list(masks), config)
    for i, frame in enumerate(result):
        diff = np.abs(frame.picture.rgb().astype(int) - expected[i].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, f"frame {i}: {diff.max()}"


def test_offline_mode_on_an_exported_backend_is_refused(checkpoint):
    from fractions import Fraction

    from cleanfeed.errors import PropertyError
    from cleanfeed.stream.buffers import Caps
    from cleanfeed.stream.registry import create

    element = create("inpaint", {"checkpoint": str(checkpoint), "backend": "onnxruntime", "mode": "offline"})
    with pytest.raises(PropertyError, match="mode=offline runs on backend=torch: .* use mode=stream with backend=onnxruntime"):
        element.start(Caps(width=216, height=120, rate=Fraction(25), time_base=Fraction(1, 25)))


def test_the_fixed_432x240_model_is_not_exported(tmp_path):
    path = tmp_path / "E2FGVI-CVPR22.pth"
    torch.save(seeded_state_dict(load_layout("e2fgvi")), path)
    with pytest.raises(OptionError, match="holds the fixed-432x240 E2FGVI, whose window export is not built .* "
                                          "run it on backend=torch"):
        e2fgvi_spec(path, local=LOCAL, refs=REFS)
