"""Frames kept on disk until the end of the stream, for filters that must see the whole clip first.

An offline filter (E2FGVI's test.py procedure needs reference frames from the whole clip) cannot
keep a long video in shared memory or RAM: a minute of 1080p is 11 GB. It appends each frame's
picture and mask to one unlinked temporary file, keeps only the small header (seq, pts, meta) in
memory, and reads frames back one at a time; the page cache does the rest. The file disappears
when the spill is closed or the process ends, whatever the reason.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.picture import Picture, picture_nbytes, picture_shape


@dataclass
class _Header:
    seq: int
    pts: int | None
    time_base: Fraction
    meta: dict[str, Any]
    stamps: dict[str, float] = field(default_factory=dict)


class FrameSpill:
    """Append-only store of one stream's frames (fixed size, from its caps) in a temporary file."""

    def __init__(self, caps: Caps, folder: str | None = None) -> None:
        self.caps = caps
        self._picture = picture_nbytes(caps.pix_fmt, caps.width, caps.height)
        self._record = self._picture + caps.width * caps.height
        try:
            self._file = tempfile.TemporaryFile(prefix="cleanfeed-spill-", dir=folder)
        except OSError as err:
            raise MediaError(f"a spill file for offline processing must be creatable in {folder or tempfile.gettempdir()}, "
                             f"got {err.strerror}") from None
        self._headers: list[_Header] = []

    def __len__(self) -> int:
        return len(self._headers)

    @property
    def bytes(self) -> int:
        return len(self._headers) * self._record

    def append(self, frame: VideoFrame) -> int:
        """Copies ``frame`` (picture, mask, header) to the end; returns its index."""
        index = len(self._headers)
        try:
            os.pwrite(self._file.fileno(), frame.picture.data.tobytes(), index * self._record)
            os.pwrite(self._file.fileno(), np.ascontiguousarray(frame.mask).tobytes(), index * self._record + self._picture)
        except OSError as err:
            raise MediaError(f"the offline spill file needs {self._record / 2**20:.1f} MB more on disk for frame "
                             f"{frame.seq} ({self.bytes / 2**30:.1f} GB so far), got {err.strerror}") from None
        self._headers.append(_Header(frame.seq, frame.pts, frame.time_base, dict(frame.meta), dict(frame.stamps)))
        return index

    def picture(self, index: int) -> Picture:
        data = os.pread(self._file.fileno(), self._picture, index * self._record)
        shape = picture_shape(self.caps.pix_fmt, self.caps.width, self.caps.height)
        return Picture(self.caps.pix_fmt, self.caps.width, self.caps.height,
                       np.frombuffer(bytearray(data), np.uint8).reshape(shape))

    def mask(self, index: int) -> np.ndarray:
        size = self.caps.width * self.caps.height
        data = os.pread(self._file.fileno(), size, index * self._record + self._picture)
        return np.frombuffer(bytearray(data), np.uint8).reshape(self.caps.height, self.caps.width)

    def frame(self, index: int) -> VideoFrame:
        """Frame ``index`` as it came in (new arrays: it may be changed and sent on)."""
        h = self._headers[index]
        return VideoFrame(h.seq, h.pts, h.time_base, self.picture(index), self.mask(index), dict(h.meta), dict(h.stamps))

    def close(self) -> None:
        self._file.close()
        self._headers.clear()
