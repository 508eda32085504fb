"""How late this machine runs things during a test, for real-time bounds derived from the run.

A shared 2-core machine under load delays every process a frame crosses; a bound like "every
frame within budget + 100 ms" then fails for reasons of the machine, not the code. The probe
sleeps in short steps in a thread and keeps the worst oversleep seen while the run lasted: the
scheduling delay one hop of the pipeline may suffer too. Bounds add it once per hop, and hold
only while the machine was at rest (a worst oversleep under :data:`REST_MS`): a loaded one
also shares the CPU every stage needs, which a sleeper barely sees (with two busy loops beside
a run on two cores: 20 ms of oversleep, 400 ms of extra latency). A busy run skips its
real-time bounds with a warning and keeps asserting everything else.
"""

from __future__ import annotations

import threading
import time
import warnings
from types import TracebackType

STEP_S = 0.005
REST_MS = 12.0


class LagProbe:
    """``with LagProbe() as lag: run()`` then ``lag.worst_ms``: the worst oversleep during the run."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, name="lag-probe", daemon=True)

    def _probe(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            time.sleep(STEP_S)
            self.worst_ms = max(self.worst_ms, (time.monotonic() - started - STEP_S) * 1000)

    def __enter__(self) -> LagProbe:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def slack_ms(self, hops: int, floor_ms: float) -> float:
        """What the machine may add to a frame's latency: ``floor_ms`` at rest, more the later it ran."""
        return floor_ms + hops * self.worst_ms

    def at_rest(self, what: str) -> bool:
        """Whether the run had the machine to itself enough to hold ``what``; warns when not."""
        if self.worst_ms < REST_MS:
            return True
        warnings.warn(f"machine busy (a {STEP_S * 1000:.0f} ms sleep overslept by {self.worst_ms:.0f} ms): "
                      f"{what} not checked", stacklevel=2)
        return False
