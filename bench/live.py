"""Bench: a live RTSP feed through `cleanfeed run --live`, scored frame by frame; long runs are soaks.

Run from the repository root (needs Debian's GStreamer RTSP server packages, see .ci/run):
    python -m cleanfeed.bench.live --size 1920x1080 --seconds 30 --max-latency 1000 --save 2026-11-25-live-rtsp-cpu
    python -m cleanfeed.bench.live --size 1280x720 --seconds 600 --soak --save 2026-11-25-soak-cpu
    python -m cleanfeed.bench.live --size 1280x720 --seconds 20 --hog 1 --save NAME   (one core taken by a hog)
    python -m cleanfeed.bench.live --size 1280x720 --seconds 10 --kill-at 4 --save NAME (server killed once)
    python -m cleanfeed.bench.live --input file --engines "--models ~/models --device cuda --precision fp16" --save NAME

It renders a synthetic panning shot with a channel bug (cleanfeed.stream.testclip, ground truth known),
encodes it as H.264 in Matroska, serves it over RTSP on loopback at real time
(tests/stream/rtsp_server.py), and runs

    cleanfeed run rtsp://127.0.0.1:PORT/clip -o out.ts --box <the bug's box on frame 0>
        --classical --live --max-latency MS --stats stats.json

(``--input file``: the clip file itself, read at its frame rate by ``--live``, as a camera would
deliver it: for machines without GStreamer's RTSP server, such as the GPU machine; ``--engines``
replaces ``--classical`` with the model options of a neural chain). Meanwhile it samples the resident memory (VmRSS) of the run's whole process tree every few
seconds. Afterwards it decodes every output frame and checks the logo never went out uncovered:
inside the true logo mask the output must be nearer the clean scene than the logo (mean
absolute difference to the clean frame under half that to the logoed one). ``--kill-at S`` kills
the server S seconds into the stream and starts it again half a second later (it then serves the
clip from its start): output frames no longer follow the clip's order, so each is scored against
the clip frame it shows (the nearest in a thumbnail of everything outside the logo's box; repeated
frames during the outage match the frame they repeat). With ``--soak`` the
report also judges the memory flat: the median tree RSS of the last quarter of the run against
that of the second quarter (after warm-up), with the growth per hour.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from cleanfeed.bench.clips import encode_clip
from cleanfeed.bench.host import cpu_machine
from cleanfeed.bench.memory import RssSampler, memory_verdict
from cleanfeed.stream.testclip import SyntheticClip

ROOT = Path(__file__).resolve().parents[1]
sys.path += [str(ROOT / "tests"), str(ROOT / "tests" / "stream")]  # after the root: "stream" is the package

RATE = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1920x1080", help="WxH of the served clip")
    p.add_argument("--input", default="rtsp", choices=["rtsp", "file"],
                   help="served over RTSP on loopback, or the file read at its rate (--live)")
    p.add_argument("--engines", default="--classical", help="the run's engine options (default: --classical)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the served stream")
    p.add_argument("--logo-size", type=int, default=0, help="logo width in px (default: 8%% of the width)")
    p.add_argument("--max-latency", type=float, default=1000.0, metavar="MS")
    p.add_argument("--fallback", default="inpaint", choices=["inpaint", "blur", "pixelate"])
    p.add_argument("--preset", help="x264 preset of the output (default: run's own for a live output)")
    p.add_argument("--soak", action="store_true", help="judge the memory: flat or growing")
    p.add_argument("--hog", type=int, default=0, metavar="N",
                   help="overload: N processes spinning on a core each for the whole run (tests/stream/hog.py)")
    p.add_argument("--kill-at", type=float, metavar="S",
                   help="RTSP: kill the server S seconds into the stream, restart it 0.5 s later (once)")
    p.add_argument("--sample-s", type=float, default=2.0, help="seconds between RSS samples")
    p.add_argument("--save", metavar="NAME", help="write bench/results/NAME.json")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    return p.parse_args(argv)


# -- scoring ------------------------------------------------------------------------------------
THUMB = (320, 180)


def _thumb(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A grey thumbnail with the logo's box blanked: what identifies a frame of the panning shot."""
    grey = rgb.mean(axis=2, dtype=np.float32)
    x0, y0, x1, y1 = box
    grey[y0:y1, x0:x1] = 0
    return cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA)


def coverage(clip: SyntheticClip, output: Path, match: bool = False) -> dict[str, Any]:
    """Decodes every output frame; frame i is scored against clip frame i (a live run drops none),
    or with ``match`` against the clip frame it shows (a restarted server serves the clip again)."""
    uncovered, worst, count = [], 0.0, 0
    box = clip.frame(0).box
    thumbs = np.stack([_thumb(clip.frame(i).image, box) for i in range(len(clip))]) if match else None
    shown = []
    with av.open(str(output)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            count += 1
            index = i
            if thumbs is not None:
                rgb = frame.to_ndarray(format="rgb24")
                index = int(np.abs(thumbs - _thumb(rgb, box)).mean(axis=(1, 2)).argmin())
                shown.append(index)
            if index >= len(clip):
                continue
            truth = clip.frame(index)
            if not truth.mask.any():
                continue
            got = frame.to_ndarray(format="rgb24").astype(np.int16)[truth.mask]
            to_clean = float(np.abs(got - truth.clean[truth.mask]).mean())
            to_logo = float(np.abs(got - truth.image[truth.mask]).mean())
            ratio = to_clean / max(to_logo, 1e-6)
            worst = max(worst, ratio)
            if to_clean >= 0.5 * to_logo:
                uncovered.append(i)
    restarts = sum(1 for a, b in zip(shown, shown[1:], strict=False) if b < a)
    return {"frames_decoded": count, "uncovered_frames": len(uncovered), "first_uncovered": uncovered[:10],
            "worst_clean_to_logo_ratio": round(worst, 3),
            **({"matched": True, "clip_restarts_seen": restarts} if match else {})}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = int(args.seconds * RATE)
    logo = args.logo_size or max(40, round(0.08 * width))
    work = args.keep or Path(tempfile.mkdtemp(prefix="live-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    clip = SyntheticClip(width, height, frames=frames, rate=RATE, logo="fixed", logo_size=logo, seed=3)
    source, made_for = work / "clip.mkv", work / "clip.json"
    recipe = {"size": [width, height], "frames": frames, "rate": RATE, "logo_size": logo, "seed": 3}
    if not (source.exists() and made_for.exists() and json.loads(made_for.read_text()) == recipe):
        print(f"encoding {frames} frames of {width}x{height} ...", flush=True)
        # x264 veryfast, crf 18, a keyframe a second, no B-frames, as a live encoder sends
        encode_clip(clip, source, RATE, {"preset": "veryfast", "crf": "18", "g": str(RATE), "bf": "0"}, "matroska")
        made_for.write_text(json.dumps(recipe))  # a kept folder reuses the clip when the recipe matches
    x0, y0, x1, y1 = clip.frame(0).box
    stats, out = work / "stats.json", work / "out.ts"
    server = None
    if args.input == "rtsp":
        from test_live_source import RtspServer, free_port  # tests/stream: GStreamer's RTSP server

        server = RtspServer(source, free_port(), once=True)
    url = server.url if server is not None else str(source)
    command = ["cleanfeed", "run", url, "-o", str(out), "--box", f"{x0},{y0},{x1},{y1}", *shlex.split(args.engines),
               "--live", "--max-latency", str(args.max_latency), "--fallback", args.fallback,
               *(["--preset", args.preset] if args.preset else []),
               "--reconnect-timeout", "5" if args.kill_at else "2", "--stats", str(stats), "--quiet"]
    load_before = list(os.getloadavg())
    hog = None
    if args.hog:
        from hog import CpuHog  # tests/stream

        hog = CpuHog(args.hog).__enter__()
    if server is not None:
        server.start()
    started = time.monotonic()
    run = subprocess.Popen([sys.executable, "-m", "cleanfeed.stream.cli.main", *command[1:]])
    sampler = RssSampler(run.pid, args.sample_s)
    sampler.start()
    try:
        if server is not None and args.kill_at:
            time.sleep(args.kill_at)
            server.kill()
            time.sleep(0.5)
            server.start()  # serves the clip again from its start, then ends
        if server is not None:
            # a live source reconnects when its stream ends: the server sends the clip once and
            # exits (cleanly, nothing cut in flight); the run then ends after its reconnect
            # timeout (2 s of repeated frames, counted as such)
            server.wait(timeout=args.seconds * 3 + 60)
            code = run.wait(timeout=60)
        else:
            code = run.wait(timeout=args.seconds * 3 + 120)
    finally:
        sampler.stop()
        if server is not None:
            server.kill()
        if run.poll() is None:
            run.kill()
        if hog is not None:
            hog.__exit__(None, None, None)
    wall = time.monotonic() - started
    doc = json.loads(stats.read_text())
    print("scoring every output frame ...", flush=True)
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "command": "python -m cleanfeed.bench.live " + " ".join(sys.argv[1:] if argv is None else argv),
        "run_command": " ".join(command).replace(url, "rtsp://127.0.0.1:PORT/clip" if server else "clip.mkv"),
        "machine": cpu_machine(load_before),
        "hog_processes": args.hog,
        "clip": {"size": f"{width}x{height}", "rate": RATE, "frames": frames, "logo_size": logo, "box": [x0, y0, x1, y1]},
        "exit_code": code, "wall_s": round(wall, 1), "frames_sent_by_server": sum(server.sent) if server else frames,
        **{k: doc.get(k) for k in ("frames_in", "frames_out", "dropped", "degraded", "late", "reconnects", "latency_ms",
                                   "counters")},
        "real_frames_received": doc.get("frames_in", 0) - (doc.get("counters") or {}).get("repeated", 0),
        "degraded_share": round(doc.get("degraded", 0) / max(1, doc.get("frames_out", 0)), 4),
        "stages": {k: {f: v.get(f) for f in ("fps", "busy_fps", "load", "rss_mb")} for k, v in doc.get("stages", {}).items()},
        "server_killed_at_s": args.kill_at,
        "coverage": coverage(clip, out, match=bool(args.kill_at)),
        "memory": memory_verdict(sampler.samples) if args.soak else
        {"max_mb": max((s[1] for s in sampler.samples), default=None)},
        "rss_samples": sampler.samples if args.soak else [],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples"}, indent=1))
    if args.save:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / f"{args.save}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out_dir / args.save}.json")
    ok = code == 0 and report["dropped"] == 0 and report["coverage"]["uncovered_frames"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
