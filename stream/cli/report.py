"""Readable summaries of a RunReport, shared by run, launch and bench."""

from __future__ import annotations

import json
import os
from pathlib import Path
from time import monotonic
from typing import Any

from cleanfeed.errors import MediaError
from cleanfeed.stream.stats import shed_total_of


def summary_line(report: Any) -> str:
    """One line for the end of a run; late, degraded and shed frames (those a stage put on its
    cheap path: counted once per stage) and discarded results are counted where there were any."""
    lat = report.latency_ms or {}
    p50 = lat.get("p50")
    latency = f", latency p50 {p50:.0f} ms / p95 {lat.get('p95', 0):.0f} ms / max {lat.get('max', 0):.0f} ms" if p50 is not None else ""
    line = (f"{report.frames_in} frames in, {report.frames_out} frames out in {report.wall_s:.1f} s "
            f"({report.fps:.1f} fps{latency})")
    counters = getattr(report, "counters", None) or {}
    shed = shed_total_of(counters)
    missed = [f"{n} {what}" for n, what in ((report.late_frames, "late"), (report.degraded, "degraded"),
                                            (shed, "shed"), (counters.get("discarded", 0), "discarded")) if n]
    return line + (f"; {', '.join(missed)}" if missed else "")


def late_warning(report: Any, label: str) -> str | None:
    """What a run with a latency budget says when frames missed it; None when none did."""
    if not report.late_frames or report.latency_budget_ms is None:
        return None
    worst = (report.latency_ms or {}).get("max")
    worst_text = f", the worst {worst:.0f} ms" if worst is not None else ""
    return (f"{report.late_frames} of {report.frames_out} frames left later than the {report.latency_budget_ms:g} ms "
            f"budget ({label}){worst_text}; {report.degraded} were degraded to stay covered")


def engines_line(choices: dict[str, Any]) -> str | None:
    """One line for every element's engine and why (``Pipeline.engine_choices``); the models
    folder searched in vain is said once."""
    if not choices:
        return None
    parts = [f"{name} {c.engine} ({c.why})" for name, c in choices.items()]
    folders = sorted({c.looked_in for c in choices.values() if c.looked_in})
    where = f"; checkpoints are looked for in {', '.join(folders)} (--models DIR)" if folders else ""
    return "engines: " + ", ".join(parts) + where


def element_table(report: Any) -> str:
    rows = [("element", "frames", "fps", "busy s", "peak RSS MB")]
    for name, st in report.elements.items():
        rows.append((name, str(st.get("frames", "")), f"{st.get('fps', 0):.1f}", f"{st.get('busy_s', 0):.2f}",
                     f"{st.get('peak_rss_mb', 0):.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    return "\n".join(lines)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Atomically (a temporary file renamed over the old one): a reader polling the file while
    a run updates it never sees half a document."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # its folder is not there: nothing was left behind
        raise MediaError(f"stats file {str(path)!r} must be writable, got {err.strerror or err}") from None


class LiveStatsFile:
    """A pipeline monitor (``Pipeline.run(monitor=...)``) that keeps ``path`` up to date.

    The live document is rewritten at most every ``every_s`` seconds, the final one at once;
    a first document (``state`` "starting") is written when it is created, so an unwritable
    path fails before anything runs.
    """

    def __init__(self, path: str | Path, every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.every_s = every_s
        self._last = monotonic()
        write_json(self.path, {"state": "starting", "final": False})

    def __call__(self, doc: dict[str, Any]) -> None:
        now = monotonic()
        if doc.get("final") or now - self._last >= self.every_s:
            self._last = now
            write_json(self.path, doc)
