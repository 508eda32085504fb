"""The app's run worker: ``python -m prompts.gui.worker JOB.json [APP_PID]``.

Runs the job's element specs as a pipeline in this process's main thread (so SIGTERM is the
pipeline's graceful stop) and writes one JSON object per line on stdout: ``{"progress": {...}}``
while it runs, then ``{"done": report}`` or ``{"error": message, "interrupted": bool, "report": ...}``.
Logs go to stderr. The run takes a lower CPU priority than the app. It asks the kernel for SIGTERM when the app's process dies, so a run never
outlives the app that started it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stream.errors import CleanfeedError, Interrupted
from stream.logs import configure

NICE = 10
"""Niceness added to the run (inherited by its element processes)."""


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, default=str) + "\n")
    sys.stdout.flush()


def _die_with(parent: int | None) -> None:
    if parent is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the app died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    from stream.cli.execute import build

    configure("info")
    _die_with(int(argv[1]) if len(argv) > 1 else None)
    os.nice(NICE)  # the page's process comes first: a click must be answered while the run takes every core
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    specs = [(str(name), dict(props)) for name, props in job["specs"]]
    try:
        pipeline = build(specs)
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
