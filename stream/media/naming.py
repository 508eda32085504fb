"""What a location names: a file, an image-sequence pattern, a network URL or a pipe.

Sources and sinks choose FFmpeg options by kind (RTSP needs a transport and timeouts, a pipe
must be probed, a pattern needs its first number), so the decision is made once, here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class Kind(StrEnum):
    """The kinds of location; values are what logs and errors print."""

    FILE = "file"
    SEQUENCE = "sequence"  # printf pattern such as frames/%05d.png
    RTSP = "rtsp"
    HTTP = "http"
    URL = "url"  # any other protocol FFmpeg knows (udp://, srt://, tcp://, ...)
    PIPE = "pipe"  # '-': stdin for a source, stdout for a sink

    @property
    def network(self) -> bool:
        return self in (Kind.RTSP, Kind.HTTP, Kind.URL)


_PATTERN = re.compile(r"%(0?)(\d*)d")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def kind_of(location: str) -> Kind:
    """Classifies ``location``; a Windows-style drive letter is not a scheme."""
    if location == "-":
        return Kind.PIPE
    match = _SCHEME.match(location)
    if match:
        scheme = match.group(1).lower()
        if scheme in ("rtsp", "rtsps", "rtspu"):
            return Kind.RTSP
        if scheme in ("http", "https"):
            return Kind.HTTP
        if scheme == "file":
            return Kind.SEQUENCE if _PATTERN.search(location) else Kind.FILE
        return Kind.URL
    if _PATTERN.search(Path(location).name):
        return Kind.SEQUENCE
    return Kind.FILE


def local_path(location: str) -> Path:
    """The filesystem path of a FILE or SEQUENCE location (``file://`` stripped)."""
    if location.lower().startswith("file://"):
        return Path(location[len("file://"):])
    return Path(location)


def redact(location: str) -> str:
    """The location with any password replaced, fit for logs and error messages."""
    if not _SCHEME.match(location):
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def sequence_regex(name: str) -> re.Pattern[str] | None:
    """The file names a printf pattern's name (``%05d.png``) stands for, the number as group 1;
    None when ``name`` holds no pattern."""
    match = _PATTERN.search(name)
    if match is None:
        return None
    head, tail = name[: match.start()], name[match.end():]
    width = int(match.group(2) or 0)
    digits = rf"\d{{{width}}}" if match.group(1) and width else r"\d+"
    return re.compile(re.escape(head) + f"({digits})" + re.escape(tail) + "$")


def sequence_name(name: str, number: int) -> str:
    """The file name a printf pattern's name gives ``number`` (``%05d.png``, 3 -> ``00003.png``),
    as FFmpeg's image2 writes it; ``name`` itself when it holds no pattern."""
    match = _PATTERN.search(name)
    if match is None:
        return name
    width = int(match.group(2) or 0)
    digits = f"{number:0{width}d}" if match.group(1) else f"{number:{width}d}"
    return name[: match.start()] + digits + name[match.end():]


def sequence_numbers(pattern: Path) -> list[int]:
    """The frame numbers of existing files that match a printf ``pattern``, sorted.

    FFmpeg's image2 reader only looks for a first number in 0..4; scanning the folder lets
    a sequence start anywhere (frames/01000.png).
    """
    regex = sequence_regex(pattern.name)
    if regex is None:
        return []
    folder = pattern.parent
    if not folder.is_dir():
        return []
    numbers = []
    for entry in folder.iterdir():
        found = regex.match(entry.name)
        if found:
            numbers.append(int(found.group(1)))
    return sorted(numbers)


def contiguous_run(numbers: list[int]) -> int:
    """How many numbers follow the first without a gap (image2 stops at the first gap)."""
    if not numbers:
        return 0
    count = 1
    for prev, cur in zip(numbers, numbers[1:], strict=False):
        if cur != prev + 1:
            break
        count += 1
    return count
