"""Entry point: parses the command line and turns every user error into one line and an exit code.

Exit codes: 0 ok, 1 runtime failure, 2 usage/pipeline/property/prompt error, 3 media error (an
input or output that cannot be used, a run that wrote no frame), 4 frames later than the latency
budget with --fail-on-late, 130 interrupted (SIGINT/SIGTERM; outputs were finalized), 70 internal
error (a bug: please report).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from cleanfeed.errors import CleanfeedError
from cleanfeed.stream.forking import stop_helpers
from cleanfeed.stream.logs import configure

INTERNAL_ERROR = 70
USAGE_ERROR = 2
LOG_LEVELS = ("debug", "info", "warning", "error")
_NEGATIVE_VALUE = re.compile(r"^-\d")
VALUE_OPTIONS = ("--box", "--point")
"""Options whose value may start with a minus sign (a box or point partly left of the frame):
argparse would take ``-10,-10,50,50`` for an option, so it is joined to its flag first."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    from cleanfeed.stream.cli import bench, check, demo, export, fleet, gui, inspect, keys, launch, run

    parser = _Parser(
        prog="cleanfeed",
        description="Remove an object from video as it streams: segment, track, inpaint.",
    )
    level_help = "how much to log on stderr (default: info; warning with --quiet)"
    parser.add_argument("--log-level", default=None, choices=LOG_LEVELS, help=level_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (run, check, launch, inspect, demo, bench, export, keys, gui, fleet):
        module.add_parser(sub)
    for command in sub.choices.values():  # also after the command, as `cleanfeed run ... --log-level debug`
        command.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS, help=level_help)
    return parser


def _join_negative_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    for token in argv:
        if out and out[-1] in VALUE_OPTIONS and _NEGATIVE_VALUE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
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
    finally:
        stop_helpers()  # the fork server and resource tracker leave with the command, not after it


if __name__ == "__main__":
    sys.exit(main())
