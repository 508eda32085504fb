"""Run statistics: what each runner counts, how the supervisor folds it, what a run reports.

Runners count frames, packets and *busy* seconds (time inside the element's own hooks, not
time waiting on links or for a free slot), and the sink measures each frame's end-to-end
latency: ``monotonic()`` after ``render`` minus ``frame.born`` (CLOCK_MONOTONIC is shared by
every process of a host). Reports are plain msgpack-able maps, sent every
``stats_every_s`` and once more at exit, over a ZeroMQ PUSH socket (processes) or a queue
(threads). Peak memory is each process's ``ru_maxrss``.

Elements may count things of their own (``Element.count("reconnects")``): the totals travel
in the same reports (``counters``) and are summed per name over the stages. The sink also
counts frames whose ``meta["degraded"]`` is true (the fast fallback fill was used).

The stats document (:meth:`Collector.snapshot` while running, :meth:`RunReport.to_json` at
the end) has the same figures in both: ``state``, ``final``, ``frames_in``, ``frames_out``,
``in_flight``, ``degraded``, ``late``, ``dropped``, ``reconnects``, ``fps``, ``latency_ms``
{p50, p95, p99, max}, ``counters`` {name: total} and ``stages`` {name: {fps, frames_in,
frames_out, busy_s, busy_fps, load, rss_mb, counters, restarts}}, ``restarts`` (stage processes
the supervisor brought back after they died, in all). ``dropped`` is frames in minus
frames out once the run ended (0 for a completed run; 0 while running, when the difference
is ``in_flight``).
"""

from __future__ import annotations

import resource
from collections import deque
from dataclasses import asdict, dataclass, field
from time import monotonic
from typing import Any

import numpy as np

from cleanfeed.stream.buffers import Caps
from cleanfeed.stream.wire import caps_from_dict


@dataclass
class Progress:
    """Sent to the progress callback from the main thread, at most every ``stats_every_s``."""

    frames_in: int
    frames_out: int
    frames_total: int | None
    fps: float
    latency_ms: float | None
    late: int = 0
    """Frames rendered past the latency budget so far."""
    degraded: int = 0
    shed: int = 0
    """Frames some stage put on its cheap path (``shed_*`` counters, cleanfeed.stream.shedding)."""


def shed_total_of(counters: dict[str, int]) -> int:
    """Frames put on a cheap path over every reason (``shed_late``, ``shed_backlog``;
    cleanfeed.stream.shedding)."""
    return sum(int(v) for k, v in counters.items() if k.startswith("shed_") and k != "shed_entered")


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
    degraded: int = 0
    reconnects: int = 0
    dropped: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    restarts: int = 0

    @property
    def state(self) -> str:
        """done, failed or interrupted (a failure wins over the signal that may have followed it)."""
        return "failed" if self.error else "interrupted" if self.interrupted else "done"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: caps as numbers and "num/den" strings. Also the final stats
        document: the live document's keys (see the module doc) with ``final`` true."""
        out = asdict(self)
        out["state"], out["final"], out["late"] = self.state, True, self.late_frames
        out["in_flight"] = 0
        out["latency_ms"] = {k: round(v, 3) for k, v in self.latency_ms.items()}
        out["caps"] = None if self.caps is None else {
            "width": self.caps.width, "height": self.caps.height, "rate": str(self.caps.rate),
            "time_base": str(self.caps.time_base), "pix_fmt": self.caps.pix_fmt, "live": self.caps.live,
            "frames": self.caps.frames,
            "streams": [{"index": s.index, "kind": s.kind, "codec": s.codec} for s in self.caps.streams],
        }
        return out


class LatencyHistogram:
    """Every frame's latency in constant memory: a live feed runs for weeks, and a list of
    floats would grow by 17 MB a day and be sorted again at every stats update.

    Buckets grow geometrically by 0.5% from 0.01 ms to about 3 hours, so a percentile is the
    true one to within 0.25% (1000 ms: +-2.5 ms); ``max`` and ``last`` are exact. Percentiles
    are nearest-rank (the smallest latency that ``q`` of the frames do not exceed), read as the
    bucket's geometric middle, clamped to the exact min and max.
    """

    LOW_MS = 0.01
    RATIO = 1.005
    BUCKETS = 4200  # LOW_MS * RATIO**BUCKETS ~ 1.3e7 ms; larger values land in the last bucket

    def __init__(self) -> None:
        self.counts = np.zeros(self.BUCKETS, np.int64)
        self.count = 0
        self.low = float("inf")
        self.high = 0.0
        self.last: float | None = None

    def __len__(self) -> int:
        return self.count

    def add(self, values_ms: Any) -> None:
        arr = np.asarray(values_ms, np.float64).ravel()
        if not arr.size:
            return
        index = np.log(np.maximum(arr, self.LOW_MS) / self.LOW_MS) / np.log(self.RATIO)
        np.add.at(self.counts, np.minimum(index.astype(np.int64), self.BUCKETS - 1), 1)
        self.count += int(arr.size)
        self.low, self.high = min(self.low, float(arr.min())), max(self.high, float(arr.max()))
        self.last = float(arr[-1])

    def percentile(self, q: float) -> float:
        """``q`` in 0..100."""
        if not self.count:
            raise ValueError("no latencies yet")
        rank = max(1, int(np.ceil(q / 100 * self.count)))
        if rank == 1:
            return self.low
        if rank == self.count:
            return self.high
        bucket = int(np.searchsorted(np.cumsum(self.counts), rank))
        middle = self.LOW_MS * self.RATIO ** (bucket + 0.5)
        return min(max(middle, self.low), self.high)

    def summary(self) -> dict[str, float]:
        """p50/p95/p99/max in milliseconds (empty before the first frame)."""
        if not self.count:
            return {}
        return {"p50": self.percentile(50), "p95": self.percentile(95), "p99": self.percentile(99), "max": self.high}


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
    degraded: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def message(self, element: str, kind: str = "stats", counters: dict[str, int] | None = None,
                background_s: float = 0.0) -> dict[str, Any]:
        """The report; ``counters`` are the element's own named totals (Element.count),
        ``background_s`` its worker threads' busy seconds (added to ``busy_s``)."""
        msg = {
            "kind": kind, "element": element, "frames_in": self.frames_in, "frames_out": self.frames_out,
            "packets": self.packets, "busy_s": self.busy_s + background_s, "rss_mb": peak_rss_mb(),
            "first_born": self.first_born, "last_render": self.last_render, "lat": self.latencies_ms,
            "degraded": self.degraded, "counters": dict(counters or {}),
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


RATE_WINDOW_S = 5.0
"""Live per-stage fps is measured over the reports of about this many seconds."""


class Collector:
    """Folds runner reports into live progress, the live stats document and the final
    :class:`RunReport`. Latencies go into a :class:`LatencyHistogram` (constant memory)."""

    def __init__(self, names: list[str], latency_budget_ms: float | None = None) -> None:
        self.names = list(names)
        self.source, self.sink = names[0], names[-1]
        self.latest: dict[str, dict[str, Any]] = {}
        self.latencies = LatencyHistogram()
        self.errors: list[ErrorRecord] = []
        self.done: set[str] = set()
        self.ready: set[str] = set()
        self.caps: Caps | None = None
        self.budget = latency_budget_ms
        self.late = 0
        self.started = monotonic()
        self._history: dict[str, deque[tuple[float, int]]] = {n: deque() for n in self.names}
        self.restarts: dict[str, int] = {}

    def add(self, msg: dict[str, Any]) -> None:
        kind, name = msg.get("kind"), str(msg.get("element"))
        if kind in ("stats", "done"):
            self.latest[name] = msg
            lat = list(msg.get("lat") or ())
            self.latencies.add(lat)
            if self.budget is not None:
                self.late += sum(1 for v in lat if v > self.budget)
            self._remember(name, msg)
            if kind == "done":
                self.done.add(name)
        elif kind == "error":
            self.errors.append(ErrorRecord.from_message(msg))
        elif kind == "ready":
            self.ready.add(name)
        elif kind == "caps" and name == self.source:
            self.caps = caps_from_dict(msg["caps"])

    def _remember(self, name: str, msg: dict[str, Any]) -> None:
        """(arrival time, frames) of recent reports, for a stage's live rate."""
        history = self._history.setdefault(name, deque())
        now = monotonic()
        history.append((now, self._frames(name, msg)))
        while len(history) > 2 and now - history[1][0] >= RATE_WINDOW_S:
            history.popleft()

    def _frames(self, name: str, msg: dict[str, Any]) -> int:
        """Frames a stage handled: a source's out, everyone else's in (a sink emits none)."""
        key = "frames_out" if name == self.source else "frames_in"
        return int(msg.get(key) or 0)

    def restarted(self, element: str) -> None:
        """The supervisor brought a dead stage back (cleanfeed.stream.crews.processes)."""
        self.restarts[element] = self.restarts.get(element, 0) + 1

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
            latency_ms=self.latencies.last,
            late=self.late,
            degraded=int(self._get(self.sink, "degraded")),
            shed=shed_total_of(self.counters()),
        )

    # -- figures shared by the live document and the report -------------------------------
    def counters(self) -> dict[str, int]:
        """Every element's named counters, summed per name over the stages."""
        total: dict[str, int] = {}
        for name in self.names:
            for key, value in (self._get(name, "counters", {}) or {}).items():
                total[str(key)] = total.get(str(key), 0) + int(value)
        return total

    def _stage_rate(self, name: str, final: bool) -> float:
        if final:  # the whole stream: every stage saw the frames over the sink's streaming time
            first = self._get(self.sink, "first_born", None)
            last = self._get(self.sink, "last_render", None)
            frames = self._frames(name, self.latest.get(name, {}))
            return frames / (last - first) if first is not None and last is not None and last > first else 0.0
        history = self._history.get(name) or deque()
        if len(history) < 2 or history[-1][0] <= history[0][0]:
            return 0.0
        return (history[-1][1] - history[0][1]) / (history[-1][0] - history[0][0])

    def stages(self, now: float, final: bool = False) -> dict[str, dict[str, Any]]:
        """Per stage: ``fps`` (frames per second handled: live over the last few seconds,
        at the end over the streaming time), ``frames_in``/``frames_out`` (a source's in is
        what it read, a sink's out what it rendered), ``busy_s``, ``busy_fps`` (frames per
        busy second: what the stage could do alone), ``load`` (busy share of the run so far),
        ``rss_mb`` (peak), ``counters``."""
        elapsed = max(now - self.started, 1e-9)
        out: dict[str, dict[str, Any]] = {}
        for name in self.names:
            msg = self.latest.get(name, {})
            frames = self._frames(name, msg)
            busy = float(msg.get("busy_s") or 0.0)
            frames_in = frames if name == self.source else int(msg.get("frames_in") or 0)
            frames_out = frames if name == self.sink else int(msg.get("frames_out") or 0)
            out[name] = {
                "fps": round(self._stage_rate(name, final), 3),
                "frames_in": frames_in, "frames_out": frames_out, "busy_s": round(busy, 6),
                "busy_fps": round(frames / busy, 3) if busy > 0 else 0.0,
                "load": round(min(busy / elapsed, 1.0), 4), "rss_mb": round(float(msg.get("rss_mb") or 0.0), 1),
                "counters": {str(k): int(v) for k, v in (msg.get("counters") or {}).items()},
                "restarts": self.restarts.get(name, 0),
            }
        return out

    def snapshot(self, now: float) -> dict[str, Any]:
        """The live stats document (see the module doc): same keys as the final one."""
        counters = self.counters()
        frames_out = int(self._get(self.sink, "frames_in"))
        # reports arrive at different times: the source's may be older than a later stage's,
        # and a frame that reached any stage was read
        frames_in = max(self._frames(name, self.latest.get(name, {})) for name in self.names)
        return {
            "state": "running", "final": False, "elapsed_s": round(now - self.started, 3),
            "frames_in": frames_in, "frames_out": frames_out, "in_flight": max(frames_in - frames_out, 0),
            "degraded": int(self._get(self.sink, "degraded")), "late": self.late, "dropped": 0,
            "reconnects": counters.get("reconnects", 0), "fps": round(self.fps(now), 3),
            "latency_ms": {k: round(v, 3) for k, v in self.latencies.summary().items()},
            "latency_budget_ms": self.budget, "counters": counters, "stages": self.stages(now),
            "restarts": sum(self.restarts.values()),
        }

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
        counters = self.counters()
        frames_in, frames_out = int(self._get(self.source, "frames_out")), int(self._get(self.sink, "frames_in"))
        return RunReport(
            frames_in=frames_in,
            frames_out=frames_out,
            packets_out=int(self._get(self.sink, "packets")),
            wall_s=wall_s,
            fps=self.fps(),
            latency_ms=self.latencies.summary(),
            elements=elements,
            peak_rss_mb=max(rss),
            mode=mode,
            interrupted=interrupted,
            error=error,
            caps=self.caps,
            lookahead=lookahead,
            latency_budget_ms=self.budget,
            late_frames=self.late,
            degraded=int(self._get(self.sink, "degraded")),
            reconnects=counters.get("reconnects", 0),
            dropped=frames_in - frames_out,
            counters=counters,
            stages=self.stages(monotonic(), final=True),
            restarts=sum(self.restarts.values()),
        )
