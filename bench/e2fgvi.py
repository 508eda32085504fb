"""E2FGVI-HQ offline inpainting speed, memory and reduced-precision accuracy per frame size, device,
precision and torch mode.

What is measured is ``cleanfeed.engines.e2fgvi.offline.inpaint_clip`` over a whole clip in memory. By default
that is the offline mode, upstream test.py's procedure (windows centred every ``neighbor_stride``
frames, every ``ref_step``-th frame of the video as references, mirror padding to multiples of
60x108, uint8 compositing and averaging on the host); ``--schedule stream`` is the live schedule
(past references only) and ``--region auto`` inpaints a crop around the masks (``--logo PX``: a
logo-sized square mask, the HD case the region mode is for; ``region_share`` = the mean share of
the frame a window ran on). Per case (frame size x device x precision x mode):

- ``total_s``: wall seconds of one pass over the clip (host preparation, uploads, model calls,
  downloads and compositing; the output is on the host when it ends) and ``fps`` = frames / total_s;
- ``window``: the model call alone per window (mean, p50, p95 ms, device synchronised before and
  after each call; autocast entered inside the timed region) and ``model_share`` = the model's part
  of total_s (the rest is test.py's host work);
- ``memory``: on CUDA ``torch.cuda.max_memory_allocated`` over the timed pass (weights included,
  peak stats reset after the warm-up), on every device the process RSS after the pass and its
  high-water mark (``ru_maxrss``: since the process began, so it only grows from case to case);
- for every case but fp32 eager, ``accuracy_vs_fp32``: over the pixels the model fills (the
  dilated masks, all three channels, every frame) the share of uint8 values within 2 levels of
  fp32 eager's output on the same device (the issue's target: 99.9%), plus the exact-match share
  and the mean and max absolute difference. A group (size, device) whose fp32 eager case was not
  asked for gets one added.

Precisions: fp16 / bf16 wrap the model call in ``torch.autocast`` (weights stay fp32, as upstream's
autocast run does); the output is cast back to fp32 before compositing. Modes: ``eager`` and
``compile`` (``torch.compile`` of the generator, default options; windows at the clip's ends hold
fewer frames, so several shapes compile). CUDA graphs are not offered: window shapes change along
the clip, so every shape would need its own capture and static buffers.

Warm-up: before the timed pass, ``--warmup`` untimed model calls per distinct window shape of the
clip (frames, local frames) on random inputs of the padded size, so compilation and cuDNN
autotuning stay out of the timed pass; ``warmup_s`` reports their time.

Weights: ``--weights seeded`` (default) is tests/e2fgvi_weights.seeded_state_dict, the weights the
parity goldens are made with (numerically healthy: outputs neither saturate nor go flat, which the
accuracy figure needs); ``random`` is the generator's fresh PyTorch init after ``torch.manual_seed``.
Speed does not depend on the weights. The clip is tests/e2fgvi_weights.golden_clip (a panning
synthetic scene, a moving ellipse mask with a bar every third frame) at the size asked.

The issue's baseline, upstream test.py on one H100 at 432x240: 27 fps fp32, 31 fps fp16
autocast, 2.6 GB of GPU memory. Cases this machine cannot run (CUDA without a GPU) are listed
as skipped with the reason.

    python -m cleanfeed.bench.e2fgvi --sizes 432x240 --frames 20 --devices cpu --precisions fp32,bf16 --save 2026-11-24-e2fgvi-cpu
    python -m cleanfeed.bench.e2fgvi --sizes 432x240,864x480 --frames 100 --devices cuda --modes eager,compile --save 2026-11-25-e2fgvi-h100
    python -m cleanfeed.bench.e2fgvi --sizes 1920x1080 --logo 100 --schedule stream --region auto --frames 30 --devices cpu --precisions fp32,bf16 --save 2026-11-24-e2fgvi-region-cpu
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import re
import resource
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

if TYPE_CHECKING:
    import torch

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")
MODES = ("eager", "compile")
WEIGHTS = ("seeded", "random")
DEFAULT_SIZES = ("432x240",)
RESULTS = Path(__file__).resolve().parent / "results"
TESTS = Path(__file__).resolve().parents[1] / "tests"
MIB = 2**20
WITHIN = 2
"""Levels of 255 a reduced-precision pixel value may differ from fp32's and still count as agreeing."""
BASELINE = "upstream test.py, one H100, 432x240: 27 fps fp32, 31 fps fp16 autocast, 2.6 GB GPU memory"


@dataclass(frozen=True)
class Case:
    size: str
    device: str
    precision: str
    mode: str
    added: bool = False
    """Not asked for: the fp32 eager run the other cases' accuracy is measured against."""

    @property
    def reference(self) -> bool:
        return self.precision == "fp32" and self.mode == "eager"

    @property
    def group(self) -> tuple[str, str]:
        """Cases compared with one fp32 eager reference."""
        return self.size, self.device

    def label(self) -> str:
        return f"{self.size} {self.device} {self.precision} {self.mode}" + (" (added: the fp32 reference)" if self.added else "")


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. ``432x240``) -> (height, width)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match is None or int(match.group(1)) < 16 or int(match.group(2)) < 16:
        raise argparse.ArgumentTypeError(f"--sizes must be a comma list of WxH with sides >= 16, got {text!r}")
    return int(match.group(2)), int(match.group(1))


def size_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"--sizes must be a comma list of WxH with sides >= 16, got {text!r}")
    for item in items:
        parse_size(item)
    return items


def plan_cases(sizes: list[str], devices: list[str], precisions: list[str], modes: list[str],
               cuda: bool) -> tuple[list[Case], list[dict[str, Any]]]:
    """The cases to run, each group's fp32 eager first (added when not asked for), and those skipped with why."""
    cases: list[Case] = []
    skipped: list[dict[str, Any]] = []
    for size in sizes:
        for device in devices:
            group = [Case(size, device, p, m) for p in precisions for m in modes]
            group.sort(key=lambda c: not c.reference)
            if device == "cuda" and not cuda:
                skipped += [{**asdict(c), "reason": "torch sees no CUDA device"} for c in group]
                continue
            if not group[0].reference:
                group.insert(0, Case(size, device, "fp32", "eager", added=True))
            cases += group
    return cases, skipped


def describe_weights(kind: str, seed: int) -> str:
    if kind == "random":
        return f"random (InpaintGenerator fresh init after torch.manual_seed({seed}))"
    return f"seeded (tests/e2fgvi_weights.seeded_state_dict, seed {seed}: the parity goldens' weights)"


def load_weights(kind: str, seed: int) -> dict[str, torch.Tensor] | None:
    """The state dict to load (None: keep the fresh init)."""
    if kind == "random":
        return None
    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))  # appended, not prepended: tests/engines must not shadow engines/
    from e2fgvi_weights import load_layout, seeded_state_dict

    return seeded_state_dict(load_layout("e2fgvi_hq"), seed)


def load_clip(frames: int, height: int, width: int, logo: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The golden clip; with ``logo``, its masks replaced by a logo-sized square drifting 2 px a frame."""
    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))
    from e2fgvi_weights import golden_clip

    rgb, masks = golden_clip(frames, height, width)
    if logo:
        masks = np.zeros_like(masks)
        top, left = height // 20, width - width // 20 - logo - 2 * frames
        for i, mask in enumerate(masks):
            mask[top:top + logo, left + 2 * i:left + 2 * i + logo] = 1
    return rgb, masks


class TimedModel:
    """Calls the generator as ``inpaint_offline`` expects, under autocast for fp16/bf16, timing each call.

    The device is synchronised before and after every call so a call's time is its own; autocast is
    entered inside the timed region, as it would be in a pipeline.
    """

    def __init__(self, net: Callable[..., Any], device: torch.device, precision: str) -> None:
        import torch

        self.net, self.device = net, device
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.ms: list[float] = []

    def _sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, masked: torch.Tensor, local: int) -> tuple[torch.Tensor, object]:
        import torch

        self._sync()
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            output, flows = self.net(masked, local)
        self._sync()
        self.ms.append((time.perf_counter() - start) * 1000.0)
        return output, flows


def window_shapes(length: int, args: argparse.Namespace) -> list[tuple[int, int]]:
    """The distinct (frames, local frames) of the clip's model calls, in first-use order."""
    from cleanfeed.engines.e2fgvi.windows import offline_windows

    shapes: list[tuple[int, int]] = []
    for w in offline_windows(length, args.neighbor_stride, args.ref_step, args.num_ref):
        shape = (len(w.frames), len(w.neighbors))
        if shape not in shapes:
            shapes.append(shape)
    return shapes


def summarize(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms, dtype=np.float64)
    return {"mean_ms": float(values.mean()), "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)), "min_ms": float(values.min()),
            "max_ms": float(values.max()), "n": int(values.size)}


def _rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / MIB
    except OSError:
        pass
    return float("nan")


def accuracy(outputs: list[np.ndarray], reference: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, float]:
    """Agreement of uint8 outputs with fp32's over the filled pixels (dilated masks, all channels)."""
    diffs = np.concatenate([
        np.abs(o.astype(np.int16) - r.astype(np.int16))[m > 0].ravel()
        for o, r, m in zip(outputs, reference, masks, strict=True)
    ])
    return {"within_2_levels": float((diffs <= WITHIN).mean()), "exact": float((diffs == 0).mean()),
            "mean_abs": float(diffs.mean()), "max_abs": int(diffs.max()), "values": int(diffs.size)}


def run_case(case: Case, clip: tuple[np.ndarray, np.ndarray], args: argparse.Namespace,
             references: dict[tuple[str, str], list[np.ndarray]]) -> dict[str, Any]:
    import torch

    from cleanfeed.engines.e2fgvi.model import InpaintGenerator, check_frame_size
    from cleanfeed.engines.e2fgvi.offline import inpaint_clip
    from cleanfeed.engines.e2fgvi.schedule import SlidingConfig
    from cleanfeed.engines.e2fgvi.windows import dilate_mask, padding

    frames, masks = clip
    height, width = frames.shape[1:3]
    pad_h, pad_w = padding(height, width)
    check_frame_size(height + pad_h, width + pad_w)
    device = torch.device(case.device)
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    net = InpaintGenerator()
    state = load_weights(args.weights, args.seed)
    if state is not None:
        net.load_state_dict(state, strict=True)
    net = net.eval().requires_grad_(False).to(device)
    model = TimedModel(torch.compile(net) if case.mode == "compile" else net, device, case.precision)
    result: dict[str, Any] = {"frame_size": f"{width}x{height}", "model_input": f"{width + pad_w}x{height + pad_h}",
                              "frames": len(frames), "build_s": time.perf_counter() - started}

    config = SlidingConfig(args.schedule, args.neighbor_stride, args.ref_step, args.num_ref, args.region, args.margin)
    shapes: list[tuple[int, ...]] = []
    start = time.perf_counter()
    if args.schedule == "offline" and args.region == "full":
        generator = torch.Generator().manual_seed(args.seed)
        for t, local in window_shapes(len(frames), args):
            shapes.append((t, local, height + pad_h, width + pad_w))
            for _ in range(args.warmup):
                model(torch.rand(1, t, 3, height + pad_h, width + pad_w, generator=generator).mul(2).sub(1).to(device), local)
    elif args.warmup:  # crops and window lengths vary along the clip: one untimed pass over it finds every shape
        inpaint_clip(model, list(frames), list(masks), config, device=device,
                     on_window=lambda w, region, out: shapes.append((len(w.frames), len(w.neighbors), *out.shape[-2:])))
    result["warmup_s"] = time.perf_counter() - start
    result["window_shapes"] = [list(s) for s in dict.fromkeys(shapes)]
    model.ms.clear()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    pixels: list[int] = []
    crops: dict[str, None] = {}

    def seen(window: Any, region: Any, out: np.ndarray) -> None:
        pixels.append(region.area)
        crops[f"{out.shape[-1]}x{out.shape[-2]}"] = None

    start = time.perf_counter()
    outputs = inpaint_clip(model, list(frames), list(masks), config, device=device, on_window=seen)
    total = time.perf_counter() - start
    result.update(total_s=total, fps=len(frames) / total, window=summarize(model.ms),
                  model_share=sum(model.ms) / 1000.0 / total, windows_run=len(pixels),
                  region_share=sum(pixels) / max(1, len(pixels)) / (height * width))
    if args.region == "auto":
        result["model_input"] = " ".join(crops) + " (crops, padded to 60x108 multiples only where the frame is smaller)"
    memory: dict[str, float] = {"rss_mib": round(_rss_mib(), 1),
                                "rss_high_water_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        memory["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / MIB, 1)
        memory["cuda_max_reserved_mib"] = round(torch.cuda.max_memory_reserved(device) / MIB, 1)
    result["memory"] = memory

    if case.reference:
        references[case.group] = outputs
    elif case.group in references:
        result["accuracy_vs_fp32"] = accuracy(outputs, references[case.group], [dilate_mask(m) for m in masks])
    else:
        result["accuracy_vs_fp32"] = None  # the fp32 eager reference failed
    result["load_average"] = list(os.getloadavg())
    return result


def _cleanup(case: Case) -> None:
    import torch

    if case.mode == "compile":
        torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(args: argparse.Namespace, save: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every case in turn; ``save`` gets the report after each (a run killed midway keeps what it measured)."""
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cases, skipped = plan_cases(args.sizes, args.devices, args.precisions, args.modes, torch.cuda.is_available())
    report: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m cleanfeed.bench.e2fgvi " + shlex.join(args.argv),
        "machine": machine(("numpy", "cv2")),
        "settings": {
            "frames": args.frames, "warmup_calls_per_shape": args.warmup, "neighbor_stride": args.neighbor_stride,
            "ref_step": args.ref_step, "num_ref": args.num_ref, "weights": describe_weights(args.weights, args.seed),
            "schedule": args.schedule, "region": args.region, "margin": args.margin,
            "masks": f"a {args.logo}-px square logo drifting 2 px a frame" if args.logo else "the clip's own",
            "clip": "tests/e2fgvi_weights.golden_clip: panning synthetic scene, moving ellipse mask (+ bar every 3rd frame)",
            "accuracy": f"share of filled uint8 values within {WITHIN} levels of fp32 eager's (target 99.9%)",
        },
        "baseline": BASELINE,
        "results": [], "skipped": skipped, "errors": [],
    }
    clips: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    references: dict[tuple[str, str], list[np.ndarray]] = {}
    for i, case in enumerate(cases):
        if case.size not in clips:
            clips = {case.size: load_clip(args.frames, *parse_size(case.size), logo=args.logo)}
        if i and cases[i - 1].group != case.group:
            references.pop(cases[i - 1].group, None)
        record_case(report, case, partial(run_case, case, clips[case.size], args, references), line)
        _cleanup(case)
        report["machine"]["load_average_end"] = list(os.getloadavg())
        if save is not None:
            save(report)
    return report


def _memory(r: dict[str, Any]) -> str:
    m = r["memory"]
    if "cuda_max_allocated_mib" in m:
        return f"{m['cuda_max_allocated_mib']:.0f} (CUDA peak)"
    return f"{m['rss_mib']:.0f} (RSS; high water {m['rss_high_water_mib']:.0f})"


def _accuracy(r: dict[str, Any]) -> str:
    if r["precision"] == "fp32" and r["mode"] == "eager":
        return "ref"
    a = r.get("accuracy_vs_fp32")
    if not a:
        return "-"
    return f"{100 * a['within_2_levels']:.3f}% (exact {100 * a['exact']:.1f}%, max {a['max_abs']})"


def line(entry: dict[str, Any]) -> str:
    w = entry["window"]
    return (f"{entry['fps']:.2f} fps, {entry['total_s']:.1f} s for {entry['frames']} frames, window mean "
            f"{w['mean_ms']:.0f} ms (p50 {w['p50_ms']:.0f}, p95 {w['p95_ms']:.0f}, n {w['n']}), model "
            f"{100 * entry['model_share']:.0f}% of the pass, region {100 * entry['region_share']:.0f}% of the frame, memory MiB {_memory(entry)}, within 2 of fp32 {_accuracy(entry)}")


def markdown(report: dict[str, Any]) -> str:
    rows = [
        *torch_header(report, f"E2FGVI-HQ inpainting, {report['settings']['schedule']} schedule, region {report['settings']['region']}"),
        f"- baseline to read against: {report['baseline']}",
        "",
        "One pass = `inpaint_clip` over the clip (offline/full: upstream test.py's procedure; host preparation, "
        "uploads, model calls, compositing); region % = mean share of the frame a window ran on; fps = frames / pass seconds. Window ms = one model call, device synchronised "
        "around it; model % = model calls' share of the pass. Memory MiB: peak CUDA allocation over the pass "
        "(weights included) on CUDA, process RSS after the pass on the CPU. Within 2 of fp32: share of the filled "
        "pixels' uint8 values (dilated masks, 3 channels) within 2 levels of fp32 eager's on the same device "
        "(target 99.9%).",
        "",
        "| frame | model input | device | precision | mode | fps | pass s | window mean ms | p50 | p95 | windows "
        "| model % | region % | warm-up s | memory MiB | within 2 of fp32 |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in report["results"]:
        w = r["window"]
        rows.append(
            f"| {r['frame_size']} | {r['model_input']} | {r['device']} | {r['precision']} "
            f"| {r['mode']}{' (added)' if r['added'] else ''} | {r['fps']:.2f} | {r['total_s']:.1f} "
            f"| {w['mean_ms']:.0f} | {w['p50_ms']:.0f} | {w['p95_ms']:.0f} | {w['n']} | {100 * r['model_share']:.0f} "
            f"| {100 * r['region_share']:.0f} | {r['warmup_s']:.1f} | {_memory(r)} | {_accuracy(r)} |"
        )
    if report["skipped"]:
        rows += ["", "Skipped:", ""]
        rows += [f"- {s['size']} {s['device']} {s['precision']} {s['mode']}: {s['reason']}" for s in report["skipped"]]
    if report["errors"]:
        rows += ["", "Errors:", ""]
        rows += [f"- {e['size']} {e['device']} {e['precision']} {e['mode']}: {e['error']}" for e in report["errors"]]
    return "\n".join(rows) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.e2fgvi", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sizes", type=size_list, default=list(DEFAULT_SIZES),
                   help="comma list of WxH frame sizes (padded by mirroring to multiples of 108x60 as test.py does)")
    p.add_argument("--devices", type=lambda t: csv(t, DEVICES, "--devices"), default=list(DEVICES),
                   help="cuda is listed as skipped where torch sees no GPU")
    p.add_argument("--precisions", type=lambda t: csv(t, PRECISIONS, "--precisions"), default=list(PRECISIONS),
                   help="fp16/bf16: torch.autocast around the model call")
    p.add_argument("--modes", type=lambda t: csv(t, MODES, "--modes"), default=["eager"],
                   help="eager, compile (torch.compile; minutes per window shape on the CPU)")
    p.add_argument("--frames", type=int, default=30, help="clip length")
    p.add_argument("--warmup", type=int, default=1, help="untimed model calls per distinct window shape before the pass")
    p.add_argument("--neighbor-stride", type=int, default=5, help="test.py's neighbor_stride")
    p.add_argument("--ref-step", type=int, default=10, help="test.py's step between reference frames")
    p.add_argument("--num-ref", type=int, default=-1, help="test.py's num_ref (-1: every ref-step-th frame of the clip)")
    p.add_argument("--schedule", choices=("offline", "stream"), default="offline",
                   help="offline: test.py's (default); stream: the live schedule (past references, lookahead)")
    p.add_argument("--region", choices=("full", "auto"), default="full",
                   help="full: whole frames, as test.py (default); auto: a crop around the masks")
    p.add_argument("--margin", type=int, default=64, help="context pixels around the masks for --region auto")
    p.add_argument("--logo", type=int, default=0, metavar="PX",
                   help="masks: a PX-pixel square logo drifting across the top right instead of the clip's ellipse")
    p.add_argument("--weights", choices=WEIGHTS, default="seeded",
                   help="seeded: the parity goldens' weights; random: fresh init (speed does not depend on them)")
    p.add_argument("--seed", type=int, default=0, help="weights seed (and warm-up inputs)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice, recorded)")
    p.add_argument("--save", metavar="STEM", help="write bench/results/STEM.json and STEM.md (after every case)")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="folder for --save (default bench/results)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.frames < 1 or args.neighbor_stride < 1 or args.ref_step < 1:
        p.error("--frames, --neighbor-stride and --ref-step must be at least 1")
    if args.warmup < 0:
        p.error(f"--warmup must be at least 0, got {args.warmup}")
    if args.num_ref < -1:
        p.error(f"--num-ref must be -1 or at least 0, got {args.num_ref}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_and_report(parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
