"""SAM latency per model size, backend, precision and device: encoder, decoder, and set_image on a 1080p frame.

For each case (model x device x backend x precision x torch mode) it measures, in wall milliseconds
with the device synchronised around each call:

- ``encoder``: the image-encoder graph alone on a 1x3x1024x1024 input;
- ``set_image``: ``SamSegmenter.set_image`` on a 1920x1080 RGB frame (upload, Pillow-exact
  resize, normalisation, padding, encoder) — the number the issue compares with SamPredictor;
- ``decoder``: the prompt-decoder graph alone for one point prompt (two points with the padding);
- ``predict``: ``SamSegmenter.predict`` for that click (decoder, mask choice, upsampling to 1080p,
  copy to the host);
- ``first_call_s``: the first encoder call (torch.compile, CUDA-graph capture, lazy inits).

Accuracy against torch fp32 eager on the same device (when that case is in the run): the
embeddings' relative error (max |difference| / max |embedding|), the decoder's max |logits|
difference fed the same fp32 embeddings, and the IoU of the predicted 1080p mask with fp32's.
Weights are random (``cleanfeed.engines.sam.variants.build``, seed 0): timings do not depend on them.

ONNX files for onnxruntime and TensorRT are exported on the fly with ``cleanfeed.export.onnx_export`` into a
temporary folder (``--onnx-dir`` keeps and reuses them: vit_h takes minutes). Cases a backend
cannot run here (fp16 on onnxruntime's CPU provider, TensorRT without a GPU) are listed as
skipped with the reason.

    python -m cleanfeed.bench.sam --models vit_b --devices cpu --backends torch,onnxruntime --precisions fp32,bf16 --save 2026-11-24-sam-cpu
    python -m cleanfeed.bench.sam --models vit_b,vit_h --devices cuda --save 2026-11-25-sam-h100
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cleanfeed.bench.host import csv, machine
from cleanfeed.errors import CleanfeedError

MODELS = ("vit_b", "vit_l", "vit_h")
DEVICES = ("cpu", "cuda")
BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")
MODES = ("eager", "compile", "cuda_graphs", "compile+cuda_graphs")
"""torch only; the CUDA-graph modes only on CUDA."""
FRAME = (1080, 1920)
CLICK = (1010.0, 560.0)
RESULTS = Path(__file__).resolve().parent / "results"

log = logging.getLogger("cleanfeed.bench.sam")


@dataclass(frozen=True)
class Case:
    model: str
    device: str
    backend: str
    precision: str
    mode: str = "-"

    @property
    def reference(self) -> bool:
        return self.backend == "torch" and self.precision == "fp32" and self.mode == "eager"

    def label(self) -> str:
        mode = f" {self.mode}" if self.mode != "-" else ""
        return f"{self.model} {self.device} {self.backend} {self.precision}{mode}"


def plan_cases(models: list[str], devices: list[str], backends: list[str], precisions: list[str],
               modes: list[str]) -> list[Case]:
    """Every combination that means something; per (model, device) torch fp32 eager comes first (the reference)."""
    cases = []
    for model in models:
        for device in devices:
            group = []
            for backend in backends:
                if backend == "tensorrt" and device != "cuda":
                    continue
                for precision in precisions:
                    for mode in (modes if backend == "torch" else ["-"]):
                        if "cuda_graphs" in mode and device != "cuda":
                            continue
                        group.append(Case(model, device, backend, precision, mode))
            group.sort(key=lambda c: not c.reference)
            cases.extend(group)
    return cases


def summarize(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "mean_ms": statistics.fmean(ms), "n": len(ms)}


def timed(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> tuple[list[float], Any]:
    samples, result = [], None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        samples.append(time.perf_counter() - start)
    return samples, result


def synthetic_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, structured HxWx3 uint8 RGB frame (gradients and blobs): something for SAM to segment."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 120 + 40], axis=-1)
    for _ in range(12):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(40, 220)
        inside = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        frame[inside] = rng.uniform(0, 255, 3)
    return np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)


class ModelBench:
    """One model size: its random-weight Sam, its ONNX exports, and the fp32 reference outputs per device."""

    def __init__(self, model: str, onnx_root: Path, args: argparse.Namespace) -> None:
        import torch

        from cleanfeed.engines.sam.variants import VARIANTS, build

        torch.manual_seed(0)
        started = time.perf_counter()
        self.sam = build(VARIANTS[model]).eval()
        self.build_s = time.perf_counter() - started
        self.model = model
        self.onnx_root = onnx_root
        self.args = args
        self.references: dict[str, dict[str, Any]] = {}
        self.export_s: dict[str, float] = {}

    def graphs(self) -> tuple[Any, Any]:
        from cleanfeed.engines.sam.graphs import ImageEncoderGraph, PromptDecoderGraph

        return ImageEncoderGraph(self.sam), PromptDecoderGraph(self.sam)

    def onnx_dir(self, precision: str) -> Path:
        """``<root>/<model>-<precision>/`` holding image_encoder.onnx and prompt_decoder.onnx, exported
        now unless already there (export while the model is still on the CPU)."""
        import torch

        from cleanfeed.engines.sam.graphs import DECODER_PROFILES
        from cleanfeed.export.onnx_export import export_graph
        from cleanfeed.export.sam import compare_embeddings, compare_masks, sample_image, sample_prompt
        from cleanfeed.export.spec import GraphSpec

        folder = self.onnx_root / f"{self.model}-{precision}"
        encoder, decoder = self.graphs()
        specs = [
            GraphSpec("image_encoder", encoder.eval(), encoder.INPUTS, encoder.OUTPUTS, sample_image, {},
                      compare_embeddings, {}),
            GraphSpec("prompt_decoder", decoder.eval(), decoder.INPUTS, decoder.OUTPUTS, sample_prompt,
                      DECODER_PROFILES, compare_masks, {}),
        ]
        for spec in specs:
            path = folder / f"{spec.name}.onnx"
            if not path.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                print(f"  exporting {self.model} {spec.name} ({precision}) ...", flush=True)
                started = time.perf_counter()
                with torch.no_grad():
                    export_graph(spec, path, spec.sample(np.random.default_rng(0)), precision=precision)
                self.export_s[f"{spec.name}-{precision}"] = time.perf_counter() - started
        return folder


def onnx_precision(case: Case) -> str:
    """The export a case runs: fp16 graphs for onnxruntime's CUDA provider (it cannot lower precision
    itself), fp32 everywhere else (TensorRT and its EP lower precision when they build)."""
    if case.backend != "onnxruntime" or case.precision != "fp16" or case.device != "cuda":
        return "fp32"
    import onnxruntime

    return "fp32" if "TensorrtExecutionProvider" in onnxruntime.get_available_providers() else "fp16"


def open_runners(case: Case, bench: ModelBench, cache_dir: Path | None) -> tuple[Any, Any]:
    from cleanfeed.engines.runners import RunnerConfig, get_runner
    from cleanfeed.engines.sam.graphs import DECODER_PROFILES, ImageEncoderGraph, PromptDecoderGraph

    config = RunnerConfig(backend=case.backend, device=case.device, precision=case.precision,
                          cuda_graphs="cuda_graphs" in case.mode, compile="compile" in case.mode, cache_dir=cache_dir)
    if case.backend == "torch":
        encoder, decoder = bench.graphs()
        return (get_runner(config, module=encoder, inputs=encoder.INPUTS, outputs=encoder.OUTPUTS),
                get_runner(config, module=decoder, inputs=decoder.INPUTS, outputs=decoder.OUTPUTS))
    folder = bench.onnx_dir(onnx_precision(case))
    return (get_runner(config, onnx_path=folder / "image_encoder.onnx", inputs=ImageEncoderGraph.INPUTS,
                       outputs=ImageEncoderGraph.OUTPUTS),
            get_runner(config, onnx_path=folder / "prompt_decoder.onnx", inputs=PromptDecoderGraph.INPUTS,
                       outputs=PromptDecoderGraph.OUTPUTS, profiles=DECODER_PROFILES))


def run_case(case: Case, bench: ModelBench, frame: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from cleanfeed.engines.sam.predictor import SamPrompt, SamSegmenter
    from cleanfeed.engines.sam.transforms import prompt_points

    started = time.perf_counter()
    encoder, decoder = open_runners(case, bench, args.cache_dir)
    result: dict[str, Any] = {"encoder_runner": encoder.description, "decoder_runner": decoder.description,
                              "open_s": time.perf_counter() - started}
    device = encoder.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    image = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, 1024, 1024), dtype="float32")).to(device)
    first, embeddings = timed(lambda: encoder(image=image)["image_embeddings"], sync, 1)
    result["first_call_s"] = first[0]
    timed(lambda: encoder(image=image), sync, max(0, args.warmup - 1))
    samples, embeddings = timed(lambda: encoder(image=image)["image_embeddings"], sync, args.repeats)
    result["encoder"] = summarize(samples)

    segmenter = SamSegmenter(encoder, decoder)
    samples, _ = timed(lambda: segmenter.set_image(frame), sync, args.repeats)
    result["set_image_1080p"] = summarize(samples)

    reference = bench.references.get(case.device)
    coords, labels = prompt_points(np.array([CLICK]), np.array([1]), None, FRAME)
    feeds = {"image_embeddings": reference["embeddings"] if reference else embeddings,
             "point_coords": torch.from_numpy(coords).to(device), "point_labels": torch.from_numpy(labels).to(device),
             "mask_input": torch.zeros(1, 1, 256, 256, device=device), "has_mask_input": torch.zeros(1, device=device)}
    timed(lambda: decoder(**feeds), sync, args.warmup)
    samples, logits = timed(lambda: decoder(**feeds)["low_res_logits"], sync, args.decoder_repeats)
    result["decoder"] = summarize(samples)
    prompt = SamPrompt(points=np.array([CLICK], np.float32), labels=np.array([1]))
    segmenter.predict(prompt)
    samples, mask = timed(lambda: segmenter.predict(prompt), sync, args.decoder_repeats)
    result["predict_1080p"] = summarize(samples)

    if case.reference:
        bench.references[case.device] = {"embeddings": embeddings, "logits": logits, "mask": mask.mask}
    elif reference is not None:
        want = reference["embeddings"].double()
        result["embeddings_rel_error"] = float((embeddings.double() - want).abs().max() / want.abs().max())
        result["decoder_max_abs_logits"] = float((logits.double() - reference["logits"].double()).abs().max())
        a, b = reference["mask"], mask.mask
        union = int(np.logical_or(a, b).sum())
        result["mask_iou_vs_fp32"] = float(np.logical_and(a, b).sum() / union) if union else 1.0
    segmenter.close()
    result["load_average"] = list(os.getloadavg())
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    skipped_devices = [d for d in args.devices if d not in devices]
    cases = plan_cases(args.models, devices, args.backends, args.precisions, args.modes)
    frame = synthetic_frame(*FRAME)
    report: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m cleanfeed.bench.sam " + shlex.join(args.argv),
        "machine": machine(("onnxruntime", "tensorrt")),
        "settings": {"repeats": args.repeats, "decoder_repeats": args.decoder_repeats, "warmup": args.warmup,
                     "frame": f"{FRAME[1]}x{FRAME[0]}", "click": CLICK, "weights": "random (seed 0)"},
        "results": [],
        "skipped": [{"device": d, "reason": "torch sees no CUDA device"} for d in skipped_devices],
    }
    with tempfile.TemporaryDirectory(prefix="bench-sam-") as tmp:
        onnx_root = Path(args.onnx_dir) if args.onnx_dir else Path(tmp)
        for model in args.models:
            model_cases = [c for c in cases if c.model == model]
            if not model_cases:
                continue
            bench = ModelBench(model, onnx_root, args)
            print(f"{model}: built in {bench.build_s:.1f} s", flush=True)
            # Exports first, while the model's weights are still on the CPU (torch cases on CUDA move them).
            for case in model_cases:
                if case.backend != "torch":
                    try:
                        bench.onnx_dir(onnx_precision(case))
                    except (CleanfeedError, ImportError) as err:
                        print(f"  export failed: {err}", flush=True)
            for case in model_cases:
                entry: dict[str, Any] = asdict(case)
                try:
                    entry.update(run_case(case, bench, frame, args))
                except (CleanfeedError, ImportError) as err:
                    entry["skipped"] = str(err)
                    report["skipped"].append({**asdict(case), "reason": str(err)})
                print(f"  {case.label()}: {line(entry)}", flush=True)
                if "skipped" not in entry:
                    report["results"].append(entry)
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            report.setdefault("export_s", {})[model] = bench.export_s
            del bench
            gc.collect()
    report["machine"]["load_average_end"] = list(os.getloadavg())
    return report


def line(entry: dict[str, Any]) -> str:
    if "skipped" in entry:
        return f"skipped: {entry['skipped']}"
    parts = [f"encoder {entry['encoder']['median_ms']:.1f} ms", f"set_image {entry['set_image_1080p']['median_ms']:.1f} ms",
             f"decoder {entry['decoder']['median_ms']:.2f} ms", f"predict {entry['predict_1080p']['median_ms']:.2f} ms"]
    if "mask_iou_vs_fp32" in entry:
        parts.append(f"IoU vs fp32 {entry['mask_iou_vs_fp32']:.4f}")
    return ", ".join(parts)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cores']} cores)"
    rows = [
        f"# SAM latency — {where}",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['system']}; torch {m['torch']} ({m['torch_threads']} threads)"
        + (f"; GPU {m['gpu']} (sm {m['compute_capability']}, CUDA {m['cuda']})" if m.get("gpu") else "")
        + f"; onnxruntime {m['onnxruntime']}; tensorrt {m['tensorrt']}",
        f"- load average at start {m['load_average']}, at end {m.get('load_average_end')} "
        "(other work on a shared machine inflates CPU numbers)",
        f"- settings: {report['settings']}",
        "",
        "Medians in ms. set_image = upload + resize + normalise + pad + encoder on a 1920x1080 frame; "
        "predict = decoder + mask choice + upsampling to 1080p for one click. Errors against torch fp32 eager "
        "on the same device: embeddings max|diff|/max|emb|, mask IoU at 1080p.",
        "",
        "| model | device | backend | precision | mode | encoder | set_image 1080p | decoder | predict | first call s "
        "| emb rel err | mask IoU vs fp32 | runner |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        err = f"{r['embeddings_rel_error']:.2e}" if "embeddings_rel_error" in r else "ref" if r["backend"] == "torch" and \
            r["precision"] == "fp32" and r["mode"] == "eager" else "-"
        iou = f"{r['mask_iou_vs_fp32']:.4f}" if "mask_iou_vs_fp32" in r else "-"
        rows.append(f"| {r['model']} | {r['device']} | {r['backend']} | {r['precision']} | {r['mode']} "
                    f"| {r['encoder']['median_ms']:.1f} | {r['set_image_1080p']['median_ms']:.1f} "
                    f"| {r['decoder']['median_ms']:.2f} | {r['predict_1080p']['median_ms']:.2f} "
                    f"| {r['first_call_s']:.1f} | {err} | {iou} | {r['encoder_runner']} |")
    if report["skipped"]:
        rows += ["", "Skipped:", ""]
        rows += [f"- {' '.join(str(s.get(k, '')) for k in ('model', 'device', 'backend', 'precision', 'mode')).strip()}: "
                 f"{s['reason']}" for s in report["skipped"]]
    return "\n".join(rows) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cleanfeed.bench.sam", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=lambda t: csv(t, MODELS, "--models"), default=list(MODELS))
    p.add_argument("--devices", type=lambda t: csv(t, DEVICES, "--devices"), default=list(DEVICES),
                   help="cuda is left out (and listed as skipped) where torch sees no GPU")
    p.add_argument("--backends", type=lambda t: csv(t, BACKENDS, "--backends"), default=list(BACKENDS))
    p.add_argument("--precisions", type=lambda t: csv(t, PRECISIONS, "--precisions"), default=list(PRECISIONS))
    p.add_argument("--modes", type=lambda t: csv(t, MODES, "--modes"), default=list(MODES),
                   help="torch modes; compile on CPU takes minutes per model, so give --modes eager there")
    p.add_argument("--repeats", type=int, default=10, help="timed encoder and set_image calls per case")
    p.add_argument("--decoder-repeats", type=int, default=50, help="timed decoder and predict calls per case")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (compile, graph capture, autotune)")
    p.add_argument("--onnx-dir", help="keep ONNX exports here and reuse them (default: a temporary folder)")
    p.add_argument("--cache-dir", type=Path, help="engine cache for TensorRT (default: engine_cache_dir())")
    p.add_argument("--save", metavar="STEM", help="write bench/results/STEM.json and STEM.md")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="folder for --save (default bench/results)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.repeats < 1 or args.decoder_repeats < 1 or args.warmup < 1:
        p.error("--repeats, --decoder-repeats and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    args = parse_args(argv)
    report = run(args)
    print(markdown(report))
    if args.save:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / f"{args.save}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (args.out_dir / f"{args.save}.md").write_text(markdown(report), encoding="utf-8")
        print(f"wrote {args.out_dir / args.save}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
