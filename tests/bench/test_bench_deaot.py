"""cleanfeed.bench.deaot runs end to end on the tiniest case and writes the report the GPU runs will be read from.

Speed is never asserted here (the numbers are whatever this machine gives); the report's shape,
the skip reasons and the absence of media imports (the GPU machines have no av or zmq) are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cleanfeed.bench import deaot

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_a_complete_report(tmp_path: Path) -> None:
    argv = ["--variants", "deaott", "--sizes", "176x96", "--devices", "cpu", "--precisions", "fp32,bf16",
            "--modes", "eager,cuda_graphs", "--frames", "3", "--warmup", "1", "--long", "6", "--graph-repeats", "1",
            "--save", "tiny", "--out-dir", str(tmp_path)]
    assert deaot.main(argv) == 0
    report = json.loads((tmp_path / "tiny.json").read_text())
    assert "# DeAOT tracking" in (tmp_path / "tiny.md").read_text()
    assert report["command"].startswith("python -m cleanfeed.bench.deaot --variants deaott")
    assert {"date", "machine", "settings", "results", "skipped", "errors"} <= set(report)
    assert report["machine"]["torch"] and report["settings"]["long"] == 6
    assert report["errors"] == []

    fp32, bf16 = report["results"]
    assert (fp32["precision"], fp32["mode"], bf16["precision"]) == ("fp32", "eager", "bf16")
    for r in (fp32, bf16):
        assert (r["frame_size"], r["model_input"]) == ("176x96", "177x97")
        assert r["frame"]["n"] == 3 and r["frame"]["fps"] > 0
        assert 0 < r["frame"]["p50_ms"] <= r["frame"]["max_ms"]
        assert r["in_loop"]["step"]["mean_ms"] > 0 and r["in_loop"]["memorise"]["mean_ms"] > 0
        assert r["graphs_alone"]["step"]["mean_ms"] > 0 and r["graphs_alone"]["reference"]["n"] == 1
        assert r["long"]["frames"] == 6 and r["long"]["n"] == 5
        assert [p["frame"] for p in r["memory"]] == [0, 1, 4, 6]
        assert r["memory_growth"]["what"] == "rss_mib" and r["memory_growth"]["to_mib"] > 0
        assert r["long_term_gap"] == 9999 and r["long_term_frames"] == [0]
        assert r["first_frame_s"] > 0 and set(r["object_area_pct"]) == {"1", "2", "3"}
    assert "iou_vs_fp32" not in fp32
    assert set(bf16["iou_vs_fp32"]) == {"1", "2", "3"} and bf16["iou_frames"] == 6
    assert 0.0 <= bf16["iou_vs_fp32_min_object"] <= 1.0

    assert sorted((s["precision"], s["reason"]) for s in report["skipped"]) == [
        ("bf16", "CUDA graphs need a CUDA device"), ("fp32", "CUDA graphs need a CUDA device")]


def test_clip_labels_match_the_drawn_shapes() -> None:
    clip = deaot.SyntheticClip(96, 176, objects=3)
    labels, frame = clip.labels(5), clip.frame(5)
    assert frame.shape == (96, 176, 3) and frame.dtype == np.uint8 and labels.shape == (96, 176)
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and (labels > 0).any()
    np.testing.assert_array_equal(clip.frame(5), frame)
    assert not np.array_equal(clip.labels(40), labels)


def test_bad_size_is_refused_with_its_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        deaot.parse_args(["--sizes", "480p,10x10"])
    assert "--sizes must be a comma list of 480p, 720p, 1080p or WxH with sides >= 16, got '10x10'" in capsys.readouterr().err


def test_bench_imports_no_media_modules() -> None:
    """The GPU machines have torch and opencv but neither av nor pyzmq: nothing on the bench's path may need them."""
    code = (
        "import sys; import cleanfeed.bench.deaot as b; b.machine(); "
        "import cleanfeed.engines.deaot.tracker, cleanfeed.engines.deaot.graphs, cleanfeed.engines.deaot.model, cleanfeed.engines.runners.torch_runner; "
        "print(sorted(m for m in ('av', 'zmq') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
