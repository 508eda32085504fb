"""What a fleet shows of its feeds: one row per feed in a table, the same figures in the fleet's
stats document (``--stats``) and on its Prometheus endpoint with a ``feed`` label, so the three
never disagree.

The fleet document: ``{"final": bool, "elapsed_s": float, "ray_start_s": float | None (seconds
Ray took to start or join; None before, or when no feed needed it), "counts": {state: n}, "feeds": {name:
{state, restarts, error, pid, node, input, output, started_s, link, frames_in, frames_out, fps,
latency_ms, stats}}}``; ``stats`` is the feed's own latest run stats document
(cleanfeed.stream.stats), ``pid`` its `cleanfeed run` process on ``node`` while it runs. A split
feed's row is its models part's (the one that writes the output): its stats, process and node,
and ``link`` the endpoint that part receives on (None for a feed in one part).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cleanfeed.stream.metrics import TOTALS


class State(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    DONE = "done"
    SKIPPED = "skipped"
    """A batch output that was already complete (a re-run resumes after it)."""
    STOPPED = "stopped"
    """Ended by the fleet's stop (Ctrl+C, SIGTERM): outputs finalized."""
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in (State.DONE, State.SKIPPED, State.STOPPED, State.FAILED)

    @property
    def clean(self) -> bool:
        """Ended the way it should: a failure is the only unclean end."""
        return self in (State.DONE, State.SKIPPED, State.STOPPED)


@dataclass
class FeedState:
    name: str
    input: str
    output: str
    state: State = State.PENDING
    restarts: int = 0
    error: str | None = None
    pid: int | None = None
    node: str | None = None
    started_s: float | None = None
    """Fleet time the current try's process started."""
    link: str | None = None
    """A split feed's endpoint for its current try (where its models part receives)."""
    stats: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        s = self.stats
        return {"state": str(self.state), "restarts": self.restarts, "error": self.error, "pid": self.pid,
                "node": self.node, "input": self.input, "output": self.output, "started_s": self.started_s,
                "link": self.link,
                "frames_in": int(s.get("frames_in") or 0), "frames_out": int(s.get("frames_out") or 0),
                "fps": float(s.get("fps") or 0.0), "latency_ms": s.get("latency_ms") or {}, "stats": s}


def document(feeds: Mapping[str, FeedState], elapsed_s: float, final: bool) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for feed in feeds.values():
        counts[str(feed.state)] = counts.get(str(feed.state), 0) + 1
    return {"final": final, "elapsed_s": round(elapsed_s, 3), "counts": counts,
            "feeds": {name: feed.row() for name, feed in feeds.items()}}


COLUMNS = ("feed", "state", "restarts", "frames in", "frames out", "fps", "p95 ms", "error")


def rows(doc: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The table's cells, one tuple per feed in :data:`COLUMNS` order."""
    out = []
    for name, feed in doc["feeds"].items():
        p95 = (feed.get("latency_ms") or {}).get("p95")
        out.append((name, feed["state"], str(feed["restarts"]), str(feed["frames_in"]), str(feed["frames_out"]),
                    f"{feed['fps']:.1f}", f"{p95:.0f}" if p95 is not None else "", feed["error"] or ""))
    return out


def text_table(doc: Mapping[str, Any]) -> str:
    """The table as plain aligned text (for logs and terminals without rich)."""
    table = [COLUMNS, *rows(doc)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)).rstrip()
                     + (f"  {r[-1]}" if r[-1] else "") for r in table)


class FleetFigures:
    """A prometheus-client collector: the run figures of every feed with a ``feed`` label, plus
    each feed's restarts and state; give it to cleanfeed.stream.metrics.MetricsServer."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"feeds": {}}

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        feeds = (self.doc.get("feeds") or {}).items()  # one reference read: updates replace the whole map
        for key, doc_text in TOTALS:
            family = CounterMetricFamily(f"cleanfeed_{key}", doc_text, labels=["feed"])
            for name, feed in feeds:
                family.add_metric([name], float((feed.get("stats") or {}).get(key) or 0))
            yield family
        fps = GaugeMetricFamily("cleanfeed_fps", "Frames out per second of streaming time", labels=["feed"])
        running = GaugeMetricFamily("cleanfeed_running", "1 while the feed's pipeline runs", labels=["feed"])
        restarts = CounterMetricFamily("cleanfeed_feed_restarts", "Times the fleet restarted the feed", labels=["feed"])
        state = GaugeMetricFamily("cleanfeed_feed_state", "1 for the feed's current state", labels=["feed", "state"])
        latency = GaugeMetricFamily("cleanfeed_latency_seconds", "End-to-end frame latency quantiles (1 = max)",
                                    labels=["feed", "quantile"])
        for name, feed in feeds:
            fps.add_metric([name], float(feed.get("fps") or 0))
            running.add_metric([name], 1.0 if feed.get("state") == State.RUNNING else 0.0)
            restarts.add_metric([name], float(feed.get("restarts") or 0))
            state.add_metric([name, str(feed.get("state"))], 1.0)
            for key, label in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"), ("max", "1")):
                value = (feed.get("latency_ms") or {}).get(key)
                if value is not None:
                    latency.add_metric([name, label], float(value) / 1000)
        yield from (fps, running, restarts, state, latency)
