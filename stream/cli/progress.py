"""A progress bar on a terminal (frames, fps, latency), silence when stderr is not one."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class ProgressBar:
    """Callable for Pipeline.run(progress=...); a no-op when stderr is piped or quiet is set."""

    def __init__(self, quiet: bool = False) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._bar: tqdm | None = None

    def __call__(self, progress: Any) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = tqdm(total=progress.frames_total, unit="frame", dynamic_ncols=True, file=sys.stderr)
        self._bar.n = progress.frames_out
        latency = "-" if progress.latency_ms is None else f"{progress.latency_ms:.0f}ms"
        self._bar.set_postfix_str(f"{progress.fps:.1f} fps, latency {latency}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
