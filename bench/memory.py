"""The resident memory of a run's whole process tree over time, and whether it stays flat.

A pipeline is several processes (one per element, plus the supervisor), so a leak may be in
any of them: this reads VmRSS from /proc for a root pid and all its descendants (Linux only).
Shared pages (the frame slots in shared memory) count once per process that touched them, so
the total is an upper bound; what matters for a soak is that it stops growing.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_mb(root: int) -> dict[int, float]:
    """VmRSS in MiB of ``root`` and every descendant, by pid (shared pages count in each)."""
    tree, out, todo = _children(), {}, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                kb = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
        out[pid] = kb / 1024
        todo += tree.get(pid, [])
    return out


class RssSampler(threading.Thread):
    """Every ``period`` s: (seconds since start, total MiB, process count) of the tree under ``pid``."""

    def __init__(self, pid: int, period: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.period, self.samples = pid, period, []
        self._done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self._done.wait(self.period):
            rss = tree_rss_mb(self.pid)
            if rss:
                self.samples.append((round(time.monotonic() - start, 1), round(sum(rss.values()), 1), len(rss)))

    def stop(self) -> None:
        self._done.set()
        self.join()


def memory_verdict(samples: list[tuple[float, float, int]]) -> dict[str, Any]:
    """Flat when the median total of the last quarter of the samples is within 5% (at least
    20 MiB) of the second quarter's: the first quarter is warm-up (imports, first frames, the
    encoder's lookahead filling). The growth per hour is between the two quarters' middles."""
    if len(samples) < 8:
        return {"samples": len(samples), "flat": None, "why": "too few samples"}
    n = len(samples)
    second, last = samples[n // 4 : n // 2], samples[3 * n // 4 :]
    second_mb, last_mb = float(np.median([s[1] for s in second])), float(np.median([s[1] for s in last]))
    hours = (float(np.median([s[0] for s in last])) - float(np.median([s[0] for s in second]))) / 3600
    growth = last_mb - second_mb
    return {
        "samples": n, "second_quarter_median_mb": round(second_mb, 1), "last_quarter_median_mb": round(last_mb, 1),
        "growth_mb": round(growth, 1), "growth_mb_per_hour": round(growth / hours, 1) if hours > 0 else None,
        "min_mb": min(s[1] for s in samples), "max_mb": max(s[1] for s in samples),
        "processes": sorted({s[2] for s in samples}),
        "flat": bool(abs(growth) <= max(0.05 * second_mb, 20.0)),
    }
