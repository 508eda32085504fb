"""One log format for the CLI and every element process.

Spawned children start with a blank ``logging`` setup, so the supervisor hands them the
parent's level and they configure themselves the same way: a message logged in an element's
process reads exactly like one logged in the CLI.
"""

from __future__ import annotations

import logging
import sys


class _Format(logging.Formatter):
    """``cleanfeed: message`` for information, ``cleanfeed: warning: message`` above it."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING or record.levelno < logging.INFO:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"cleanfeed: {text}"


def configure(level: int | str) -> None:
    """Sends log records at ``level`` and above to stderr in the cleanfeed format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
