"""Bench: which x264 preset and thread count a live output can afford (issue 20).

Run from the repository root:
    python -m cleanfeed.bench.live_encoder --sizes 1280x720,1920x1080 --save 2026-12-07-live-encoder-cpu
    python -m cleanfeed.bench.live_encoder --hog 1 --save NAME    (one core taken by a spinning process)

A sink cannot shed work, so in a live chain the encoder's cost per frame is the floor under every
other stage's cheap path. This encodes the synthetic panning shot (cleanfeed.stream.testclip, the
frames bench/live.py serves) with the live output's settings (tune=zerolatency, crf 20, yuv420p)
through stream/media/encode.py's own setup, for each preset and each slice-thread count, and
reports per configuration: wall fps, CPU milliseconds per frame (all threads), the share of one
core a 25 fps input takes, and the bitrate. Frames are converted to yuv420p before timing, as
the chain hands them over.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from cleanfeed.bench.host import cpu_machine
from cleanfeed.bench.report import save_json
from cleanfeed.stream.media.encode import EncoderSettings, configure_encoder
from cleanfeed.stream.testclip import SyntheticClip

ROOT = Path(__file__).resolve().parents[1]
RATE = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.live_encoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1280x720,1920x1080", help="comma-separated WxH")
    p.add_argument("--presets", default="veryfast,superfast,ultrafast")
    p.add_argument("--threads", default="0,1", help="slice threads to try (0: x264's own choice, the cores)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--hog", type=int, default=0, metavar="N", help="N processes spinning on a core each")
    p.add_argument("--save", metavar="NAME", help="write bench/results/NAME.json")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def measure(frames: list[av.VideoFrame], width: int, height: int, preset: str, threads: int) -> dict[str, Any]:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, RATE), Fraction(RATE)
    configure_encoder(ctx, "libx264", EncoderSettings(preset=preset, tune="zerolatency"))
    ctx.thread_count = threads
    size = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i, frame in enumerate(frames):
        frame.pts = i
        size += sum(p.size for p in ctx.encode(frame))
    size += sum(p.size for p in ctx.encode(None))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = len(frames)
    return {"preset": preset, "threads": threads, "fps": round(n / wall, 1), "cpu_ms_per_frame": round(cpu / n * 1000, 1),
            "core_share_at_25fps": round(cpu / n * RATE, 2), "mbit_s": round(size * 8 * RATE / n / 1e6, 2),
            "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.append(str(ROOT / "tests" / "stream"))
    rows: list[dict[str, Any]] = []
    load_before = list(os.getloadavg())
    hog = None
    if args.hog:
        from hog import CpuHog  # tests/stream

        hog = CpuHog(args.hog).__enter__()
    try:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.lower().split("x"))
            clip = SyntheticClip(width, height, frames=args.frames, rate=RATE, logo="fixed", seed=3)
            frames = [av.VideoFrame.from_ndarray(clip.frame(i).image, format="rgb24").reformat(format="yuv420p")
                      for i in range(args.frames)]
            for preset in args.presets.split(","):
                for threads in args.threads.split(","):
                    row = {"size": size, **measure(frames, width, height, preset, int(threads))}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        if hog is not None:
            hog.__exit__(None, None, None)
    report = {"date": datetime.date.today().isoformat(),
              "command": "python -m cleanfeed.bench.live_encoder " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": cpu_machine(load_before),
              "hog_processes": args.hog, "rows": rows}
    if args.save:
        save_json(args.out_dir, args.save, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
