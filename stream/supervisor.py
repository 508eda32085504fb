"""Sees a run's runners to the end, whatever they run in: reports, progress, signals, errors,
escalation, restarts.

:class:`Supervisor` is the loop in the caller's main thread, the same for both modes: it
folds the runners' reports, drives the progress callback, turns the first SIGINT/SIGTERM
into a graceful stop (the source stops reading, EOS flows, the sink finalizes), and
escalates when things do not end: ``grace_s`` after a stop it aborts (every runner leaves,
sinks finalize what they have), ``abort_s`` later it sends SIGTERM, ``term_s`` later
SIGKILL. A second signal aborts at once. What it supervises is a crew
(cleanfeed.stream.crews: threads or processes, one protocol).

A runner that ends without saying it is done died. The crew says whether it can come back
(``Crew.restartable``; only processes can, up to ``max_restarts`` times in a run); one
more death, or one that cannot be undone, stops the run through the usual abort, so the
sink finalizes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from cleanfeed.stream.crews.protocol import Crew
from cleanfeed.stream.signals import SignalTrap, describe_exit, short_exit
from cleanfeed.stream.stats import Collector, Progress

log = logging.getLogger(__name__)


@dataclass
class Deadlines:
    """Seconds between the escalation steps (see the module doc)."""

    grace_s: float = 10.0
    abort_s: float = 5.0
    term_s: float = 2.0


@dataclass
class Supervisor:
    """Drives one run to its end (see the module doc). After :meth:`run`: ``interrupted_by``
    names the signal that stopped it, ``unfinished`` the runners that could not be ended."""

    crew: Crew
    collector: Collector
    trap: SignalTrap | None = None
    progress: Callable[[Progress], None] | None = None
    stats_every_s: float = 0.5
    deadlines: Deadlines = field(default_factory=Deadlines)
    monitor: Callable[[dict[str, Any]], None] | None = None
    """Gets the live stats document (Collector.snapshot) every ``stats_every_s``."""
    interrupted_by: str | None = field(default=None, init=False)
    unfinished: list[str] = field(default_factory=list, init=False)
    stopped_at: float | None = field(default=None, init=False)
    aborted_at: float | None = field(default=None, init=False)
    termed_at: float | None = field(default=None, init=False)
    killed_at: float | None = field(default=None, init=False)
    dead: set[str] = field(default_factory=set, init=False)
    deaths: dict[str, int] = field(default_factory=dict, init=False)

    def run(self) -> None:
        """Returns when every runner has ended (or could not be ended: ``unfinished``)."""
        seen: set[str] = set()
        next_progress = monotonic() + self.stats_every_s
        ok = released = False
        try:
            self.crew.start()
            while True:
                self._absorb(self.crew.poll(0.05))
                if not released and set(self.crew.names) <= self.collector.ready:
                    released = True
                    self.crew.release()
                for name, code in self.crew.exit_codes().items():
                    if name not in seen:
                        seen.add(name)
                        if self._exited(name, code):
                            seen.discard(name)  # on its way back: its new process is watched again
                self._advance_restarts()
                self._react()
                if self.crew.finished():
                    break
                now = monotonic()
                if self._escalate(now):
                    break
                if now >= next_progress:
                    next_progress = now + self.stats_every_s
                    if self.progress is not None:
                        self.progress(self.collector.progress(now))
                    if self.monitor is not None:
                        self.monitor(self.collector.snapshot(now))
            self._absorb_tail()
            if self.progress is not None:
                self.progress(self.collector.progress(monotonic()))
            ok = True
        finally:
            if not ok:  # the progress callback raised, or worse: still leave nothing behind
                self._wind_down()
            self.crew.close()

    def _absorb(self, messages: list[dict[str, Any]]) -> None:
        for msg in messages:
            self.collector.add(msg)

    def _absorb_tail(self) -> None:
        """Reports still in flight when the last runner ended."""
        end = monotonic() + 0.5
        while monotonic() < end and not set(self.crew.names) <= self.collector.done | self.dead:
            self._absorb(self.crew.poll(0.05))
        self._absorb(self.crew.poll(0))

    def _exited(self, name: str, code: int) -> bool:
        """A runner ended; True when the crew is bringing it back (see the module doc)."""
        end = monotonic() + 0.5
        while name not in self.collector.done and monotonic() < end:
            self._absorb(self.crew.poll(0.05))
        if name in self.collector.done:
            return False
        if self.killed_at is not None or self.termed_at is not None:
            self.dead.add(name)
            return False
        message = describe_exit(code)
        limit = self.crew.max_restarts
        if limit > 0 and self.aborted_at is None and not self.collector.errors:
            deaths = self.deaths[name] = self.deaths.get(name, 0) + 1
            refusal = self.crew.restartable(name)
            if refusal is None and deaths <= limit:
                log.warning("%s: %s; restarting it (%d of at most %d)", name, message, deaths, limit)
                self.crew.restart(name)
                self.collector.restarted(name)
                return True
            if refusal is None:
                message = f"stage {name} died {deaths} times (last: {short_exit(code)}); stopping"
            else:
                message = f"{message} ({refusal})"
        self.dead.add(name)
        self.collector.fail(name, message)
        self._abort()
        return False

    def _advance_restarts(self) -> None:
        for name, message in self.crew.advance_restarts():
            self.dead.add(name)
            self.collector.fail(name, message)
            self._abort()

    def _react(self) -> None:
        signals = self.trap.count if self.trap is not None else 0
        if self.interrupted_by is None:
            self.interrupted_by = (self.trap.first if self.trap is not None else None) or self.crew.signalled()
        if (self.interrupted_by or self.collector.errors) and self.stopped_at is None:
            self.stopped_at = monotonic()
            self.crew.request_stop()
        if signals >= 2:
            self._abort()

    def _abort(self) -> None:
        if self.aborted_at is None:
            self.stopped_at = self.stopped_at or monotonic()
            self.aborted_at = monotonic()
            self.crew.request_abort()

    def _escalate(self, now: float) -> bool:
        """Moves to the next step when one is overdue; True when waiting is pointless."""
        d = self.deadlines
        if self.aborted_at is None:
            if self.stopped_at is not None and now - self.stopped_at > d.grace_s:
                self._abort()
            return False
        if self.termed_at is None:
            if now - self.aborted_at > d.abort_s:
                self.termed_at = now
                self.crew.terminate()
            return False
        if self.killed_at is None:
            if now - self.termed_at > d.term_s:
                self.killed_at = now
                self.crew.kill()
            return False
        if now - self.killed_at > d.term_s:
            self.unfinished = [n for n in self.crew.names if n not in self.collector.done]
            return True
        return False

    def _wind_down(self) -> None:
        self.crew.request_abort()
        end = monotonic() + self.deadlines.abort_s
        while not self.crew.finished() and monotonic() < end:
            self._absorb(self.crew.poll(0.05))
        if not self.crew.finished():
            self.crew.terminate()
            end = monotonic() + self.deadlines.term_s
            while not self.crew.finished() and monotonic() < end:
                self._absorb(self.crew.poll(0.05))
        self.crew.kill()

