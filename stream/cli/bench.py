"""`cleanfeed bench`: per-element and end-to-end fps, latency percentiles and peak RSS of a pipeline."""

from __future__ import annotations

import argparse
import datetime
import platform
from typing import Any

from cleanfeed.stream.cli.report import element_table, summary_line, write_json


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure a pipeline: fps, latency p50/p95/max, peak RSS",
                       description="Run PIPELINE (default: the classical chain on a 720p testsrc clip into fakesink) "
                                   "and report per-element and end-to-end figures.")
    p.add_argument("pipeline", nargs="*", metavar="PIPELINE",
                   help="the pipeline to measure, as cleanfeed launch takes it (default: the classical chain)")
    p.add_argument("--width", type=int, default=1280, help="size of the default pipeline's testsrc")
    p.add_argument("--height", type=int, default=720, help="size of the default pipeline's testsrc")
    p.add_argument("--frames", type=int, default=300, help="frames of the default pipeline's testsrc (default 300)")
    p.add_argument("--logo-size", type=int, default=100, metavar="PX",
                   help="size of the default pipeline's logo (default 100)")
    p.add_argument("--mode", default="process", choices=["process", "thread"],
                   help="one process per element (default) or threads in one process (debugging)")
    p.add_argument("--json", default="cleanfeed-bench.json", metavar="FILE", help="where to write the JSON (default ./cleanfeed-bench.json)")
    p.set_defaults(func=main)


def default_pipeline(width: int, height: int, frames: int, logo_size: int) -> str:
    from cleanfeed.stream.testclip import SyntheticClip

    clip = SyntheticClip(width=width, height=height, frames=frames, logo_size=logo_size)
    box = ",".join(map(str, clip.frame(0).box))
    return (f"testsrc width={width} height={height} frames={frames} logo_size={logo_size} ! segment box={box} "
            f"! track ! dilate ! inpaint ! fakesink")


def main(args: argparse.Namespace) -> int:
    from cleanfeed.stream.launch import join_argv
    from cleanfeed.stream.pipeline import Pipeline

    if not args.pipeline:
        text = default_pipeline(args.width, args.height, args.frames, args.logo_size)
    else:
        text = args.pipeline[0] if len(args.pipeline) == 1 else join_argv(args.pipeline)
    report = Pipeline.from_launch(text).run(mode=args.mode)
    print(f"pipeline: {text}")
    print(summary_line(report))
    print(f"peak RSS (largest process): {report.peak_rss_mb:.0f} MB")
    print(element_table(report))
    data = {"pipeline": text, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
            **report.to_json()}
    write_json(args.json, data)
    print(f"wrote {args.json}")
    return 0
