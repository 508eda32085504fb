"""`cleanfeed run`: the usual chain (segment, track, dilate, inpaint) in one short command.

Its command line becomes a cleanfeed.stream.recipe.RunOptions (:func:`options`), the recipe's
``chain`` turns that into element specs and the pipeline runs them, so everything it does can
also be written as a `cleanfeed launch` line; `--print-pipeline` shows that line. The options'
spelling is this module's business: :data:`FLAGS` names them in errors, :func:`argv` writes the
command line that gives a RunOptions (the web app shows it).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import fields
from typing import Any

from cleanfeed.errors import PropertyError
from cleanfeed.prompts.shapes import parse_box, parse_point
from cleanfeed.stream import recipe
from cleanfeed.stream.recipe import ElementSpec, RunOptions


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="remove an object from a video (segment, track, dilate, inpaint)",
                       description="Remove the prompted object from INPUT and write OUTPUT.")
    p.add_argument("input", metavar="INPUT", help="file, image sequence (frames/%%05d.png), rtsp:// or http(s):// URL, or - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="file (.mp4 .mkv .mov .ts), image sequence (out/%%05d.png), or - for stdout (mpegts)")
    g = p.add_argument_group("what to remove")
    g.add_argument("--box", metavar="X0,Y0,X1,Y1", help="box around the object on the prompt frame")
    g.add_argument("--point", action="append", default=[], metavar="X,Y[,L]",
                   help="a point on the object (L=1, default) or off it (L=0); repeatable")
    g.add_argument("--mask", metavar="FILE",
                   help="a mask image on the prompt frame, 0 = background: one object, or N objects with their "
                        "ids when it is a palette PNG (DAVIS, YouTube-VOS) or a label image of ids 1..N")
    g.add_argument("--frame", type=int, default=0, metavar="N", help="the frame the prompt applies to (default 0)")
    g.add_argument("--prompts", metavar="FILE", help="a JSON prompt file with several objects (see README)")
    g.add_argument("--logo", action="append", default=[], metavar="IMAGE",
                   help="a logo to find and remove wherever it appears (after cuts, at another size, angle or place): "
                        "a PNG with alpha or a tight crop; repeatable; alone or with the other prompts")
    g.add_argument("--logo-track", action="store_true",
                   help="segment and track each appearance --logo finds (its box is a prompt with an object id "
                        "of its own) instead of masking the logo's exact shape; implied by --sam/--deaot")
    g.add_argument("--masks", metavar="DIR|VIDEO", help="per-frame masks made elsewhere: skips segmenting and tracking")
    g.add_argument("--save-masks", metavar="DIR", help="also write each frame's object-id mask as DIR/%%05d.png")
    g.add_argument("--static", action="store_true",
                   help="the --box holds a screen-fixed bug (a channel logo): learn its exact shape and opacity from "
                        "the stream, un-blend what is translucent, fill what is opaque; no segmenting or tracking")
    g.add_argument("--moving", action="store_true",
                   help="the --box holds an object that moves: segment and track it at once (by default a box alone, "
                        "in a run that is not live, is first searched for a screen-fixed bug over the first 100 "
                        "frames, and a bug found is removed by --static's method)")
    g.add_argument("--logo-matte", metavar="FILE",
                   help="remove the bug whose matte `logo save=FILE` wrote (instead of --box --static)")
    m = p.add_argument_group("models (checkpoints are files you supply; nothing is downloaded)")
    m.add_argument("--sam", metavar="FILE", help="segment with SAM from this checkpoint (its size is read from the file)")
    m.add_argument("--deaot", metavar="FILE",
                   help="track with DeAOT from this checkpoint (its variant is read from the file)")
    m.add_argument("--e2fgvi", metavar="FILE", help="inpaint with E2FGVI-HQ from this checkpoint (E2FGVI-HQ-CVPR22.pth)")
    m.add_argument("--models", metavar="DIR",
                   help="folder searched for official checkpoint names (default $CLEANFEED_MODELS or "
                        "~/.cache/cleanfeed/models); without --sam/--deaot/--e2fgvi, a model is used when its "
                        "checkpoint is there")
    m.add_argument("--classical", action="store_true", help="use the classical engines even when checkpoints are found")
    m.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N for the models (default auto)")
    m.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"], help="model precision (default fp32)")
    m.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"],
                   help="where the models run (default torch)")
    e = p.add_argument_group("processing")
    e.add_argument("--window", type=int, default=5, metavar="W",
                   help="classical inpaint lookahead in frames (latency price; default 5)")
    e.add_argument("--inpaint-mode", default="stream", choices=["stream", "offline"],
                   help="E2FGVI: stream (past references, lookahead of 5 frames) or offline (upstream's test.py: "
                        "references from the whole clip, output after the end of the input; default stream)")
    e.add_argument("--region", default="auto", choices=["auto", "full"],
                   help="E2FGVI: inpaint a crop around the mask (auto) or always the whole frame (default auto)")
    e.add_argument("--dilate", type=int, default=None, metavar="PX",
                   help="grow masks by PX pixels before inpainting (default 8 for tracked masks; masks given with "
                        "--masks are used as they are, as upstream's test.py takes them)")
    e.add_argument("--codec", default="h264", help="h264 | hevc | ffv1 (default h264)")
    e.add_argument("--crf", type=int, default=20, help="quality for h264/hevc, 0..51 (default 20)")
    e.add_argument("--preset", help=f"x264/x265 preset, ultrafast .. veryslow (default {recipe.FILE_PRESET}; with "
                                    f"--live {recipe.LIVE_PRESET}: x264 keeps up with 1080p25 on one core of a small CPU)")
    e.add_argument("--mode", default="process", choices=["process", "thread"],
                   help="one process per element (default) or threads in one process (debugging)")
    e.add_argument("--max-restarts", type=int, default=3, metavar="N",
                   help="process mode: a filter whose process dies is restarted and the frames that were inside it "
                        "re-sent, at most N times in a run, then the run stops naming it (0: the first death stops "
                        "the run; default 3). Sources and sinks are not restarted")
    lv = p.add_argument_group("live")
    lv.add_argument("--live", action="store_true",
                    help="live output: a file input is read at its frame rate like a camera, and the encoder uses "
                         f"tune=zerolatency (no frame delay) and, unless --preset is given, preset {recipe.LIVE_PRESET}")
    lv.add_argument("--max-latency", type=float, metavar="MS",
                    help="with --live: every frame leaves within MS milliseconds of its arrival; a frame the inpainter "
                         "cannot finish in time leaves covered by the fallback fill, flagged degraded. Refused when "
                         "smaller than the chain's lookahead plus the encoder's delay")
    lv.add_argument("--reconnect-timeout", type=float, metavar="S",
                    help="live network input (rtsp, udp, srt, live http): after the input is lost, keep reconnecting "
                         "for S seconds (default 30) before ending the stream; meanwhile the output repeats the last "
                         "frame at the input's rate")
    lv.add_argument("--fallback", default="inpaint", choices=["inpaint", "blur", "pixelate"],
                    help="with --max-latency: how a late frame's object is covered (default inpaint: cv2 Telea)")
    o = p.add_argument_group("reporting")
    from cleanfeed.stream.cli.execute import add_reporting_arguments  # --stats, --metrics-port, --metrics-host

    add_reporting_arguments(o)
    o.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    o.add_argument("--print-pipeline", action="store_true", help="print the equivalent launch line and exit")
    p.set_defaults(func=main)


OPTION_DEST = {"points": "point"}
"""RunOptions fields whose option has another name (``--point``, repeated); every other field
is the option ``--FIELD`` (underscores as dashes), INPUT and ``-o/--output``."""
NOT_OPTIONS = ("segment_engine", "track_engine", "inpaint_engine")
"""RunOptions fields run has no option for (the web app's per-stage engines; the launch line shows them)."""


def options(args: argparse.Namespace) -> RunOptions:
    """The run's options from its parsed command line (a bad --box or --point is a PromptError)."""
    values = {f.name: getattr(args, OPTION_DEST.get(f.name, f.name)) for f in fields(RunOptions)
              if f.name not in NOT_OPTIONS}
    values["box"] = parse_box(args.box) if args.box else None
    values["points"] = tuple(parse_point(t) for t in args.point)
    values["logo"] = tuple(args.logo)
    return RunOptions(**values)


def argv(opts: RunOptions) -> list[str]:
    """`cleanfeed run` arguments (without the program name) that give ``opts``: INPUT, -o OUTPUT
    and every option whose value is not its default, in RunOptions' order. Per-stage engines
    (:data:`NOT_OPTIONS`) have no option and are left out."""
    out = ["run", opts.input, "-o", opts.output]
    for f in fields(RunOptions):
        value = getattr(opts, f.name)
        if f.name in ("input", "output", *NOT_OPTIONS) or value == f.default:
            continue
        flag = "--" + OPTION_DEST.get(f.name, f.name).replace("_", "-")
        if value is True:
            out.append(flag)
            continue
        for one in value if isinstance(value, tuple) else (value,):
            text = f"{one:g}" if isinstance(one, float) else str(one)
            out += [f"{flag}={text}"] if text.startswith("-") else [flag, text]
    return out


def command_line(opts: RunOptions) -> str:
    """The shell command that runs ``opts``."""
    return "cleanfeed " + shlex.join(argv(opts))


FLAGS: dict[tuple[str, str], str] = {
    ("filesrc", "location"): "INPUT", ("filesrc", "reconnect_timeout"): "--reconnect-timeout",
    ("segment", "box"): "--box", ("segment", "points"): "--point", ("segment", "mask_file"): "--mask",
    ("segment", "frame"): "--frame", ("segment", "prompts_file"): "--prompts",
    ("segment", "checkpoint"): "--sam", ("track", "checkpoint"): "--deaot", ("inpaint", "checkpoint"): "--e2fgvi",
    ("loadmask", "location"): "--masks", ("savemask", "location"): "--save-masks", ("dilate", "pixels"): "--dilate",
    ("logo", "box"): "--box", ("logo", "file"): "--logo-matte", ("logofind", "logo"): "--logo",
    ("inpaint", "window"): "--window", ("inpaint", "mode"): "--inpaint-mode", ("inpaint", "region"): "--region",
    ("inpaint", "fallback"): "--fallback",
    ("filesink", "location"): "--output", ("filesink", "codec"): "--codec", ("filesink", "crf"): "--crf",
    ("filesink", "preset"): "--preset",
    **{(stage, key): f"--{key}" for stage in ("segment", "track", "inpaint") for key in ("models", "device", "precision", "backend")},
}
"""The element property each of run's options sets, so an error names the option the user typed."""


def build_elements(specs: list[ElementSpec]) -> list[Any]:
    """The elements for ``specs``; a bad value is said in terms of run's own options (``--window
    must be <= 30, got 99``), not of the element property it was turned into."""
    try:
        return recipe.elements(specs)
    except PropertyError as err:
        flag = FLAGS.get((err.element, err.prop))
        if flag is None or not err.rule:
            raise
        raise PropertyError(f"{flag} {err.rule}", element=err.element, prop=err.prop, rule=err.rule) from None


def launch_line(specs: list[ElementSpec] | list[tuple[str, dict[str, Any]]]) -> str:
    """``specs`` as a `cleanfeed launch` pipeline."""
    def value(v: Any) -> str:
        text = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
        return shlex.quote(text) if any(c.isspace() or c in "!'\"" for c in text) else text

    return " ! ".join(" ".join([name] + [f"{k}={value(v)}" for k, v in props.items()]) for name, props in specs)


def main(args: argparse.Namespace) -> int:
    from cleanfeed.stream.cli.execute import execute

    opts = options(args)
    specs = recipe.chain(opts)
    elements = build_elements(specs)
    if args.print_pipeline:
        print(launch_line(specs))
        return 0
    if args.max_restarts < 0:
        raise PropertyError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    pipeline = recipe.pipeline(opts, elements, max_restarts=args.max_restarts, latency_label="--max-latency")
    execute(pipeline, mode=args.mode, stats=args.stats, quiet=args.quiet,
            metrics_port=args.metrics_port, metrics_host=args.metrics_host, fail_on_late=args.fail_on_late)
    return 0
