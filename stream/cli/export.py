"""`cleanfeed export`: a model checkpoint to ONNX (and a TensorRT engine), verified against torch.

One line per step as it goes, then a summary: the files, the parity figures against their
limits, and how many nodes TensorRT's operator matrix says it would reject (a warning, since
the engine build on a GPU machine has the last word). A graph that misses a parity limit is an
error after its manifest is written, so the figures can be read there.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from cleanfeed.errors import ExportError
from cleanfeed.export.onnx_export import DEFAULT_OPSET, OPSETS, PRECISIONS
from cleanfeed.export.spec import FAMILIES, OptionError, check_options, model_spec

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, check it against torch, write a manifest",
                       description="Export FAMILY's graphs from CHECKPOINT to ONNX in DIR, check each against the "
                                   "torch model on fresh random inputs and against TensorRT's ONNX operator "
                                   "matrix, and write DIR/manifest.json.")
    p.add_argument("family", choices=sorted(FAMILIES), metavar="FAMILY",
                   help="; ".join(f"{k}: {text}" for k, (_, text) in FAMILIES.items()))
    p.add_argument("--model", default=None, help="the variant the checkpoint must be (default: read from the file)")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="the model's weights (.pth)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the ONNX files and manifest.json go")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp16 converts the graph inside, inputs/outputs stay float32 (default fp32)")
    p.add_argument("--tensorrt", action="store_true", help="also build and check a TensorRT engine (needs a GPU)")
    p.add_argument("--samples", type=int, default=3, metavar="N", help="random inputs per parity check (default 3)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, choices=OPSETS,
                   help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--seed", type=int, default=None, help="seed of the random parity inputs (default: fresh)")
    deaot = p.add_argument_group("deaot", "DeAOT's graphs are exported for one video frame size")
    deaot.add_argument("--size", default=None, metavar="WxH",
                       help="the video's frame size, e.g. 854x480 (required for deaot); e2fgvi: the padded frame "
                            "size the TensorRT profile is tuned for, multiples of 108x60 (default 432x240)")
    deaot.add_argument("--max-long-term", type=int, default=None, metavar="N",
                       help="long-term memory slots the tracker keeps (default 8)")
    e2fgvi = p.add_argument_group("e2fgvi", "E2FGVI-HQ is exported as one model call of fixed frame counts")
    e2fgvi.add_argument("--local", type=int, default=None, metavar="N",
                        help="neighbouring frames per call, whose outputs are kept (required for e2fgvi)")
    e2fgvi.add_argument("--refs", type=int, default=None, metavar="N",
                        help="reference frames per call, context only (required for e2fgvi, may be 0)")
    p.set_defaults(func=main)


def family_options(args: argparse.Namespace) -> dict[str, Any]:
    """The family options given on the command line (size as (height, width)); model_spec checks they fit the family."""
    options: dict[str, Any] = {}
    if args.size is not None:
        options["size"] = parse_size(args.size)
    if args.max_long_term is not None:
        options["max_long_term"] = args.max_long_term
    if args.local is not None:
        options["local"] = args.local
    if args.refs is not None:
        options["refs"] = args.refs
    return options


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (as video sizes are written) -> (height, width)."""
    match = _SIZE.match(text)
    if match is None:
        raise OptionError(f"--size must be the video's WIDTHxHEIGHT in pixels, e.g. 854x480, got {text!r}")
    return int(match.group(2)), int(match.group(1))


def main(args: argparse.Namespace) -> int:
    from cleanfeed.export.model_export import ParityError, export_model, require_tensorrt

    if args.samples < 1:
        raise ExportError(f"--samples must be at least 1, got {args.samples}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out must be a directory, got the file {out}")
    options = family_options(args)
    check_options(args.family, options)
    if args.tensorrt:
        require_tensorrt()
    print(f"loading {args.family} checkpoint {args.checkpoint}", flush=True)
    spec = model_spec(args.family, Path(args.checkpoint), args.model, **options)
    given = "".join(f", {k} {v}" for k, v in spec.options.items())
    print(f"{spec.family} {spec.model}, sha256 {spec.checkpoint_sha256[:12]}…, {len(spec.graphs)} graphs{given}",
          flush=True)
    try:
        manifest = export_model(spec, out, args.precision, tensorrt=args.tensorrt, samples=args.samples,
                                opset=args.opset, seed=args.seed, progress=lambda line: print(line, flush=True))
    except ParityError as err:
        summarize(err.manifest, out)
        raise
    summarize(manifest, out)
    return 0


def summarize(manifest: Any, out: Path) -> None:
    """The closing summary: files, parity per backend, TensorRT findings (warned on stderr)."""
    print(f"\n{manifest.family} {manifest.model} {manifest.precision}, opset {manifest.opset} -> {out}/")
    for graph in manifest.graphs:
        size = sum(f.size for f in graph.files())
        files = ", ".join(f.file for f in graph.files())
        print(f"  {graph.name}: {files} ({size / 1e6:.1f} MB)")
        for parity in graph.parity:
            figures = ", ".join(f"{k} {v:.3g}" for k, v in parity["figures"].items())
            limits = ", ".join(f"{k} {op} {bound:g}" for k, (op, bound) in parity["limits"].items())
            verdict = "ok" if parity["passed"] else "FAILED"
            print(f"    {parity['backend']}: {figures} (limits {limits}) {verdict}")
        errors = [f for f in graph.tensorrt_findings if f["severity"] == "error"]
        print(f"    TensorRT {manifest.tensorrt_matrix.get('tensorrt_version', '?')} operator check: "
              f"{len(errors)} finding(s)" + (f", {len(graph.tensorrt_findings) - len(errors)} warning(s)"
                                             if len(graph.tensorrt_findings) > len(errors) else ""))
        for finding in errors:
            print(f"cleanfeed: warning: TensorRT would reject {graph.name} node {finding['op_type']} "
                  f"{finding['node']!r}: {finding['reason']}", file=sys.stderr)
    print(f"  manifest: {out / 'manifest.json'} ({manifest.status})")
