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
input's frame interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Deadline
from cleanfeed.stream.live import DEFAULT_RATE
from cleanfeed.stream.stats import shed_total_of

__all__ = ["CostMeter", "Shedder", "calibrate_warning", "shed_total_of", "slack_bucket"]

SLACK_BUCKETS_MS = (0, 100, 250, 500, 1000)
"""Upper bounds of the slack buckets counted at each decision (and one beyond the last)."""
REASONS = ("late", "backlog")
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
