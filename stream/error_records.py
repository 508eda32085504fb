"""Errors as text: a failure crosses a process boundary as an ErrorRecord (class name,
one-line message, traceback for bugs) and comes back on the other side as the exception
the user would have got in one process."""

from __future__ import annotations

import sys
import traceback
from typing import Any

from cleanfeed import errors
from cleanfeed.errors import CleanfeedError, ElementError
from cleanfeed.stream.stats import ErrorRecord


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def error_record(element: str, exc: BaseException) -> ErrorRecord:
    """What travels to the supervisor: class name, one-line message, and (for bugs, not
    CleanfeedErrors) the traceback, so a crash can still be debugged."""
    if isinstance(exc, ElementError):
        return ErrorRecord(exc.element, "ElementError", _one_line(exc.detail))
    message = _one_line(str(exc)) or type(exc).__name__
    trace = "" if isinstance(exc, CleanfeedError) else "".join(traceback.format_exception(exc))
    return ErrorRecord(element, type(exc).__name__, message, trace, type(exc).__module__)


def _error_class(record: ErrorRecord) -> Any:
    """The class a record names, looked up in cleanfeed.errors or its (already loaded) module."""
    module = sys.modules.get(record.module) if record.module else None
    return getattr(module, record.cls, None) or getattr(errors, record.cls, None)


def rebuild_error(record: ErrorRecord) -> CleanfeedError:
    """The exception the pipeline raises for a reported failure.

    A CleanfeedError class comes back as itself (a MediaError stays a MediaError, so the
    CLI's exit code is right; an engine's own subclass too, when its module is loaded
    here); anything else becomes ``ElementError(element, "<Class>: <message>")``.
    ``.element`` names the element either way.
    """
    cls = _error_class(record)
    exc: CleanfeedError
    if record.cls == "ElementError":
        exc = ElementError(record.element, record.message)
    elif isinstance(cls, type) and issubclass(cls, CleanfeedError):
        try:
            exc = cls(record.message)
        except TypeError:
            exc = ElementError(record.element, record.message)
    else:
        exc = ElementError(record.element, f"{record.cls}: {record.message}")
    exc.element = record.element  # type: ignore[attr-defined]
    if record.trace:
        exc.add_note(f"in element {record.element}:\n{record.trace.rstrip()}")
    return exc

