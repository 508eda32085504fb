"""The progress bar a terminal shows: the total as soon as the source knows it (with a percentage
and an ETA), one fps figure (the pipeline's), and nothing at all when stderr is not a terminal."""

from __future__ import annotations

import io

from cleanfeed.stream.cli.progress import ProgressBar
from cleanfeed.stream.stats import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_total_arrives_after_the_first_update_and_brings_a_percentage() -> None:
    screen = Terminal()
    bar = ProgressBar(file=screen)
    bar(Progress(frames_in=0, frames_out=0, frames_total=None, fps=0.0, latency_ms=None))
    bar(Progress(frames_in=70, frames_out=66, frames_total=132, fps=24.5, latency_ms=310.0))
    bar.close()
    last = screen.getvalue().strip().split("\r")[-1]
    assert "50%" in last and "66/132" in last and "<" in last  # percentage, count, elapsed<remaining
    assert last.count("fps") == 1 and "24.5 fps" in last and "latency 310 ms" in last
    assert "frame/s" not in last and "it/s" not in last


def test_a_stream_of_unknown_length_counts_frames() -> None:
    screen = Terminal()
    bar = ProgressBar(file=screen)
    bar(Progress(frames_in=12, frames_out=10, frames_total=None, fps=25.0, latency_ms=None))
    bar.close()
    assert "10 frames" in screen.getvalue() and "%" not in screen.getvalue()


def test_silent_when_stderr_is_not_a_terminal_or_quiet() -> None:
    piped = io.StringIO()
    for bar in (ProgressBar(file=piped), ProgressBar(quiet=True, file=Terminal())):
        bar(Progress(frames_in=1, frames_out=1, frames_total=10, fps=1.0, latency_ms=1.0))
        bar.close()
    assert piped.getvalue() == ""
