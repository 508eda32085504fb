"""Bench: what each stage of the live chain costs a frame, full path and cheap path, one at a time.

Run from the repository root:
    python -m cleanfeed.bench.live_stages --size 1280x720 --save 2026-12-07-live-stages-720p-cpu

On a machine shared with other work, the busy fps of `--stats` are wall time under contention:
they say which stage waited longest, not what it costs. This builds the chain `cleanfeed run
--live --max-latency 1000 --classical --box <the bug>` would build (cleanfeed.stream.recipe) and
drives its elements by hand in one process, one frame at a time through every stage, timing each
call (wall and the process's CPU time); ``--path cheap`` stamps every frame born 10 s ago, so every
stage that can shed takes its cheap path. The clip is bench/live.py's synthetic panning shot with a
channel bug. The decoder's own threads run while later stages are timed, so the source's CPU
time is spread over the others.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from cleanfeed.bench.clips import encode_clip
from cleanfeed.bench.host import cpu_machine
from cleanfeed.bench.report import save_json
from cleanfeed.prompts.shapes import Box
from cleanfeed.stream import recipe
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Deadline
from cleanfeed.stream.recipe import RunOptions
from cleanfeed.stream.testclip import SyntheticClip

ROOT = Path(__file__).resolve().parents[1]
RATE = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.live_stages", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1280x720", help="WxH of the clip")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--preset", help="the output's preset (default: run's own for a live output)")
    p.add_argument("--save", metavar="NAME", help="write bench/results/NAME.json")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def stage_costs(source: Path, box: tuple[int, int, int, int], output: Path, preset: str | None,
                cheap: bool) -> dict[str, dict[str, float]]:
    """Milliseconds a frame (wall, cpu) of every element of the live chain, driven in this process."""
    options = RunOptions(input=str(source), output=str(output), box=Box(*box), classical=True, live=True,
                         max_latency=1000.0, preset=preset)
    elements = recipe.elements(recipe.chain(options))
    src, filters, sink = elements[0], elements[1:-1], elements[-1]
    caps = src.open()
    for element in [*filters, sink]:
        element.live = True
        element.deadline = Deadline(1.0)
    for flt in filters:
        caps = flt.start(caps)
    sink.start(caps)
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)

    def timed(name: str, call: Any, *args: Any) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = call(*args)
        wall[name] += time.perf_counter() - w0
        cpu[name] += time.process_time() - c0
        return out

    frames = src.read()
    rendered = 0
    while True:
        item = timed(src.name, next, frames, None)
        if item is None:
            break
        if not isinstance(item, VideoFrame):
            continue
        item.stamps[src.name] = time.monotonic() - (10.0 if cheap else 0.0)
        batch = [item]
        for flt in filters:
            batch = [out for frame in batch for out in timed(flt.name, flt.process, frame)]
        for frame in batch:
            timed(sink.name, sink.render, frame)
            rendered += 1
    sink.finish()
    src.close()
    n = max(1, rendered)
    return {name: {"wall_ms": round(wall[name] / n * 1000, 2), "cpu_ms": round(cpu[name] / n * 1000, 2)}
            for name in [src.name, *(f.name for f in filters), sink.name]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="live-stages-"))
    clip = SyntheticClip(width, height, frames=args.frames, rate=RATE, logo="fixed",
                         logo_size=max(40, round(0.08 * width)), seed=3)
    source = encode_clip(clip, work / "clip.mkv", RATE, {"preset": "veryfast", "crf": "18", "g": str(RATE), "bf": "0"},
                         "matroska")
    load_before = list(os.getloadavg())
    paths = {path: stage_costs(source, clip.frame(0).box, work / f"out-{path}.ts", args.preset, path == "cheap")
             for path in ("full", "cheap")}
    report = {"date": datetime.date.today().isoformat(),
              "command": "python -m cleanfeed.bench.live_stages " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": cpu_machine(load_before),
              "clip": {"size": args.size, "frames": args.frames, "box": list(clip.frame(0).box)},
              "preset": args.preset or recipe.LIVE_PRESET, "ms_per_frame": paths}
    print(json.dumps(report, indent=1))
    if args.save:
        save_json(args.out_dir, args.save, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
