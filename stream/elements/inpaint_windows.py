"""Where E2FGVI's windows run for the `inpaint` element: inline, or in a thread of their own.

A window is one long call (11 frames through the generator: milliseconds on a GPU, seconds on
a CPU). Inline, the element's runner waits inside that call, and frames whose deadline falls
during it leave late. Live runs with a deadline therefore run the windows in a background
thread: the runner stays free to let held frames go on time (covered by the fallback when
their window has not finished), and the window's answer for a frame that left already is
dropped. Torch and NumPy release the GIL while they compute, so the two threads overlap.

Both kinds take frames with a global index and hand back ``(index, patch)`` pairs; a patch
is the sliding inpainter's answer for one frame (``engines.e2fgvi.sliding``).

When a background engine falls behind for good (its queue longer than ``max_backlog``
frames: a CPU far slower than the stream), waiting would only grow memory and produce answers
for frames that left long ago, so the queued frames are dropped and the engine starts afresh
at the next frame (``resyncs`` counts it); the frames in between leave covered on their
deadlines.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from stream.errors import ElementError

Answer = tuple[int, Any]
"""(global frame index, the sliding inpainter's patch for it)."""


class InlineWindows:
    """Windows run inside ``submit``: exact and deterministic (files, and live runs without a budget)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._ready: list[Answer] = []
        self.resyncs = 0

    def submit(self, index: int, rgb: np.ndarray, mask: np.ndarray) -> None:
        self._ready += [(p.index, p) for p in self.engine.push(rgb, mask)]

    def ready(self) -> list[Answer]:
        out, self._ready = self._ready, []
        return out

    def finish(self) -> Iterator[Answer]:
        yield from self.ready()
        for patch in self.engine.finish():
            yield patch.index, patch

    def statistics(self) -> dict[str, int]:
        return {"windows_run": self.engine.windows_run, "windows_skipped": self.engine.windows_skipped}

    def close(self) -> None:
        self.engine = None


_FINISH, _STOP, _DONE = "finish", "stop", "done"


class BackgroundWindows:
    """Windows run in a daemon thread; ``make_engine()`` builds a fresh sliding inpainter
    (at the start, and after a resync). The caller copies what it submits: the frame may
    leave, and its shared-memory slot be reused, while the thread still reads it."""

    def __init__(self, make_engine: Callable[[], Any], name: str, max_backlog: int,
                 on_resync: Callable[[str], None] | None = None) -> None:
        self._make = make_engine
        self.max_backlog = max_backlog
        self._on_resync = on_resync
        self.resyncs = 0
        self._inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._outbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._error: BaseException | None = None
        self._name = name
        self._windows = {"windows_run": 0, "windows_skipped": 0}
        self._finish_requested = False
        self.done = False  # the thread has ended (after request_finish, or on an error)
        self._submitted = self._dropped = 0  # counted by the caller's thread
        self._pushed = 0  # counted by the window thread
        self._thread = threading.Thread(target=self._run, name=f"{name}-windows", daemon=True)
        self._thread.start()

    def submit(self, index: int, rgb: np.ndarray, mask: np.ndarray) -> None:
        self._raise()
        if self._inbox.qsize() >= self.max_backlog:
            self._drop_queued()
            self.resyncs += 1
            if self._on_resync is not None:
                self._on_resync("e2fgvi_resyncs")
            self._inbox.put(("resync",))
        self._inbox.put(("frame", index, rgb, mask))
        self._submitted += 1

    @property
    def backlog(self) -> int:
        """Frames submitted that the thread has not pushed through (nor dropped) yet."""
        return self._submitted - self._dropped - self._pushed

    def ready(self) -> list[Answer]:
        out: list[Answer] = []
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                break
            self._take(item)
            if item[0] == "answer":
                out.append((item[1], item[2]))
        self._raise()
        return out

    def _take(self, item: tuple[Any, ...]) -> None:
        if item[0] in (_DONE, "error"):
            self.done = True

    def request_finish(self) -> None:
        """End of stream: the thread runs what is queued and the engine's last windows, then
        stops; their answers come through :meth:`ready` and ``done`` turns true."""
        if not self._finish_requested:
            self._finish_requested = True
            self._inbox.put((_FINISH,))

    def finish(self) -> Iterator[Answer]:
        """:meth:`request_finish`, then every answer until the thread is done (blocks)."""
        self.request_finish()
        while not self.done:
            item = self._outbox.get()
            self._take(item)
            if item[0] == "answer":
                yield item[1], item[2]
        self._raise()

    def statistics(self) -> dict[str, int]:
        return dict(self._windows)

    def close(self) -> None:
        self._drop_queued()
        self._inbox.put((_STOP,))
        self._thread.join(timeout=30)

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        engine, base, done = None, 0, {"windows_run": 0, "windows_skipped": 0}
        try:
            while True:
                item = self._inbox.get()
                kind = item[0]
                if kind == "frame":
                    if engine is None:
                        engine, base = self._make(), item[1]
                    for patch in engine.push(item[2], item[3]):
                        self._outbox.put(("answer", base + patch.index, patch))
                    self._pushed += 1
                elif kind == "resync":
                    engine = self._retire(engine, done)
                elif kind == _FINISH:
                    if engine is not None:
                        for patch in engine.finish():
                            self._outbox.put(("answer", base + patch.index, patch))
                    self._retire(engine, done)
                    self._outbox.put((_DONE,))
                    return
                elif kind == _STOP:
                    return
                if engine is not None:
                    self._windows = {k: done[k] + getattr(engine, k) for k in done}
        except BaseException as err:  # noqa: BLE001  (handed to the element's thread, raised there)
            self._error = err
            self._outbox.put(("error",))

    def _retire(self, engine: Any, done: dict[str, int]) -> None:
        """Adds a finished engine's window counts to the totals; the engine is dropped."""
        if engine is not None:
            for key in done:
                done[key] += getattr(engine, key)
        self._windows = dict(done)
        return None

    def _drop_queued(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._dropped += item[0] == "frame"

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise ElementError(self._name, f"E2FGVI window failed: {type(err).__name__}: {err}") from err
