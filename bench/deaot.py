"""DeAOT tracking speed and memory per variant, frame size, device, precision and torch mode.

What one frame costs is the loop the ``track`` element runs: ``DeaotTracker.track(rgb)`` (resize
to model size, upload, step graph, label upsampling, argmax, copy to the host) then
``DeaotTracker.update(rgb, labels)`` (labels to model size, one-hot, memorise graph, memory
writes). The trackers are built as ``cleanfeed.engines.deaot.tracker.open_tracker`` builds them, but from
a freshly initialised network (``DeAOT(VARIANTS[v])`` after ``torch.manual_seed``), so no
checkpoint is needed: timings do not depend on the weights. Per case (variant x frame size x
device x precision x torch mode) it reports, in wall milliseconds with the device synchronised
around each frame:

- ``frame``: mean, p50, p95 of track + update over ``--frames`` frames after ``--warmup`` untimed
  ones (torch.compile, CUDA-graph capture and cuDNN autotuning happen there), and fps = 1000 / mean;
- ``first_frame_s``: the first tracked frame (compiles and captures included);
- ``in_loop``: the step and memorise graphs' own time inside each timed frame (the runner call:
  input checks and copies, the graph, output copies; CUDA events on a GPU, so no extra
  synchronisation disturbs the loop) and ``loop`` = frame - step - memorise per frame: the Python
  loop's own cost (resizes, upload, one-hot, label upsampling, argmax, copy to the host, memory
  bookkeeping);
- ``graphs_alone``: the step, memorise and reference graphs replayed ``--graph-repeats`` times on
  the inputs the loop last gave them, synchronised around each call;
- ``memory``: on CUDA ``torch.cuda.max_memory_allocated`` (peak since the case began) and the
  memory allocated now, on every device the process RSS, after the reference frame, the warm-up,
  the timed frames and, with ``--long L``, after L/10 and L frames: flat memory means the
  L/10 and L peaks are equal. The long clip's per-frame times are kept too (its last tenth
  against the whole: a tracker that slows down with time shows there);
- ``iou_vs_fp32``: for every case but fp32 eager, the mean IoU per object of its label maps
  against fp32 eager's on the same device over the first ``--iou-frames`` tracked frames (each
  tracker feeds its own predictions back, as the element does, so differences compound). With
  random weights the masks are whatever the network makes of the clip, maybe noise: the
  objects' mean areas are reported beside the IoU so a degenerate mask is visible. A group
  (variant, size, device) whose fp32 eager case was not asked for gets one added, timed frames
  only (no long clip); ``--iou-frames 0`` leaves it out.

The clip is synthetic: a blurred-noise texture that pans, with ``--objects`` shapes (circle,
rotating rectangle, ellipse, ...) moving on Lissajous paths; frame t is a pure function of t and
is drawn outside the timed region. Frame 0 is the reference, with the shapes' masks as labels.
Long-term memory: each variant's upstream gap (DeAOT-T: 9999, reference only; R50-DeAOT-L: 5)
with at most ``--max-long-term`` slots; ``--gap`` overrides. CUDA graphs need static memory
shapes (every slot given to the step graph), as ``open_tracker`` does; ``--static-memory`` gives
the other modes the same shapes. Cases this machine cannot run (CUDA without a GPU, CUDA graphs
on the CPU) are listed as skipped with the reason.

The issue's targets, one H100, 854x480 frames (849x481 model input), random weights:
R50-DeAOT-L >= 150 fps and DeAOT-T >= 300 fps with flat GPU memory over 10,000 frames, fp16
masks at IoU >= 0.99 with fp32's; upstream's own engine gives 42 fps fp32 / 59 fps fp16
autocast (R50-DeAOT-L) and 80 fps (DeAOT-T) there.

    python -m cleanfeed.bench.deaot --devices cpu --precisions fp32,bf16 --modes eager --frames 20 --warmup 3 --save 2026-11-24-deaot-cpu
    python -m cleanfeed.bench.deaot --devices cuda --sizes 480p --modes eager,cuda_graphs --frames 200 --warmup 20 --save 2026-11-25-deaot-h100-480p
    python -m cleanfeed.bench.deaot --devices cuda --sizes 480p --precisions fp16 --modes cuda_graphs --long 10000 --save 2026-11-25-deaot-h100-long
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cleanfeed.bench.host import csv, machine
from cleanfeed.bench.report import record_case, run_and_report, torch_header
from cleanfeed.engines.deaot.variants import VARIANTS

if TYPE_CHECKING:
    import torch

    from cleanfeed.engines.deaot.tracker import DeaotTracker
    from cleanfeed.engines.runners.base import Runner

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")
MODES = ("eager", "compile", "cuda_graphs", "compile+cuda_graphs")
"""torch modes; the CUDA-graph ones only on CUDA."""
SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920)}
"""Named frame sizes as (height, width); ``WxH`` names any other."""
DEFAULT_VARIANTS = ("deaott", "r50_deaotl")
RESULTS = Path(__file__).resolve().parent / "results"
MIB = 2**20


@dataclass(frozen=True)
class Case:
    variant: str
    size: str
    device: str
    precision: str
    mode: str
    added: bool = False
    """Not asked for: the fp32 eager run the other cases' IoU needs (timed frames only, no long clip)."""

    @property
    def reference(self) -> bool:
        return self.precision == "fp32" and self.mode == "eager"

    @property
    def group(self) -> tuple[str, str, str]:
        """Cases compared with one fp32 eager reference."""
        return self.variant, self.size, self.device

    def label(self) -> str:
        return f"{self.variant} {self.size} {self.device} {self.precision} {self.mode}" + (
            " (added: the IoU reference)" if self.added else "")


def parse_size(text: str) -> tuple[int, int]:
    """``480p``/``720p``/``1080p`` or ``WxH`` (e.g. ``176x96``) -> (height, width)."""
    if text in SIZES:
        return SIZES[text]
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match is None or min(int(match.group(1)), int(match.group(2))) < 16:
        raise argparse.ArgumentTypeError(
            f"--sizes must be a comma list of {', '.join(SIZES)} or WxH with sides >= 16, got {text!r}"
        )
    return int(match.group(2)), int(match.group(1))


def plan_cases(
    variants: list[str], sizes: list[str], devices: list[str], precisions: list[str], modes: list[str], cuda: bool,
    with_reference: bool = True,
) -> tuple[list[Case], list[dict[str, Any]]]:
    """The cases to run, each group's fp32 eager first (the reference, added when not asked for and
    ``with_reference``), and the ones skipped with why."""
    cases: list[Case] = []
    skipped: list[dict[str, Any]] = []
    for variant in variants:
        for size in sizes:
            for device in devices:
                group = [Case(variant, size, device, p, m) for p in precisions for m in modes]
                group.sort(key=lambda c: not c.reference)
                runnable = device == "cpu" or cuda
                if with_reference and runnable and not group[0].reference:
                    group.insert(0, Case(variant, size, device, "fp32", "eager", added=True))
                for case in group:
                    reason = ""
                    if device == "cuda" and not cuda:
                        reason = "torch sees no CUDA device"
                    elif "cuda_graphs" in case.mode and device != "cuda":
                        reason = "CUDA graphs need a CUDA device"
                    if reason:
                        skipped.append({**asdict(case), "reason": reason})
                    else:
                        cases.append(case)
    return cases, skipped


class SyntheticClip:
    """A panning blurred-noise texture with shapes moving on Lissajous paths; frame t depends on t only.

    ``frame(t)`` is HxWx3 uint8 RGB, ``labels(t)`` HxW uint8 with object i (1-based) where shape i is
    drawn last (later shapes cover earlier ones, in the frame and in the labels alike).
    """

    KINDS = ("circle", "rectangle", "ellipse")
    PAN = 32
    """Pixels the background drifts, each way."""

    def __init__(self, height: int, width: int, objects: int, seed: int = 0) -> None:
        import cv2

        self.height, self.width = height, width
        rng = np.random.default_rng(seed)
        pad = 2 * self.PAN
        noise = rng.integers(0, 256, (height + pad, width + pad, 3), dtype=np.uint8)
        texture = cv2.GaussianBlur(noise, (0, 0), 2.5).astype(np.float32)
        y, x = np.mgrid[0 : height + pad, 0 : width + pad].astype(np.float32)
        texture = (texture - 128) * 2.5 + 110 + 50 * np.sin(x / 97.0)[..., None] + 40 * np.cos(y / 61.0)[..., None]
        self.texture = np.clip(texture, 0, 255).astype(np.uint8)
        side = min(height, width)
        self.shapes = [
            {
                "kind": self.KINDS[i % len(self.KINDS)],
                "color": tuple(int(c) for c in rng.integers(30, 226, 3)),
                "size": float(rng.uniform(0.08, 0.14) * side),
                "amp": (float(rng.uniform(0.15, 0.35)), float(rng.uniform(0.15, 0.35))),
                "period": (float(rng.uniform(150, 300)), float(rng.uniform(150, 300))),
                "phase": (float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
            }
            for i in range(objects)
        ]

    def frame(self, t: int) -> np.ndarray:
        dx = int(round(self.PAN * (1 + math.sin(2 * math.pi * t / 240))))
        dy = int(round(self.PAN * (1 + math.cos(2 * math.pi * t / 330))))
        rgb = np.ascontiguousarray(self.texture[dy : dy + self.height, dx : dx + self.width])
        for shape, draw in zip(self.shapes, self._draws(t), strict=True):
            draw(rgb, shape["color"])
        return rgb

    def labels(self, t: int) -> np.ndarray:
        labels = np.zeros((self.height, self.width), np.uint8)
        for obj, draw in enumerate(self._draws(t), start=1):
            draw(labels, obj)
        return labels

    def _draws(self, t: int) -> list[Callable[[np.ndarray, Any], None]]:
        import cv2

        draws = []
        for shape in self.shapes:
            cx = self.width * (0.5 + shape["amp"][0] * math.sin(2 * math.pi * t / shape["period"][0] + shape["phase"][0]))
            cy = self.height * (0.5 + shape["amp"][1] * math.sin(2 * math.pi * t / shape["period"][1] + shape["phase"][1]))
            r, angle = shape["size"], (t * 1.5) % 360
            if shape["kind"] == "circle":
                draws.append(lambda img, c, x=cx, y=cy, r=r: cv2.circle(img, (int(x), int(y)), int(r), c, -1))
            elif shape["kind"] == "rectangle":
                corners = cv2.boxPoints(((cx, cy), (2.2 * r, 1.3 * r), angle)).astype(np.int32)
                draws.append(lambda img, c, p=corners: cv2.fillConvexPoly(img, p, c))
            else:
                draws.append(lambda img, c, x=cx, y=cy, r=r, a=angle: cv2.ellipse(
                    img, (int(x), int(y)), (int(1.3 * r), int(0.7 * r)), -a, 0, 360, c, -1))
        return draws


def _rss_mib() -> float:
    """This process's resident memory (psutil when installed, else /proc/self/status)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / MIB
    except ImportError:
        pass
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / MIB
    except OSError:
        pass
    return float("nan")


def memory_point(frame: int, device: torch.device) -> dict[str, float]:
    import torch

    point: dict[str, float] = {"frame": frame, "rss_mib": round(_rss_mib(), 1)}
    if device.type == "cuda":
        point["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / MIB, 1)
        point["cuda_allocated_mib"] = round(torch.cuda.memory_allocated(device) / MIB, 1)
        point["cuda_reserved_mib"] = round(torch.cuda.memory_reserved(device) / MIB, 1)
    return point


def summarize(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms, dtype=np.float64)
    mean = float(values.mean())
    return {
        "mean_ms": mean, "p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
        "min_ms": float(values.min()), "max_ms": float(values.max()), "fps": 1000.0 / mean if mean > 0 else 0.0,
        "n": int(values.size),
    }


class RecordingRunner:
    """Forwards to a runner, timing each call and keeping the inputs of the last one (to replay the graph alone).

    On CUDA each call is bracketed by two events rather than synchronised, so the loop runs as it
    would unobserved; ``take`` reads the times once the caller has synchronised. Duck-types
    ``Runner`` (``device``, ``description``, call by name, ``close``): the tracker sees no difference.
    """

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.device = inner.device
        self.description = inner.description
        self.last: dict[str, torch.Tensor] | None = None
        self._cpu_ms: list[float] = []
        self._events: list[tuple[Any, Any]] = []

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        self.last = inputs
        if self.device.type != "cuda":
            start = time.perf_counter()
            out = self.inner(**inputs)
            self._cpu_ms.append((time.perf_counter() - start) * 1000.0)
            return out
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        out = self.inner(**inputs)
        end.record()
        self._events.append((begin, end))
        return out

    def take(self) -> float:
        """Milliseconds spent in calls since the last ``take`` (on CUDA: synchronise first)."""
        total = sum(self._cpu_ms) + sum(begin.elapsed_time(end) for begin, end in self._events)
        self._cpu_ms.clear()
        self._events.clear()
        return total

    def close(self) -> None:
        self.inner.close()


def build_tracker(case: Case, args: argparse.Namespace) -> tuple[DeaotTracker, dict[str, RecordingRunner], dict[str, Any]]:
    """``open_tracker``'s torch path on a freshly initialised network (seeded: every case gets the same weights)."""
    import torch

    from cleanfeed.engines.deaot.graphs import MemoriseGraph, ReferenceGraph, StepGraph
    from cleanfeed.engines.deaot.model import DeAOT
    from cleanfeed.engines.deaot.tracker import DeaotTracker, TrackerConfig
    from cleanfeed.engines.deaot.variants import with_gap
    from cleanfeed.engines.runners import RunnerConfig, get_runner

    arch = with_gap(VARIANTS[case.variant], args.gap)
    torch.manual_seed(args.seed)
    net = DeAOT(arch).float().eval().requires_grad_(False)
    config = RunnerConfig(device=case.device, precision=case.precision, cuda_graphs="cuda_graphs" in case.mode,
                          compile="compile" in case.mode)
    tracking = TrackerConfig(long_term_gap=arch.long_term_gap, max_long_term=args.max_long_term,
                             static_memory=config.cuda_graphs or args.static_memory)
    runners = {}
    for name, graph in (("reference", ReferenceGraph), ("step", StepGraph), ("memorise", MemoriseGraph)):
        inputs, outputs = graph.specs(arch.layers)
        runners[name] = RecordingRunner(get_runner(config, module=graph(net), inputs=inputs, outputs=outputs))
    tracker = DeaotTracker(arch, runners["reference"], runners["step"], runners["memorise"], tracking)  # type: ignore[arg-type]
    about = {
        "title": arch.title, "parameters_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
        "long_term_gap": arch.long_term_gap, "max_long_term": args.max_long_term,
        "static_memory": tracking.static_memory, "runner": runners["step"].description,
    }
    return tracker, runners, about


class IouMeter:
    """Per-object IoU of label maps against a reference clip's, from one confusion matrix per frame."""

    def __init__(self, objects: int) -> None:
        self.k = objects + 1
        self.ious: list[list[float]] = [[] for _ in range(objects)]
        self.agreement: list[float] = []

    def add(self, reference: np.ndarray, labels: np.ndarray) -> None:
        codes = reference.astype(np.int32).ravel() * self.k + np.minimum(labels.ravel(), self.k - 1)
        m = np.bincount(codes, minlength=self.k * self.k).reshape(self.k, self.k)
        self.agreement.append(float(np.trace(m) / m.sum()))
        for obj in range(1, self.k):
            union = int(m[obj].sum() + m[:, obj].sum() - m[obj, obj])
            if union:
                self.ious[obj - 1].append(float(m[obj, obj] / union))

    def summary(self) -> dict[str, Any]:
        per_object = {str(i + 1): (float(np.mean(v)) if v else 1.0) for i, v in enumerate(self.ious)}
        return {"iou_vs_fp32": per_object, "iou_vs_fp32_min_object": min(per_object.values()),
                "iou_frames": len(self.agreement), "pixel_agreement_vs_fp32": float(np.mean(self.agreement))}


def _areas(labels: np.ndarray, objects: int) -> np.ndarray:
    return np.bincount(np.minimum(labels.ravel(), objects + 1), minlength=objects + 2)[1 : objects + 1] / labels.size


def time_graph(runner: RecordingRunner, sync: Callable[[], None], repeats: int) -> dict[str, float] | None:
    """One graph alone, replayed on the inputs the loop last gave it."""
    if runner.last is None:
        return None
    feeds = runner.last
    runner.inner(**feeds)  # the inner runner: replays are not counted in the loop's times
    ms = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        runner.inner(**feeds)
        sync()
        ms.append((time.perf_counter() - start) * 1000.0)
    return summarize(ms)


def run_case(case: Case, clip: SyntheticClip, args: argparse.Namespace,
             references: dict[tuple[str, str, str], list[np.ndarray]]) -> dict[str, Any]:
    import torch

    from cleanfeed.engines.deaot.variants import model_size

    if case.device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    tracker, runners, about = build_tracker(case, args)
    device = tracker.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    h, w = model_size(clip.height, clip.width, VARIANTS[case.variant])
    result: dict[str, Any] = {**about, "frame_size": f"{clip.width}x{clip.height}", "model_input": f"{w}x{h}",
                              "build_s": time.perf_counter() - started}
    objects = set(range(1, args.objects + 1))

    start = time.perf_counter()
    tracker.update(clip.frame(0), clip.labels(0), objects)
    sync()
    result["reference_frame_s"] = time.perf_counter() - start
    memory = [memory_point(0, device)]

    timed_end = args.warmup + args.frames
    long = 0 if case.added else args.long
    total = max(timed_end, long)
    checkpoints = {args.warmup, timed_end} | ({long // 10, long} if long else set())
    ms: list[float] = []
    graph_ms: dict[str, list[float]] = {"step": [], "memorise": []}
    stored = references.setdefault(case.group, []) if case.reference else None
    reference = references.get(case.group) if not case.reference else None
    meter = IouMeter(args.objects) if reference else None
    areas = np.zeros(args.objects)
    area_frames = 0
    for t in range(1, total + 1):
        rgb = clip.frame(t)
        sync()
        start = time.perf_counter()
        labels = tracker.track(rgb).labels
        tracker.update(rgb, labels)
        sync()
        elapsed = time.perf_counter() - start
        for name, times in graph_ms.items():
            times.append(runners[name].take())
        runners["reference"].take()
        if t == 1:
            result["first_frame_s"] = elapsed
        ms.append(elapsed * 1000.0)
        if t <= args.iou_frames:
            areas += _areas(labels, args.objects)
            area_frames += 1
            if stored is not None:
                stored.append(labels.copy())
            elif meter is not None and reference is not None and t <= len(reference):
                meter.add(reference[t - 1], labels)
        if t in checkpoints:
            memory.append(memory_point(t, device))
        if long and t % 1000 == 0:
            recent = summarize(ms[-1000:])
            print(f"    frame {t}/{total}: {recent['mean_ms']:.2f} ms/frame over the last 1000", flush=True)

    result["frame"] = summarize(ms[args.warmup : timed_end])
    timed = {name: times[args.warmup : timed_end] for name, times in graph_ms.items()}
    loop = [f - a - b for f, a, b in zip(ms[args.warmup : timed_end], timed["step"], timed["memorise"], strict=True)]
    result["in_loop"] = {"step": summarize(timed["step"]), "memorise": summarize(timed["memorise"]),
                         "loop": summarize(loop)}
    if long:
        tail = max(1, (long - args.warmup) // 10)
        result["long"] = {"frames": long, **summarize(ms[args.warmup :]),
                          "last_tenth": summarize(ms[-tail:])}
    result["memory"] = memory
    first, last = (long // 10, long) if long else (args.warmup, timed_end)
    key = "cuda_max_allocated_mib" if device.type == "cuda" else "rss_mib"
    at = {point["frame"]: point[key] for point in memory}
    result["memory_growth"] = {"what": key, "from_frame": first, "to_frame": last,
                               "from_mib": at[first], "to_mib": at[last], "growth_mib": round(at[last] - at[first], 1)}
    result["long_term_frames"] = tracker.long_term_frames()
    result["object_area_pct"] = {str(i + 1): round(100 * float(a) / max(area_frames, 1), 2) for i, a in enumerate(areas)}
    if meter is not None and meter.agreement:
        result.update(meter.summary())
    elif not case.reference:
        result["iou_vs_fp32"] = None  # no fp32 eager labels to compare with in this run

    graphs = {name: time_graph(runner, sync, args.graph_repeats) for name, runner in runners.items()}
    result["graphs_alone"] = {name: g for name, g in graphs.items() if g is not None}
    tracker.close()
    result["load_average"] = list(os.getloadavg())
    return result


def _cleanup(case: Case) -> None:
    import torch

    if "compile" in case.mode:
        torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(args: argparse.Namespace, save: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every case in turn; ``save`` is called with the report after each (a run killed midway keeps what it measured)."""
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cases, skipped = plan_cases(args.variants, args.sizes, args.devices, args.precisions, args.modes,
                                torch.cuda.is_available(), with_reference=args.iou_frames > 0)
    report: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m cleanfeed.bench.deaot " + shlex.join(args.argv),
        "machine": machine(("numpy", "cv2")),
        "settings": {
            "frames": args.frames, "warmup": args.warmup, "long": args.long, "objects": args.objects,
            "gap": "upstream per variant" if args.gap is None else args.gap, "max_long_term": args.max_long_term,
            "static_memory": "cuda_graphs only" if not args.static_memory else "always",
            "iou_frames": args.iou_frames, "graph_repeats": args.graph_repeats,
            "weights": f"random (DeAOT fresh init, torch seed {args.seed})",
            "clip": "synthetic: panning blurred-noise texture, shapes on Lissajous paths; reference at frame 0",
        },
        "results": [], "skipped": skipped, "errors": [],
    }
    clips: dict[str, SyntheticClip] = {}
    references: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for i, case in enumerate(cases):
        if case.size not in clips:
            clips = {case.size: SyntheticClip(*parse_size(case.size), args.objects, args.seed)}
        if i and cases[i - 1].group != case.group:
            references.pop(cases[i - 1].group, None)
        outcome = record_case(report, case, partial(run_case, case, clips[case.size], args, references), line)
        if outcome == "error" and case.reference:
            references.pop(case.group, None)
        _cleanup(case)
        report["machine"]["load_average_end"] = list(os.getloadavg())
        if save is not None:
            save(report)
    return report


def _memory_pair(r: dict[str, Any]) -> str:
    """Peak CUDA allocation or RSS at the two compared frames (end of warm-up and of timing, or L/10 and L)."""
    g = r["memory_growth"]
    return f"{g['from_mib']:.0f}@{g['from_frame']} -> {g['to_mib']:.0f}@{g['to_frame']}"


def line(entry: dict[str, Any]) -> str:
    f = entry["frame"]
    parts = [f"{f['fps']:.1f} fps", f"mean {f['mean_ms']:.1f} ms (p50 {f['p50_ms']:.1f}, p95 {f['p95_ms']:.1f})"]
    inside = entry["in_loop"]
    parts.append(f"step {inside['step']['mean_ms']:.1f} + memorise {inside['memorise']['mean_ms']:.1f} "
                 f"+ loop {inside['loop']['mean_ms']:.1f} ms")
    if "step" in entry["graphs_alone"]:
        parts.append(f"step alone {entry['graphs_alone']['step']['mean_ms']:.1f} ms")
    parts.append(f"memory MiB {_memory_pair(entry)}")
    if entry.get("iou_vs_fp32_min_object") is not None:
        parts.append(f"IoU vs fp32 >= {entry['iou_vs_fp32_min_object']:.4f}")
    if "long" in entry:
        parts.append(f"long {entry['long']['frames']} frames: {entry['long']['fps']:.1f} fps")
    return ", ".join(parts)


def markdown(report: dict[str, Any]) -> str:
    rows = [
        *torch_header(report, "DeAOT tracking"),
        "",
        "One frame = `DeaotTracker.track` + `DeaotTracker.update` (the `track` element's loop), device "
        "synchronised around it; warm-up frames excluded. step/memorise = those runner calls inside the "
        "timed frames (CUDA events on a GPU); loop = frame - step - memorise (the Python loop's own cost); "
        "step alone = the step graph replayed on the loop's last inputs. Memory: peak CUDA allocation (CUDA) or process RSS "
        "(CPU) in MiB at the last two points (frame number after @): equal = flat. IoU: mean per object against "
        "fp32 eager's label maps on the same device, worst object shown; areas = mean % of the frame per object.",
        "Issue targets (one H100, 854x480 frame = 849x481 model input): R50-DeAOT-L >= 150 fps, DeAOT-T >= 300 fps, "
        "flat memory over 10,000 frames, fp16 IoU >= 0.99; upstream: 42 / 59 (fp16) fps and 80 fps.",
        "",
        "| variant | frame | model input | device | precision | mode | fps | mean ms | p50 | p95 | step ms "
        "| memorise ms | loop ms | step alone ms | first frame s | memory MiB | IoU vs fp32 | areas % | runner |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for r in report["results"]:
        f, g, inside = r["frame"], r["graphs_alone"], r["in_loop"]
        iou = "ref" if r["precision"] == "fp32" and r["mode"] == "eager" else (
            f"{r['iou_vs_fp32_min_object']:.4f}" if r.get("iou_vs_fp32_min_object") is not None else "-")
        alone = f"{g['step']['mean_ms']:.2f}" if "step" in g else "-"
        areas = "/".join(f"{v:.1f}" for v in r["object_area_pct"].values())
        rows.append(
            f"| {r['variant']} | {r['frame_size']} | {r['model_input']} | {r['device']} | {r['precision']} "
            f"| {r['mode']}{' (added)' if r['added'] else ''} "
            f"| {f['fps']:.1f} | {f['mean_ms']:.2f} | {f['p50_ms']:.2f} | {f['p95_ms']:.2f} "
            f"| {inside['step']['mean_ms']:.2f} | {inside['memorise']['mean_ms']:.2f} | {inside['loop']['mean_ms']:.2f} "
            f"| {alone} | {r.get('first_frame_s', float('nan')):.2f} | {_memory_pair(r)} | {iou} | {areas} "
            f"| {r['runner']} |"
        )
    longs = [r for r in report["results"] if "long" in r]
    if longs:
        rows += ["", "Long clips (every frame after the warm-up; last tenth alone beside it):", "",
                 "| variant | frame | device | precision | mode | frames | fps | mean ms | p95 | last tenth mean ms "
                 "| max ms | memory MiB |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in longs:
            lg = r["long"]
            rows.append(f"| {r['variant']} | {r['frame_size']} | {r['device']} | {r['precision']} | {r['mode']} "
                        f"| {lg['frames']} | {lg['fps']:.1f} | {lg['mean_ms']:.2f} | {lg['p95_ms']:.2f} "
                        f"| {lg['last_tenth']['mean_ms']:.2f} | {lg['max_ms']:.1f} | {_memory_pair(r)} |")
    if report["skipped"]:
        rows += ["", "Skipped:", ""]
        rows += [f"- {s['variant']} {s['size']} {s['device']} {s['precision']} {s['mode']}: {s['reason']}"
                 for s in report["skipped"]]
    if report["errors"]:
        rows += ["", "Errors:", ""]
        rows += [f"- {e['variant']} {e['size']} {e['device']} {e['precision']} {e['mode']}: {e['error']}"
                 for e in report["errors"]]
    return "\n".join(rows) + "\n"


def size_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"--sizes must be a comma list of {', '.join(SIZES)} or WxH, got {text!r}")
    for item in items:
        parse_size(item)
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.deaot", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--variants", type=lambda t: csv(t, tuple(VARIANTS), "--variants"), default=list(DEFAULT_VARIANTS))
    p.add_argument("--sizes", type=size_list, default=["480p", "1080p"],
                   help="480p (854x480), 720p, 1080p (1920x1080) or WxH; the model input is upstream's resize of it")
    p.add_argument("--devices", type=lambda t: csv(t, DEVICES, "--devices"), default=list(DEVICES),
                   help="cuda is listed as skipped where torch sees no GPU")
    p.add_argument("--precisions", type=lambda t: csv(t, PRECISIONS, "--precisions"), default=list(PRECISIONS))
    p.add_argument("--modes", type=lambda t: csv(t, MODES, "--modes"), default=list(MODES),
                   help="torch modes; compile on the CPU takes minutes per graph, so give --modes eager there")
    p.add_argument("--frames", type=int, default=50, help="timed frames per case")
    p.add_argument("--warmup", type=int, default=10, help="untimed frames first (compile, graph capture, autotune)")
    p.add_argument("--long", type=int, default=0, metavar="L",
                   help="run each case for L frames in all and record memory after L/10 and L (e.g. 10000 on a GPU)")
    p.add_argument("--objects", type=int, default=3, help="objects tracked (1..10: one sub-engine)")
    p.add_argument("--gap", type=int, help="long-term memory gap in frames (default: each variant's upstream gap)")
    p.add_argument("--max-long-term", type=int, default=8, help="long-term memory slots (references included)")
    p.add_argument("--static-memory", action="store_true",
                   help="give the step graph every memory slot in all modes (CUDA graphs always do)")
    p.add_argument("--iou-frames", type=int, default=100, help="first tracked frames compared with fp32 eager")
    p.add_argument("--graph-repeats", type=int, default=20, help="timed calls of each graph alone")
    p.add_argument("--seed", type=int, default=0, help="weights and clip seed")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice, recorded)")
    p.add_argument("--save", metavar="STEM", help="write bench/results/STEM.json and STEM.md (after every case)")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="folder for --save (default bench/results)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.frames < 1 or args.warmup < 1 or args.graph_repeats < 1:
        p.error("--frames, --warmup and --graph-repeats must be at least 1")
    if args.long and args.long < args.warmup + args.frames:
        p.error(f"--long must be 0 or at least --warmup + --frames ({args.warmup + args.frames}), got {args.long}")
    if not 1 <= args.objects <= 10:
        p.error(f"--objects must be 1..10, got {args.objects}")
    if args.gap is not None and args.gap < 1:
        p.error(f"--gap must be at least 1, got {args.gap}")
    if args.max_long_term < 2:
        p.error(f"--max-long-term must be at least 2, got {args.max_long_term}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if args.iou_frames < 0:
        p.error(f"--iou-frames must be at least 0, got {args.iou_frames}")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_and_report(parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
