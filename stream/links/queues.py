"""Links between threads (threads mode): bounded queues of objects, nothing serialized."""

from __future__ import annotations

import queue
from typing import Any

from cleanfeed.stream.buffers import Item
from cleanfeed.stream.ports import WAIT_S, Aborted, Control


class QueueInlet:
    """The receiving end of a bounded queue (threads mode): items travel as objects."""

    def __init__(self, link: queue.Queue[Item]) -> None:
        self._queue = link

    def get(self, timeout: float) -> Item | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self, flush: bool) -> None:
        """Nothing to release."""


class QueueOutlet:
    """The sending end of a bounded queue; blocks while full, unless the run is aborted."""

    def __init__(self, link: queue.Queue[Item], control: Control) -> None:
        self._queue = link
        self._control = control

    def put(self, item: Item) -> None:
        while True:
            if self._control.aborting:
                raise Aborted()
            try:
                self._queue.put(item, timeout=WAIT_S)
                return
            except queue.Full:
                continue

    def service(self) -> None:
        """Threads are not restarted: nothing to replay."""

    def close(self, flush: bool) -> None:
        """Nothing to release."""


class QueueReporter:
    """Runner reports into the supervisor's queue (threads mode)."""

    def __init__(self, reports: queue.Queue[dict[str, Any]]) -> None:
        self._queue = reports

    def send(self, message: dict[str, Any]) -> None:
        self._queue.put(message)

    def close(self) -> None:
        """Nothing to release."""
