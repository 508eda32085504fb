"""Threads mode: every runner in a thread of the caller's process, links are bounded queues
of objects. Meant for a debugger (one process, breakpoints anywhere); the rules are those of
process mode. Threads cannot die one by one, so there is nothing to restart.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from cleanfeed.errors import CleanfeedError, ElementError
from cleanfeed.stream.buffers import Item
from cleanfeed.stream.element import Element
from cleanfeed.stream.links.queues import QueueInlet, QueueOutlet, QueueReporter
from cleanfeed.stream.live import LivePlan
from cleanfeed.stream.ports import HeapSlots, ThreadControl
from cleanfeed.stream.runner import ElementRunner

QUEUE_SIZE = 2


class ThreadCrew:
    """Every runner in a thread of this process; links are bounded queues of objects."""

    max_restarts = 0

    def __init__(self, elements: list[Element], stats_every_s: float = 0.5, plans: list[LivePlan] | None = None) -> None:
        self.names = [e.name for e in elements]
        for element in elements:  # before any thread starts, as processes do before the source is released
            try:
                element.prepare()
            except CleanfeedError:
                raise
            except Exception as exc:
                raise ElementError(element.name, f"{type(exc).__name__}: {exc}") from exc
        self.control = ThreadControl()
        self._reports: queue.Queue[dict[str, Any]] = queue.Queue()
        links: list[queue.Queue[Item]] = [queue.Queue(maxsize=QUEUE_SIZE) for _ in elements[1:]]
        reporter = QueueReporter(self._reports)
        self._threads = []
        for i, el in enumerate(elements):
            runner = ElementRunner(
                el,
                inlet=QueueInlet(links[i - 1]) if i > 0 else None,
                outlet=QueueOutlet(links[i], self.control) if i < len(links) else None,
                slots=HeapSlots(), control=self.control, reporter=reporter, stats_every_s=stats_every_s,
                live=plans[i] if plans else None,
            )
            self._threads.append(threading.Thread(target=runner.run, name=f"cleanfeed:{el.name}", daemon=True))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def release(self) -> None:
        """Threads start together; nothing to wait for."""

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            out.append(self._reports.get(timeout=timeout) if timeout > 0 else self._reports.get_nowait())
            while True:
                out.append(self._reports.get_nowait())
        except queue.Empty:
            return out

    def exit_codes(self) -> dict[str, int]:
        return {name: 0 for name, t in zip(self.names, self._threads, strict=True) if not t.is_alive()}

    def finished(self) -> bool:
        return not any(t.is_alive() for t in self._threads)

    def signalled(self) -> str | None:
        """Threads share the supervisor's signals."""
        return None

    def request_stop(self) -> None:
        self.control.request_stop()

    def request_abort(self) -> None:
        self.control.request_abort()

    def terminate(self) -> None:
        """Threads cannot be told twice; abort is all there is."""

    def kill(self) -> None:
        """Threads cannot be killed; the supervisor stops waiting for them instead."""

    def close(self) -> None:
        for t in self._threads:
            t.join(timeout=0.1)

    # -- restarts: none ---------------------------------------------------------------------
    def restartable(self, name: str) -> str | None:
        return "threads cannot die one by one"

    def restart(self, name: str) -> None:
        raise RuntimeError(f"{name}: threads cannot be restarted")

    def advance_restarts(self) -> list[tuple[str, str]]:
        return []
