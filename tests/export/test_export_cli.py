"""`cleanfeed export` end to end, and its one-line errors."""

from __future__ import annotations

import importlib.util
import json

import pytest

from cleanfeed.stream.cli.main import main

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_export_sam_end_to_end(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "sam-export"
    code = main(["export", "sam", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--samples", "1",
                 "--seed", "3"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["image_encoder.onnx", "manifest.json", "prompt_decoder.onnx"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"
    lines = stdout.splitlines()
    assert lines[0] == f"loading sam checkpoint {tiny_checkpoint}"
    assert lines[1].startswith("sam custom, sha256 ") and lines[1].endswith(", 2 graphs")
    assert "image_encoder: exporting to ONNX (opset 18, fp32)" in lines
    assert "prompt_decoder: TensorRT 10.1 operator check: 0 node(s) it would reject, 0 warning(s)" in lines
    assert any(line.startswith("prompt_decoder: onnxruntime vs torch: max_abs_logits ") and line.endswith(": pass")
               for line in lines)
    assert f"sam custom fp32, opset 18 -> {out}/" in lines
    summary = stdout.split(f"-> {out}/")[1]
    assert "  prompt_decoder: prompt_decoder.onnx (" in summary
    assert "    onnxruntime: max_abs_logits " in summary and "(limits max_abs_logits < 0.001, mask_iou > 0.999) ok" in summary
    assert "    TensorRT 10.1 operator check: 0 finding(s)" in summary
    assert summary.rstrip().endswith(f"manifest: {out / 'manifest.json'} (ok)")
    # stderr carries only the INFO log lines (which runner ran), no warning and no exporter chatter
    assert all(line.startswith("cleanfeed: runner: onnxruntime ") for line in stderr.splitlines()), stderr


def test_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    code = main(["export", "sam", "--checkpoint", str(missing), "--out", str(tmp_path / "o")])
    assert code == 2
    assert capsys.readouterr().err == f"cleanfeed: error: checkpoint must be an existing file, got '{missing}' (not found)\n"


def test_wrong_model_for_the_checkpoint(tiny_checkpoint, tmp_path, capsys):
    code = main(["export", "sam", "--model", "vit_h", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"cleanfeed: error: '{tiny_checkpoint}' is a SAM checkpoint of a custom size")
    assert "expected vit_h (embed dim 1280, 32 blocks)" in err and err.count("\n") == 1


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT imports here: the error path cannot be shown")
def test_tensorrt_where_it_does_not_import_fails_before_any_work(tmp_path, capsys):
    missing = tmp_path / "never-read.pth"  # the TensorRT check comes before the checkpoint is opened
    code = main(["export", "sam", "--checkpoint", str(missing), "--out", str(tmp_path / "o"), "--tensorrt"])
    assert code == 2
    assert capsys.readouterr().err == (
        "cleanfeed: error: --tensorrt needs TensorRT, which does not import here (ModuleNotFoundError: No module "
        "named 'tensorrt'): pip install cleanfeed[trt] on a machine with an NVIDIA GPU\n")
    assert not (tmp_path / "o").exists()


def test_bad_out_and_samples(tiny_checkpoint, tmp_path, capsys):
    file = tmp_path / "file.txt"
    file.write_text("x")
    assert main(["export", "sam", "--checkpoint", str(tiny_checkpoint), "--out", str(file)]) == 1
    assert capsys.readouterr().err == f"cleanfeed: error: --out must be a directory, got the file {file}\n"
    assert main(["export", "sam", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o"),
                 "--samples", "0"]) == 1
    assert capsys.readouterr().err == "cleanfeed: error: --samples must be at least 1, got 0\n"


def test_opset_and_family_are_checked_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["export", "sam", "--checkpoint", "x", "--out", str(tmp_path), "--opset", "21"])
    assert caught.value.code == 2
    assert "argument --opset: invalid choice: 21 (choose from 18, 19, 20)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "propainter", "--checkpoint", "x", "--out", str(tmp_path)])
    assert "argument FAMILY: invalid choice: 'propainter' (choose from 'deaot', 'e2fgvi', 'sam')" in capsys.readouterr().err


def test_parity_failure_prints_the_summary_then_one_error_line(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    from cleanfeed.export import sam as export_sam

    monkeypatch.setattr(export_sam, "ENCODER_LIMITS", {"rel_error": ("<", 0.0)})  # a limit no export can meet
    out = tmp_path / "o"
    code = main(["export", "sam", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--samples", "1"])
    stdout, stderr = capsys.readouterr()
    assert code == 1
    assert "(limits rel_error < 0) FAILED" in stdout
    assert stdout.rstrip().endswith(f"manifest: {out / 'manifest.json'} (failed)")
    error = stderr.splitlines()[-1]
    assert error.startswith("cleanfeed: error: exported graphs must match the torch model, got image_encoder: "
                            "onnxruntime rel_error ")
    assert error.endswith(f" must be < 0 (manifest: {out / 'manifest.json'})")
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"


def test_tensorrt_findings_are_warned_on_stderr(capsys, tmp_path):
    from cleanfeed.export.manifest import FileRecord, GraphRecord, Manifest
    from cleanfeed.stream.cli.export import summarize

    graph = GraphRecord(name="g", onnx=FileRecord("g.onnx", "0" * 64, 2_000_000), external_data=[], inputs=[],
                        outputs=[], dynamic_axes={}, profiles={},
                        tensorrt_findings=[{"op_type": "Resize", "node": "up", "reason": "mode='cubic' is not supported",
                                            "severity": "error"},
                                           {"op_type": "Add", "node": "a", "reason": "tensor x is float64",
                                            "severity": "warning"}])
    manifest = Manifest(family="sam", model="vit_b", checkpoint="c.pth", checkpoint_sha256="1" * 64, opset=18,
                        precision="fp32", graphs=[graph], status="ok", tensorrt_matrix={"tensorrt_version": "10.1"})
    summarize(manifest, tmp_path)
    stdout, stderr = capsys.readouterr()
    assert "    TensorRT 10.1 operator check: 1 finding(s), 1 warning(s)" in stdout
    assert stderr == "cleanfeed: warning: TensorRT would reject g node Resize 'up': mode='cubic' is not supported\n"
