"""Signals as the supervisor sees them: the ones it counts while a run goes, and how a
child's death reads to a user."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class SignalTrap:
    """Counts SIGINT/SIGTERM while a pipeline runs; handlers only where Python allows them
    (the main thread), restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.first is None:
            self.first = signal.Signals(signum).name

    def __enter__(self) -> SignalTrap:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"process died from {name}"
    return f"process exited with code {code} before the end of stream"


def short_exit(code: int) -> str:
    """How a process ended, in a few words: "killed by SIGKILL", "exit code 3"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"

