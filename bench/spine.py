"""The spine issue's numbers, measured with real files and whole processes.

    python -m cleanfeed.bench.spine --json bench/results/<date>-spine-cpu.json [--repeat 3] [--soak]

1. re-encode: ``cleanfeed launch "filesrc ! filesink"`` vs ``ffmpeg`` doing the same 1080p
   H.264 -> libx264 (veryfast, crf 20) re-encode; target >= 0.9x ffmpeg's fps.
2. transport: ``filesrc ! identity x5 ! filesink`` with every element its own process vs
   ``filesrc ! filesink`` in one process (thread mode); target >= 0.9x.
3. chain: the classical chain on a 720p clip with a ~100 px logo, file to file, one process
   per element; target >= 30 fps (keeps up with a 30 fps feed).
4. --soak: peak RSS of the chain over 1 minute vs 10 minutes of 720p30 (testsrc into
   fakesink); target: no higher for the longer run.

Each figure is the median of --repeat rounds in which the commands take turns, given twice
from the same runs: over whole-process wall clock (start-up of every process included, which
a 30 s clip does not amortize) and as streaming fps from the run report (first frame born to
last frame out).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "cleanfeed.stream.cli.main"]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def _run(cmd: list[str], stats: Path | None = None) -> tuple[float, float | None]:
    """Wall seconds of one run, and with ``stats`` (a cleanfeed launch) the run report's fps
    (first frame born to last frame out: start-up excluded)."""
    if stats is not None:
        cmd = [*cmd[:4], "--stats", str(stats), *cmd[4:]]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall, json.loads(stats.read_text())["fps"] if stats is not None else None


Run = tuple[float, float | None]


def interleaved(cmds: dict[str, list[str]], repeat: int, stats: Path) -> dict[str, list[Run]]:
    """(wall s, streaming fps) of every run per command, the commands taking turns round by
    round so that a change in the machine's load falls on all of them alike."""
    runs: dict[str, list[Run]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            runs[name].append(_run(cmd, None if cmd[0] == "ffmpeg" else stats))
    return runs


def medians(runs: list[Run]) -> tuple[float, float | None]:
    fps = [f for _, f in runs if f is not None]
    return statistics.median(w for w, _ in runs), statistics.median(fps) if fps else None


def make_inputs(folder: Path, frames: int) -> tuple[Path, Path, tuple[int, int, int, int]]:
    """A 1080p H.264 file (ffmpeg's testsrc2) and a 720p testsrc clip with its logo box."""
    from cleanfeed.stream.testclip import SyntheticClip

    hd = folder / "in1080.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
                    "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                    "-pix_fmt", "yuv420p", str(hd)], check=True)
    clip = folder / "in720.mp4"
    subprocess.run([*CLI, "launch", "--quiet", f"testsrc width=1280 height=720 frames={frames} logo_size=100 ! "
                    f"filesink location={clip} crf=18"], check=True)
    box = SyntheticClip(width=1280, height=720, frames=frames, logo_size=100).frame(0).box
    return hd, clip, box


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.spine", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=900)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--soak", action="store_true", help="also run the 1- vs 10-minute memory soak (about 10 minutes)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if not shutil.which("ffmpeg"):
        raise SystemExit("ffmpeg is needed for the baseline (apt-get install ffmpeg)")
    results: dict[str, Any] = {"date": datetime.date.today().isoformat(), "machine": machine(),
                               "command": "python -m cleanfeed.bench.spine " + " ".join(argv or sys.argv[1:]), "frames": args.frames}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hd, clip, box = make_inputs(folder, args.frames)
        out = folder / "out.mp4"
        enc = "preset=veryfast crf=20"
        ffmpeg = ["ffmpeg", "-v", "error", "-y", "-i", str(hd), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                  "-an", str(out)]
        one = [*CLI, "launch", "--quiet", "--mode", "thread", f"filesrc location={hd} ! filesink location={out} {enc}"]
        two = [*CLI, "launch", "--quiet", f"filesrc location={hd} ! filesink location={out} {enc}"]
        hops = " ! ".join(["identity"] * 5)
        seven = [*CLI, "launch", "--quiet", f"filesrc location={hd} ! {hops} ! filesink location={out} {enc}"]
        n = args.frames
        runs = interleaved({"ffmpeg": ffmpeg, "one": one, "two": two, "seven": seven}, args.repeat, folder / "stats.json")
        got = {name: medians(r) for name, r in runs.items()}
        t_ffmpeg, t_one, t_two, t_seven = (got[k][0] for k in ("ffmpeg", "one", "two", "seven"))
        s_one, s_two, s_seven = (got[k][1] for k in ("one", "two", "seven"))
        assert s_one is not None and s_two is not None and s_seven is not None
        results["reencode_1080p"] = {
            "ffmpeg_fps": n / t_ffmpeg,
            "cleanfeed_one_process_fps": n / t_one, "cleanfeed_two_processes_fps": n / t_two,
            "ratio_vs_ffmpeg_whole_process": t_ffmpeg / min(t_one, t_two),
            "cleanfeed_streaming_fps_one_process": s_one, "cleanfeed_streaming_fps_two_processes": s_two,
            "ratio_vs_ffmpeg_streaming": max(s_one, s_two) / (n / t_ffmpeg), "target": ">= 0.9",
        }
        results["transport_1080p"] = {
            "one_process_fps_whole": n / t_one, "five_identity_hops_fps_whole": n / t_seven,
            "ratio_whole_process": t_one / t_seven,
            "one_process_fps_streaming": s_one, "five_identity_hops_fps_streaming": s_seven,
            "ratio_streaming": s_seven / s_one, "target": ">= 0.9",
        }
        chain = (f"filesrc location={clip} ! segment box={','.join(map(str, box))} ! track ! dilate ! inpaint ! "
                 f"filesink location={out} {enc}")
        runs.update(interleaved({"chain": [*CLI, "launch", "--quiet", chain]}, args.repeat, folder / "stats.json"))
        chain_wall, chain_fps = medians(runs["chain"])
        results["runs_wall_s_and_streaming_fps"] = {name: [[round(w, 3), f and round(f, 2)] for w, f in r] for name, r in runs.items()}
        results["classical_chain_720p"] = {"fps_whole_process": n / chain_wall, "fps_streaming": chain_fps,
                                           "pipeline": chain.replace(str(folder) + "/", ""), "target": ">= 30"}
        if args.soak:
            soak = {}
            for minutes in (1, 10):
                frames = minutes * 60 * 30
                stats = folder / f"soak{minutes}.json"
                line = (f"testsrc width=1280 height=720 frames={frames} logo_size=100 ! segment box={','.join(map(str, box))}"
                        f" ! track ! dilate ! inpaint ! fakesink")
                start = time.monotonic()
                subprocess.run([*CLI, "launch", "--quiet", "--stats", str(stats), line], check=True)
                report = json.loads(stats.read_text())
                soak[f"{minutes}min"] = {"frames": frames, "wall_s": time.monotonic() - start,
                                         "peak_rss_mb": report["peak_rss_mb"],
                                         "elements_peak_rss_mb": {k: v.get("peak_rss_mb") for k, v in report["elements"].items()}}
            results["memory_soak_720p"] = soak
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
