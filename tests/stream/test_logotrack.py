"""`logofind emit=prompts ! segment detections=true ! track`: each appearance of the logo becomes an object
of its own in the tracker (a new id after a cut and on re-entry, never another object's), with the
classical engines and with SAM and DeAOT (tiny random weights)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from chain import run_filters

from cleanfeed.errors import PromptError
from cleanfeed.stream import testlogo
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.recipe import RunOptions, chain
from cleanfeed.stream.registry import create

W, H, LOGO = 320, 180, 100
SHOTS = {"a": ((110, 80), 1.0, 0), "b": ((205, 105), 0.9, 12), "b-back": ((120, 70), 1.0, -8)}
SCRIPT = ["a"] * 4 + ["b"] * 3 + [None] * 2 + ["b-back"] * 2
"""Shot a with the logo (frames 0-3); a cut to shot b, the logo elsewhere (4-6); it leaves (7-8); it comes
back (9-10), in shot b still."""
EXPECTED_IDS = [101] * 4 + [102] * 3 + [None] * 2 + [103] * 2


def scene() -> tuple[Caps, list[VideoFrame], list[np.ndarray]]:
    rgb, alpha = testlogo.emblem(LOGO, testlogo.logo_height(LOGO))
    backgrounds = {"a": testlogo.textured_background(W + 40, H, 3),
                   "b": (testlogo.textured_background(W + 40, H, 4) * [0.5, 0.7, 1.0]).astype(np.uint8)}
    frames, truths = [], []
    for i, shot in enumerate(SCRIPT):
        background = backgrounds["a" if shot == "a" else "b"]
        image = np.ascontiguousarray(background[:, 2 * i:2 * i + W])
        truth = np.zeros((H, W), bool)
        if shot is not None:
            (x, y), scale, angle = SHOTS[shot]
            truth = testlogo.composite(image, rgb, alpha,
                                       testlogo.placement(LOGO, testlogo.logo_height(LOGO), (x + 2 * i, y), scale, angle))
        frames.append(VideoFrame(i, i, Fraction(1, 25), Picture.from_rgb(image), np.zeros((H, W), np.uint8)))
        truths.append(truth)
    return Caps(W, H, Fraction(25), Fraction(1, 25), "rgb24"), frames, truths


@pytest.fixture(scope="module")
def logo(tmp_path_factory: pytest.TempPathFactory) -> str:
    return testlogo.write_png(str(tmp_path_factory.mktemp("logotrack") / "brand.png"), LOGO)


def finder(logo: str) -> object:
    # coast 1: an appearance not found for two frames has ended (the script's gap is two frames)
    return create("logofind", {"logo": logo, "emit": "prompts", "coast": 1})


def prompts_of(out: list[VideoFrame]) -> dict[int, list[tuple[int, str]]]:
    return {f.seq: [(d["id"], d["why"]) for d in f.meta["detections"]] for f in out if f.meta.get("detections")}


def ids_of(frame: VideoFrame) -> set[int]:
    return set(np.unique(frame.mask).tolist()) - {0}


def test_classical_engines_track_each_appearance_under_an_id_of_its_own(logo: str) -> None:
    caps, frames, truths = scene()
    out = run_filters(caps, frames, [finder(logo), create("segment", {"detections": True, "engine": "classical"}),
                                     create("track", {"engine": "classical"})])
    assert prompts_of(out) == {0: [(101, "cut")], 4: [(102, "cut")], 9: [(103, "new")]}
    assert out[4].meta["reference"] == [101, 102]  # the cut ends 101: listed without pixels, the tracker drops it
    assert out[8].meta["reference"] == [102]  # gone for longer than coast: dropped too
    for i, (frame, truth, expected) in enumerate(zip(out, truths, EXPECTED_IDS, strict=True)):
        if expected is None:
            assert ids_of(frame) <= {102}, (i, ids_of(frame))  # 7 carries it one frame (coast), 8 drops it
            continue
        assert ids_of(frame) == {expected}, (i, ids_of(frame))
        assert (truth & (frame.mask == expected)).sum() / truth.sum() > 0.85, i
    assert ids_of(out[8]) == set()


def test_an_appearance_never_takes_a_prompted_objects_id(logo: str) -> None:
    """Object 1 (a box on the background) keeps its id beside the logo's objects; ids are never shared."""
    caps, frames, truths = scene()
    seg = create("segment", {"detections": True, "engine": "classical", "box": (240, 120, 300, 170)})
    out = run_filters(caps, frames[:7], [finder(logo), seg, create("track", {"engine": "classical"})])
    assert ids_of(out[0]) == {1, 101} and ids_of(out[3]) == {1, 101}
    assert 102 in ids_of(out[4]) and 101 not in ids_of(out[4])
    assert (truths[0] & (out[0].mask == 101)).sum() / truths[0].sum() > 0.85
    clash = create("segment", {"detections": True, "engine": "classical", "box": (240, 120, 300, 170), "object_id": 101})
    with pytest.raises(PromptError, match="both prompted and detected"):
        run_filters(caps, frames[:1], [finder(logo), clash])


@pytest.mark.slow
def test_sam_and_deaot_take_the_appearances_alike(logo: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from deaot_tracking import save_checkpoint
    from tiny_models import save_tiny_sam

    sam = save_tiny_sam(tmp_path / "sam_vit_b_01ec64.pth")
    deaot = save_checkpoint(tmp_path / "DeAOTT_PRE_YTB_DAV.pth")
    caps, frames, truths = scene()
    keep = [0, 1, 4, 5, 7, 8, 9, 10]  # the cut, the gap and the re-entry; fewer frames: DeAOT is slow on a CPU
    frames = [frames[i] for i in keep]
    out = run_filters(caps, frames, [finder(logo),
                                     create("segment", {"detections": True, "checkpoint": str(sam), "device": "cpu"}),
                                     create("track", {"checkpoint": str(deaot), "device": "cpu"})])
    by_seq = {f.seq: f for f in out}
    assert prompts_of(out) == {0: [(101, "cut")], 4: [(102, "cut")], 9: [(103, "new")]}
    for seq, expected in ((0, "101"), (1, "101"), (4, "102"), (5, "102"), (9, "103"), (10, "103")):
        assert set(by_seq[seq].meta["track"]) == {expected}, (seq, by_seq[seq].meta["track"])
        assert ids_of(by_seq[seq]) == {int(expected)}, seq
    assert by_seq[8].meta["reference"] == [102] and ids_of(by_seq[8]) == set()
    for seq in (0, 4, 9):  # SAM's mask, or the classical engine's where the random SAM found nothing
        assert [o["id"] for o in by_seq[seq].meta["segment"]] == [int(by_seq[seq].meta["detections"][0]["id"])]


def test_the_recipe_tracks_the_logo_when_the_models_are_asked_for() -> None:
    from cleanfeed.prompts.shapes import Box

    def factories(**options: object) -> list[str]:
        return [s.factory for s in chain(RunOptions(input="in.mp4", output="o.mp4", **options))]

    tracked = ["filesrc", "logofind", "segment", "track", "dilate", "inpaint", "filesink"]
    assert factories(logo=("a.png",)) == ["filesrc", "logofind", "inpaint", "filesink"]  # exact masks, the default
    assert factories(logo=("a.png",), deaot="d.pth") == tracked
    assert factories(logo=("a.png",), sam="s.pth") == tracked
    assert factories(logo=("a.png",), logo_track=True, classical=True) == tracked
    specs = dict(chain(RunOptions(input="in.mp4", output="o.mp4", logo=("a.png", "b.png"), box=Box(1, 2, 30, 40),
                                  sam="s.pth", deaot="d.pth")))
    assert specs["logofind"] == {"logo": "a.png;b.png", "emit": "prompts"}
    assert specs["segment"]["detections"] is True and specs["segment"]["box"] == (1, 2, 30, 40)
    assert specs["track"]["checkpoint"] == "d.pth"
    # without the models, a box and a logo keep today's chain: the logo's exact masks after segment and track
    assert factories(logo=("a.png",), box=Box(1, 2, 30, 40), moving=True)[:5] == ["filesrc", "segment", "track",
                                                                                 "logofind", "dilate"]
    with pytest.raises(PromptError, match="--logo-track"):
        chain(RunOptions(input="in.mp4", output="o.mp4", box=Box(1, 2, 30, 40), logo_track=True))
    with pytest.raises(PromptError, match="--logo-track"):
        chain(RunOptions(input="in.mp4", output="o.mp4", logo=("a.png",), masks="m", logo_track=True))


def test_run_logo_track_removes_the_logo_through_segment_and_track(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    import cv2
    from logo_scenes import write_logo_png, write_scene_clip

    root = Path(__file__).resolve().parents[2]
    on = set(range(3, 12))
    brand, clip = write_logo_png(tmp_path / "brand.png"), write_scene_clip(tmp_path / "in.mp4", on)
    out, masks, report = tmp_path / "out.mp4", tmp_path / "masks", tmp_path / "check.json"

    def cleanfeed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cleanfeed.stream.cli.main", *args], capture_output=True,
                              text=True, timeout=180, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})

    proc = cleanfeed("run", str(clip), "-o", str(out), "--logo", str(brand), "--logo-track", "--classical",
                     "--save-masks", str(masks), "--quiet", "--mode", "thread")
    assert proc.returncode == 0, proc.stderr
    ids = [set(np.unique(cv2.imread(str(masks / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)).tolist()) - {0}
           for i in range(16)]
    assert all(ids[i] == {101} for i in on) and not any(ids[:3]), ids  # one appearance, one object
    check = cleanfeed("check", str(out), "--logo", str(brand), "--json", str(report))
    assert check.returncode == 0 and json.loads(report.read_text())["frames"] == [], check.stdout  # nothing aired
