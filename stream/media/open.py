"""Opening an input with the options its kind needs, and turning FFmpeg's failures into one-line errors.

- RTSP: TCP by default (UDP loses packets on busy links and through NAT); FFmpeg's ``timeout``
  option in microseconds bounds connecting and every read (``stimeout`` is ignored by
  FFmpeg 5+). A server that accepts and stays silent makes FFmpeg's RTSP reader fail with
  "invalid data" once the timeout passes, so a failure that took the whole timeout is
  reported as a timeout.
- HTTP and other URLs: the same ``timeout`` option, plus PyAV's own open/read timeouts as a
  backstop for protocols that ignore it.
- Image sequences: the first number is found by scanning the folder (FFmpeg's image2 only
  looks at 0..4) and passed as ``start_number``.
- ``-``: stdin, probed (mpegts, matroska, y4m, nut...); no timeout, a pipe may pause.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from cleanfeed.errors import MediaError, SourceTimeoutError
from cleanfeed.stream.media.naming import Kind, contiguous_run, kind_of, local_path, redact, sequence_numbers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputOptions:
    """How to open an input; only the fields that apply to its kind are used."""

    timeout_s: float = 10.0
    """Network sources: seconds to wait for a connection and for each read."""
    transport: str = "tcp"
    """RTSP lower transport: "tcp" or "udp"."""
    framerate: Fraction | None = None
    """Image sequences: frames per second (FFmpeg's image2 default is 25)."""


@dataclass
class OpenedInput:
    """An open container and what was learned while opening it."""

    container: Any  # av.container.InputContainer
    kind: Kind
    shown: str  # the location with any password hidden
    sequence_frames: int | None = None  # files in an image sequence, when counted


def _options_for(kind: Kind, opts: InputOptions, location: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL FFmpeg opens, its format options and extra ``av.open`` keyword arguments."""
    options: dict[str, str] = {}
    extra: dict[str, Any] = {}
    url = location
    if kind.network:
        options["timeout"] = str(max(1, int(opts.timeout_s * 1_000_000)))
        extra["timeout"] = (opts.timeout_s, opts.timeout_s)
    if kind is Kind.RTSP:
        options["rtsp_transport"] = opts.transport
    if kind is Kind.PIPE:
        url = "pipe:0"
    if kind is Kind.SEQUENCE:
        extra["format"] = "image2"
        url = str(local_path(location))
        if opts.framerate is not None:
            options["framerate"] = str(opts.framerate)
    if kind is Kind.FILE:
        url = str(local_path(location))
    return url, options, extra


def _check_local(kind: Kind, location: str, shown: str) -> int | None:
    """Fails early, with the user's own words, for local inputs that are not there."""
    if kind is Kind.FILE:
        path = local_path(location)
        if not path.exists():
            raise MediaError(f"input {shown!r} does not exist")
        if path.is_dir():
            raise MediaError(f"input {shown!r} is a folder, not a media file (for images give a pattern such as {str(path / '%05d.png')!r})")
        return None
    if kind is Kind.SEQUENCE:
        numbers = sequence_numbers(local_path(location))
        if not numbers:
            raise MediaError(f"input {shown!r} matches no files")
        return numbers[0]
    return None


MP4_BOXES = (b"ftyp", b"mdat", b"moov", b"free", b"skip", b"wide", b"styp", b"uuid", b"pdin")
"""Top-level ISO BMFF boxes a file can start with (the four bytes after the box size)."""


def _mp4_without_index(path: Path) -> bool:
    """Whether the file is an MP4/MOV whose ``moov`` box is absent or cut short: FFmpeg calls it
    "invalid data", like a text file, though the cause is nearly always an unfinished write
    (a recorder writes the index last)."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            at = 0
            while at + 8 <= size:
                file.seek(at)
                head = file.read(16)
                length, box = int.from_bytes(head[:4], "big"), head[4:8]
                if at == 0 and box not in MP4_BOXES:
                    return False
                if length == 1 and len(head) == 16:  # 64-bit size follows
                    length = int.from_bytes(head[8:16], "big")
                if box == b"moov":
                    return length == 0 or at + length > size
                if length == 0:  # the box runs to the end of the file
                    break
                if length < 8:
                    return False
                at += length
    except OSError:
        return False
    return size >= 8


def _translate(err: Exception, kind: Kind, location: str, shown: str, opts: InputOptions, elapsed: float) -> MediaError:
    """One line for the user; FFmpeg's own words only where they add something."""
    if isinstance(err, av.error.ConnectionRefusedError):
        return MediaError(f"input {shown!r} refused the connection (is the server running?)")
    if isinstance(err, (av.error.TimeoutError, av.error.ExitError)) or (
        kind is Kind.RTSP and isinstance(err, av.error.InvalidDataError) and elapsed >= 0.8 * opts.timeout_s
    ):
        return SourceTimeoutError(f"{shown} did not answer within {opts.timeout_s:g} s")
    if isinstance(err, av.error.FileNotFoundError):
        return MediaError(f"input {shown!r} does not exist")
    if isinstance(err, av.error.PermissionError):
        return MediaError(f"input {shown!r} cannot be read: permission denied")
    if (isinstance(err, (av.error.InvalidDataError, av.error.EOFError)) and kind is Kind.FILE
            and _mp4_without_index(local_path(location))):
        return MediaError(f"input {shown!r} is an MP4 whose index (moov) is missing or cut short: the file is "
                          "truncated or still being written (a recording gets its index when it is finished)")
    if isinstance(err, av.error.InvalidDataError):
        return MediaError(f"input {shown!r} is not a media file FFmpeg can read")
    if isinstance(err, av.error.FFmpegError):
        return MediaError(f"input {shown!r} cannot be opened: {err.strerror}")
    return MediaError(f"input {shown!r} cannot be opened: {err}")


def open_input(location: str, opts: InputOptions) -> OpenedInput:
    """Opens ``location`` for demuxing; raises MediaError / SourceTimeoutError with one line."""
    kind = kind_of(location)
    shown = "stdin" if kind is Kind.PIPE else redact(location)
    if kind is Kind.RTSP and opts.transport not in ("tcp", "udp"):
        raise MediaError(f"rtsp transport must be tcp or udp, got {opts.transport!r}")
    first = _check_local(kind, location, shown)
    url, options, extra = _options_for(kind, opts, location)
    count = None
    if first is not None:
        options["start_number"] = str(first)
        count = contiguous_run([n for n in sequence_numbers(local_path(location)) if n >= first])
    started = time.monotonic()
    try:
        container = av.open(url, mode="r", options=options, **extra)
    except (av.error.FFmpegError, OSError) as err:
        raise _translate(err, kind, location, shown, opts, time.monotonic() - started) from None
    return OpenedInput(container, kind, shown, count)


def translate_read_error(err: Exception, opened: OpenedInput, opts: InputOptions) -> MediaError:
    """For errors while reading: a frozen network source is a timeout, anything else a read error."""
    if isinstance(err, (av.error.TimeoutError, av.error.ExitError)):
        return SourceTimeoutError(f"{opened.shown} stopped sending for more than {opts.timeout_s:g} s")
    text = getattr(err, "strerror", None) or str(err)
    return MediaError(f"input {opened.shown!r} cannot be read: {text}")
