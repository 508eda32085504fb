"""Readable summaries of a RunReport, shared by run, launch and bench."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def summary_line(report: Any) -> str:
    lat = report.latency_ms or {}
    p50 = lat.get("p50")
    latency = f", latency p50 {p50:.0f} ms / p95 {lat.get('p95', 0):.0f} ms / max {lat.get('max', 0):.0f} ms" if p50 is not None else ""
    return (f"{report.frames_in} frames in, {report.frames_out} frames out in {report.wall_s:.1f} s "
            f"({report.fps:.1f} fps{latency})")


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
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
