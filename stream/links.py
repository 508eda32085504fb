"""The ends of a link: bounded queues between threads, ZeroMQ sockets between processes.

Every end has the same two verbs so the runner does not care which it has:
``Inlet.get(timeout) -> item | None`` (None when nothing came in time: the runner checks
the abort flag between waits) and ``Outlet.put(item)``, which gives up with
:class:`Aborted` when the run is aborted, so a runner blocked on a full link still ends.

ZeroMQ links are PUSH/PULL (PUB/SUB loses what is sent before the subscriber joins) with a
high-water mark of 2; the receiving end binds an ``ipc://`` endpoint in the run's private
directory. HWM alone does not bound memory (kernel buffers hold thousands of small
messages, see STREAMING-NOTES), so frames in flight are bounded by shared-memory slots and
the credits that return them (:class:`CreditReturns`, :class:`CreditSender`).

ZeroMQ drops the messages a receiver had not yet taken in (beyond its HWM) when their
sender disconnects, linger or not: a sender's last frames and its EOS. So a sending end
does not close until its receiver says it read EOS (``delivered``, a flag in the run's
control file); zmqsink/zmqsrc use acknowledgements instead (stream.elements.zmqlink).
"""

from __future__ import annotations

import ipaddress
import queue
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import zmq

from stream.buffers import Eos, Item, StreamStart
from stream.errors import PropertyError
from stream.runner import Aborted, Control
from stream.wire import decode, encode, pack

if TYPE_CHECKING:
    from stream.shm import ShmSlots

HWM = 2
RECONNECT_MS = 10  # a peer that binds after we connect is found within this (ZeroMQ's default: 100)
_POLL_MS = 100
_CREDIT = struct.Struct("<I")


# -- threads ------------------------------------------------------------------------------
class QueueInlet:
    """The receiving end of a bounded queue (threads mode): items travel as objects."""

    def __init__(self, link: queue.Queue[Item]) -> None:
        self._queue = link

    def get(self, timeout: float) -> Item | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self, flush: bool) -> None:
        """Nothing to release."""


class QueueOutlet:
    """The sending end of a bounded queue; blocks while full, unless the run is aborted."""

    def __init__(self, link: queue.Queue[Item], control: Control) -> None:
        self._queue = link
        self._control = control

    def put(self, item: Item) -> None:
        while True:
            if self._control.aborting:
                raise Aborted()
            try:
                self._queue.put(item, timeout=_POLL_MS / 1000)
                return
            except queue.Full:
                continue

    def close(self, flush: bool) -> None:
        """Nothing to release."""


class QueueReporter:
    """Runner reports into the supervisor's queue (threads mode)."""

    def __init__(self, reports: queue.Queue[dict[str, Any]]) -> None:
        self._queue = reports

    def send(self, message: dict[str, Any]) -> None:
        self._queue.put(message)

    def close(self) -> None:
        """Nothing to release."""


# -- processes ----------------------------------------------------------------------------
class ZmqInlet:
    """A PULL socket bound to ``endpoint``; decodes items, mapping slot frames through ``slots``."""

    def __init__(
        self, ctx: zmq.Context, endpoint: str, link: str, slots: ShmSlots | None, control: Control,
        on_eos: Callable[[], None] | None = None,
    ) -> None:
        self.link = link
        self._slots = slots
        self._control = control
        self._on_eos = on_eos
        self._sock = ctx.socket(zmq.PULL)
        self._sock.setsockopt(zmq.RCVHWM, HWM)
        self._sock.bind(endpoint)

    def get(self, timeout: float) -> Item | None:
        if self._control.aborting:
            raise Aborted()
        try:  # take what is waiting without a poll: one system call less per frame
            parts = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            if not self._sock.poll(int(timeout * 1000), zmq.POLLIN):
                return None
            parts = self._sock.recv_multipart(copy=False)
        resolve = self._slots.resolve if self._slots is not None and self._slots.attached else None
        item, shm = decode(parts, link=self.link, resolve=resolve)
        if shm is not None and self._slots is not None:
            self._slots.attach(shm)
        if isinstance(item, Eos) and self._on_eos is not None:
            self._on_eos()
        return item

    def close(self, flush: bool) -> None:
        self._sock.close(linger=0)


class ZmqOutlet:
    """A PUSH socket connected to the next element's inlet.

    Frames that live in a shared-memory slot travel as their header only. On a normal end
    the socket stays open until ``delivered()`` says the peer read EOS (see the module
    doc); on abort it drops what is queued.
    """

    def __init__(
        self, ctx: zmq.Context, endpoint: str, link: str, slots: ShmSlots | None, control: Control,
        delivered: Callable[[], bool] | None = None,
    ) -> None:
        self.link = link
        self._slots = slots
        self._control = control
        self._delivered = delivered
        self._sock = ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, HWM)
        self._sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._sock.connect(endpoint)

    def put(self, item: Item) -> None:
        shm = self._slots.info if self._slots is not None and isinstance(item, StreamStart) else None
        parts = encode(item, link=self.link, by_slot=True, shm=shm)
        while True:
            try:  # multipart sends are atomic: on EAGAIN nothing went out
                self._sock.send_multipart(parts, zmq.NOBLOCK, copy=True)
                return
            except zmq.Again:
                pass
            while not self._sock.poll(_POLL_MS, zmq.POLLOUT):
                if self._control.aborting:
                    raise Aborted()

    def close(self, flush: bool) -> None:
        if flush and self._delivered is not None:
            while not self._delivered():
                if self._control.aborting:
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


# -- endpoints ----------------------------------------------------------------------------
_LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def check_endpoint(endpoint: str | None, owner: str, *, bind: bool, public: bool) -> str:
    """Validates a ``tcp://host:port`` or ``ipc://path`` endpoint for zmqsink/zmqsrc.

    Binding to a non-loopback address (0.0.0.0, *, a LAN address) exposes frames to the
    network, so it must be asked for with ``public=true``.
    """
    where = f"{owner} property endpoint"
    if not endpoint:
        raise PropertyError(f"{where} must be tcp://HOST:PORT or ipc://PATH, got nothing")
    parts = urlsplit(endpoint)
    if parts.scheme == "ipc":
        if not endpoint[len("ipc://"):]:
            raise PropertyError(f"{where} must be ipc://PATH with a path, got {endpoint!r}")
        return endpoint
    if parts.scheme != "tcp":
        raise PropertyError(f"{where} must be tcp://HOST:PORT or ipc://PATH, got {endpoint!r}")
    host = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    port = endpoint.rpartition(":")[2]
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PropertyError(f"{where} must be tcp://HOST:PORT with a port 1-65535, got {endpoint!r}")
    if bind and not public and not _is_loopback(host):
        raise PropertyError(
            f"{where} must be a loopback address (127.0.0.1, ::1, localhost) unless public=true, got {endpoint!r}"
        )
    return endpoint


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name or an interface name (eth0): may be reachable from outside
