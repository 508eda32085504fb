"""Per-stage cost of the classical chain (segment, track, dilate, inpaint) on a synthetic clip.

Runs ``testsrc ! segment ! track ! dilate ! inpaint`` in one process, calling each element
directly and timing every call, so each stage's milliseconds per frame are its own (no links,
no other processes). In a pipeline the stages run in parallel processes, so the chain keeps up
with the slowest stage: ``1000 / slowest ms`` is the bound this reports next to the one-process
fps. ``--score`` also measures PSNR inside the logo's mask against the clip's ground truth
(outside the timings).

    python -m cleanfeed.bench.classical --width 1280 --height 720 --frames 150 --logo-size 100 --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from typing import Any

import cv2
import numpy as np

from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.registry import create
from cleanfeed.stream.testclip import LOGOS, MOTIONS, SyntheticClip, psnr

STAGES = ("segment", "track", "dilate", "inpaint")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.classical", description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--logo-size", type=int, default=100)
    p.add_argument("--logo", default="fixed", choices=[k for k in LOGOS if k != "none"])
    p.add_argument("--motion", default="pan", choices=list(MOTIONS))
    p.add_argument("--window", type=int, default=5, help="inpaint window (lookahead)")
    p.add_argument("--method", default="propagate", choices=["propagate", "telea", "ns"])
    p.add_argument("--dilate", type=int, default=8, help="dilate pixels")
    p.add_argument("--score", action="store_true", help="also report PSNR inside the mask vs the ground truth")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    return p.parse_args(argv)


def summarize(samples: list[float], frames: int) -> dict[str, float]:
    """Milliseconds: mean per frame (total / frames) and percentiles of single calls."""
    ms = np.array(samples) * 1000.0
    return {
        "ms_per_frame": float(ms.sum() / max(1, frames)),
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else 0.0,
        "p95_ms": float(np.percentile(ms, 95)) if len(ms) else 0.0,
        "max_ms": float(ms.max()) if len(ms) else 0.0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    clip_args = {"width": args.width, "height": args.height, "frames": args.frames, "logo": args.logo,
                 "motion": args.motion, "logo_size": args.logo_size}
    clip = SyntheticClip(**clip_args)
    x0, y0, x1, y1 = clip.frame(0).box
    box = (max(0, x0 - 4), max(0, y0 - 4), min(args.width, x1 + 4), min(args.height, y1 + 4))
    source = create("testsrc", clip_args)
    elements: list[Filter] = [
        create("segment", {"box": box}),  # type: ignore[list-item]
        create("track"),  # type: ignore[list-item]
        create("dilate", {"pixels": args.dilate}),  # type: ignore[list-item]
        create("inpaint", {"window": args.window, "method": args.method}),  # type: ignore[list-item]
    ]
    caps = source.open()
    for element in elements:
        caps = element.start(caps)
    timings: dict[str, list[float]] = {"testsrc": [], **{s: [] for s in STAGES}}
    done: list[VideoFrame] = []
    reader = source.read()
    wall = 0.0
    while True:
        t0 = time.perf_counter()
        item = next(reader, None)
        timings["testsrc"].append(time.perf_counter() - t0)
        if item is None:
            timings["testsrc"].pop()
            break
        if not isinstance(item, VideoFrame):
            continue
        batch = [item]
        for element in elements:
            t0 = time.perf_counter()
            batch = [o for f in batch for o in element.process(f)]
            spent = time.perf_counter() - t0
            timings[element.factory].append(spent)
            wall += spent
        done += batch
    t0 = time.perf_counter()
    done += elements[-1].flush()
    timings["inpaint"][-1] += time.perf_counter() - t0
    wall += time.perf_counter() - t0
    stages = {name: summarize(samples, args.frames) for name, samples in timings.items()}
    steady = max(stages[s]["ms_per_frame"] for s in ("track", "dilate", "inpaint"))
    result: dict[str, Any] = {
        "command": "python -m cleanfeed.bench.classical " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "cv2_threads": cv2.getNumThreads(),
        "settings": {**clip_args, "window": args.window, "method": args.method, "dilate": args.dilate, "box": list(box)},
        "frames_out": len(done),
        "stages": stages,
        "chain_fps_one_process": args.frames / wall if wall else float("inf"),
        "chain_fps_parallel_bound": 1000.0 / steady if steady else float("inf"),
    }
    if args.score:
        result["psnr_mask_db"] = score(done, clip, args.dilate)
    return result


def score(frames: list[VideoFrame], clip: SyntheticClip, grow: int) -> float:
    return float(np.mean([psnr(f.picture.rgb(), clip.frame(f.seq).clean, clip.truth_region(f.seq, grow)) for f in frames]))


def table(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"classical chain: {s['width']}x{s['height']}, {s['frames']} frames, logo={s['logo']} {s['logo_size']} px, "
        f"motion={s['motion']}, window={s['window']}, method={s['method']}, dilate={s['dilate']}",
        f"{'stage':<10}{'ms/frame':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}",
    ]
    for name, st in result["stages"].items():
        lines.append(f"{name:<10}{st['ms_per_frame']:>10.2f}{st['p50_ms']:>10.2f}{st['p95_ms']:>10.2f}{st['max_ms']:>10.2f}")
    lines.append(f"chain (track..inpaint) in one process: {result['chain_fps_one_process']:.1f} fps; "
                 f"stages in parallel processes: up to {result['chain_fps_parallel_bound']:.1f} fps")
    if "psnr_mask_db" in result:
        lines.append(f"PSNR inside the logo mask: {result['psnr_mask_db']:.2f} dB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
