"""The run's shared flags and the restart board, in one small file every process of a run maps.

A mapped file rather than multiprocessing primitives: no semaphores to leak, nothing
pickled, and reading a flag is a memory read. The board's protocol (who writes which field
when a stage is brought back) is told in cleanfeed.stream.crews.processes.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

FIELDS = ("reset_gen", "reset_ack", "resume_seq", "replay_gen", "replay_seq", "replayed", "replay_ack", "lost",
          "eos_in")
"""One link's restart board: ``reset_gen`` (supervisor: the receiver must drop its socket),
``reset_ack`` + ``resume_seq`` (receiver: done, and the next seq it needs), ``replay_gen`` +
``replay_seq`` (supervisor: the sender must re-send from that seq), ``replayed``,
``replay_ack`` and ``lost`` (sender: frames re-sent, done, frames it no longer had),
``eos_in`` (receiver: read EOS on this link)."""
_FIELD = struct.Struct("<q")
BOARD = struct.Struct("<" + "q" * len(FIELDS))


# -- the shared flags ---------------------------------------------------------------------
class FileControl:
    """The run's flags in a small file mapped by every process of a run.

    Byte 0: stop, 1: abort, 2: go (holds the source back until every process is up, so
    start-up does not count as frame latency), 3: a child got SIGTERM (the run counts as
    interrupted), then one byte per link: "the receiver is done" (it ran to its end and its
    own outlet delivered). A sender keeps its end open until then, because ZeroMQ drops
    what a peer had queued but not yet read when that peer disconnects, and because a
    receiver that dies before it is done needs its sender's replay
    (cleanfeed.stream.crews.processes). Then, per link, the restart board (:data:`BOARD`,
    little-endian int64 fields).
    """

    HEADER = 4

    def __init__(self, mm: mmap.mmap) -> None:
        self._mm = mm
        self.links = (len(mm) - self.HEADER) // (1 + BOARD.size)
        self._board = self.HEADER + self.links

    @classmethod
    def create(cls, path: Path, links: int = 0) -> FileControl:
        path.write_bytes(bytes(cls.HEADER + links * (1 + BOARD.size)))
        return cls.open(path)

    @classmethod
    def open(cls, path: Path | str) -> FileControl:
        fd = os.open(path, os.O_RDWR)
        try:
            return cls(mmap.mmap(fd, os.fstat(fd).st_size))
        finally:
            os.close(fd)

    def mark_eos(self, link: int) -> None:
        self._mm[self.HEADER + link] = 1

    def eos_seen(self, link: int) -> bool:
        return self._mm[self.HEADER + link] != 0

    # -- the restart board ----------------------------------------------------------------
    def get(self, link: int, field: str) -> int:
        return int(_FIELD.unpack_from(self._mm, self._board + link * BOARD.size + 8 * FIELDS.index(field))[0])

    def put(self, link: int, field: str, value: int) -> None:
        _FIELD.pack_into(self._mm, self._board + link * BOARD.size + 8 * FIELDS.index(field), value)

    @property
    def stopping(self) -> bool:
        return self._mm[0] != 0

    @property
    def aborting(self) -> bool:
        return self._mm[1] != 0

    def request_stop(self) -> None:
        self._mm[0] = 1

    def request_abort(self) -> None:
        self._mm[0] = 1
        self._mm[1] = 1

    @property
    def released(self) -> bool:
        return self._mm[2] != 0

    def release(self) -> None:
        self._mm[2] = 1

    @property
    def terminated(self) -> bool:
        return self._mm[3] != 0

    def mark_terminated(self) -> None:
        self._mm[3] = 1

    def wait_released(self) -> None:
        """Blocks until the supervisor says go (or the run ends before it starts)."""
        while not (self.released or self.stopping):
            time.sleep(0.005)

    def close(self) -> None:
        self._mm.close()

