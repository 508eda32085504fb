"""Shedding work under overload: an element with a cheap path takes it *before* it starts the
expensive one, for a frame the full path cannot finish by its deadline.

Each element that sheds keeps a :class:`Shedder` (live runs with a latency budget only). It
measures what the element's full path and its cheap path cost per frame (:class:`CostMeter`,
an exponentially weighted mean of the seconds ``process`` took on each path) and decides, per
frame and before any work, from the frame's slack (``Deadline.due(frame) - now``):

- the full path needs ``lead + full cost``: ``lead`` is how long the frame must wait for the
  element's lookahead (``lookahead`` later frames, arriving every ``1/rate`` seconds, or every
  full cost when the element is slower than the input);
- not shedding: a frame whose slack is less than that takes the cheap path (reason ``late``)
  and the element starts shedding;
- shedding: it goes on taking the cheap path (reason ``backlog`` for a frame that had the slack
  itself) until ``leave_after`` frames in a row had the slack with room to spare
  (``lead + 2 * full cost + 1/rate``): the backlog cleared, the full path comes back. The
  hysteresis keeps the quality from flickering between the paths every frame.

Counters (Element.count, so --stats, Prometheus and the summary line show them): the element
counts ``shed_late`` and ``shed_backlog`` (frames that took the cheap path, by reason) where its
cheap path did something (a frame with a mask); the shedder counts ``shed_entered``
(times shedding began), and the slack distribution at decision time in buckets
``slack_le_0ms``, ``slack_le_100ms``, ``slack_le_250ms``, ``slack_le_500ms``,
``slack_le_1000ms``, ``slack_gt_1000ms``.

:func:`calibrate_warning` is the start-up check: the cheap path's measured cost against the
input's frame interval. It alone would miss the stage that cannot shed: the sink's encoder (x264
veryfast at 1080p is slower than 25 fps on one core of a small CPU). So a stage that measured its
cheap path writes the cost into the meta of the frames it emits (:func:`carry_cheap_cost`), and the
sink's :class:`ChainCheck` times its own first frames and says what the chain's cheapest paths
together can do on this machine (:func:`chain_warning`): each stage runs in its own process, so the
chain goes at the pace of its slowest stage, and no faster than the cores do the sum.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from fractions import Fraction

from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Deadline
from cleanfeed.stream.live import DEFAULT_RATE
from cleanfeed.stream.stats import shed_total_of

__all__ = ["ChainCheck", "CostMeter", "Shedder", "calibrate_warning", "carry_cheap_cost", "chain_warning",
           "shed_total_of", "slack_bucket"]

SLACK_BUCKETS_MS = (0, 100, 250, 500, 1000)
"""Upper bounds of the slack buckets counted at each decision (and one beyond the last)."""
REASONS = ("late", "backlog")
CHEAP_COST = "cheap_cost"
"""Frame meta key: stage name -> [seconds a frame, what] of the cheapest path that stage measured at start."""
SINK_CALIBRATE_FRAMES = 5
"""Frames on which the sink times itself, after the first (which opens the encoder and the file)."""
FORGET = 0.98
"""Per shed frame, the full path's cost estimate shrinks by this factor (it is not measured then)."""


class CostMeter:
    """Seconds per frame of one path: an exponentially weighted mean (``alpha`` per sample),
    None until the first sample; ``samples`` counts them."""

    def __init__(self, alpha: float = 0.2, initial: float | None = None) -> None:
        self.alpha = alpha
        self.value = initial
        self.samples = 0

    def add(self, seconds: float) -> None:
        self.samples += 1
        self.value = seconds if self.value is None else self.value + self.alpha * (seconds - self.value)


def slack_bucket(slack_s: float) -> str:
    ms = slack_s * 1000
    for bound in SLACK_BUCKETS_MS:
        if ms <= bound:
            return f"slack_le_{bound}ms"
    return f"slack_gt_{SLACK_BUCKETS_MS[-1]}ms"


class Shedder:
    """The decision of one element (see the module doc). ``count`` is ``Element.count``."""

    def __init__(self, deadline: Deadline, rate: Fraction, count: Callable[[str, int], None], *,
                 lookahead: int = 0, leave_after: int | None = None) -> None:
        self.deadline = deadline
        self.interval_s = 1.0 / float(rate if rate > 0 else DEFAULT_RATE)
        self.lookahead = lookahead
        self.leave_after = leave_after if leave_after is not None else max(5, round(0.5 / self.interval_s))
        self.full = CostMeter()
        self.cheap = CostMeter()
        self.shedding = False
        self._streak = 0
        self._count = count

    def need_s(self) -> float:
        """Seconds the full path needs from now for a frame arriving now."""
        cost = self.full.value or 0.0
        return self.lookahead * max(self.interval_s, cost) + cost

    def decide(self, frame: VideoFrame, now: float) -> str | None:
        """None: the full path; else the reason the frame takes the cheap path (the element counts it)."""
        due = self.deadline.due(frame)
        if math.isinf(due):
            return None
        slack = due - now
        self._count(slack_bucket(slack), 1)
        need = self.need_s()
        if slack < need:
            self._streak = 0
            if not self.shedding:
                self.shedding = True
                self._count("shed_entered", 1)
            return "late"
        if not self.shedding:
            return None
        if self.full.value is not None:
            # the full path is not measured while shedding: a cost inflated by one bad moment
            # (a preempted call) would keep it shedding forever, so the estimate ages
            self.full.value *= FORGET
        if slack >= need + (self.full.value or 0.0) + self.interval_s:
            self._streak += 1
        else:
            self._streak = 0
        if self._streak >= self.leave_after:
            self.shedding = False
            self._streak = 0
            return None
        return "backlog"


def calibrate_warning(stage: str, cheap_s: float, rate: Fraction, what: str) -> str | None:
    """The start-up warning when even ``stage``'s cheap path (``what``) is slower than the input."""
    fps = float(rate if rate > 0 else DEFAULT_RATE)
    if cheap_s <= 0 or cheap_s * fps <= 1.0:
        return None
    return (f"{stage}: this machine does the cheapest path ({what}) at {1 / cheap_s:.1f} fps "
            f"({cheap_s * 1000:.0f} ms a frame); the input is {fps:g} fps: frames will be late")


def carry_cheap_cost(frame: VideoFrame, stage: str, cheap_s: float, what: str) -> None:
    """Tells the sink what ``stage``'s cheapest path costs (see the module doc)."""
    frame.meta.setdefault(CHEAP_COST, {})[stage] = [cheap_s, what]


def chain_fps(costs: dict[str, tuple[float, str]], cores: int) -> float:
    """Frames a second the chain's cheapest paths can do: the slowest stage's pace, and no more
    than ``cores`` can do of their sum."""
    seconds = [cost for cost, _ in costs.values() if cost > 0]
    if not seconds:
        return math.inf
    return min(1 / max(seconds), max(1, cores) / sum(seconds))


def chain_warning(costs: dict[str, tuple[float, str]], rate: Fraction, cores: int) -> str | None:
    """The start-up warning when the chain's cheapest paths together are slower than the input."""
    fps = float(rate if rate > 0 else DEFAULT_RATE)
    can = chain_fps(costs, cores)
    if can >= fps:
        return None
    parts = ", ".join(f"{stage} {cost * 1000:.0f} ms ({what})" for stage, (cost, what) in costs.items())
    return (f"this machine does the cheapest chain at {can:.1f} fps ({parts} a frame, on {cores} cores); "
            f"the input is {fps:g} fps: frames will be late")


class ChainCheck:
    """The sink's start-up check (see the module doc): :meth:`timed` takes the sink's time for each
    frame until it has :data:`SINK_CALIBRATE_FRAMES`, and the cheap costs the frames carry; it returns
    the warning once, when the chain cannot keep up (None otherwise). ``what`` names the sink's work."""

    def __init__(self, stage: str, what: str, rate: Fraction, cores: int | None = None) -> None:
        self.stage, self.what, self.rate = stage, what, rate
        self.cores = cores if cores is not None else len(os.sched_getaffinity(0))
        self.samples: list[float] = []
        self.costs: dict[str, tuple[float, str]] = {}
        self._seen = 0
        self.said: str | None = None

    @property
    def own_s(self) -> float | None:
        """The sink's cost a frame (the median of its timed frames), once it has them all."""
        if len(self.samples) < SINK_CALIBRATE_FRAMES:
            return None
        return sorted(self.samples)[len(self.samples) // 2]

    def timed(self, frame: VideoFrame, seconds: float) -> str | None:
        if self.said is not None:
            return None
        self._seen += 1
        measured = False
        if self._seen > 1 and len(self.samples) < SINK_CALIBRATE_FRAMES:
            self.samples.append(seconds)
            measured = len(self.samples) == SINK_CALIBRATE_FRAMES
        fresh = False
        for stage, (cost, what) in (frame.meta.get(CHEAP_COST) or {}).items():
            fresh = fresh or stage not in self.costs
            self.costs[stage] = (float(cost), str(what))
        own = self.own_s
        if own is None or not (measured or fresh):
            return None  # checked again only when a stage reports for the first time
        self.said = chain_warning({**self.costs, self.stage: (own, self.what)}, self.rate, self.cores)
        return self.said
