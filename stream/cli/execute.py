"""Builds a pipeline from specs and runs it with a progress bar, a summary and optional stats JSON.

Shared by `run`, `launch` and `bench` so the three report a run the same way.
"""

from __future__ import annotations

import sys
from typing import Any

from stream import registry
from stream.cli.progress import ProgressBar
from stream.cli.report import summary_line, write_json


def build(specs: list[tuple[str, dict[str, Any]]]) -> Any:
    from stream.pipeline import Pipeline

    return Pipeline([registry.create(name, props) for name, props in specs])


def execute(pipeline: Any, mode: str = "process", stats: str | None = None, quiet: bool = False) -> Any:
    """Runs the pipeline; the report is written to ``stats`` even when the run fails or is interrupted."""
    bar = ProgressBar(quiet=quiet)
    try:
        report = pipeline.run(mode=mode, progress=bar)
    except Exception as err:
        bar.close()
        _report(getattr(err, "report", None), stats, quiet)
        raise
    bar.close()
    _report(report, stats, quiet)
    return report


def _report(report: Any, stats: str | None, quiet: bool) -> None:
    """Frames in and out are said for every run, also a failed or interrupted one: nothing is lost silently."""
    if report is None:
        return
    if stats:
        write_json(stats, report.to_json())
    if not quiet:
        print(summary_line(report), file=sys.stderr)
