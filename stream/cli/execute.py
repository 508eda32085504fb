"""Builds a pipeline from specs and runs it with a progress bar, a summary, live stats JSON and
an optional Prometheus endpoint.

Shared by `run`, `launch` and `bench` so the three report a run the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cleanfeed.errors import LateError
from cleanfeed.stream import registry
from cleanfeed.stream.cli.progress import ProgressBar
from cleanfeed.stream.cli.report import LiveStatsFile, engines_line, late_warning, summary_line

if TYPE_CHECKING:
    from cleanfeed.stream.pipeline import Pipeline
    from cleanfeed.stream.stats import RunReport

log = logging.getLogger("cleanfeed")

DEFAULT_METRICS_HOST = "127.0.0.1"


def build(specs: list[tuple[str, dict[str, Any]]], **settings: Any) -> Pipeline:
    """The pipeline of ``specs`` (element name, properties); ``settings`` are Pipeline's (live,
    latency_ms, latency_label, max_restarts, deadlines). The import waits until a run needs it,
    so the command line starts without the runtime."""
    from cleanfeed.stream.pipeline import Pipeline

    return Pipeline([registry.create(name, props) for name, props in specs], **settings)


def add_reporting_arguments(group: Any) -> None:
    """--stats, --metrics-port, --metrics-host and --fail-on-late, the same for run and launch."""
    group.add_argument("--stats", metavar="FILE",
                       help="write the run's statistics as JSON, updated every second while it runs and final at the end")
    group.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="serve the same figures for Prometheus on http://HOST:PORT/metrics (needs prometheus-client)")
    group.add_argument("--metrics-host", default=DEFAULT_METRICS_HOST, metavar="HOST",
                       help=f"address the metrics endpoint binds to (default {DEFAULT_METRICS_HOST}: this machine only)")
    group.add_argument("--fail-on-late", action="store_true",
                       help="exit with code 4 when any frame left later than the latency budget (for monitoring; "
                            "the output is complete either way)")


def execute(
    pipeline: Pipeline, mode: str = "process", stats: str | None = None, quiet: bool = False,
    metrics_port: int | None = None, metrics_host: str = DEFAULT_METRICS_HOST, fail_on_late: bool = False,
) -> RunReport:
    """Runs the pipeline. ``stats``: a JSON file kept up to date while it runs and final at the
    end, also when the run fails or is interrupted. ``metrics_port``: a Prometheus endpoint
    (cleanfeed.stream.metrics) for the run's duration. Inputs, outputs and prompts are checked before
    anything starts, so a bad one is the only line printed; then one line says which engines
    run. Late frames are warned about (``fail_on_late``: LateError, exit code 4)."""
    pipeline.check()
    said = engines_line(pipeline.engine_choices())
    if said:
        log.info("%s", said)
    monitors: list[Callable[[dict[str, Any]], None]] = []
    if stats:
        monitors.append(LiveStatsFile(stats))
    server = None
    if metrics_port is not None:
        from cleanfeed.stream.metrics import MetricsServer

        server = MetricsServer(metrics_port, metrics_host)
        monitors.append(server)
        if not quiet:
            print(f"metrics on {server.url}", file=sys.stderr)

    def monitor(doc: dict[str, Any]) -> None:
        for each in monitors:
            each(doc)

    bar = ProgressBar(quiet=quiet)
    try:
        report = pipeline.run(mode=mode, progress=bar, monitor=monitor if monitors else None, fail_on_late=fail_on_late)
    except Exception as err:
        bar.close()
        _summary(getattr(err, "report", None), quiet)
        raise
    finally:
        if server is not None:
            server.close()
    bar.close()
    _summary(report, quiet)
    late = late_warning(report, pipeline.latency_label)
    if late:
        if fail_on_late:
            raise LateError(late)
        log.warning("%s", late)
    return report


def _summary(report: Any, quiet: bool) -> None:
    """Frames in and out are said for every run that read a frame, also a failed or interrupted
    one: nothing is lost silently. A run that failed before its first frame has only its error to say."""
    if report is not None and not quiet and (report.frames_in or report.error is None):
        print(summary_line(report), file=sys.stderr)
