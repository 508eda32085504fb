"""What process hops cost: ``src ! sink`` in one process vs ``src ! identity x N ! sink`` with
every element in its own process (frames in shared memory, headers over ZeroMQ).

    python -m cleanfeed.bench.transport --width 1920 --height 1080 --frames 300 --hops 5 --json out.json
    python -m cleanfeed.bench.transport --launch-a "filesrc location=a.mp4 ! fakesink" \\
        --launch-b "filesrc location=a.mp4 ! identity ! identity ! fakesink"

The default source, ``benchsrc``, copies one pre-rendered picture into each frame, so the
numbers measure the runtime, not decoding. fps is frames over streaming time (first frame
born to last frame rendered), the median of ``--repeat`` runs. Target: five extra hops at
1080p cost at most 10% fps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.element import Source
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register


@register
class BenchSource(Source):
    factory: ClassVar[str] = "benchsrc"
    klass: ClassVar[str] = "Source/Video"
    description: ClassVar[str] = (
        "Synthetic frames for transport benchmarks.\n\n"
        "Renders one picture at open() and copies it into every frame, so a run measures the "
        "pipeline's own costs rather than decoding or drawing."
    )
    example: ClassVar[str] = "benchsrc num_frames=300 width=1920 height=1080 ! identity ! fakesink"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("num_frames", "Frames to produce", 300, 1),
        Property.int("width", "Frame width in pixels", 1920, 2),
        Property.int("height", "Frame height in pixels", 1080, 2),
        Property.enum("pix_fmt", "Pixel layout", ("yuv420p", "rgb24"), "yuv420p"),
        Property.float("work_ms", "CPU time to burn per frame, standing in for decoding (0: none)", 0.0, 0.0),
    )

    num_frames: int
    width: int
    height: int
    pix_fmt: str
    work_ms: float

    def open(self) -> Caps:
        self.caps = Caps(self.width, self.height, Fraction(30), Fraction(1, 30), self.pix_fmt, frames=self.num_frames)
        ramp = np.linspace(0, 255, self.width, dtype=np.float32)[None, :, None]
        rgb = np.broadcast_to(ramp, (self.height, self.width, 3)).astype(np.uint8)
        self._picture = Picture.from_rgb(np.ascontiguousarray(rgb), self.pix_fmt).data
        return self.caps

    def read(self) -> Iterator[VideoFrame | Packet]:
        for seq in range(self.num_frames):
            if self.work_ms:
                end = time.perf_counter() + self.work_ms / 1000
                while time.perf_counter() < end:
                    pass
            frame = self.new_frame(self.caps, seq, seq, self.caps.time_base)
            np.copyto(frame.picture.data, self._picture)
            yield frame


def measure(line: str, mode: str, repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        report = Pipeline.from_launch(line).run(mode=mode)
        runs.append(report)
    best = sorted(runs, key=lambda r: r.fps)[len(runs) // 2]
    return {
        "launch": line, "mode": mode, "fps": statistics.median(r.fps for r in runs), "fps_runs": [r.fps for r in runs],
        "latency_ms": best.latency_ms, "peak_rss_mb": best.peak_rss_mb, "wall_s": best.wall_s, "report": best.to_json(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cleanfeed.bench.transport", description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--hops", type=int, default=5, help="identity elements in B")
    parser.add_argument("--work-ms", type=float, default=0.0, help="source CPU work per frame, standing in for decoding")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the median is reported")
    parser.add_argument("--launch-a", help="pipeline A (default: benchsrc ! fakesink)")
    parser.add_argument("--launch-b", help="pipeline B (default: benchsrc ! identity x hops ! fakesink)")
    parser.add_argument("--mode-a", default="thread", choices=("thread", "process"), help="A runs in one process by default")
    parser.add_argument("--mode-b", default="process", choices=("thread", "process"))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    src = f"benchsrc num_frames={args.frames} width={args.width} height={args.height} work_ms={args.work_ms}"
    line_a = args.launch_a or f"{src} ! fakesink"
    line_b = args.launch_b or f"{src} ! " + "identity ! " * args.hops + "fakesink"
    a = measure(line_a, args.mode_a, args.repeat)
    b = measure(line_b, args.mode_b, args.repeat)
    ratio = b["fps"] / a["fps"] if a["fps"] else 0.0
    hops = max(1, len(line_b.split("!")) - len(line_a.split("!")))
    per_hop_us = (1 / b["fps"] - 1 / a["fps"]) / hops * 1e6 if a["fps"] and b["fps"] else 0.0
    for name, side in (("A", a), ("B", b)):
        lat = side["latency_ms"]
        print(f"{name} ({side['mode']}): {side['fps']:8.1f} fps  latency p50 {lat['p50']:.1f} ms p95 {lat['p95']:.1f} ms  "
              f"peak rss {side['peak_rss_mb']:.0f} MB  | {side['launch']}")
    print(f"B/A fps ratio: {ratio:.3f} ({(1 - ratio) * 100:+.1f}% cost; {per_hop_us:.0f} us of wall time per extra hop per frame)")
    if args.json:
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "command": " ".join([sys.executable, "-m", "cleanfeed.bench.transport", *(argv or sys.argv[1:])]),
            "a": a, "b": b, "ratio": ratio, "per_hop_us": per_hop_us,
        }
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
