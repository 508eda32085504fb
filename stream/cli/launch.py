"""`cleanfeed launch`: run any pipeline written in gst-launch syntax."""

from __future__ import annotations

import argparse
from typing import Any

from stream.cli.execute import add_reporting_arguments
from stream.launch import join_argv


def add_parser(sub: Any) -> None:
    p = sub.add_parser("launch", help="run a pipeline written like gst-launch",
                       description='Run a pipeline, e.g. cleanfeed launch "filesrc location=in.mp4 ! identity ! filesink location=out.mp4". '
                                   "The pipeline may be one quoted argument or separate tokens.")
    p.add_argument("pipeline", nargs="+", metavar="PIPELINE")
    p.add_argument("--mode", default="process", choices=["process", "thread"])
    add_reporting_arguments(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from stream.cli.execute import execute
    from stream.pipeline import Pipeline

    text = args.pipeline[0] if len(args.pipeline) == 1 else join_argv(args.pipeline)
    execute(Pipeline.from_launch(text), mode=args.mode, stats=args.stats, quiet=args.quiet,
            metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    return 0
