"""DeAOT through the exporter: `cleanfeed export deaot`, its manifest and parity, and a tracker on the exported graphs.

One DeAOT-T with seeded weights is exported once per module, through the CLI, for 176x96 video
(model size 97x177, 7x12 tokens); the rest reads that export.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from deaot_weights import golden_clip, load_layout, seeded_state_dict

from cleanfeed.engines.deaot.graphs import memory_names
from cleanfeed.engines.deaot.tracker import GRAPH_FILES, TrackerConfig, open_tracker, read_export
from cleanfeed.engines.runners import get_runner
from cleanfeed.engines.runners.base import RunnerConfig
from cleanfeed.export import model_export
from cleanfeed.export.deaot import MEMORY_LIMITS, STEP_LIMITS, compare, deaot_spec
from cleanfeed.export.manifest import Manifest
from cleanfeed.export.model_export import ensure_export, export_dir_name, find_export
from cleanfeed.export.spec import OptionError, model_spec
from cleanfeed.stream.cli.main import main

WIDTH, HEIGHT = 176, 96
MODEL_SIZE = (97, 177)
TOKENS = 7 * 12


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deaot") / "deaott_seeded.pth"
    torch.save({"state_dict": seeded_state_dict(load_layout("deaott"), 0)}, path)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(export folder, stdout) of `cleanfeed export deaot` at 176x96, fp32, 2 parity samples."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("deaot-export") / "deaott-176x96"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["export", "deaot", "--checkpoint", str(checkpoint), "--size", f"{WIDTH}x{HEIGHT}", "--out",
                     str(out), "--samples", "2", "--seed", "7", "--max-long-term", "4"])
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()


def test_cli_writes_three_graphs_and_a_manifest_with_the_options(exported, checkpoint):
    out, stdout = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([*GRAPH_FILES, "manifest.json"])
    data = json.loads((out / "manifest.json").read_text())
    assert (data["status"], data["family"], data["model"], data["precision"]) == ("ok", "deaot", "deaott", "fp32")
    assert data["options"] == {"size": [HEIGHT, WIDTH], "max_long_term": 4}
    assert [g["name"] for g in data["graphs"]] == ["reference", "step", "memorise"]
    lines = stdout.splitlines()
    assert lines[1].startswith("deaot deaott, sha256 ")
    assert lines[1].endswith(", 3 graphs, size [96, 176], max_long_term 4")
    assert "step: TensorRT 10.1 operator check: 0 node(s) it would reject, 0 warning(s)" in lines
    assert stdout.rstrip().endswith(f"manifest: {out / 'manifest.json'} (ok)")


def test_graphs_are_static_but_for_engines_and_slots(exported):
    out, _ = exported
    step = onnx.load(str(out / "step.onnx"), load_external_data=False)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in step.graph.input}
    assert dims["image"] == [1, 3, *MODEL_SIZE]
    assert dims["long_key_0"] == ["engines", "slots", TOKENS, 128]
    assert dims["long_valid"] == ["engines", "slots"]
    assert dims["short_id_0"] == ["engines", TOKENS, 512]
    outputs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in step.graph.output}
    assert outputs["logits"] == ["engines", 11, 25, 45]
    graph = Manifest.load(out).graphs[1]
    assert graph.profiles["long_key_0"] == [[1, 1, TOKENS, 128], [1, 4, TOKENS, 128], [4, 4, TOKENS, 128]]
    assert graph.profiles["long_valid"] == [[1, 1], [1, 4], [4, 4]]
    assert "image" not in graph.profiles  # nothing dynamic: no profile
    facts = read_export(out)
    assert facts.size == MODEL_SIZE and facts.profiles["step"]["long_key_0"][2][:2] == (4, facts.max_long_term)


def test_parity_within_the_issue_limits(exported):
    out, _ = exported
    manifest = Manifest.load(out)
    for graph in manifest.graphs:
        (parity,) = graph.parity
        assert parity["backend"] == "onnxruntime" and parity["passed"] and parity["samples"] == 2, parity
        assert graph.tensorrt_findings == []
    reference, step, memorise = (g.parity[0] for g in manifest.graphs)
    assert step["limits"] == {k: list(v) for k, v in STEP_LIMITS.items()}
    assert reference["limits"] == memorise["limits"] == {k: list(v) for k, v in MEMORY_LIMITS.items()}
    figures = step["figures"]
    assert figures["max_abs_logits"] < 1e-3 and figures["mask_agreement"] > 0.999 and figures["rel_memory"] < 1e-4


def test_one_engine_and_one_slot_run_too(exported, checkpoint):
    # Samples trace at 2+ engines and slots (torch.export fixes an axis traced at 1): check 1 and 1 here.
    out, _ = exported
    spec = deaot_spec(checkpoint, size=(HEIGHT, WIDTH), max_long_term=4)
    step = spec.graphs[1]
    feeds = step.sample(np.random.default_rng(3))
    feeds = {k: v[:1, :1] if k.startswith("long_") else v[:1] if k != "image" else v for k, v in feeds.items()}
    runner = get_runner(RunnerConfig(backend="onnxruntime"), onnx_path=out / "step.onnx", inputs=step.inputs,
                        outputs=step.outputs)
    try:
        got = runner(**feeds)
    finally:
        runner.close()
    with torch.no_grad():
        want = dict(zip([s.name for s in step.outputs], step.module(*(feeds[s.name] for s in step.inputs)), strict=True))
    assert got["logits"].shape == (1, 11, 25, 45)
    figures = compare(want, got)
    assert figures["max_abs_logits"] < 1e-3 and figures["mask_agreement"] > 0.999, figures


def test_tracker_on_onnxruntime_labels_like_torch(exported, checkpoint):
    out, _ = exported
    frames, label0 = golden_clip(3, 5, HEIGHT, WIDTH)
    tracking = TrackerConfig(long_term_gap=2, max_long_term=4)
    labels = {}
    for backend in ("torch", "onnxruntime"):
        tracker = open_tracker(checkpoint, "deaott", RunnerConfig(backend=backend), tracking, 2,
                               onnx_dir=out if backend != "torch" else None)
        tracker.update(frames[0], label0, {1, 2, 3})
        labels[backend] = []
        for frame in frames[1:]:
            result = tracker.track(frame)
            tracker.update(frame, result.labels)
            labels[backend].append(result.labels)
        tracker.close()
    # The labels feed back into memory, so a near-tie flipping one pixel may spread a little: the
    # issue's mask bar (IoU >= 0.99 per object), with nearly every pixel equal.
    for t, (want, got) in enumerate(zip(labels["torch"], labels["onnxruntime"], strict=True), start=1):
        assert set(np.unique(want).tolist()) == {0, 1, 2, 3}, f"frame {t}: torch lost an object"
        differ = int((want != got).sum())
        assert differ <= want.size // 1000, f"frame {t}: {differ} pixels differ between torch and onnxruntime"
        for obj in (1, 2, 3):
            a, b = want == obj, got == obj
            iou = (a & b).sum() / (a | b).sum()
            assert iou >= 0.99, f"frame {t}: object {obj} IoU {iou:.4f} between torch and onnxruntime"


def test_find_export_tells_frame_sizes_apart(exported, checkpoint, tmp_path):
    import shutil

    out, _ = exported
    sha = Manifest.load(out).checkpoint_sha256
    root = tmp_path / "cache"
    name = export_dir_name("deaot", "deaott", sha, "fp32", {"size": [HEIGHT, WIDTH], "max_long_term": 4})
    assert name == f"deaot-deaott-{sha[:12]}-fp32-max_long_term4-size96x176"
    shutil.copytree(out, root / name)
    assert find_export(root, sha, options={"size": (HEIGHT, WIDTH), "max_long_term": 4}) == root / name
    assert find_export(root, sha, options={"size": [480, 854], "max_long_term": 4}) is None
    assert find_export(root, sha, options={"size": [HEIGHT, WIDTH], "max_long_term": 8}) is None
    assert find_export(root, sha) == root / name  # no options asked: any
    assert find_export(root, sha, "fp16", options={"size": [HEIGHT, WIDTH], "max_long_term": 4}) is None


def test_ensure_export_keeps_one_folder_per_frame_size(checkpoint, tmp_path, monkeypatch):
    # fp16 here, on the memorise graph alone (seconds, not half a minute). The seeded DeAOT-T is
    # too ill-conditioned for the fp16 mask bar (torch's own .half() misses it): see export/deaot.py.
    spec = deaot_spec(checkpoint, size=(HEIGHT, WIDTH), max_long_term=4)
    path = ensure_export(replace(spec, graphs=spec.graphs[2:]), tmp_path, "fp16", samples=1)
    assert path == tmp_path / f"deaot-deaott-{spec.checkpoint_sha256[:12]}-fp16-max_long_term4-size96x176"
    manifest = Manifest.load(path)
    assert manifest.ok and manifest.options == {"size": [HEIGHT, WIDTH], "max_long_term": 4}
    (parity,) = manifest.graphs[0].parity
    assert parity["passed"] and parity["limits"] == {"rel_memory": ["<", 5e-2]}
    model = onnx.load(str(path / "memorise.onnx"))
    assert onnx.TensorProto.FLOAT16 in {t.data_type for t in model.graph.initializer}

    def no_export(*args, **kwargs):
        raise AssertionError("export_model was called")

    monkeypatch.setattr(model_export, "export_model", no_export)
    assert ensure_export(replace(spec, graphs=spec.graphs[2:]), tmp_path, "fp16") == path  # reused
    other = deaot_spec(checkpoint, size=(112, 200), max_long_term=4)  # another frame size: never the same folder
    with pytest.raises(AssertionError, match="export_model was called"):
        ensure_export(replace(other, graphs=other.graphs[2:]), tmp_path, "fp16")


def test_spec_samples_look_like_a_tracker_s_inputs(checkpoint):
    spec = deaot_spec(checkpoint, "deaott", size=(HEIGHT, WIDTH))
    assert spec.model == "deaott" and spec.options == {"size": [HEIGHT, WIDTH], "max_long_term": 8}
    reference, step, memorise = spec.graphs
    feeds = reference.sample(np.random.default_rng(0))
    image, one_hot = feeds["image"], feeds["one_hot"]
    assert image.shape == (1, 3, *MODEL_SIZE) and 0 <= image.min() and image.max() <= 255 and image.std() > 20
    assert set(one_hot.unique().tolist()) == {0.0, 1.0} and torch.equal(one_hot.sum(1), torch.ones_like(one_hot[:, 0]))
    assert (one_hot[:, 1:].flatten(2).amax(2) > 0).sum() >= one_hot.shape[0]  # every sub-engine has an object
    feeds = step.sample(np.random.default_rng(1))
    valid = feeds["long_valid"]
    assert valid.dtype == torch.bool and valid[:, 0].all() and 2 <= valid.shape[1] <= 8
    for name in memory_names(1, "long_"):
        assert feeds[name].shape[:3] == (*valid.shape, TOKENS) and feeds[name].abs().max() > 0.5
    assert feeds["short_value_0"].min() >= -0.279  # values come out of a SiLU, as real ones do
    assert step.profiles["long_valid"] == ((1, 1), (1, 8), (4, 8))


def test_cli_errors_are_one_line(checkpoint, tiny_checkpoint, tmp_path, capsys):
    def run(*args: str) -> tuple[int, str]:
        code = main(["export", *args, "--out", str(tmp_path / "o")])
        return code, capsys.readouterr().err

    code, err = run("deaot", "--checkpoint", str(checkpoint))
    assert (code, err) == (2, "cleanfeed: error: the deaot export must be given --size, got none\n")
    code, err = run("deaot", "--checkpoint", str(checkpoint), "--size", "176by96")
    assert (code, err) == (2, "cleanfeed: error: --size must be the video's WIDTHxHEIGHT in pixels, e.g. 854x480, "
                              "got '176by96'\n")
    code, err = run("deaot", "--checkpoint", str(checkpoint), "--size", "8x8")
    assert code == 2 and err.startswith("cleanfeed: error: --size must be the video's WIDTHxHEIGHT, both at least 16")
    code, err = run("deaot", "--checkpoint", str(checkpoint), "--size", "176x96", "--max-long-term", "1")
    assert (code, err) == (2, "cleanfeed: error: --max-long-term must be an integer of at least 2, got 1\n")
    code, err = run("deaot", "--checkpoint", str(tiny_checkpoint), "--size", "176x96")
    assert code == 2 and err == (f"cleanfeed: error: '{tiny_checkpoint}' is a SAM checkpoint, "
                                 "expected a DeAOT checkpoint\n")
    code, err = run("deaot", "--checkpoint", str(checkpoint), "--size", "176x96", "--model", "deaots")
    assert code == 2 and err.startswith(f"cleanfeed: error: '{checkpoint}': checkpoint must hold DeAOT-S")
    code, err = run("sam", "--checkpoint", str(tiny_checkpoint), "--size", "176x96")
    assert (code, err) == (2, "cleanfeed: error: the sam export takes no options of its own, got --size\n")
    assert not (tmp_path / "o").exists()


def test_model_spec_checks_family_options(checkpoint):
    with pytest.raises(OptionError, match="^the deaot export takes --size, --max-long-term, got --frames$"):
        model_spec("deaot", checkpoint, None, size=(HEIGHT, WIDTH), frames=3)
