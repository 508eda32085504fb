"""`cleanfeed fleet FILE.toml`: many feeds, each one `cleanfeed run`, placed and supervised by Ray.

The fleet file is read (cleanfeed.stream.fleet.spec) and every feed's options are parsed by
run's own parser and recipe before Ray starts, so a bad key or value is one line naming the
feed and the key, and nothing runs. What a feed's node alone can tell (an input that is not
there, a checkpoint on the GPU node) is left to the feed's own run: that feed fails alone,
after its restarts, and the others go on.

While the fleet runs, one table shows every feed (rich on a terminal, else plain text when a
feed's state changes), ``--stats`` is rewritten every second and ``--metrics-port`` serves all
feeds' figures with a ``feed`` label. Ctrl+C or SIGTERM stops every feed (each finalizes its
output) and the command exits 130; otherwise it exits 0 when every feed ended cleanly and 1
when one failed for good.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn

from cleanfeed.errors import CheckpointError, CleanfeedError, MediaError, ReferenceImageError
from cleanfeed.stream.cli.execute import DEFAULT_METRICS_HOST
from cleanfeed.stream.cli.report import write_json
from cleanfeed.stream.fleet.report import FleetFigures, State, text_table
from cleanfeed.stream.fleet.spec import FeedSpec, FleetSpec, FleetSpecError, load
from cleanfeed.stream.fleet.split import Split
from cleanfeed.stream.signals import SignalTrap


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fleet", help="run many feeds, each a `cleanfeed run`, placed and supervised by Ray",
                       description="Run every feed of FILE (TOML: [fleet] settings and [[feeds]] tables with "
                                   "name, input, output and run's options; see README) on a Ray cluster. "
                                   "Needs pip install 'cleanfeed[fleet]'.")
    p.add_argument("file", metavar="FILE", help="the fleet file (.toml)")
    p.add_argument("--address", metavar="ADDR",
                   help="join this running Ray cluster (default: start a local one for the run)")
    p.add_argument("--stats", metavar="FILE", help="write every feed's state and figures as JSON, every second")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve every feed's figures for Prometheus on http://HOST:PORT/metrics, label feed")
    p.add_argument("--metrics-host", default=DEFAULT_METRICS_HOST, metavar="HOST",
                   help=f"address the metrics endpoint binds to (default {DEFAULT_METRICS_HOST})")
    p.add_argument("--quiet", action="store_true", help="no table while running (the final table is printed)")
    p.set_defaults(func=main)


class _OptionError(Exception):
    pass


class _Raising(argparse.ArgumentParser):
    """run's parser, but an error is raised to be said in the fleet file's terms."""

    def error(self, message: str) -> NoReturn:
        raise _OptionError(message)


def _run_parser() -> argparse.ArgumentParser:
    from cleanfeed.stream.cli import run

    sub = _Raising(prog="cleanfeed").add_subparsers(dest="command")
    run.add_parser(sub)
    return sub.choices["run"]


def _keyed(message: str) -> str:
    """run's messages name flags (``argument --window``); a fleet file has keys."""
    message = re.sub(r"argument (--[\w-]+)(?:/-\w)?", r"\1", message)
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), message)


def run_args(feed: FeedSpec, spec: FleetSpec, parser: argparse.ArgumentParser) -> list[str]:
    """``feed``'s `cleanfeed run` arguments, checked as run itself would check them, short of
    what only the feed's node can tell (its files, checkpoints and devices)."""
    return _checked(feed, spec, parser)[0]


def plan(feed: FeedSpec, spec: FleetSpec, parser: argparse.ArgumentParser) -> list[str] | Split:
    """What the fleet runs for ``feed``: its `cleanfeed run` arguments, or for a split feed its two
    `cleanfeed launch` parts (cleanfeed.stream.fleet.split): the chain run would build, cut before
    the element ``split`` names, with run's pipeline settings given to the part they concern."""
    args, parsed, specs = _checked(feed, spec, parser)
    if feed.split is None:
        return args
    from cleanfeed.stream.cli.run import launch_line

    names = [s.factory for s in specs]
    if feed.split not in names[1:]:
        raise FleetSpecError(f"{spec.source}: feed {feed.name!r}: split must name one of the feed's elements after its "
                             f"source ({', '.join(names[1:])}), got {feed.split!r}")
    at = names.index(feed.split, 1)
    common = ["--mode", parsed.mode, f"--max-restarts={parsed.max_restarts}"]
    decode = ["launch", launch_line(specs[:at]), *common] + (["--live"] if parsed.live else [])
    models = ["launch", launch_line(specs[at:]), *common]
    if parsed.max_latency is not None:  # the budget is the models part's: frames are stamped again on arrival there
        models.append(f"--latency={parsed.max_latency:g}")
    if parsed.fail_on_late:
        models.append("--fail-on-late")
    return Split(feed.split, tuple(decode), tuple(models))


def _checked(feed: FeedSpec, spec: FleetSpec, parser: argparse.ArgumentParser) -> tuple[list[str], Any, list[Any]]:
    """(run arguments, their parsed namespace, the chain's element specs)."""
    from cleanfeed.stream import recipe
    from cleanfeed.stream.cli import run
    from cleanfeed.stream.cli.main import _join_negative_values

    where = f"{spec.source}: feed {feed.name!r}"
    known = set(vars(parser.parse_args(["IN", "-o", "OUT"]))) - {"func", "input", "output"}
    for key in feed.options:
        if key not in known:
            raise FleetSpecError(f"{where}: unknown key {key!r} (cleanfeed run has no --{key.replace('_', '-')})")
    args = feed.run_args()
    specs: list[Any] = []
    try:
        parsed = parser.parse_args(_join_negative_values(args[1:]))
        opts = run.options(parsed)
        specs = recipe.chain(opts)
        if parsed.max_restarts < 0:
            raise FleetSpecError(f"max_restarts must be >= 0, got {parsed.max_restarts}")
        run.build_elements(specs)
    except _OptionError as err:
        raise FleetSpecError(f"{where}: {_keyed(str(err))}") from None
    except (MediaError, CheckpointError, ReferenceImageError):
        pass  # the feed's node has the files (inputs, checkpoints, --logo images): its own run says what is wrong there
    except CleanfeedError as err:
        raise FleetSpecError(f"{where}: {_keyed(str(err))}") from None
    return args, parsed, specs


class _Table:
    """The table while running: rich's live view on a terminal, else the plain table whenever a
    feed's state changed."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._live: Any = None
        self._said: dict[str, str] = {}
        if not quiet and sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:
                return
            self._live = Live(console=Console(stderr=True), refresh_per_second=2, transient=True)
            self._live.start()

    def __call__(self, doc: dict[str, Any]) -> None:
        if self.quiet or doc["final"]:  # the final table is close()'s
            return
        if self._live is not None:
            self._live.update(_rich_table(doc))
            return
        states = {name: feed["state"] for name, feed in doc["feeds"].items()}
        if states != self._said:
            self._said = states
            print(text_table(doc) + "\n", file=sys.stderr, flush=True)

    def close(self, doc: dict[str, Any]) -> None:
        if self._live is not None:
            self._live.stop()
            from rich.console import Console

            Console(stderr=True).print(_rich_table(doc))
        else:
            print(text_table(doc), file=sys.stderr, flush=True)


def _rich_table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    from cleanfeed.stream.fleet.report import COLUMNS, rows

    table = Table(title=f"cleanfeed fleet, {doc['elapsed_s']:.0f} s")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("restarts", "frames in", "frames out", "fps", "p95 ms") else "left")
    for row in rows(doc):
        table.add_row(*row)
    return table


def main(args: argparse.Namespace) -> int:
    from cleanfeed.stream.fleet.ray_side import Fleet, import_ray

    spec = load(args.file)
    parser = _run_parser()
    checked = {feed.name: plan(feed, spec, parser) for feed in spec.feeds}
    import_ray()  # after the file: a bad file is the same error with or without Ray
    fleet = Fleet(spec, checked, address=args.address)
    monitors: list[Any] = []
    if args.stats:
        write_json(args.stats, fleet.document())  # an unwritable path fails before anything runs
        monitors.append(lambda doc: write_json(args.stats, doc))
    server = None
    if args.metrics_port is not None:
        from cleanfeed.stream.metrics import MetricsServer

        figures = FleetFigures()
        server = MetricsServer(args.metrics_port, args.metrics_host, figures=figures)
        monitors.append(server)
        if not args.quiet:
            print(f"metrics on {server.url}", file=sys.stderr)
    table = _Table(args.quiet)
    monitors.append(table)

    def update(doc: dict[str, Any]) -> None:
        for each in monitors:
            each(doc)

    try:
        with SignalTrap() as trap:
            feeds = fleet.run(update, lambda: trap.count > 0)
    finally:
        table.close(fleet.document(final=True))
        if server is not None:
            server.close()
    if fleet.started_in_s is not None and not args.quiet:
        print(f"ray {'joined' if args.address else 'started'} in {fleet.started_in_s:.1f} s", file=sys.stderr)
    failed = [f for f in feeds.values() if f.state == State.FAILED]
    if failed:
        raise FleetFailedError(f"{len(failed)} of {len(feeds)} feeds failed: "
                               + "; ".join(f"{f.name}: {f.error}" for f in failed))
    if trap.count:
        print("cleanfeed: interrupted: every feed stopped, outputs finalized", file=sys.stderr)
        return 130
    return 0


class FleetFailedError(CleanfeedError):
    """A feed failed for good (after its restarts); the others ended as they should."""

    exit_code = 1
