"""A short soak in CI: a live run of the classical chain for 40 s, its processes' memory sampled.

The long one (10 minutes, 1080p from RTSP) is `python -m cleanfeed.bench.live --soak`, recorded in
bench/results. Here a leak of a few KB per frame in any process (a kept copy of a frame, a
growing list per frame) would show as megabytes between the second and the last quarter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from media import frame_pts

from cleanfeed.bench.memory import RssSampler, memory_verdict
from cleanfeed.stream.testclip import SyntheticClip

FRAMES, RATE, W, H, LOGO = 1000, 25, 320, 180, 40


def test_a_live_run_keeps_every_process_flat_in_memory(tmp_path: Path) -> None:
    x0, y0, x1, y1 = SyntheticClip(W, H, FRAMES, RATE, logo_size=LOGO).frame(0).box
    stats, out = tmp_path / "stats.json", tmp_path / "out.ts"
    line = (f"testsrc width={W} height={H} rate={RATE} frames={FRAMES} logo_size={LOGO} ! "
            f"segment box={x0},{y0},{x1},{y1} ! track ! dilate pixels=8 ! inpaint engine=classical ! "
            f"filesink location={out} tune=zerolatency")
    run = subprocess.Popen([sys.executable, "-m", "cleanfeed.stream.cli.main", "launch", "--live", "--latency", "1000",
                            "--quiet", "--stats", str(stats), line], stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(run.pid, 1.0)
    sampler.start()
    try:
        _, stderr = run.communicate(timeout=FRAMES / RATE + 60)
    finally:
        sampler.stop()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr
    doc = json.loads(stats.read_text())
    assert doc["frames_in"] == doc["frames_out"] == FRAMES and doc["dropped"] == 0
    assert len(frame_pts(out)) == FRAMES
    steady = sampler.samples[3:-2]  # start-up and shutdown excluded
    assert len({count for _, _, count in steady}) == 1, steady  # no process came or went
    verdict = memory_verdict(steady)
    assert verdict["flat"] and abs(verdict["growth_mb"]) < 10, verdict
