"""zmqsink and zmqsrc: one pipeline split across processes or hosts over a ZeroMQ link.

    cleanfeed launch "filesrc location=in.mp4 ! segment box=... ! zmqsink endpoint=tcp://127.0.0.1:5555"
    cleanfeed launch "zmqsrc endpoint=tcp://127.0.0.1:5555 ! track ! inpaint ! filesink location=out.mp4"

The link is a DEALER pair carrying the wire format of stream.wire; frames carry their
pixels (the other side may be another host, so no shared memory). Caps travel with the
stream start; EOS ends the far side. The receiver acknowledges every message and the
sender keeps at most ``WINDOW`` unacknowledged: memory stays bounded whatever the kernel
buffers hold, and the sender closes only once EOS was acknowledged (ZeroMQ drops what a
receiver had not yet taken in when its peer disconnects). By default the sink binds and
the source connects. Binding to anything but loopback (0.0.0.0, a LAN address) exposes
frames to the network and must be asked for with ``public=true``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import zmq

from stream.buffers import Caps, Eos, ErrorEvent, Item, Packet, StreamStart, VideoFrame
from stream.element import Sink, Source
from stream.errors import MediaError, SourceTimeoutError, WireError
from stream.links import check_endpoint
from stream.properties import Property
from stream.registry import register
from stream.wire import decode, encode

_POLL_MS = 100
_EOS_WAIT_S = 30.0
WINDOW = 4
_ACK = b"\x01"


def _link_properties(bind_default: bool) -> tuple[Property, ...]:
    return (
        Property.string("endpoint", "tcp://HOST:PORT or ipc://PATH of the link", None),
        Property.bool("bind", "Bind the endpoint (true) or connect to it (false)", bind_default),
        Property.bool("public", "Allow binding to a non-loopback address (frames become reachable from the network)", False),
        Property.float("timeout_s", "Give up after this many seconds without progress on the link (0: wait for ever)", 0.0, 0.0),
    )


def _open_socket(endpoint: str, bind: bool) -> tuple[zmq.Context, zmq.Socket]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        if bind:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        ctx.term()
        raise MediaError(f"endpoint {endpoint} must be {'bindable' if bind else 'reachable'}, got {exc}") from None
    return ctx, sock


@register
class ZmqSink(Sink):
    factory: ClassVar[str] = "zmqsink"
    klass: ClassVar[str] = "Sink/Network"
    description: ClassVar[str] = (
        "Sends the stream to a zmqsrc in another pipeline, process or host.\n\n"
        "Frames travel with their pixels and masks, packets and EOS follow, so the receiving "
        "pipeline sees exactly this stream. Binds by default; a non-loopback bind needs public=true."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! segment box=410,96,470,150 ! zmqsink endpoint=tcp://127.0.0.1:5555"
    properties: ClassVar[tuple[Property, ...]] = _link_properties(bind_default=True)

    endpoint: str
    bind: bool
    public: bool
    timeout_s: float

    def configure(self) -> None:
        check_endpoint(self.endpoint, self.factory, bind=self.bind, public=self.public)
        self._sock: zmq.Socket | None = None
        self._ctx: zmq.Context | None = None

    def start(self, caps: Caps) -> Caps:
        self._ctx, self._sock = _open_socket(self.endpoint, self.bind)
        self._unacked = 0
        self._send(StreamStart(caps))
        return caps

    def _wait(self, done: Callable[[], bool], limit: float, what: str) -> None:
        """Takes acknowledgements in until ``done()``; MediaError after ``limit`` s without one."""
        assert self._sock is not None
        idle = 0.0
        while not done():
            if self._sock.poll(_POLL_MS, zmq.POLLIN):
                while True:
                    try:
                        self._sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._unacked -= 1
                    idle = 0.0
                continue
            idle += _POLL_MS / 1000
            if limit and idle >= limit:
                raise MediaError(f"{self.name} endpoint {self.endpoint} must {what} within {limit:g} s, got nothing")

    def _send(self, item: Item) -> None:
        assert self._sock is not None
        parts = encode(item, link=f"{self.name} -> {self.endpoint}")
        self._wait(lambda: self._unacked < WINDOW, self.timeout_s, "acknowledge a message")
        sock = self._sock
        self._wait(lambda: bool(sock.poll(0, zmq.POLLOUT)), self.timeout_s, "have a reader")
        sock.send_multipart(parts, copy=True)
        self._unacked += 1

    def render(self, frame: VideoFrame) -> None:
        self._send(frame)

    def render_packet(self, packet: Packet) -> None:
        self._send(packet)

    def finish(self) -> None:
        if self._sock is None:
            return
        try:
            self._send(Eos())
            self._wait(lambda: self._unacked <= 0, self.timeout_s or _EOS_WAIT_S, "acknowledge end of stream")
        finally:
            self._sock.close(linger=0)
            self._sock = None
            if self._ctx is not None:
                self._ctx.term()
                self._ctx = None


@register
class ZmqSrc(Source):
    factory: ClassVar[str] = "zmqsrc"
    klass: ClassVar[str] = "Source/Network"
    description: ClassVar[str] = (
        "Receives the stream a zmqsink sends, from another pipeline, process or host.\n\n"
        "Caps come with the stream start; EOS from the far side ends this pipeline, and an error "
        "there fails this one too. Frames are copied into this pipeline's own frame slots."
    )
    example: ClassVar[str] = "zmqsrc endpoint=tcp://127.0.0.1:5555 ! track ! inpaint ! filesink location=out.mp4"
    properties: ClassVar[tuple[Property, ...]] = _link_properties(bind_default=False) + (
        Property.bool("keep_stamps", "Keep the far side's timestamps (one host only: clocks differ between hosts)", False),
    )

    endpoint: str
    bind: bool
    public: bool
    timeout_s: float
    keep_stamps: bool

    def configure(self) -> None:
        check_endpoint(self.endpoint, self.factory, bind=self.bind, public=self.public)
        self._sock: zmq.Socket | None = None
        self._ctx: zmq.Context | None = None
        self._caps: Caps | None = None
        self.stop_check: Callable[[], None] = lambda: None  # set by the runner

    @property
    def _link(self) -> str:
        return f"{self.endpoint} -> {self.name}"

    def _recv(self, alloc: Any = None) -> Item:
        assert self._sock is not None
        waited = 0.0
        while not self._sock.poll(_POLL_MS, zmq.POLLIN):
            self.stop_check()
            waited += _POLL_MS / 1000
            if self.timeout_s and waited >= self.timeout_s:
                raise SourceTimeoutError(
                    f"{self.name} endpoint {self.endpoint} must deliver a message within {self.timeout_s:g} s, got none"
                )
        item, _ = decode(self._sock.recv_multipart(copy=False), link=self._link, alloc=alloc)
        try:
            self._sock.send(_ACK, zmq.NOBLOCK)
        except zmq.Again:
            pass  # the sender is gone; nothing waits for this acknowledgement
        return item

    def open(self) -> Caps:
        self._ctx, self._sock = _open_socket(self.endpoint, self.bind)
        item = self._recv()
        if isinstance(item, ErrorEvent):
            raise MediaError(f"{self.name} stream must start cleanly, got an error from {item.element}: {item.message}")
        if not isinstance(item, StreamStart):
            raise WireError(f"link {self._link}: first message must be a stream start, got {type(item).__name__}")
        self._caps = item.caps
        return item.caps

    def read(self) -> Iterator[VideoFrame | Packet]:
        caps = self._caps
        assert caps is not None
        slot: list[int | None] = [None]

        def alloc(pix_fmt: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
            picture, mask, slot[0] = self.allocator(caps.with_(pix_fmt=pix_fmt, width=width, height=height))
            return picture.data, mask

        while True:
            slot[0] = None
            item = self._recv(alloc)
            if isinstance(item, VideoFrame):
                item.slot = slot[0]
                if not self.keep_stamps:
                    item.stamps = {}
                yield item
            elif isinstance(item, Packet):
                yield item
            elif isinstance(item, Eos):
                return
            elif isinstance(item, ErrorEvent):
                raise MediaError(f"{self.name} stream must end cleanly, got an error from {item.element}: {item.message}")
            else:
                raise WireError(f"link {self._link}: a second stream start must not arrive mid-stream")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=1000)  # the last acknowledgement must still leave
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
