"""The app's run worker: ``python -m cleanfeed.stream.gui.worker JOB.json [APP_PID]``.

The job file holds the run's cleanfeed.stream.recipe.RunOptions (``{"options": {...}}``); the
worker builds the recipe's chain and runs it as a pipeline in this process's main thread (so SIGTERM is the
pipeline's graceful stop) and writes one JSON object per line on stdout: ``{"progress": {...}}``
while it runs, then ``{"done": report}`` or ``{"error": message, "interrupted": bool, "report": ...}``.
Logs go to stderr. It asks the kernel for SIGTERM when the app's process dies, so a run never
outlives the app that started it.

The run yields the CPU to the page. Its decoder, its element processes and x264 want every
core, and on a 2-core machine the page's server threads (the same priority, one process
against a dozen) would wait their turn: a click answered in seconds. So the worker lowers its
own priority (``os.nice``) before it builds the pipeline; every process and thread the
pipeline starts inherits it. At niceness 19 a runnable app thread weighs ~68x one of the run's
(CFS weights 1024 against 15), so the page is answered at once and the run takes whatever
the page leaves, which is nearly all of it. This only works within one scheduling group: with
the kernel's autogroup, processes of one session; the worker stays in the app's session.
``$CLEANFEED_GUI_RUN_NICE`` (0..19, default :data:`NICE`) exists for bench/gui_click.py to
measure the page without it; nothing else reads or relies on the run's priority.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cleanfeed.errors import CleanfeedError, Interrupted
from cleanfeed.stream import recipe
from cleanfeed.stream.forking import die_with_parent
from cleanfeed.stream.logs import configure
from cleanfeed.stream.recipe import RunOptions

NICE = 19
"""Niceness added to the run (inherited by its element processes). 19, not 10: on this 2-core
machine a button answered during a 1080p run took 87 / 121 and 79 / 125 ms (median / p95) at 19
against 97-139 / 170-238 ms at 10, and the run kept its speed (bench/results/2026-11-25-gui-click-cpu.md)."""
NICE_ENV = "CLEANFEED_GUI_RUN_NICE"
"""Overrides :data:`NICE` (0 = the app's priority); for benchmarks."""

log = logging.getLogger("cleanfeed.stream.gui.worker")


def niceness() -> int:
    """The niceness to add: $CLEANFEED_GUI_RUN_NICE when it is an integer 0..19, else :data:`NICE`."""
    text = os.environ.get(NICE_ENV, "").strip()
    if not text:
        return NICE
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        log.warning("$%s must be an integer 0..19, got %r: using %d", NICE_ENV, text, NICE)
        return NICE
    return value


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    configure("info")
    if len(argv) > 1 and not die_with_parent(signal.SIGTERM, int(argv[1])):
        os.kill(os.getpid(), signal.SIGTERM)  # the app died before the request was made
    os.nice(niceness())  # the page's process comes first (see the module doc)
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        options = RunOptions.from_json(job["options"])
        pipeline = recipe.pipeline(options, recipe.elements(recipe.chain(options)))
        report = pipeline.run(mode=job.get("mode", "process"), progress=lambda p: _emit({"progress": asdict(p)}))
    except CleanfeedError as err:
        report = getattr(err, "report", None)
        _emit({"error": str(err), "interrupted": isinstance(err, Interrupted),
               "report": report.to_json() if report is not None else None})
        return 130 if isinstance(err, Interrupted) else err.exit_code or 1
    _emit({"done": report.to_json()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
