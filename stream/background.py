"""One worker thread that runs an element's engine calls in order, so the element's runner stays
free to let frames go on their deadlines while a call computes.

An engine call (a DeAOT frame, an E2FGVI window) can take longer than a frame's slack; inline,
the runner waits inside it and the frames it holds leave late. An element that must be punctual
submits its calls here instead and picks up their answers as they come (``ready``). Torch and
NumPy release the GIL while they compute, so the two threads overlap.

Calls run in the order submitted, each in this thread only (an engine's state is touched by one
thread). A call returns a list of answers. ``drop_queued`` removes the calls not started yet
that may be dropped (an engine too far behind); ``request_finish`` queues a last call and ends
the thread after it; an exception in a call ends the thread and is raised, as an ElementError
naming the element, by the next ``submit``/``ready``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from cleanfeed.errors import ElementError

Call = Callable[[], list[Any]]

_STOP = object()


class Background:
    """Runs submitted calls in one daemon thread named ``{element}-{what}``."""

    def __init__(self, element: str, what: str) -> None:
        self.element, self.what = element, what
        self.done = False  # the thread has ended (after request_finish, or on an error)
        self._inbox: queue.Queue[tuple[Call, bool] | object] = queue.Queue()
        self._outbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._error: BaseException | None = None
        self._finishing = False
        self._submitted = self._dropped = 0  # counted by the caller's thread
        self._handled = 0  # counted by the worker thread
        self.busy_s = 0.0  # seconds inside calls so far (written by the worker thread)
        self._thread = threading.Thread(target=self._run, name=f"{element}-{what}", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Calls submitted that have not finished (nor been dropped) yet."""
        return self._submitted - self._dropped - self._handled

    def submit(self, call: Call, droppable: bool = True) -> None:
        self._raise()
        self._inbox.put((call, droppable))
        self._submitted += 1

    def drop_queued(self) -> int:
        """Removes the droppable calls not started yet (the others stay, in order); returns how many."""
        kept: list[tuple[Call, bool] | object] = []
        dropped = 0
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple) and item[1]:
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self._inbox.put(item)
        self._dropped += dropped
        return dropped

    def ready(self) -> list[Any]:
        """The answers of the calls finished since the last look, in order."""
        out: list[Any] = []
        while True:
            try:
                kind, value = self._outbox.get_nowait()
            except queue.Empty:
                break
            self._take(kind, value, out)
        self._raise()
        return out

    def request_finish(self, last: Call | None = None) -> None:
        """End of stream: runs what is queued, then ``last``, then the thread ends (``done``)."""
        if not self._finishing:
            self._finishing = True
            if last is not None:
                self.submit(last, droppable=False)
            self._inbox.put(_STOP)

    def finish(self, last: Call | None = None) -> Iterator[Any]:
        """:meth:`request_finish`, then every answer until the thread has ended (blocks)."""
        self.request_finish(last)
        while not self.done:
            kind, value = self._outbox.get()
            got: list[Any] = []
            self._take(kind, value, got)
            yield from got
        self._raise()

    def close(self) -> None:
        """Drops what is queued and ends the thread (waits for the call under way)."""
        self.drop_queued()
        if not self.done:
            self._inbox.put(_STOP)
        self._thread.join(timeout=30)

    def _take(self, kind: str, value: Any, out: list[Any]) -> None:
        if kind == "answers":
            out.extend(value)
        else:  # "ended": cleanly or on an error
            self.done = True

    def _run(self) -> None:
        try:
            while True:
                item = self._inbox.get()
                if item is _STOP:
                    return
                call, _ = item  # type: ignore[misc]
                started = time.monotonic()
                answers = call()
                self.busy_s += time.monotonic() - started
                self._handled += 1
                if answers:
                    self._outbox.put(("answers", answers))
        except BaseException as err:  # noqa: BLE001  (raised in the element's thread, see _raise)
            self._error = err
        finally:
            self._outbox.put(("ended", None))

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise ElementError(self.element, f"{self.what} failed: {type(err).__name__}: {err}") from err
