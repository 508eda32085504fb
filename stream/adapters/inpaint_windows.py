"""Where E2FGVI's windows run for the `inpaint` element: inline, or in a thread of their own.

A window is one long call (11 frames through the generator: milliseconds on a GPU, seconds on
a CPU). Inline, the element's runner waits inside that call, and frames whose deadline falls
during it leave late. Live runs with a deadline therefore run the windows in a background
thread: the runner stays free to let held frames go on time (covered by the fallback when
their window has not finished), and the window's answer for a frame that left already is
dropped. Torch and NumPy release the GIL while they compute, so the two threads overlap.

Both kinds take frames with a global index and hand back ``(index, patch)`` pairs; a patch
is the sliding inpainter's answer for one frame (``cleanfeed.engines.e2fgvi.sliding``).

When a background engine falls behind for good (``max_backlog`` frames not yet through it: a
CPU far slower than the stream), waiting would only grow memory and produce answers
for frames that left long ago, so the queued frames are dropped and the engine starts afresh
at the next frame (``resyncs`` counts it); the frames in between leave covered on their
deadlines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cleanfeed.stream.background import Background

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


class BackgroundWindows:
    """Windows run in a thread of their own (stream/background.py); ``make_engine()`` builds a
    fresh sliding inpainter (at the start, and after a resync). The caller copies what it
    submits: the frame may leave, and its shared-memory slot be reused, while the thread still
    reads it. The engine and its first frame's index are touched by the thread only."""

    def __init__(self, make_engine: Callable[[], Any], name: str, max_backlog: int,
                 on_resync: Callable[[str], None] | None = None) -> None:
        self._make = make_engine
        self.max_backlog = max_backlog
        self._on_resync = on_resync
        self.resyncs = 0
        self._worker = Background(name, "E2FGVI window")
        self._engine: Any = None  # the thread's
        self._base = 0
        self._retiring = False
        self._done_counts = {"windows_run": 0, "windows_skipped": 0}  # of engines retired
        self._windows = dict(self._done_counts)

    @property
    def backlog(self) -> int:
        """Frames submitted that the thread has not pushed through (nor dropped) yet."""
        return self._worker.backlog

    @property
    def done(self) -> bool:
        return self._worker.done

    @property
    def busy_s(self) -> float:
        """Seconds the windows have computed in the thread so far."""
        return self._worker.busy_s

    def submit(self, index: int, rgb: np.ndarray, mask: np.ndarray) -> None:
        if self._worker.backlog >= self.max_backlog:
            self._worker.drop_queued()
            self.resyncs += 1
            if self._on_resync is not None:
                self._on_resync("e2fgvi_resyncs")
            if not self._retiring:  # one restart covers every drop made before it runs
                self._retiring = True
                self._worker.submit(self._retire, droppable=False)
        self._worker.submit(lambda: self._push(index, rgb, mask))

    def ready(self) -> list[Answer]:
        return self._worker.ready()

    def request_finish(self) -> None:
        """End of stream: the thread runs what is queued and the engine's last windows, then
        stops; their answers come through :meth:`ready` and ``done`` turns true."""
        self._worker.request_finish(self._last_windows)

    def finish(self) -> Iterator[Answer]:
        """:meth:`request_finish`, then every answer until the thread is done (blocks)."""
        yield from self._worker.finish(self._last_windows)

    def statistics(self) -> dict[str, int]:
        return dict(self._windows)

    def close(self) -> None:
        self._worker.close()

    # -- run by the thread ------------------------------------------------------------------
    def _push(self, index: int, rgb: np.ndarray, mask: np.ndarray) -> list[Answer]:
        if self._engine is None:
            self._engine, self._base = self._make(), index
        answers = [(self._base + p.index, p) for p in self._engine.push(rgb, mask)]
        self._count(self._engine)
        return answers

    def _last_windows(self) -> list[Answer]:
        if self._engine is None:
            return []
        answers = [(self._base + p.index, p) for p in self._engine.finish()]
        self._retire()
        return answers

    def _retire(self) -> list[Answer]:
        """A resync: the engine goes (its counts kept); the next frame starts a fresh one."""
        if self._engine is not None:
            self._count(self._engine)
            self._done_counts = dict(self._windows)
            self._engine = None
        self._retiring = False
        return []

    def _count(self, engine: Any) -> None:
        self._windows = {k: self._done_counts[k] + getattr(engine, k) for k in self._done_counts}
