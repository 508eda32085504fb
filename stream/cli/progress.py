"""A progress bar on a terminal (frames, percentage, ETA, fps, latency), silence when stderr is not one."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
"""tqdm's own layout less its rate: the pipeline's fps (frames out over streaming time) is the one
figure shown, next to the latency."""
OPEN_FORMAT = "{n_fmt} frames [{elapsed}{postfix}]"
"""For a stream of unknown length (live input, a pipe): no percentage or ETA to give."""


class ProgressBar:
    """Callable for Pipeline.run(progress=...); a no-op when stderr is piped or quiet is set.

    The frame count is known only once the source has opened its input, after the first
    progress calls: the total is set as soon as it arrives.
    """

    def __init__(self, quiet: bool = False, file: Any = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.enabled = not quiet and self.file.isatty()
        self._bar: tqdm | None = None

    def __call__(self, progress: Any) -> None:
        if not self.enabled:
            return
        total = progress.frames_total or None
        if self._bar is None:
            self._bar = tqdm(total=total, unit="frame", dynamic_ncols=True, file=self.file,
                             bar_format=BAR_FORMAT if total else OPEN_FORMAT)
        elif total is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.bar_format = BAR_FORMAT
        self._bar.n = progress.frames_out
        latency = "-" if progress.latency_ms is None else f"{progress.latency_ms:.0f} ms"
        missed = "".join(f", {n} {what}" for n, what in ((getattr(progress, "late", 0), "late"),
                                                         (getattr(progress, "shed", 0), "shed")) if n)
        self._bar.set_postfix_str(f"{progress.fps:.1f} fps, latency {latency}{missed}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
