"""An output that would overwrite an input is refused before anything is opened for writing.

A file read while it is being rewritten is destroyed: `run same.mp4 -o same.mp4` once left
three frames of the user's file. The same file can hide behind another path, a symbolic or
a hard link, and an image-sequence pattern covers many files, so paths are compared as the
filesystem sees them (``os.path.samefile``), never as strings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cleanfeed.errors import MediaError
from cleanfeed.stream.media.naming import Kind, kind_of, local_path, sequence_name, sequence_regex


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): nothing to overwrite
        return False


def _in_pattern(path: Path, pattern: Path) -> bool:
    """``path`` is a file that ``pattern`` (folder/%05d.png) names for some frame number."""
    regex = sequence_regex(pattern.name)
    found = regex.match(path.name) if regex is not None else None
    return (found is not None and sequence_name(pattern.name, int(found.group(1))) == path.name
            and _same(path.parent, pattern.parent))


def _existing(pattern: Path) -> list[Path]:
    regex = sequence_regex(pattern.name)
    if regex is None or not pattern.parent.is_dir():
        return []
    return [entry for entry in pattern.parent.iterdir() if regex.match(entry.name)]


def _clash(read: str, write: str) -> str | None:
    """How writing ``write`` would overwrite ``read``, in words; None when it would not."""
    kinds = kind_of(read), kind_of(write)
    if not all(k in (Kind.FILE, Kind.SEQUENCE) for k in kinds):
        return None
    rpath, wpath = local_path(read), local_path(write)
    if kinds[0] is Kind.FILE and rpath.is_dir():  # a folder of masks, read file by file
        return "a file in the input folder" if _same(wpath.parent, rpath) else None
    if kinds == (Kind.FILE, Kind.FILE):
        if not _same(rpath, wpath):
            return None
        if os.path.abspath(rpath) == os.path.abspath(wpath):
            return "the same path"
        return "the same file under another path or link"
    if kinds == (Kind.SEQUENCE, Kind.FILE):
        return "one of the input's frames" if _in_pattern(wpath, rpath) else None
    if kinds == (Kind.FILE, Kind.SEQUENCE):
        return "a pattern that names the input" if _in_pattern(rpath, wpath) else None
    if any(_in_pattern(frame, wpath) for frame in _existing(rpath)):
        return "a pattern that names the input's frames"
    return None


def refuse_overwrite(reads: Sequence[str], writes: Sequence[str]) -> None:
    """Raises MediaError if any location in ``writes`` would overwrite one in ``reads``.

    Locations are what elements were given (files, ``frames/%05d.png`` patterns, URLs); only
    local files and patterns can clash.
    """
    for write in writes:
        for read in reads:
            how = _clash(read, write)
            if how is not None:
                raise MediaError(f"output {write!r} must not overwrite the input {read!r}, got {how}: "
                                 "write the output somewhere else")
