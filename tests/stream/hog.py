"""A CPU hog for overload tests and benches: one process spinning on one core until stopped.

``with CpuHog(): run()`` starts it (a plain multiprocessing Process, so the session's leak check
sees it) and always ends it, by its own pid, on the way out.
"""

from __future__ import annotations

import multiprocessing
from types import TracebackType


def _spin(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    n = 0
    while not stop.is_set():
        for _ in range(100_000):
            n += 1


class CpuHog:
    def __init__(self, processes: int = 1) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._procs = [ctx.Process(target=_spin, args=(self._stop,), name="cf-test-hog", daemon=True)
                       for _ in range(processes)]

    def __enter__(self) -> CpuHog:
        for proc in self._procs:
            proc.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        for proc in self._procs:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
