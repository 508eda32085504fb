"""The fleet issue's numbers: what running feeds under `cleanfeed fleet` costs against starting
the same `cleanfeed run` commands by hand, on this machine.

    python -m cleanfeed.bench.fleet [--frames 100] [--repeat 2] [--json FILE]

1. overhead: N = 1, 2, 4 feeds of a 720p testsrc clip (``--frames`` frames, fixed logo) through
   the classical chain, file to file, all N at once: once as a fleet on a local Ray instance the
   command starts, once as N `cleanfeed run` processes started together. The two take turns
   round by round (``--repeat`` rounds), so a change in the machine's load falls on both.
   Aggregate fps is all feeds' frames over the time from the first feed's first frame to the
   last feed's last frame (see :func:`_figures`; each run's figures from its stats, the fleet's
   from its ``--stats``); also given: the feeds' streaming fps added up, whole wall seconds
   (the fleet's with its Ray start and stop) and the median feed's latency p50/p95. Target:
   fleet / hand >= 0.95.
2. start: seconds from `cleanfeed fleet` starting to every one of the N feeds having its
   `cleanfeed run` process (``all_started_s``) and reading frames (``all_running_s``), as the
   fleet's stats file shows them (up to about a second late); ``all_running_s`` of the hand
   runs from their own stats files, for comparison. Target <= 10 s for N = 4.
3. restart: one live 160x96 feed whose `cleanfeed run` is killed (SIGKILL) once it is running;
   seconds until the fleet has its new process running. Target <= 5 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cleanfeed.bench.spine import machine

CLI = [sys.executable, "-m", "cleanfeed.stream.cli.main"]
BOX = "1139,19,1246,86"
"""testsrc's fixed logo at 1280x720."""
COUNTS = (1, 2, 4)


def _clip(path: Path, frames: int, width: int = 1280, height: int = 720) -> Path:
    line = f"testsrc width={width} height={height} frames={frames} rate=25 ! filesink location={path}"
    subprocess.run([*CLI, "launch", "--quiet", line], check=True)
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def by_hand(folder: Path, clip: Path, n: int) -> dict[str, Any]:
    """N `cleanfeed run` processes started together; their figures once all ended."""
    procs, stats = [], []
    start = time.monotonic()
    for i in range(n):
        stats.append(folder / f"hand-{n}-{i}.json")
        stats[-1].unlink(missing_ok=True)  # the previous round's
        procs.append(subprocess.Popen([*CLI, "run", str(clip), "-o", str(folder / f"hand-{n}-{i}.mp4"), "--box", BOX,
                                       "--quiet", "--stats", str(stats[-1])], stderr=subprocess.PIPE, text=True))
    all_running = None
    while any(proc.poll() is None for proc in procs):
        if all_running is None and all(int(_read(s).get("frames_in") or 0) > 0 for s in stats):
            all_running = time.monotonic() - start
        time.sleep(0.05)
    wall = time.monotonic() - start
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"cleanfeed run failed ({proc.returncode}): {err[-2000:]}")
    outputs = [folder / f"hand-{n}-{i}.mp4" for i in range(n)]
    return _figures([_read(s) for s in stats], outputs, wall, None, all_running)


def fleet(folder: Path, clip: Path, n: int) -> dict[str, Any]:
    """The same N feeds as one fleet; also when every feed was first seen running."""
    spec = folder / f"fleet-{n}.toml"
    spec.write_text("".join(f'[[feeds]]\nname = "f{i}"\ninput = "{clip}"\noutput = "{folder}/fleet-{n}-{i}.mp4"\n'
                            f'box = "{BOX}"\n' for i in range(n)))
    for i in range(n):  # a re-run would skip complete outputs
        (folder / f"fleet-{n}-{i}.mp4").unlink(missing_ok=True)
    stats = folder / f"fleet-{n}.json"
    stats.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen([*CLI, "fleet", str(spec), "--stats", str(stats), "--quiet"], stderr=subprocess.PIPE, text=True)
    all_started = all_running = None
    while proc.poll() is None:
        feeds = (_read(stats).get("feeds") or {}).values()
        if all_started is None and len(feeds) == n and all(f.get("pid") for f in feeds):
            all_started = time.monotonic() - start
        if all_running is None and len(feeds) == n and all(f.get("pid") and f.get("frames_in") for f in feeds):
            all_running = time.monotonic() - start
        time.sleep(0.05)
    err = proc.stderr.read() if proc.stderr else ""
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"cleanfeed fleet failed ({proc.returncode}): {err[-2000:]}")
    doc = _read(stats)
    ray_s = doc.get("ray_start_s")
    outputs = [folder / f"fleet-{n}-{i}.mp4" for i in range(n)]
    docs = [doc["feeds"][f"f{i}"]["stats"] for i in range(n)]
    return {**_figures(docs, outputs, wall, ray_s, all_running), "all_started_s": all_started}


def _figures(docs: list[dict[str, Any]], outputs: list[Path], wall: float, ray_s: float | None,
             running_s: float | None) -> dict[str, Any]:
    """``fps``: frames out of all feeds over the time from the first feed's first frame to the
    last feed's last frame (each feed's end is its output's finalization, its output file's
    mtime; its start that minus its streaming time, frames out over its fps), so feeds that
    overlap less do not look faster; ``fps_sum``: the feeds' own streaming fps added up."""
    frames = [int(d.get("frames_out") or 0) for d in docs]
    ends = [p.stat().st_mtime for p in outputs]
    starts = [end - f / float(d["fps"]) for end, f, d in zip(ends, frames, docs, strict=True)]
    return {"fps": sum(frames) / (max(ends) - min(starts)), "fps_sum": sum(float(d.get("fps") or 0) for d in docs),
            "frames": sum(frames),
            "wall_s": wall, "ray_start_s": ray_s, "all_running_s": running_s,
            "p50_ms": statistics.median(float((d.get("latency_ms") or {}).get("p50") or 0) for d in docs),
            "p95_ms": statistics.median(float((d.get("latency_ms") or {}).get("p95") or 0) for d in docs)}


def restart(folder: Path) -> float:
    """Seconds from killing a live feed's process to the fleet's new one running."""
    clip = _clip(folder / "small.mp4", 400, 160, 96)
    spec = folder / "restart.toml"
    spec.write_text(f'[[feeds]]\nname = "live"\ninput = "{clip}"\noutput = "{folder}/restart.ts"\nbox = "100,5,150,40"\n'
                    'live = true\n')
    stats = folder / "restart.json"
    proc = subprocess.Popen([*CLI, "fleet", str(spec), "--stats", str(stats), "--quiet"], stderr=subprocess.DEVNULL)
    killed, killed_at, back = None, 0.0, float("nan")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            feed = (_read(stats).get("feeds") or {}).get("live") or {}
            if killed is None and feed.get("state") == "running" and int(feed.get("frames_out") or 0) >= 10:
                killed, killed_at = feed["pid"], time.monotonic()
                os.kill(killed, signal.SIGKILL)
            elif killed is not None and feed.get("state") == "running" and feed.get("pid") not in (None, killed):
                back = time.monotonic() - killed_at
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    return back


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    out: dict[str, Any] = {"machine": machine(), "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                           "frames": args.frames, "repeat": args.repeat, "rounds": {}}
    with tempfile.TemporaryDirectory(prefix="cleanfeed-bench-fleet-") as tmp:
        folder = Path(tmp)
        clip = _clip(folder / "clip720.mp4", args.frames)
        for n in COUNTS:
            rounds: dict[str, list[dict[str, Any]]] = {"fleet": [], "hand": []}
            for r in range(args.repeat):
                order = ("fleet", "hand") if r % 2 == 0 else ("hand", "fleet")
                for kind in order:
                    rounds[kind].append((fleet if kind == "fleet" else by_hand)(folder, clip, n))
                    print(f"N={n} {kind}: {rounds[kind][-1]}", file=sys.stderr, flush=True)
            out["rounds"][str(n)] = rounds
        out["restart_s"] = restart(folder)
    out["summary"] = _summary(out)
    text = json.dumps(out, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for n, rounds in out["rounds"].items():
        med = {kind: {key: statistics.median(r[key] for r in runs if r[key] is not None)
                      for key in ("fps", "fps_sum", "wall_s", "p50_ms", "p95_ms", "all_running_s")}
               for kind, runs in rounds.items()}
        ray = [r["ray_start_s"] for r in rounds["fleet"] if r["ray_start_s"] is not None]
        started = [r["all_started_s"] for r in rounds["fleet"] if r["all_started_s"] is not None]
        rows[n] = {**{f"{kind}_{key}": round(v, 2) for kind, m in med.items() for key, v in m.items()},
                   "fps_ratio": round(med["fleet"]["fps"] / med["hand"]["fps"], 3),
                   "ray_start_s": round(statistics.median(ray), 2) if ray else None,
                   "all_started_s": round(statistics.median(started), 2) if started else None}
    return rows


if __name__ == "__main__":
    sys.exit(main())
