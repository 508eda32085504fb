"""`cleanfeed launch`: run any pipeline written in gst-launch syntax."""

from __future__ import annotations

import argparse
from typing import Any

from cleanfeed.errors import PropertyError
from cleanfeed.stream.cli.execute import add_reporting_arguments
from cleanfeed.stream.launch import join_argv


def add_parser(sub: Any) -> None:
    p = sub.add_parser("launch", help="run a pipeline written like gst-launch",
                       description='Run a pipeline, e.g. cleanfeed launch "filesrc location=in.mp4 ! identity ! filesink location=out.mp4". '
                                   "The pipeline may be one quoted argument or separate tokens.")
    p.add_argument("pipeline", nargs="+", metavar="PIPELINE",
                   help="elements joined by !, each FACTORY key=value ... (see cleanfeed inspect)")
    p.add_argument("--mode", default="process", choices=["process", "thread"],
                   help="one process per element (default) or threads in one process (debugging)")
    p.add_argument("--max-restarts", type=int, default=3, metavar="N",
                   help="process mode: a filter whose process dies is restarted and the frames that were inside it "
                        "re-sent, at most N times in a run, then the run stops naming it (0: the first death stops "
                        "the run; default 3). Sources and sinks are not restarted")
    p.add_argument("--live", action="store_true",
                   help="read file inputs at their frame rate, like a camera (live output)")
    p.add_argument("--latency", type=float, metavar="MS",
                   help="the pipeline's latency budget: every frame leaves within MS milliseconds of its arrival "
                        "(filters holding frames emit late ones covered, flagged degraded); refused when smaller than "
                        "the chain's lookahead plus the encoder's delay (use the sink's tune=zerolatency)")
    add_reporting_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from cleanfeed.stream.cli.execute import execute
    from cleanfeed.stream.pipeline import Pipeline

    text = args.pipeline[0] if len(args.pipeline) == 1 else join_argv(args.pipeline)
    if args.latency is not None and args.latency <= 0:
        raise PropertyError(f"--latency must be > 0 ms, got {args.latency:g}")
    if args.max_restarts < 0:
        raise PropertyError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    pipeline = Pipeline.from_launch(text, live=args.live, latency_ms=args.latency, latency_label="--latency",
                                    max_restarts=args.max_restarts)
    execute(pipeline, mode=args.mode, stats=args.stats, quiet=args.quiet,
            metrics_port=args.metrics_port, metrics_host=args.metrics_host, fail_on_late=args.fail_on_late)
    return 0
