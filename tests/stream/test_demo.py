"""`cleanfeed demo`: the built-in clip through the default `run --box` chain, scored against its truth.

The demo's bug is opaque and two-coloured (a disc and a banner with white text) over a pan: it
guards the whole logo path end to end (matte, looks, opaque parts handed to inpaint), where a
change that only a real clip's numbers would reveal has slipped through unit tests before (an
opacity measured against the bug's own disc: 13.4 dB instead of 36.7).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_demo_removes_its_bug_far_better_than_telea(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "cleanfeed.stream.cli.main", "demo", "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 90
    # 36.7 dB here, per-frame Telea 24.6
    assert report["psnr_mask_db"] >= 35.0, report
    assert report["psnr_mask_db"] >= report["psnr_mask_telea_db"] + 10.0, report
    assert (out / "output.mp4").stat().st_size > 0 and (out / "side_by_side.png").stat().st_size > 0
