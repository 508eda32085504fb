"""Live runs: what each runner of a live run must do (:class:`LivePlan`), the check that a
latency budget can hold the chain, and the pacing of a file read as if it were a camera.

A source reading a non-live input (a file, testsrc) is paced to its timestamps, like a
camera; with a latency budget, every later element gets ``element.deadline``
(cleanfeed.stream.element.Deadline: the budget, less the margin of what comes after it) before
``start()``, the source's runner refuses a budget smaller than the chain's lookahead plus the
encoder's delay as soon as ``open()`` told the rate (PropertyError with the numbers, before
any frame is read), and the runner of a filter holding frames (``held_max > 0``) waits for
input in slices of ``EXPIRE_POLL_S`` and calls ``Filter.expire(now)`` between them and after
every ``process`` (``now`` moved forward by how long ``process`` has been taking), so held
frames leave on time even when no input comes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from time import monotonic

from cleanfeed.errors import PropertyError
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Deadline
from cleanfeed.stream.ports import WAIT_S

EXPIRE_POLL_S = 0.005
"""How often a filter with a deadline gets ``expire`` called while no input arrives."""
HOP_MARGIN_S = 0.015
"""Kept per later hop for passing the frame on (and the sink's own rendering)."""
DEFAULT_RATE = Fraction(25)
"""Frames per second assumed where the caps do not say (rate 0)."""


@dataclass(frozen=True)
class LivePlan:
    """What one runner of a live run must do; plain values, so it travels to a child process.

    ``live``: the run was asked to be live (--live). ``pace``: a source paces a non-live input
    to its timestamps. ``budget_ms`` (None: no
    deadlines) with ``label``, how the user gave it (``--max-latency``). ``after_frames`` and
    ``after_hops``: frames held after this element (later lookaheads + the encoder's delay)
    and hops to the sink, from which the runner derives the element's Deadline margin once it
    knows the rate. ``fail_on_late``: the start-up check of an element's cheap path raises
    LateError instead of warning (cleanfeed.stream.shedding). ``check`` (the source's runner): refuse a budget smaller than ``chain_frames``
    (every lookahead) plus ``encoder_frames`` (``encoder`` names it) at the stream's rate.
    """

    live: bool = False
    pace: bool = False
    budget_ms: float | None = None
    label: str = "latency"
    after_frames: int = 0
    after_hops: int = 0
    check: bool = False
    chain_frames: int = 0
    encoder_frames: int = 0
    encoder: str = ""
    fail_on_late: bool = False

    def deadline(self, rate: Fraction) -> Deadline | None:
        if self.budget_ms is None:
            return None
        fps = float(rate if rate > 0 else DEFAULT_RATE)
        return Deadline(self.budget_ms / 1000, self.after_frames / fps + self.after_hops * HOP_MARGIN_S)

    def refuse_short_budget(self, rate: Fraction) -> None:
        """PropertyError when the budget cannot hold the lookahead and the encoder's delay."""
        if self.budget_ms is None:
            return
        refuse_short_budget(self.budget_ms, self.label, rate, self.chain_frames, self.encoder_frames, self.encoder)


def refuse_short_budget(budget_ms: float, label: str, rate: Fraction, chain_frames: int, encoder_frames: int,
                        encoder: str) -> None:
    """The check behind :meth:`LivePlan.refuse_short_budget`, also run before a run when the
    source's rate is known up front."""
    fps = rate if rate > 0 else DEFAULT_RATE
    held_ms = float(chain_frames / fps * 1000)
    encoder_ms = float(encoder_frames / fps * 1000)
    if budget_ms >= held_ms + encoder_ms:
        return
    parts = f"the chain's lookahead {chain_frames} frames = {held_ms:g} ms at {float(fps):g} fps"
    if encoder_frames:
        parts += f" + {encoder}'s {encoder_frames} frames = {encoder_ms:g} ms"
        if "zerolatency" not in encoder:
            parts += " (tune=zerolatency holds none)"
    raise PropertyError(f"{label} {budget_ms:g} ms is less than {parts}")



# -- live pacing ---------------------------------------------------------------------------
class Pacer:
    """Holds a file's frames back until their timestamp comes, as a camera would deliver them
    (``ffmpeg -re``): the first frame sets the clock; a source that falls behind is not made
    to catch up (its frames leave as soon as they are read)."""

    def __init__(self) -> None:
        self._origin: tuple[float, float] | None = None  # (monotonic, stream seconds)

    def wait(self, frame: VideoFrame, check_stop: Callable[[], None]) -> None:
        if frame.pts is None:
            return
        at = float(frame.pts * frame.time_base)
        if self._origin is None:
            self._origin = (monotonic(), at)
            return
        due = self._origin[0] + at - self._origin[1]
        while True:
            left = due - monotonic()
            if left <= 0:
                return
            check_stop()
            time.sleep(min(left, WAIT_S))

