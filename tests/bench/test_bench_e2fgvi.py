"""cleanfeed.bench.e2fgvi runs end to end on the tiniest case and writes the report the GPU runs will be read from.

Speed is never asserted (the numbers are whatever this machine gives); the report's shape, the
accuracy figure's presence for reduced precision and the skip reasons are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cleanfeed.bench import e2fgvi


def test_tiny_run_writes_a_complete_report(tmp_path: Path) -> None:
    argv = ["--sizes", "216x120", "--frames", "6", "--devices", "cpu,cuda", "--precisions", "bf16",
            "--warmup", "0", "--save", "tiny", "--out-dir", str(tmp_path)]
    assert e2fgvi.main(argv) == 0
    report = json.loads((tmp_path / "tiny.json").read_text())
    text = (tmp_path / "tiny.md").read_text()
    assert "# E2FGVI-HQ inpainting, offline schedule, region full" in text and "27 fps fp32, 31 fps fp16" in text
    assert report["command"].startswith("python -m cleanfeed.bench.e2fgvi --sizes 216x120")
    assert {"date", "machine", "settings", "baseline", "results", "skipped", "errors"} <= set(report)
    assert report["errors"] == [] and report["settings"]["weights"].startswith("seeded")

    fp32, bf16 = report["results"]  # fp32 eager added first: bf16's accuracy is measured against it
    assert (fp32["precision"], fp32["added"], bf16["precision"], bf16["added"]) == ("fp32", True, "bf16", False)
    for r in (fp32, bf16):
        assert (r["frame_size"], r["model_input"], r["frames"]) == ("216x120", "216x120", 6)
        assert r["total_s"] > 0 and r["fps"] > 0 and 0 < r["model_share"] <= 1
        assert r["window"]["n"] == 2 and 0 < r["window"]["p50_ms"] <= r["window"]["max_ms"]
        assert r["memory"]["rss_mib"] > 0 and "cuda_max_allocated_mib" not in r["memory"]
    assert "accuracy_vs_fp32" not in fp32
    accuracy = bf16["accuracy_vs_fp32"]
    assert 0.0 <= accuracy["exact"] <= accuracy["within_2_levels"] <= 1.0 and accuracy["values"] > 0

    if not report["machine"].get("gpu"):
        assert sorted((s["device"], s["precision"], s["reason"]) for s in report["skipped"]) == [
            ("cuda", "bf16", "torch sees no CUDA device")]


def test_accuracy_counts_only_filled_values() -> None:
    reference = [np.zeros((4, 4, 3), np.uint8)]
    output = [np.full((4, 4, 3), 200, np.uint8)]
    output[0][0, :2] = (1, 2, 3)  # the filled pixels: two within 2 levels, one channel 3 off
    mask = np.zeros((4, 4), np.uint8)
    mask[0, :2] = 1
    a = e2fgvi.accuracy(output, reference, [mask])
    assert a["values"] == 6 and a["within_2_levels"] == pytest.approx(4 / 6) and a["max_abs"] == 3
    assert a["exact"] == 0.0


def test_bad_size_is_refused_with_its_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        e2fgvi.parse_args(["--sizes", "432x240,10x10"])
    assert "--sizes must be a comma list of WxH with sides >= 16, got '10x10'" in capsys.readouterr().err
