"""`segment` with SAM: the element writes exactly SAM's masks, encodes a frame once for all its objects,
falls back when SAM finds nothing, and `cleanfeed run --sam` shows SAM's mask with --save-masks."""

from __future__ import annotations

import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from chain import run_filters
from media import make_video
from tiny_models import save_tiny_sam

from cleanfeed.engines.runners.base import RunnerConfig
from cleanfeed.engines.sam.predictor import SamPrompt, open_segmenter
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.registry import create

W, H = 160, 96
BOX = (60, 30, 100, 70)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "sam_vit_b_01ec64.pth")


def clip_frames(count: int = 3) -> tuple[Caps, list[VideoFrame]]:
    src = create("testsrc", {"width": W, "height": H, "frames": count})
    caps = src.open()
    frames = [f for f in src.read() if isinstance(f, VideoFrame)]
    src.close()
    return caps, frames


def sam_directly(checkpoint: Path, rgb: np.ndarray, prompt: SamPrompt) -> np.ndarray:
    segmenter = open_segmenter(checkpoint, None, RunnerConfig())
    segmenter.set_image(rgb)
    return segmenter.predict(prompt, multimask=True, refine=True).mask


def test_element_writes_sams_mask(checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    caps, frames = clip_frames()
    rgb = frames[0].picture.rgb()
    seg = create("segment", {"box": BOX, "checkpoint": str(checkpoint), "device": "cpu"})
    with caplog.at_level(logging.DEBUG):
        out = run_filters(caps, frames, [seg])
    expected = sam_directly(checkpoint, rgb, SamPrompt(box=tuple(map(float, BOX))))
    said = [r.getMessage() for r in caplog.records if "using" in r.getMessage()]
    assert len(said) == 1 and f"using SAM from {checkpoint}" in said[0]
    assert expected.any() and not expected.all()  # seeded weights: SAM does find a region here
    assert np.array_equal(out[0].mask != 0, expected)
    assert out[0].meta["segment"][0]["method"] == "sam"
    assert isinstance(out[0].meta["segment"][0]["score"], float)  # a random model may predict any value
    assert not out[1].mask.any() and not out[2].mask.any()


def test_one_encoder_run_for_several_objects(checkpoint: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import cleanfeed.engines.sam.predictor as predictor

    calls = {"set_image": 0, "predict": 0}
    real_set, real_predict = predictor.SamSegmenter.set_image, predictor.SamSegmenter.predict

    def counting_set(self: Any, rgb: np.ndarray) -> None:
        calls["set_image"] += 1
        real_set(self, rgb)

    def counting_predict(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["predict"] += 1
        return real_predict(self, *args, **kwargs)

    monkeypatch.setattr(predictor.SamSegmenter, "set_image", counting_set)
    monkeypatch.setattr(predictor.SamSegmenter, "predict", counting_predict)
    prompts = tmp_path / "prompts.json"
    prompts.write_text('{"version": 1, "objects": [{"id": 1, "frame": 0, "box": [10, 10, 40, 40]}, '
                       '{"id": 2, "frame": 0, "points": [[120, 50, 1], [130, 60, 0]]}]}')
    caps, frames = clip_frames(2)
    seg = create("segment", {"prompts_file": str(prompts), "engine": "sam", "checkpoint": str(checkpoint)})
    out = run_filters(caps, frames, [seg])
    assert calls == {"set_image": 1, "predict": 2}
    assert [o["id"] for o in out[0].meta["segment"]] == [1, 2]


def test_empty_sam_mask_falls_back_to_classical(checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    import cleanfeed.engines.sam.predictor as predictor

    real_predict = predictor.SamSegmenter.predict

    def nothing(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = real_predict(self, *args, **kwargs)
        return predictor.SamMask(np.zeros_like(found.mask), found.score, found.logits, found.index)

    monkeypatch.setattr(predictor.SamSegmenter, "predict", nothing)
    caps, frames = clip_frames(1)
    seg = create("segment", {"box": BOX, "engine": "sam", "checkpoint": str(checkpoint)})
    with caplog.at_level(logging.INFO):
        out = run_filters(caps, frames, [seg])
    assert out[0].mask[BOX[1]:BOX[3], BOX[0]:BOX[2]].any()
    assert out[0].meta["segment"][0]["method"] != "sam"
    assert any("SAM found nothing for object 1 on frame 0" in r.getMessage() for r in caplog.records)


def test_auto_finds_sam_in_the_models_folder(checkpoint: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / checkpoint.name).symlink_to(checkpoint)
    caps, frames = clip_frames(1)
    seg = create("segment", {"box": BOX, "models": str(folder)})
    with caplog.at_level(logging.DEBUG):
        run_filters(caps, frames, [seg])
    assert any(f"using SAM, sam_vit_b_01ec64.pth found in {folder}" in r.getMessage() for r in caplog.records)


def test_wrong_model_for_the_file_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    video = make_video(tmp_path / "in.mp4", frames=3, width=W, height=H)
    proc = subprocess.run(
        [sys.executable, "-m", "cleanfeed.stream.cli.main", "launch", "--quiet",
         f"filesrc location={video} ! segment box=60,30,100,70 checkpoint={checkpoint} model=vit_h ! fakesink"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cleanfeed: error:") and "vit_h" in lines[0], lines


def test_cli_run_sam_save_masks(checkpoint: Path, tmp_path: Path) -> None:
    video = make_video(tmp_path / "in.mp4", frames=4, width=W, height=H)
    masks = tmp_path / "masks"
    proc = subprocess.run(
        [sys.executable, "-m", "cleanfeed.stream.cli.main", "run", str(video), "-o", str(tmp_path / "out.mp4"),
         "--box", ",".join(map(str, BOX)), "--sam", str(checkpoint), "--save-masks", str(masks), "--quiet"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    saved = cv2.imread(str(masks / "00000.png"), cv2.IMREAD_UNCHANGED)
    src = create("filesrc", {"location": str(video)})
    src.open()
    first = next(f for f in src.read() if isinstance(f, VideoFrame))
    src.close()
    expected = sam_directly(checkpoint, first.picture.rgb(), SamPrompt(box=tuple(map(float, BOX))))
    assert expected.any() and not expected.all()
    agree = np.logical_and(saved != 0, expected).sum() / np.logical_or(saved != 0, expected).sum()
    assert agree > 0.995, agree  # same frame, same model: only float reduction order may differ
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_caps_unchanged(checkpoint: Path) -> None:
    seg = create("segment", {"box": BOX, "checkpoint": str(checkpoint)})
    caps = Caps(width=W, height=H, rate=Fraction(25), time_base=Fraction(1, 25))
    assert seg.start(caps) == caps


def test_onnxruntime_backend_exports_once_and_agrees_with_torch(checkpoint: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caps, frames = clip_frames(1)
    masks = {}
    for run, backend in enumerate(("torch", "onnxruntime", "onnxruntime")):
        copies = [VideoFrame(f.seq, f.pts, f.time_base, f.picture, np.zeros_like(f.mask)) for f in frames]
        seg = create("segment", {"box": BOX, "checkpoint": str(checkpoint), "backend": backend})
        caplog.clear()
        with caplog.at_level(logging.INFO):
            masks[run] = run_filters(caps, copies, [seg])[0].mask
        exported = any("exporting SAM to ONNX once" in r.getMessage() for r in caplog.records)
        assert exported == (run == 1)  # the second onnxruntime element finds the first one's export
    assert masks[0].any()
    assert np.array_equal(masks[0], masks[1]) and np.array_equal(masks[1], masks[2])
