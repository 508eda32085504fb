"""`track` with DeAOT: the element writes exactly the tracker's labels, references restart objects,
auto finds the checkpoint and says so, and `cleanfeed run --deaot` tracks with it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from chain import run_filters  # noqa: E402
from deaot_tracking import save_checkpoint, tracker_for  # noqa: E402
from deaot_weights import golden_clip  # noqa: E402
from media import make_video  # noqa: E402

from cleanfeed.stream.buffers import Caps, VideoFrame  # noqa: E402
from cleanfeed.stream.picture import Picture  # noqa: E402
from cleanfeed.stream.registry import create  # noqa: E402

H, W = 100, 170


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("deaot") / "DeAOTT_PRE_YTB_DAV.pth")


def clip_frames(count: int) -> tuple[Caps, list[VideoFrame], np.ndarray]:
    from fractions import Fraction

    rgb, label0 = golden_clip(3, count, H, W)
    frames = []
    for i, image in enumerate(rgb):
        frames.append(VideoFrame(i, i, Fraction(1, 25), Picture.from_rgb(image), np.zeros((H, W), np.uint8)))
    frames[0].mask[:] = label0
    frames[0].meta["reference"] = [1, 2, 3]
    return Caps(width=W, height=H, rate=Fraction(25), time_base=Fraction(1, 25)), frames, rgb


def test_element_writes_the_trackers_labels(checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    caps, frames, rgb = clip_frames(5)
    track = create("track", {"checkpoint": str(checkpoint), "device": "cpu"})
    with caplog.at_level(logging.DEBUG):
        out = run_filters(caps, frames, [track])
    said = [r.getMessage() for r in caplog.records if "using" in r.getMessage()]
    assert len(said) == 1 and f"using DeAOT from {checkpoint}" in said[0] and "DeAOT-T" in said[0], said
    assert "reference frames only" in said[0]  # upstream's gap for DeAOT-T
    direct = tracker_for("deaott", 0, 9999, capacity=8)
    direct.update(rgb[0], out[0].mask, {1, 2, 3})
    for t in range(1, 5):
        labels = direct.track(rgb[t]).labels
        direct.update(rgb[t], labels)
        assert np.array_equal(out[t].mask, labels), f"frame {t}"
        assert out[t].meta["track"] == {"1": "deaot", "2": "deaot", "3": "deaot"}
    assert out[0].meta["track"] == {"1": "reference", "2": "reference", "3": "reference"}
    assert len({int(v) for v in np.unique(out[4].mask)} - {0}) >= 2  # seeded weights still follow objects


def test_a_reference_keeps_its_pixels_and_removes_an_emptied_object(checkpoint: Path) -> None:
    caps, frames, _ = clip_frames(4)
    frames[2].mask[40:60, 10:30] = 7
    frames[2].meta["reference"] = [2, 7]  # object 2 listed without pixels: no longer tracked
    track = create("track", {"engine": "deaot", "checkpoint": str(checkpoint)})
    out = run_filters(caps, frames, [track])
    assert (out[2].mask[40:60, 10:30] == 7).all()
    assert 2 not in np.unique(out[2].mask) and 2 not in np.unique(out[3].mask)
    assert out[2].meta["track"]["7"] == "reference" and "2" not in out[2].meta["track"]
    assert set(out[3].meta["track"]) == {"1", "3", "7"}


def test_frames_before_the_first_reference_pass_through(checkpoint: Path) -> None:
    caps, frames, _ = clip_frames(3)
    frames[0].meta.pop("reference")
    frames[0].mask[:] = 0
    out = run_filters(caps, frames, [create("track", {"checkpoint": str(checkpoint)})])
    assert not any(f.mask.any() for f in out) and "track" not in out[0].meta


def test_auto_finds_deaot_in_the_models_folder(checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "R50_DeAOTL_PRE_YTB_DAV.pth").symlink_to(checkpoint)  # a renamed file loads as what it holds
    caps, frames, _ = clip_frames(2)
    with caplog.at_level(logging.DEBUG):
        run_filters(caps, frames, [create("track", {"models": str(folder)})])
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"using DeAOT, R50_DeAOTL_PRE_YTB_DAV.pth found in {folder}" in said and "DeAOT-T" in said


def test_engine_deaot_without_a_checkpoint_says_where_it_looked(tmp_path: Path) -> None:
    from cleanfeed.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"track engine=deaot needs a DeAOT checkpoint: give checkpoint=PATH "
                       r"\(run: --deaot FILE\) or put R50_DeAOTL_PRE_YTB_DAV.pth, .* found none"):
        create("track", {"engine": "deaot", "models": str(tmp_path)})


def test_cli_run_deaot_tracks_and_a_wrong_checkpoint_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    video = make_video(tmp_path / "in.mp4", frames=4, width=160, height=96)
    masks = tmp_path / "masks"
    base = [sys.executable, "-m", "cleanfeed.stream.cli.main", "run", str(video), "-o", str(tmp_path / "out.mp4"),
            "--box", "60,30,100,70", "--save-masks", str(masks), "--quiet"]
    proc = subprocess.run([*base, "--deaot", str(checkpoint)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(list(masks.glob("*.png"))) == 4
    sam_like = tmp_path / "sam.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1), "prompt_encoder.x": torch.zeros(1),
                "mask_decoder.y": torch.zeros(1)}, sam_like)
    proc = subprocess.run([*base, "--deaot", str(sam_like)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a SAM checkpoint, expected a DeAOT checkpoint" in lines[0], lines


def test_onnxruntime_backend_exports_once_and_agrees_with_torch(checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    masks = {}
    for run, backend in enumerate(("torch", "onnxruntime", "onnxruntime")):
        caps, frames, _ = clip_frames(4)
        track = create("track", {"checkpoint": str(checkpoint), "backend": backend, "max_long_term": 4})
        caplog.clear()
        with caplog.at_level(logging.INFO):
            masks[run] = np.stack([f.mask for f in run_filters(caps, frames, [track])])
        exported = any("exporting DeAOT to ONNX once" in r.getMessage() for r in caplog.records)
        assert exported == (run == 1)  # the second element finds the first one's export (same size and slots)
    assert (masks[0] == masks[1]).mean() > 0.999  # fp32 graphs: only reduction order differs
    assert np.array_equal(masks[1], masks[2])


def test_live_deaot_slower_than_the_stream_still_emits_every_frame_on_time(checkpoint: Path, tmp_path: Path) -> None:
    """50 fps is faster than DeAOT runs on this CPU: under a deadline frames still leave on
    time (stale masks when the tracker is late), and every frame comes out once, in order."""
    from live_run import late_rows, run_live

    frames, budget_ms, jitter_ms = 60, 400.0, 150.0
    rows_file = tmp_path / "rows.json"
    line = (f"testsrc width=160 height=96 frames={frames} rate=50 logo_size=40 ! segment box=114,3,157,30 ! "
            f"track checkpoint={checkpoint} device=cpu ! "
            f"t_coversink location={rows_file} frames={frames} rate=50 logo_size=40")
    report, rows = run_live(line, rows_file, budget_ms)
    assert report.frames_out == frames and not late_rows(rows, budget_ms + jitter_ms), late_rows(rows, budget_ms)
    counters = report.stages["track"]["counters"]
    assert report.degraded == counters.get("stale_masks", 0), (report.degraded, counters)
