"""Run statistics: what each runner counts, how the supervisor folds it, what a run reports.

Runners count frames, packets and *busy* seconds (time inside the element's own hooks, not
time waiting on links or for a free slot), and the sink measures each frame's end-to-end
latency: ``monotonic()`` after ``render`` minus ``frame.born`` (CLOCK_MONOTONIC is shared by
every process of a host). Reports are plain msgpack-able maps, sent every
``stats_every_s`` and once more at exit, over a ZeroMQ PUSH socket (processes) or a queue
(threads). Peak memory is each process's ``ru_maxrss``.
"""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from stream.buffers import Caps
from stream.wire import caps_from_dict


@dataclass
class Progress:
    """Sent to the progress callback from the main thread, at most every ``stats_every_s``."""

    frames_in: int
    frames_out: int
    frames_total: int | None
    fps: float
    latency_ms: float | None


@dataclass
class RunReport:
    """What a run did. ``fps`` counts frames out over the streaming time (first frame born to
    last frame rendered), so process start-up and ``open()`` do not dilute it; ``wall_s`` is
    the whole call. ``latency_ms`` has p50, p95, p99 and max (empty when no frame reached the
    sink). ``elements``: name -> frames, fps (frames per busy second), busy_s, peak_rss_mb."""

    frames_in: int
    frames_out: int
    packets_out: int
    wall_s: float
    fps: float
    latency_ms: dict[str, float]
    elements: dict[str, dict[str, Any]]
    peak_rss_mb: float
    mode: str
    interrupted: bool
    error: str | None
    caps: Caps | None
    lookahead: int
    latency_budget_ms: float | None = None
    late_frames: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: caps as numbers and "num/den" strings."""
        out = asdict(self)
        out["latency_ms"] = {k: round(v, 3) for k, v in self.latency_ms.items()}
        out["caps"] = None if self.caps is None else {
            "width": self.caps.width, "height": self.caps.height, "rate": str(self.caps.rate),
            "time_base": str(self.caps.time_base), "pix_fmt": self.caps.pix_fmt, "live": self.caps.live,
            "frames": self.caps.frames,
            "streams": [{"index": s.index, "kind": s.kind, "codec": s.codec} for s in self.caps.streams],
        }
        return out


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of per-frame latencies in milliseconds (empty for an empty list)."""
    if not values_ms:
        return {}
    arr = np.asarray(values_ms, np.float64)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(arr.max())}


def peak_rss_mb() -> float:
    """This process's peak resident memory (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class ElementCounters:
    """One runner's counts; :meth:`message` drains the latencies measured since the last one."""

    frames_in: int = 0
    frames_out: int = 0
    packets: int = 0
    busy_s: float = 0.0
    first_born: float | None = None
    last_render: float | None = None
    latencies_ms: list[float] = field(default_factory=list)

    def message(self, element: str, kind: str = "stats") -> dict[str, Any]:
        msg = {
            "kind": kind, "element": element, "frames_in": self.frames_in, "frames_out": self.frames_out,
            "packets": self.packets, "busy_s": self.busy_s, "rss_mb": peak_rss_mb(),
            "first_born": self.first_born, "last_render": self.last_render, "lat": self.latencies_ms,
        }
        self.latencies_ms = []
        return msg


@dataclass(frozen=True)
class ErrorRecord:
    """An element's failure as it travels: its class (name and module) and one-line message,
    as text, plus the traceback for failures that are bugs rather than CleanfeedErrors."""

    element: str
    cls: str
    message: str
    trace: str = ""
    module: str = ""

    def to_message(self) -> dict[str, Any]:
        return {
            "kind": "error", "element": self.element, "cls": self.cls, "message": self.message,
            "trace": self.trace, "module": self.module,
        }

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> ErrorRecord:
        return cls(
            str(msg["element"]), str(msg["cls"]), str(msg["message"]), str(msg.get("trace", "")), str(msg.get("module", ""))
        )


class Collector:
    """Folds runner reports into live progress and the final :class:`RunReport`."""

    def __init__(self, names: list[str], latency_budget_ms: float | None = None) -> None:
        self.names = list(names)
        self.source, self.sink = names[0], names[-1]
        self.latest: dict[str, dict[str, Any]] = {}
        self.latencies: list[float] = []
        self.errors: list[ErrorRecord] = []
        self.done: set[str] = set()
        self.ready: set[str] = set()
        self.caps: Caps | None = None
        self.budget = latency_budget_ms
        self.late = 0

    def add(self, msg: dict[str, Any]) -> None:
        kind, name = msg.get("kind"), str(msg.get("element"))
        if kind in ("stats", "done"):
            self.latest[name] = msg
            lat = list(msg.get("lat") or ())
            self.latencies.extend(lat)
            if self.budget is not None:
                self.late += sum(1 for v in lat if v > self.budget)
            if kind == "done":
                self.done.add(name)
        elif kind == "error":
            self.errors.append(ErrorRecord.from_message(msg))
        elif kind == "ready":
            self.ready.add(name)
        elif kind == "caps" and name == self.source:
            self.caps = caps_from_dict(msg["caps"])

    def fail(self, element: str, message: str) -> None:
        """An error the supervisor saw itself (a process that died)."""
        self.errors.append(ErrorRecord(element, "ElementError", message))

    def _get(self, name: str, key: str, default: Any = 0) -> Any:
        value = self.latest.get(name, {}).get(key)
        return default if value is None else value

    def fps(self, now: float | None = None) -> float:
        """Frames out over streaming time: from the first frame's birth to the last render (or now)."""
        frames = int(self._get(self.sink, "frames_in"))
        first = self.latest.get(self.sink, {}).get("first_born")
        last = now if now is not None else self.latest.get(self.sink, {}).get("last_render")
        if not frames or first is None or last is None or last <= first:
            return 0.0
        return frames / (last - first)

    def progress(self, now: float) -> Progress:
        frames_total = self.caps.frames if self.caps is not None else None
        return Progress(
            frames_in=int(self._get(self.source, "frames_out")),
            frames_out=int(self._get(self.sink, "frames_in")),
            frames_total=frames_total,
            fps=self.fps(now),
            latency_ms=self.latencies[-1] if self.latencies else None,
        )

    def report(self, *, mode: str, wall_s: float, lookahead: int, interrupted: bool, error: str | None) -> RunReport:
        elements: dict[str, dict[str, Any]] = {}
        for name in self.names:
            role_frames = self._get(name, "frames_in") if name != self.source else self._get(name, "frames_out")
            busy = float(self._get(name, "busy_s", 0.0))
            elements[name] = {
                "frames": int(role_frames),
                "fps": round(role_frames / busy, 3) if busy > 0 else 0.0,
                "busy_s": round(busy, 6),
                "peak_rss_mb": round(float(self._get(name, "rss_mb", 0.0)), 1),
            }
        rss = [e["peak_rss_mb"] for e in elements.values()] + [round(peak_rss_mb(), 1)]
        return RunReport(
            frames_in=int(self._get(self.source, "frames_out")),
            frames_out=int(self._get(self.sink, "frames_in")),
            packets_out=int(self._get(self.sink, "packets")),
            wall_s=wall_s,
            fps=self.fps(),
            latency_ms=latency_summary(self.latencies),
            elements=elements,
            peak_rss_mb=max(rss),
            mode=mode,
            interrupted=interrupted,
            error=error,
            caps=self.caps,
            lookahead=lookahead,
            latency_budget_ms=self.budget,
            late_frames=self.late,
        )
