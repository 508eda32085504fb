"""`cleanfeed check` and the logocheck element, run as a user runs them (the CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from logo_scenes import write_logo_png, write_scene_clip

ROOT = Path(__file__).resolve().parents[2]
ON = set(range(4, 11))


def cleanfeed(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "cleanfeed.stream.cli.main", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check")
    return {
        "logo": write_logo_png(folder / "brand.png"),
        "other": write_logo_png(folder / "other.png", variant=1),
        "with": write_scene_clip(folder / "with.mp4", ON),
        "without": write_scene_clip(folder / "without.mp4", set()),
        "folder": folder,
    }


def test_check_lists_every_frame_with_the_logo_and_exits_1(media):
    out = media["folder"] / "found.json"
    proc = cleanfeed("check", str(media["with"]), "--logo", str(media["logo"]), "--json", str(out))
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(out.read_text())
    assert [f["frame"] for f in doc["frames"]] == sorted(ON)
    assert doc["frames"][0]["time_s"] == pytest.approx(4 / 25)
    assert doc["frames_scanned"] == 16
    assert "logo visible on 7 of 16 frames: 4-10" in proc.stdout
    assert proc.stdout.count("\nframe ") + proc.stdout.startswith("frame ") == 7


def test_check_exits_0_when_no_frame_shows_it(media):
    proc = cleanfeed("check", str(media["without"]), "--logo", str(media["logo"]))
    assert proc.returncode == 0, proc.stderr
    assert "logo visible on none of 16 frames" in proc.stdout
    assert "no frame" in proc.stderr  # a warning, not an error
    other = cleanfeed("check", str(media["with"]), "--logo", str(media["other"]), "--quiet")
    assert other.returncode == 0, other.stdout  # another sponsor's logo is not this one


@pytest.mark.parametrize("make, text", [
    (lambda f: f / "missing.png", "no such file"),
    (lambda f: (f / "empty.png").write_bytes(b"") and f / "empty.png" or f / "empty.png", "unreadable"),
])
def test_bad_references_are_one_line(media, make, text):
    path = make(media["folder"])
    proc = cleanfeed("check", str(media["with"]), "--logo", str(path))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cleanfeed: error: --logo") and text in lines[0], proc.stderr


def test_logocheck_counts_visible_frames_in_a_chain(media):
    stats = media["folder"] / "stats.json"
    line = f"filesrc location={media['with']} ! logocheck logo={media['logo']} ! fakesink"
    proc = cleanfeed("launch", line, "--stats", str(stats), "--mode", "thread")
    assert proc.returncode == 0, proc.stderr
    counters = json.loads(stats.read_text())["counters"]
    assert counters["logo_visible"] == len(ON) and counters["logo_checked"] == 16
    assert "visible from frame 4 (t=0.160s)" in proc.stderr and "visible until frame 10" in proc.stderr


def test_a_reference_larger_than_the_frame_is_one_line(media):
    import cv2
    import numpy as np

    big = media["folder"] / "big.png"
    cv2.imwrite(str(big), np.random.default_rng(0).integers(0, 255, (1500, 2400, 3), dtype=np.uint8))
    proc = cleanfeed("check", str(media["with"]), "--logo", str(big))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "must fit in the 640x360 frame" in lines[0], proc.stderr


def test_a_flat_reference_warns_once_and_is_still_looked_for(media):
    import cv2
    import numpy as np

    from cleanfeed.stream import testlogo

    rgb, alpha = testlogo.flat_disc(60)
    disc = media["folder"] / "disc.png"
    cv2.imwrite(str(disc), np.dstack([rgb[..., ::-1], alpha]))
    proc = cleanfeed("check", str(media["with"]), "--logo", str(disc), "--quiet")
    assert proc.returncode == 0, proc.stdout  # the clip shows the emblem, not the disc
    assert proc.stderr.count("too few features") == 1, proc.stderr
