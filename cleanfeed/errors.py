"""One error family for everything a user can cause.

Each class also inherits the builtin that matches it (as PyAV's errors do), so callers
that already catch ``ValueError`` or ``OSError`` keep working. Messages read
"<what> must be <rule>, got <value>" and fit on one line: the CLI prints ``str(err)``
and exits non-zero, never a traceback.
"""

from __future__ import annotations


class CleanfeedError(Exception):
    """Base of every error cleanfeed raises on purpose."""

    exit_code = 1


class PipelineSyntaxError(CleanfeedError, ValueError):
    """A launch string that does not parse; the message points at the token."""

    exit_code = 2


class UnknownElementError(CleanfeedError, LookupError):
    exit_code = 2


class PropertyError(CleanfeedError, ValueError):
    """An unknown property, or a value outside its type, range or choices.

    ``element``, ``prop`` and ``rule`` ("must be <= 30, got 99") are set when the error is about
    one property's value, so a command that set the property from its own option can say the
    option the user typed (``--window must be <= 30, got 99``) instead of the property.
    """

    exit_code = 2

    def __init__(self, message: str, *, element: str = "", prop: str = "", rule: str = "") -> None:
        super().__init__(message)
        self.element = element
        self.prop = prop
        self.rule = rule


class LinkError(CleanfeedError, ValueError):
    """Two elements that cannot be linked; names both ends."""

    exit_code = 2


class PromptError(CleanfeedError, ValueError):
    """A prompt (box, point, mask file, prompt file) that does not fit the video."""

    exit_code = 2


class MediaError(CleanfeedError, OSError):
    """An input that cannot be opened, read or decoded, or an output that cannot be written."""

    exit_code = 3


class SourceTimeoutError(MediaError, TimeoutError):
    """A network source that did not answer within its timeout."""


class CheckpointError(CleanfeedError, ValueError):
    """A model file that is missing, truncated, not a checkpoint, or a checkpoint of another model;
    the message says what was expected and what was found."""

    exit_code = 2


class BackendError(CleanfeedError, RuntimeError):
    """A model backend (torch device, onnxruntime, tensorrt) that is not installed or cannot run the
    model here; the message says how to get it."""

    exit_code = 2


class ExportError(CleanfeedError, RuntimeError):
    """A model that could not be exported, or whose exported graph disagrees with the torch model."""


class WireError(CleanfeedError, ValueError):
    """A malformed message on a link; the message names the link."""


class ElementError(CleanfeedError, RuntimeError):
    """An element failed while running; carries the element's name."""

    def __init__(self, element: str, message: str) -> None:
        super().__init__(f"{element}: {message}")
        self.element = element
        self.detail = message


class Interrupted(CleanfeedError):
    """The pipeline was stopped by SIGINT/SIGTERM; outputs were finalized."""

    exit_code = 130


class LateError(CleanfeedError):
    """A live run delivered frames later than its latency budget and was asked to fail for it
    (``--fail-on-late``): the output is complete, but a monitor must hear of the miss."""

    exit_code = 4


class ReferenceImageError(PromptError):
    """A logo reference (``--logo IMAGE``) that cannot be read, is empty, or cannot be found in
    the frames it is meant for (larger than the frame)."""
