"""Shared-memory slots: where frames live in process mode, so links carry headers, not pixels.

One segment per run (a file in /dev/shm), cut into N equal slots; each slot holds one
frame's picture bytes and its HxW mask (see :class:`SlotLayout`). The source process creates
the segment after ``open()`` (only then are the caps known) and hands out free slots from
its allocator; every other process maps the same segment when the stream-start message
names it. A slot comes back to the source as a *credit* once the sink has rendered the
frame, so the slot count bounds the frames in flight and the memory a run uses.

The name is unlinked as soon as every process has mapped it (by the sink, the last to
attach) and again, if still there, by the supervisor when the run ends: no leftovers in
/dev/shm after any exit. Every process keeps its descriptor of the segment open while it
runs, so a stage restarted after the name is gone still finds the segment, through
``/proc/PID/fd`` of a running peer (:func:`find_segment`).
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Any

import numpy as np
import zmq

from cleanfeed.errors import MediaError, WireError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Source, heap_allocator
from cleanfeed.stream.links.sockets import CreditReturns, CreditSender
from cleanfeed.stream.picture import Picture, picture_nbytes, picture_shape
from cleanfeed.stream.ports import Aborted, Control, StopRequested

SHM_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
PREFIX = "cleanfeed-"
_ALIGN = 64


def _align(value: int, to: int = _ALIGN) -> int:
    return (value + to - 1) // to * to


@dataclass(frozen=True)
class SlotLayout:
    """How one frame sits in a slot: picture bytes at 0, the HxW uint8 mask at ``mask_offset``."""

    pix_fmt: str
    width: int
    height: int

    @classmethod
    def for_caps(cls, caps: Caps) -> SlotLayout:
        return cls(caps.pix_fmt, caps.width, caps.height)

    @property
    def picture_bytes(self) -> int:
        return picture_nbytes(self.pix_fmt, self.width, self.height)

    @property
    def mask_offset(self) -> int:
        return _align(self.picture_bytes)

    @property
    def slot_bytes(self) -> int:
        return _align(self.mask_offset + self.width * self.height)

    def fits(self, picture: Picture) -> bool:
        return (picture.pix_fmt, picture.width, picture.height) == (self.pix_fmt, self.width, self.height)


def segment_path(name: str) -> Path:
    return SHM_DIR / name


class SlotPool:
    """A mapped segment of ``count`` slots; :meth:`views` gives numpy arrays into slot i."""

    def __init__(self, name: str, layout: SlotLayout, count: int, mm: mmap.mmap, fd: int | None = None) -> None:
        self.name = name
        self.layout = layout
        self.count = count
        self._mm = mm
        self._fd = fd  # kept open so a restarted peer can open the segment after its name is gone
        shape = picture_shape(layout.pix_fmt, layout.width, layout.height)
        self._views: list[tuple[np.ndarray, np.ndarray]] = []
        for i in range(count):
            base = i * layout.slot_bytes
            pic = np.frombuffer(mm, np.uint8, layout.picture_bytes, base).reshape(shape)
            mask = np.frombuffer(mm, np.uint8, layout.width * layout.height, base + layout.mask_offset)
            self._views.append((pic, mask.reshape(layout.height, layout.width)))

    @classmethod
    def create(cls, name: str, layout: SlotLayout, count: int) -> SlotPool:
        """Creates the segment; MediaError when /dev/shm has no room (docker's default is 64 MB)."""
        if count < 1:
            raise ValueError(f"slot count must be >= 1, got {count}")
        size = layout.slot_bytes * count
        path = segment_path(name)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, size)  # reserve now: a full tmpfs would SIGBUS on first touch
            except OSError as exc:
                os.unlink(path)
                raise MediaError(
                    f"shared memory must have room for {count} slots of {layout.slot_bytes / 2**20:.1f} MB in {SHM_DIR}, "
                    f"got {exc.strerror}; enlarge it (docker run --shm-size) or run in thread mode"
                ) from None
            mm = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        return cls(name, layout, count, mm, fd)

    @classmethod
    def attach(cls, name: str, layout: SlotLayout, count: int, peers: tuple[int, ...] = ()) -> SlotPool:
        """Maps the segment by name, or (once unlinked) through a peer's descriptor."""
        try:
            fd = os.open(segment_path(name), os.O_RDWR)
        except FileNotFoundError:
            fd = os.open(find_segment(name, peers), os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size != layout.slot_bytes * count:
                raise WireError(
                    f"shared memory {name} must be {layout.slot_bytes * count} bytes for {count} slots, got {size}"
                )
            mm = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        return cls(name, layout, count, mm, fd)

    @classmethod
    def from_info(cls, info: dict[str, Any], peers: tuple[int, ...] = ()) -> SlotPool:
        layout = SlotLayout(str(info["pix_fmt"]), int(info["width"]), int(info["height"]))
        return cls.attach(str(info["name"]), layout, int(info["count"]), peers)

    def info(self) -> dict[str, Any]:
        """What a start message carries so other processes can attach."""
        lay = self.layout
        return {"name": self.name, "count": self.count, "pix_fmt": lay.pix_fmt, "width": lay.width, "height": lay.height}

    def views(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """(picture, mask) arrays living in ``slot``; raises WireError for an index out of range."""
        if not 0 <= slot < self.count:
            raise WireError(f"shared-memory slot must be in 0..{self.count - 1}, got {slot}")
        return self._views[slot]

    def unlink(self) -> None:
        """Removes the name; mappings stay valid until closed."""
        unlink_segment(self.name)

    def close(self) -> None:
        self._views.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            self._mm.close()
        except BufferError:
            pass  # an element still holds a view; the mapping goes with the process


def find_segment(name: str, peers: tuple[int, ...]) -> str:
    """A ``/proc/PID/fd/N`` path to segment ``name`` held open by one of ``peers`` after its
    name was unlinked; FileNotFoundError naming the segment when none holds it."""
    target = f"{segment_path(name)} (deleted)"
    for pid in peers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if os.readlink(path) == target:
                    return path
            except OSError:
                continue
    raise FileNotFoundError(f"shared memory {name} must be open in a running peer ({list(peers)}), got none holding it")


def unlink_segment(name: str) -> None:
    try:
        os.unlink(segment_path(name))
    except FileNotFoundError:
        pass


class SlotAllocator:
    """Hands out free slots; when none is free, waits for credits from ``returns``.

    ``interrupt`` is called while waiting and raises to give up (stop or abort), so a
    source blocked on a full pipeline still honours the stop flag. A slot is *pending*
    from :meth:`acquire` until :meth:`claim` (its frame leaves the source), then *out*
    until :meth:`give_back` (its credit came home) frees it.
    """

    def __init__(self, pool: SlotPool, returns: Callable[[float], list[int]], interrupt: Callable[[], None]) -> None:
        self.pool = pool
        self._returns = returns
        self._interrupt = interrupt
        self._free: deque[int] = deque(range(pool.count))
        self._pending: set[int] = set()
        self._out: set[int] = set()
        self.wait_s = 0.0

    @property
    def free(self) -> int:
        return len(self._free)

    def acquire(self) -> int:
        if not self._free:
            start = monotonic()
            try:
                while not self._free:
                    self._interrupt()
                    for slot in self._returns(0.05):
                        self.give_back(slot)
            finally:
                self.wait_s += monotonic() - start
        slot = self._free.popleft()
        self._pending.add(slot)
        return slot

    def claim(self, slot: int) -> bool:
        """True if ``slot`` was acquired and not yet sent: its frame is leaving now."""
        if slot in self._pending:
            self._pending.discard(slot)
            self._out.add(slot)
            return True
        return False

    def give_back(self, slot: int) -> None:
        """A slot that left with a frame is free again; any other credit is ignored."""
        if slot in self._out:
            self._out.discard(slot)
            self._free.append(slot)

    def allocate(self, caps: Caps) -> tuple[Picture, np.ndarray, int | None]:
        """The Source.allocator of process mode: a zeroed picture and mask in a free slot
        (on the heap if ``caps`` do not fit the pool)."""
        lay = self.pool.layout
        if (caps.pix_fmt, caps.width, caps.height) != (lay.pix_fmt, lay.width, lay.height):
            return heap_allocator(caps)
        slot = self.acquire()
        pic, mask = self.pool.views(slot)
        pic.fill(0)
        mask.fill(0)
        return Picture(caps.pix_fmt, caps.width, caps.height, pic), mask, slot


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    if a is b:  # the usual case: the frame still holds the view its slot was decoded into
        return True
    return a.shape == b.shape and a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.strides == b.strides


class ShmSlots:
    """One runner's slot bookkeeping in process mode.

    The source creates the pool (:meth:`prepare_source`); every other runner attaches when
    the stream-start arrives (:meth:`attach`). A filter's output frame goes out in the slot
    its input frame with the same seq came in; if the element replaced the pixels or the
    mask by new arrays, they are copied into that slot (one copy, only then). Frames that do
    not fit the pool travel inline. The sink (and a runner draining after an error) returns
    slots to the source with :meth:`release`.
    """

    def __init__(
        self, ctx: zmq.Context, control: Control, *, name: str | None = None, count: int = 0,
        credits: str | None = None, unlink_on_attach: bool = False, peers: tuple[int, ...] = (),
    ) -> None:
        self._ctx = ctx
        self._peers = peers
        self.on_wait: Callable[[], None] | None = None
        """Called while the source waits for a free slot (its outlet answers replay requests)."""
        self._control = control
        self._name = name
        self._count = count
        self._credits_endpoint = credits
        self._unlink_on_attach = unlink_on_attach
        self._pool: SlotPool | None = None
        self._allocator: SlotAllocator | None = None
        self._returns: CreditReturns | None = None
        self._sender: CreditSender | None = None
        self._held: dict[int, int] = {}
        self.info: dict[str, Any] | None = None

    @property
    def attached(self) -> bool:
        return self._pool is not None

    @property
    def wait_s(self) -> float:
        """Seconds the source spent waiting for a free slot (not its own work)."""
        return self._allocator.wait_s if self._allocator else 0.0

    def _interrupt(self) -> None:
        if self._control.aborting:
            raise Aborted()
        if self._control.stopping:
            raise StopRequested()
        if self.on_wait is not None:
            self.on_wait()

    def prepare_source(self, caps: Caps, source: Source) -> None:
        if self._name is None or self._credits_endpoint is None:
            return
        self._pool = SlotPool.create(self._name, SlotLayout.for_caps(caps), self._count)
        self._returns = CreditReturns(self._ctx, self._credits_endpoint)
        self._allocator = SlotAllocator(self._pool, self._returns, self._interrupt)
        source.allocator = self._allocator.allocate
        self.info = {**self._pool.info(), "credits": self._credits_endpoint}

    def attach(self, info: dict[str, Any]) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = SlotPool.from_info(info, self._peers)
            self._sender = CreditSender(self._ctx, str(info["credits"]))
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise WireError(f"shared memory described by a stream start must be attachable, got {info!r} ({exc})") from None
        self.info = dict(info)
        if self._unlink_on_attach:
            self._pool.unlink()

    def resolve(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._pool is not None  # the inlet only resolves once attached
        return self._pool.views(slot)

    def hold(self, frame: VideoFrame) -> None:
        if frame.slot is not None:
            self._held[frame.seq] = frame.slot

    def place(self, frame: VideoFrame) -> None:
        slot = self._held.pop(frame.seq, None)
        pool = self._pool
        if pool is None:
            frame.slot = None
            return
        if not pool.layout.fits(frame.picture):
            if slot is not None:
                self._give(slot)
            frame.slot = None
            return
        if slot is None:
            if self._allocator is None:
                frame.slot = None  # came in inline: goes out inline
                return
            if frame.slot is not None and self._allocator.claim(frame.slot):
                slot = frame.slot  # allocated by new_frame: the pixels are already there
            else:
                slot = self._allocator.acquire()
                self._allocator.claim(slot)
        pic, mask = pool.views(slot)
        if not _same_memory(frame.picture.data, pic):
            np.copyto(pic, frame.picture.data)
        if not _same_memory(frame.mask, mask):
            np.copyto(mask, frame.mask)
        frame.slot = slot

    def release(self, frame: VideoFrame) -> None:
        slot = self._held.pop(frame.seq, frame.slot)
        if slot is not None:
            self._give(slot)

    def release_held(self) -> None:
        for slot in self._held.values():
            self._give(slot)
        self._held.clear()

    def _give(self, slot: int) -> None:
        if self._sender is not None:
            self._sender(slot)
        elif self._allocator is not None:
            self._allocator.give_back(slot)

    def close(self) -> None:
        for sock in (self._returns, self._sender):
            if sock is not None:
                sock.close()
        if self._pool is not None:
            self._pool.close()
