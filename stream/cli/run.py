"""`cleanfeed run`: the usual chain (segment, track, dilate, inpaint) in one short command.

It only builds element specs and hands them to the pipeline, so everything it does can also be
written as a `cleanfeed launch` line; `--print-pipeline` shows that line.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from cleanfeed.errors import PromptError, PropertyError
from cleanfeed.prompts.shapes import parse_box, parse_point


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
    g.add_argument("--masks", metavar="DIR|VIDEO", help="per-frame masks made elsewhere: skips segmenting and tracking")
    g.add_argument("--save-masks", metavar="DIR", help="also write each frame's object-id mask as DIR/%%05d.png")
    g.add_argument("--moving", action="store_true", help="the --box object moves: segment and track it (default: "
                   "a box alone is a screen-fixed bug, removed by the logo element, which learns its matte)")
    g.add_argument("--logo-matte", metavar="FILE", help="remove the bug whose matte logo save=FILE wrote (no --box)")
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
    e.add_argument("--preset", default="veryfast", help="x264/x265 preset (default veryfast)")
    e.add_argument("--mode", default="process", choices=["process", "thread"],
                   help="one process per element (default) or threads in one process (debugging)")
    e.add_argument("--max-restarts", type=int, default=3, metavar="N",
                   help="process mode: a filter whose process dies is restarted and the frames that were inside it "
                        "re-sent, at most N times in a run, then the run stops naming it (0: the first death stops "
                        "the run; default 3). Sources and sinks are not restarted")
    lv = p.add_argument_group("live")
    lv.add_argument("--live", action="store_true",
                    help="live output: a file input is read at its frame rate like a camera, and the encoder uses "
                         "tune=zerolatency (no frame delay)")
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


def chain(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The element specs for the run command's arguments."""
    has_prompt = bool(args.box or args.point or args.mask or args.prompts or args.logo_matte)
    fixed = bool(args.logo_matte or (args.box and not (args.moving or args.point or args.mask or args.prompts
                                                        or args.sam or args.deaot or args.frame or args.models)))
    if args.masks and has_prompt:
        raise PromptError("--masks replaces segmenting and tracking: give it without --box/--point/--mask/--prompts")
    if not args.masks and not has_prompt:
        raise PromptError("nothing to remove: give --box, --point, --mask, --prompts or --masks")
    if args.max_latency is not None and not args.live:
        raise PropertyError("--max-latency needs --live (a budget per frame only means something for a live output)")
    if args.max_latency is not None and args.max_latency <= 0:
        raise PropertyError(f"--max-latency must be > 0 ms, got {args.max_latency:g}")
    for flag in ("sam", "deaot", "e2fgvi"):
        if args.classical and getattr(args, flag):
            raise PromptError(f"--classical and --{flag} contradict each other: give one")
    seg: dict[str, Any] = {"frame": args.frame}
    track: dict[str, Any] = {}
    inpaint: dict[str, Any] = {"window": args.window}
    models = {"sam": seg, "deaot": track, "e2fgvi": inpaint}
    for flag, props in models.items():
        if args.classical:
            props["engine"] = "classical"
            continue
        if getattr(args, flag):
            props |= {"engine": flag, "checkpoint": getattr(args, flag)}
        if args.models:
            props["models"] = args.models
        for key, default in (("device", "auto"), ("precision", "fp32"), ("backend", "torch")):
            if getattr(args, key) != default:
                props[key] = getattr(args, key)
    if args.inpaint_mode != "stream":
        inpaint["mode"] = args.inpaint_mode
    if args.region != "auto":
        inpaint["region"] = args.region
    if args.max_latency is not None and args.fallback != "inpaint":
        inpaint["fallback"] = args.fallback
    source: dict[str, Any] = {"location": args.input}
    if args.reconnect_timeout is not None:
        if args.reconnect_timeout < 0:
            raise PropertyError(f"--reconnect-timeout must be >= 0 s, got {args.reconnect_timeout:g}")
        source["reconnect_timeout"] = args.reconnect_timeout
    specs: list[tuple[str, dict[str, Any]]] = [("filesrc", source)]
    if args.masks:
        specs.append(("loadmask", {"location": args.masks}))
    elif fixed:  # a screen-fixed bug: exact matte, no tracking; inpaint only fills a box without overlay
        specs.append(("logo", {"file": args.logo_matte} if args.logo_matte else {"box": parse_box(args.box).as_tuple()}))
    else:
        if args.box:
            seg["box"] = parse_box(args.box).as_tuple()
        if args.point:
            pts = [parse_point(t) for t in args.point]
            seg["points"] = ";".join(f"{p.x:g},{p.y:g},{int(p.positive)}" for p in pts)
        if args.mask:
            seg["mask_file"] = args.mask
        if args.prompts:
            seg["prompts_file"] = args.prompts
        specs += [("segment", seg), ("track", track)]
    if args.save_masks:
        specs.append(("savemask", {"location": args.save_masks}))
    dilate = args.dilate if args.dilate is not None else (0 if args.masks or fixed else 8)  # logo grows its own
    if dilate:
        specs.append(("dilate", {"pixels": dilate}))
    specs.append(("inpaint", inpaint))
    if args.output == "-":
        specs.append(("stdoutsink", {}))  # tune=zerolatency by default
    else:
        sink: dict[str, Any] = {"location": args.output, "codec": args.codec, "crf": args.crf, "preset": args.preset}
        if args.live and args.codec in ("h264", "hevc"):
            sink["tune"] = "zerolatency"
        specs.append(("filesink", sink))
    return specs


FLAGS: dict[tuple[str, str], str] = {
    ("filesrc", "location"): "INPUT", ("filesrc", "reconnect_timeout"): "--reconnect-timeout",
    ("segment", "box"): "--box", ("segment", "points"): "--point", ("segment", "mask_file"): "--mask",
    ("segment", "frame"): "--frame", ("segment", "prompts_file"): "--prompts",
    ("segment", "checkpoint"): "--sam", ("track", "checkpoint"): "--deaot", ("inpaint", "checkpoint"): "--e2fgvi",
    ("loadmask", "location"): "--masks", ("savemask", "location"): "--save-masks", ("dilate", "pixels"): "--dilate",
    ("logo", "box"): "--box", ("logo", "file"): "--logo-matte",
    ("inpaint", "window"): "--window", ("inpaint", "mode"): "--inpaint-mode", ("inpaint", "region"): "--region",
    ("inpaint", "fallback"): "--fallback",
    ("filesink", "location"): "--output", ("filesink", "codec"): "--codec", ("filesink", "crf"): "--crf",
    ("filesink", "preset"): "--preset",
    **{(stage, key): f"--{key}" for stage in ("segment", "track", "inpaint") for key in ("models", "device", "precision", "backend")},
}
"""The element property each of run's options sets, so an error names the option the user typed."""


def build_pipeline(specs: list[tuple[str, dict[str, Any]]]) -> Any:
    """The pipeline for ``specs``; a bad value is said in terms of run's own options (``--window
    must be <= 30, got 99``), not of the element property it was turned into."""
    from cleanfeed.stream.cli.execute import build

    try:
        return build(specs)
    except PropertyError as err:
        flag = FLAGS.get((err.element, err.prop))
        if flag is None or not err.rule:
            raise
        raise PropertyError(f"{flag} {err.rule}", element=err.element, prop=err.prop, rule=err.rule) from None


def launch_line(specs: list[tuple[str, dict[str, Any]]]) -> str:
    def value(v: Any) -> str:
        text = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
        return shlex.quote(text) if any(c.isspace() or c in "!'\"" for c in text) else text

    return " ! ".join(" ".join([name] + [f"{k}={value(v)}" for k, v in props.items()]) for name, props in specs)


def main(args: argparse.Namespace) -> int:
    from cleanfeed.stream.cli.execute import execute

    specs = chain(args)
    pipeline = build_pipeline(specs)
    if args.print_pipeline:
        print(launch_line(specs))
        return 0
    pipeline.live = args.live
    pipeline.latency_ms = args.max_latency
    pipeline.latency_label = "--max-latency"
    if args.max_restarts < 0:
        raise PropertyError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    pipeline.max_restarts = args.max_restarts
    execute(pipeline, mode=args.mode, stats=args.stats, quiet=args.quiet,
            metrics_port=args.metrics_port, metrics_host=args.metrics_host, fail_on_late=args.fail_on_late)
    return 0
