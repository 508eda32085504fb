"""A live pipeline run whose sink (t_coversink) writes one row per frame: latency, degraded, and
how far the logo's pixels are from the clean scene. Shared by the live-deadline tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.stats import RunReport
from tests.stream import fake_elements  # noqa: F401  (registers t_coversink)


def run_live(line: str, rows_file: Path, budget_ms: float) -> tuple[RunReport, list[dict[str, Any]]]:
    """Runs ``line`` (ending in ``t_coversink location=rows_file``) live in process mode; checks
    every frame came out once, in order, none dropped; returns the report and the rows."""
    report = Pipeline(Pipeline.from_launch(line).elements, latency_ms=budget_ms, live=True).run(mode="process")
    rows = json.loads(rows_file.read_text())
    assert [r["seq"] for r in rows] == list(range(report.frames_in)), [r["seq"] for r in rows]
    assert report.frames_in == report.frames_out and report.dropped == 0
    return report, rows


def late_rows(rows: list[dict[str, Any]], limit_ms: float) -> list[tuple[int, int]]:
    """(seq, latency ms) of the frames that came out after ``limit_ms``."""
    return [(r["seq"], round(r["latency_ms"])) for r in rows if r["latency_ms"] > limit_ms]
