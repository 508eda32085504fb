"""`cleanfeed run --logo`: the logo found on every frame that shows it and removed, checked by `cleanfeed check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from logo_scenes import write_logo_png, write_scene_clip

from cleanfeed.engines.detect.finder import LogoFinder
from cleanfeed.engines.detect.reference import reference_from_array
from cleanfeed.stream import testlogo
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.elements.logofind import LogoFind
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.recipe import RunOptions, chain

ROOT = Path(__file__).resolve().parents[2]
ON = set(range(3, 12))


def cleanfeed(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "cleanfeed.stream.cli.main", *args], capture_output=True, text=True,
                          timeout=180, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logofind")
    return {"logo": write_logo_png(folder / "brand.png"), "clip": write_scene_clip(folder / "in.mp4", ON),
            "folder": folder}


def test_run_with_logo_alone_removes_every_appearance(media):
    out, masks = media["folder"] / "out.mp4", media["folder"] / "masks"
    proc = cleanfeed("run", str(media["clip"]), "-o", str(out), "--logo", str(media["logo"]), "--save-masks",
                     str(masks), "--quiet", "--mode", "thread")
    assert proc.returncode == 0, proc.stderr
    masked = sorted(int(p.stem) for p in masks.glob("*.png") if _any(p))
    # every frame that shows it, and at most `coast` (4) frames after it vanished, still masked where it was going
    assert ON <= set(masked) <= ON | set(range(max(ON) + 1, max(ON) + 5)), masked
    report = media["folder"] / "check.json"
    check = cleanfeed("check", str(out), "--logo", str(media["logo"]), "--json", str(report))
    assert check.returncode == 0 and json.loads(report.read_text())["frames"] == [], check.stdout  # nothing aired
    before = cleanfeed("check", str(media["clip"]), "--logo", str(media["logo"]), "--quiet")
    assert before.returncode == 1


def _any(path: Path) -> bool:
    import cv2

    return bool(cv2.imread(str(path), cv2.IMREAD_UNCHANGED).any())


def test_a_logo_that_never_appears_warns_and_exits_0(media, tmp_path):
    other = write_logo_png(tmp_path / "other.png", variant=1)
    proc = cleanfeed("run", str(media["clip"]), "-o", str(tmp_path / "o.mp4"), "--logo", str(other), "--quiet",
                     "--mode", "thread")
    assert proc.returncode == 0, proc.stderr
    assert "appeared on no frame" in proc.stderr


def test_a_bad_logo_is_one_line_before_the_run(media, tmp_path):
    proc = cleanfeed("run", str(media["clip"]), "-o", str(tmp_path / "o.mp4"), "--logo", str(tmp_path / "nope.png"))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--logo" in lines[0] and "no such file" in lines[0]
    assert not (tmp_path / "o.mp4").exists()


def test_logo_combines_with_a_box_after_segment_and_track():
    specs = chain(RunOptions(input="in.mp4", output="o.mp4", box=None, logo=("a.png", "b.png")))
    # logofind's masks are exact: no tracked-mask dilation, and the cheaper classical inpaint settings
    assert [s.factory for s in specs] == ["filesrc", "logofind", "inpaint", "filesink"]
    assert dict(specs)["logofind"] == {"logo": "a.png;b.png"}
    assert dict(specs)["inpaint"] == {"window": 5, "flow_side": 128, "spatial_px": 2048}
    from cleanfeed.prompts.shapes import Box

    specs = chain(RunOptions(input="in.mp4", output="o.mp4", box=Box(1, 2, 30, 40), logo=("a.png",), moving=True))
    assert [s.factory for s in specs][:5] == ["filesrc", "segment", "track", "logofind", "dilate"]
    assert "flow_side" not in dict(specs)["inpaint"]  # tracked masks keep the default inpaint
    specs = chain(RunOptions(input="in.mp4", output="o.mp4", logo=("a.png",), dilate=4))
    assert dict(specs)["dilate"] == {"pixels": 4}  # asked for, kept


def _frame(seq: int, rgb: np.ndarray) -> VideoFrame:
    return VideoFrame.new(seq, seq, 1 / 25, Picture.from_rgb(rgb))


def test_the_element_follows_a_logo_across_a_cut_and_down_to_small_sizes(tmp_path):
    logo = write_logo_png(tmp_path / "brand.png", 240, 150)
    rgb, alpha = testlogo.emblem(240, 150)
    element = LogoFind(logo=str(logo), every=1000)  # full searches only on cuts and when a logo is lost
    from cleanfeed.stream.buffers import Caps

    element.start(Caps(1280, 720, 25, 1 / 25, "rgb24"))
    shots = [testlogo.textured_background(1400, 720, 31), (testlogo.textured_background(1400, 720, 32)
                                                         * [0.5, 0.7, 1.0]).astype(np.uint8)]
    masked, truth = [], []
    for i in range(24):
        shot = shots[0 if i < 12 else 1]
        image = np.ascontiguousarray(shot[:, 4 * (i % 12):4 * (i % 12) + 1280])
        # shot 1: the logo shrinks from 1x to 0.4x while it turns; shot 2: it is elsewhere, 1.5x, in perspective
        place = (testlogo.placement(240, 150, (500 + 10 * i, 360), 1.0 - 0.05 * i, angle_deg=i) if i < 12 else
                 testlogo.placement(240, 150, (900, 300), 1.5, angle_deg=-20, tilt=0.25))
        support = testlogo.composite(image, rgb, alpha, place)
        frame = element.process(_frame(i, image))[0]
        truth.append(support)
        masked.append(frame.mask > 0)
    recall = [float((m & t).sum() / t.sum()) for m, t in zip(masked, truth, strict=True)]
    assert min(recall) > 0.98, " ".join(f"{r:.3f}" for r in recall)
    counters = element.counted()
    assert counters["logo_cuts"] == 2 and counters["logo_frames"] == 24


def test_find_near_keeps_a_logo_the_full_search_is_too_coarse_for():
    rgb, alpha = testlogo.emblem(240, 150)
    finder = LogoFinder([reference_from_array(rgb, alpha >= 128, "emblem")])
    big = testlogo.textured_background(1920, 1080, 40)
    testlogo.composite(big, rgb, alpha, testlogo.placement(240, 150, (900, 500), 1.0))
    previous = finder.find(big)
    assert len(previous) == 1
    for scale in (0.8, 0.6, 0.45):
        frame = testlogo.textured_background(1920, 1080, 40)
        support = testlogo.composite(frame, rgb, alpha, testlogo.placement(240, 150, (905, 502), scale))
        previous = finder.find_near(frame, previous)
        assert previous is not None and len(previous) == 1
        assert (previous[0].mask(1920, 1080, 2) & support).sum() / support.sum() > 0.98


@pytest.mark.parametrize("scenario", ["scaled", "rotated", "perspective", "leaving", "cuts", "two"])
def test_testsrc_scenarios_are_found_and_masked(tmp_path, scenario):
    """The testsrc scenarios through logofind: the logo's pixels masked on the frames that show it."""
    from cleanfeed.stream.buffers import Caps
    from cleanfeed.stream.elements.testsrc import SyntheticSrc

    paths = [testlogo.write_png(str(tmp_path / f"logo{v}.png"), 200, v) for v in (0, 1)]
    source = SyntheticSrc(scenario=scenario, frames=24, width=960, height=540, logo_size=200, truth_mask=True,
                          pix_fmt="rgb24")
    caps = source.open()
    element = LogoFind(logo=";".join(paths if scenario == "two" else paths[:1]))
    element.start(Caps(960, 540, caps.rate, caps.time_base, "rgb24"))
    logo = hit = 0
    for frame in source.read():
        truth = frame.mask > 0
        frame.mask[...] = 0
        out = element.process(frame)[0]
        logo += int(truth.sum())
        hit += int((truth & (out.mask > 0)).sum())
    assert hit / logo > 0.98


def test_a_live_run_spreads_the_full_search_when_it_would_make_frames_late(tmp_path, caplog):
    import logging
    from fractions import Fraction

    from cleanfeed.stream.buffers import Caps
    from cleanfeed.stream.element import Deadline

    logo = write_logo_png(tmp_path / "brand.png")
    element = LogoFind(logo=str(logo), every=1)
    element.live, element.deadline = True, Deadline(budget_s=0.2)
    element.start(Caps(640, 360, Fraction(1000), Fraction(1, 1000), "rgb24"))  # 1 ms between frames: no search fits
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            element.process(_frame(i, testlogo.textured_background(640, 360, 50)))
    assert element.counted()["logofind_spread"] == 1
    assert len([r for r in caplog.records if "now runs on one frame in" in r.message]) == 1
    assert element.counted()["logo_full_searches"] == 1  # frames 1 and 2 wait for their turn


def test_without_a_live_deadline_every_frame_is_searched(tmp_path):
    from fractions import Fraction

    from cleanfeed.stream.buffers import Caps

    element = LogoFind(logo=str(write_logo_png(tmp_path / "brand.png")))
    element.start(Caps(640, 360, Fraction(1000), Fraction(1, 1000), "rgb24"))
    for i in range(3):
        element.process(_frame(i, testlogo.textured_background(640, 360, 50)))
    assert element.counted()["logo_full_searches"] == 3 and "logofind_spread" not in element.counted()


def test_logo_and_a_box_in_one_run_keep_their_own_objects(media):
    """--box --moving is segmented and tracked as object 1; the logo is found as object 101 beside it."""
    import cv2

    out, masks = media["folder"] / "both.mp4", media["folder"] / "both-masks"
    proc = cleanfeed("run", str(media["clip"]), "-o", str(out), "--box", "20,20,80,70", "--logo", str(media["logo"]),
                     "--moving", "--classical", "--save-masks", str(masks), "--quiet", "--mode", "thread")
    assert proc.returncode == 0, proc.stderr
    ids = {i: set(np.unique(cv2.imread(str(masks / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)).tolist()) for i in (0, 5)}
    assert ids[0] == {0, 1} and ids[5] == {0, 1, 101}, ids


def test_the_inpaint_speed_properties_reach_the_classical_engine():
    from cleanfeed.stream.elements.inpaint import Inpaint

    element = Inpaint(engine="classical", flow_side=128, spatial_px=2048)
    element.configure()
    config = element._config()
    assert (config.flow_max_side, config.spatial_max_px) == (128, 2048)
    assert (Inpaint(engine="classical")._config().flow_max_side, Inpaint()._config().spatial_max_px) == (256, 8192)
