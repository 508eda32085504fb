"""Links between the processes of one run: ZeroMQ sockets carrying headers, pixels staying in
shared memory.

ZeroMQ links are PUSH/PULL (PUB/SUB loses what is sent before the subscriber joins) with a
high-water mark of 2; the receiving end binds an ``ipc://`` endpoint in the run's private
directory. HWM alone does not bound memory (kernel buffers hold thousands of small
messages, see docs/streaming.md), so frames in flight are bounded by shared-memory slots and
the credits that return them (:class:`CreditReturns`, :class:`CreditSender`).

ZeroMQ drops the messages a receiver had not yet taken in (beyond its HWM) when their
sender disconnects, linger or not: a sender's last frames and its EOS. So a sending end
does not close until its receiver says it read EOS (``delivered``, a flag in the run's
control file); zmqsink/zmqsrc use acknowledgements instead (cleanfeed.stream.elements.zmqlink).

A sending end can keep what it sent and re-send it to a restarted receiver, and a receiving
end can drop its socket and bind a fresh one, when the restart board (:class:`Board`) asks;
cleanfeed.stream.crews.processes explains why and in which order.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import zmq

from cleanfeed.stream.buffers import Eos, Item, StreamStart, VideoFrame
from cleanfeed.stream.ports import Aborted, Control
from cleanfeed.stream.wire import Part, decode, encode, pack

if TYPE_CHECKING:
    from cleanfeed.stream.shm import ShmSlots

HWM = 2
RECONNECT_MS = 10  # a peer that binds after we connect is found within this (ZeroMQ's default: 100)
_POLL_MS = 100
_CREDIT = struct.Struct("<I")


class Board(Protocol):
    """A link's restart fields (cleanfeed.stream.control.FileControl, see its ``FIELDS``)."""

    def get(self, link: int, field: str) -> int: ...

    def put(self, link: int, field: str, value: int) -> None: ...


@dataclass
class LastFrame:
    """A copy of the last frame a link delivered: what a restarted upstream element that
    keeps memory (track) re-seeds from. Kept only on links whose sender asks for it."""

    path: str
    seq: int = -1
    picture: np.ndarray | None = None
    mask: np.ndarray | None = None
    pix_fmt: str = ""

    def keep(self, frame: VideoFrame) -> None:
        pic = frame.picture
        if self.picture is None or self.picture.shape != pic.data.shape or self.pix_fmt != pic.pix_fmt:
            self.picture, self.mask, self.pix_fmt = np.empty_like(pic.data), np.empty_like(frame.mask), pic.pix_fmt
        assert self.mask is not None
        np.copyto(self.picture, pic.data)
        np.copyto(self.mask, frame.mask)
        self.seq = frame.seq

    def save(self) -> None:
        if self.picture is not None and self.mask is not None:
            with open(self.path, "wb") as fh:
                np.savez(fh, picture=self.picture, mask=self.mask, seq=self.seq, pix_fmt=self.pix_fmt)


class ZmqInlet:
    """A PULL socket bound to ``endpoint``; decodes items, mapping slot frames through ``slots``.

    With a ``board`` (process mode), a reset requested there (its sender died) makes it
    drop its socket with whatever the dead sender left in it, bind a fresh one, and post
    the next seq it needs; the restarted sender's repeated stream start is swallowed.
    """

    def __init__(
        self, ctx: zmq.Context, endpoint: str, link: str, slots: ShmSlots | None, control: Control,
        on_eos: Callable[[], None] | None = None, board: Board | None = None, index: int = -1,
        keep_last: LastFrame | None = None, next_seq: int = 0,
    ) -> None:
        """``next_seq``: the first frame expected (a restarted receiver resumes there)."""
        self.link = link
        self._ctx = ctx
        self._endpoint = endpoint
        self._slots = slots
        self._control = control
        self._on_eos = on_eos
        self._board = board
        self._index = index
        self._gen = board.get(index, "reset_gen") if board is not None else 0
        self._next = next_seq
        self._started = False
        self._swallow_start = False
        self._last = keep_last
        self._sock = self._bind()

    def _bind(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, HWM)
        sock.bind(self._endpoint)
        self._wait_ms = -1  # RCVTIMEO as last set (-1: ZeroMQ's default, for ever)
        return sock

    def _check_reset(self) -> None:
        assert self._board is not None
        gen = self._board.get(self._index, "reset_gen")
        if gen == self._gen:
            return
        self._gen = gen
        self._sock.close(linger=0)
        self._sock = self._bind()
        self._swallow_start = self._started
        if self._last is not None:
            self._last.save()
        self._board.put(self._index, "resume_seq", self._next)
        self._board.put(self._index, "reset_ack", gen)

    def get(self, timeout: float) -> Item | None:
        if self._control.aborting:
            raise Aborted()
        if self._board is not None:
            self._check_reset()
        wait_ms = max(0, int(timeout * 1000))
        if wait_ms != self._wait_ms:
            self._sock.setsockopt(zmq.RCVTIMEO, wait_ms)
            self._wait_ms = wait_ms
        try:  # one blocking call with a time limit: no poll, no failed try, per frame
            parts = self._sock.recv_multipart(copy=False)
        except zmq.Again:
            return None
        resolve = self._slots.resolve if self._slots is not None and self._slots.attached else None
        item, shm = decode(parts, link=self.link, resolve=resolve)
        if shm is not None and self._slots is not None:
            self._slots.attach(shm)
        if isinstance(item, VideoFrame):
            self._next = item.seq + 1
            if self._last is not None:
                self._last.keep(item)
        elif isinstance(item, StreamStart):
            if self._swallow_start:
                self._swallow_start = False
                return None  # the restarted sender's stream start: this side has started already
            self._started = True
        elif isinstance(item, Eos):
            if self._board is not None:
                self._board.put(self._index, "eos_in", 1)
            if self._on_eos is not None:
                self._on_eos()
        return item

    def close(self, flush: bool) -> None:
        self._sock.close(linger=0)


class ZmqOutlet:
    """A PUSH socket connected to the next element's inlet.

    Frames that live in a shared-memory slot travel as their header only. On a normal end
    the socket stays open until ``delivered()`` says the peer is done (see the module
    doc); on abort it drops what is queued.

    With a ``board`` and ``keep`` > 0 (process mode with restarts) it keeps what it sent
    since the stream start, up to ``keep`` frames (headers only for slot frames), and when
    the board asks for a replay (the receiver died and was restarted) it drops its socket,
    connects a fresh one, and re-sends the stream start and everything after the frame
    before the requested seq. :meth:`service` lets the runner answer while it waits.
    """

    def __init__(
        self, ctx: zmq.Context, endpoint: str, link: str, slots: ShmSlots | None, control: Control,
        delivered: Callable[[], bool] | None = None, board: Board | None = None, index: int = -1, keep: int = 0,
    ) -> None:
        self.link = link
        self._ctx = ctx
        self._endpoint = endpoint
        self._slots = slots
        self._control = control
        self._delivered = delivered
        self._board = board if keep > 0 else None
        self._index = index
        self._keep = keep
        self._gen = board.get(index, "replay_gen") if board is not None else 0
        self._start: list[Part] | None = None
        self._resend_start = False
        self._entries: deque[tuple[int | None, list[Part]]] = deque()  # (frame seq or None, parts)
        self._frames = 0  # frames among the entries
        self._sent = 0  # entries ever appended (absolute index of the next one)
        self._cursor = 0  # absolute index of the next entry to send
        self._sock = self._connect()

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, HWM)
        sock.setsockopt(zmq.SNDTIMEO, _POLL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        sock.connect(self._endpoint)
        return sock

    def put(self, item: Item) -> None:
        shm = self._slots.info if self._slots is not None and isinstance(item, StreamStart) else None
        parts = encode(item, link=self.link, by_slot=True, shm=shm)
        if self._board is None:
            while not self._send(parts):
                pass
            return
        if isinstance(item, StreamStart):
            self._start = parts
        is_frame = isinstance(item, VideoFrame)
        if is_frame and item.slot is None:  # type: ignore[union-attr]
            parts = [bytes(p) for p in parts]  # its arrays may be reused once it has left
        while self._frames >= self._keep and self._entries:
            seq, _ = self._entries.popleft()
            self._frames -= seq is not None
        self._entries.append((item.seq if is_frame else None, parts))  # type: ignore[union-attr]
        self._frames += is_frame
        self._sent += 1
        self._pump()

    def service(self) -> None:
        """Answers a replay request and sends what is pending; call it while waiting."""
        if self._board is not None:
            self._pump()

    def _send(self, parts: list[Part]) -> bool:
        """Waits up to SNDTIMEO for room; False: try again (after an abort check)."""
        try:  # multipart sends are atomic: on EAGAIN nothing went out
            self._sock.send_multipart(parts, copy=True)
            return True
        except zmq.Again:
            pass
        if self._control.aborting:
            raise Aborted()
        return False

    def _pump(self) -> None:
        assert self._board is not None
        while True:
            gen = self._board.get(self._index, "replay_gen")
            if gen != self._gen:
                self._replay(gen, self._board.get(self._index, "replay_seq"))
            if self._resend_start and self._start is not None:
                if self._send(self._start):
                    self._resend_start = False
            elif self._cursor < self._sent:
                if self._send(self._entries[self._cursor - (self._sent - len(self._entries))][1]):
                    self._cursor += 1
            else:
                return

    def _replay(self, gen: int, seq: int) -> None:
        """Starts over on a fresh socket from the entry after the last frame before ``seq``."""
        assert self._board is not None
        self._gen = gen
        self._sock.close(linger=0)  # what the dead receiver's pipe still held is re-sent below
        self._sock = self._connect()
        base = self._sent - len(self._entries)
        start = base if base == 0 else None
        first_seq: int | None = None
        for i, (s, _) in enumerate(self._entries):
            if s is None:
                continue
            if s < seq:
                start = base + i + 1
            elif first_seq is None:
                first_seq = s
        lost = 0
        if start is None:  # the frame before ``seq`` left the ring: whatever followed it may be gone
            start = base
            lost = (first_seq if first_seq is not None else seq) - seq
        replayed = sum(1 for s, _ in list(self._entries)[start - base:] if s is not None)
        self._board.put(self._index, "replayed", replayed)
        self._board.put(self._index, "lost", lost)
        self._board.put(self._index, "replay_ack", gen)
        self._cursor = start
        self._resend_start = self._start is not None

    def close(self, flush: bool) -> None:
        if flush and self._delivered is not None:
            while not self._delivered():
                if self._control.aborting:
                    flush = False
                    break
                try:
                    self.service()
                except Aborted:
                    flush = False
                    break
                time.sleep(0.002)
        self._sock.close(linger=-1 if flush else 0)


class CreditReturns:
    """The source's end of the credit channel: slot indices coming back from downstream."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self._sock = ctx.socket(zmq.PULL)
        self._sock.bind(endpoint)

    def __call__(self, timeout: float) -> list[int]:
        """Waits up to ``timeout`` seconds for returned slots; returns all that arrived."""
        out: list[int] = []
        if not self._sock.poll(int(timeout * 1000), zmq.POLLIN):
            return out
        while True:
            try:
                data = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return out
            out.append(_CREDIT.unpack(data)[0])

    def close(self) -> None:
        self._sock.close(linger=0)


class CreditSender:
    """Returns slots to the source. Never blocks: if the source is gone, credits do not matter."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self._sock = ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, 100_000)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._sock.connect(endpoint)

    def __call__(self, slot: int) -> None:
        try:
            self._sock.send(_CREDIT.pack(slot), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        self._sock.close(linger=0)


class ZmqReporter:
    """Runner reports (msgpack maps) to the supervisor's PULL socket; kept until delivered."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self._sock = ctx.socket(zmq.PUSH)
        self._sock.connect(endpoint)

    def send(self, message: dict[str, Any]) -> None:
        self._sock.send(pack(message))

    def close(self) -> None:
        self._sock.close(linger=5000)
