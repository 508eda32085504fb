"""Where a fleet's start goes, phase by phase, against the same feeds started by hand.

    python -m cleanfeed.bench.fleet_start fleet hand fleet hand [--feeds 4] [--frames 100]

Each word is one run, in the order given (so that fleet and hand take turns under the same
load): ``fleet`` is `cleanfeed fleet` on a local Ray instance with N feeds of a 720p testsrc
clip (as bench/fleet.py), ``hand`` the N `cleanfeed run` processes started together. For a
fleet, seconds from the command's start to: its stats file written (the file checked, Ray
imported: everything before Ray starts), Ray up (``ray_start_s``, the fleet's own figure, after
that), every feed's process started, each feed's first frame read, every feed reading frames.
The stats file is polled every 50 ms and rewritten by the fleet about every 0.25 s while feeds
start, so each time is up to that late. To compare two versions, run the same words with
PYTHONPATH set to each checkout, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cleanfeed.bench import fleet as bench


def fleet_phases(folder: Path, clip: Path, n: int) -> dict[str, Any]:
    spec = folder / "start.toml"
    spec.write_text("".join(f'[[feeds]]\nname = "f{i}"\ninput = "{clip}"\noutput = "{folder}/start-{i}.mp4"\n'
                            f'box = "{bench.BOX}"\n' for i in range(n)))
    for i in range(n):
        (folder / f"start-{i}.mp4").unlink(missing_ok=True)
    stats = folder / "start.json"
    stats.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = subprocess.Popen([*bench.CLI, "fleet", str(spec), "--stats", str(stats), "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    written = started = running = None
    first: dict[str, float] = {}
    while proc.poll() is None:
        doc = bench._read(stats)
        feeds = doc.get("feeds") or {}
        now = time.monotonic() - t0
        if written is None and doc:
            written = now
        for name, feed in feeds.items():
            if feed.get("frames_in") and name not in first:
                first[name] = now
        if started is None and len(feeds) == n and all(f.get("pid") for f in feeds.values()):
            started = now
        if running is None and len(first) == n:
            running = now
        time.sleep(0.05)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"cleanfeed fleet failed ({proc.returncode}): {err[-2000:]}")
    return {"kind": "fleet", "before_ray_s": written, "ray_start_s": bench._read(stats).get("ray_start_s"),
            "all_started_s": started, "first_frame_s": sorted(first.values()), "all_running_s": running,
            "wall_s": time.monotonic() - t0, "load1": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.fleet_start", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", choices=("fleet", "hand"))
    p.add_argument("--feeds", type=int, default=4)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--json", help="also write the runs here")
    args = p.parse_args(argv)
    out = []
    with tempfile.TemporaryDirectory(prefix="cleanfeed-bench-start-") as tmp:
        folder = Path(tmp)
        clip = bench._clip(folder / "clip720.mp4", args.frames)
        for kind in args.runs:
            if kind == "fleet":
                row = fleet_phases(folder, clip, args.feeds)
            else:
                hand = bench.by_hand(folder, clip, args.feeds)
                row = {"kind": "hand", "all_running_s": hand["all_running_s"], "wall_s": hand["wall_s"],
                       "load1": os.getloadavg()[0]}
            out.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
