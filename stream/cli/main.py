"""Entry point: parses the command line and turns every user error into one line and an exit code.

Exit codes: 0 ok, 1 runtime failure, 2 usage/pipeline/property/prompt error, 3 media error,
130 interrupted (SIGINT/SIGTERM; outputs were finalized), 70 internal error (a bug: please report).
"""

from __future__ import annotations

import argparse
import sys

from stream.errors import CleanfeedError
from stream.logs import configure

INTERNAL_ERROR = 70


def _build_parser() -> argparse.ArgumentParser:
    from stream.cli import bench, demo, export, gui, inspect, keys, launch, run

    parser = argparse.ArgumentParser(
        prog="cleanfeed",
        description="Remove an object from video as it streams: segment, track, inpaint.",
    )
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                        help="how much to log on stderr (default: info; warning with --quiet)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (run, launch, inspect, demo, bench, export, keys, gui):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.log_level is None:
        args.log_level = "warning" if getattr(args, "quiet", False) else "info"
    configure(args.log_level)
    try:
        return int(args.func(args) or 0)
    except CleanfeedError as err:
        print(f"cleanfeed: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("cleanfeed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as err:  # a bug, not the user's fault: one line, traceback on request
        if args.log_level == "debug":
            raise
        print(f"cleanfeed: internal error: {type(err).__name__}: {err} (rerun with --log-level debug for details)",
              file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
