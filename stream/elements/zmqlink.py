"""zmqsink and zmqsrc: one pipeline split across processes or hosts over a ZeroMQ link.

    cleanfeed launch "filesrc location=in.mp4 ! segment box=... ! zmqsink endpoint=tcp://127.0.0.1:5555"
    cleanfeed launch "zmqsrc endpoint=tcp://127.0.0.1:5555 ! track ! inpaint ! filesink location=out.mp4"

The link is a DEALER pair carrying the wire format of cleanfeed.stream.wire; frames carry their
pixels (the other side may be another host, so no shared memory). Caps travel with the
stream start; EOS ends the far side. The receiver acknowledges every message and the
sender keeps at most ``WINDOW`` unacknowledged: memory stays bounded whatever the kernel
buffers hold, and the sender closes only once EOS was acknowledged (ZeroMQ drops what a
receiver had not yet taken in when its peer disconnects). By default the sink binds and
the source connects. Binding to anything but loopback (0.0.0.0, a LAN address) exposes
frames to the network and must be asked for with ``public=true``.

A dead peer is noticed within seconds (cleanfeed.stream.links.net.LinkWatch): ZeroMQ heartbeats every
``heartbeat_s`` drop a connection whose peer froze or whose network vanished, a killed
peer's connection drops at once, and a peer gone for ``heartbeat_timeout_s`` fails the
element with "zmqsrc: no heartbeat from tcp://... for N s" (a sink also says how many
messages were never acknowledged: nothing is lost silently). For a network that is not
trusted, CurveZMQ encrypts and authenticates the link (``curve_*`` properties, key files
made by ``cleanfeed keys DIR``):

    zmqsink endpoint=tcp://0.0.0.0:5555 public=true curve_secret_key=keys/server.key_secret curve_authorized=keys/clients
    zmqsrc endpoint=tcp://studio:5555 curve_server_key=keys/server.key curve_secret_key=keys/client.key_secret
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import zmq

from cleanfeed.errors import MediaError, PropertyError, SourceTimeoutError, WireError
from cleanfeed.stream.buffers import Caps, Eos, ErrorEvent, Item, Packet, StreamStart, VideoFrame
from cleanfeed.stream.element import Element, Sink, Source
from cleanfeed.stream.links.net import Curve, Heartbeat, NetLink, check_endpoint
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register
from cleanfeed.stream.wire import decode, encode

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
        Property.float("heartbeat_s", "Seconds between ZeroMQ heartbeats on the link", 0.5, 0.05, 60.0),
        Property.float("heartbeat_timeout_s", "A peer silent or gone this long is dead: the element fails", 2.0, 0.1, 600.0),
        Property.string("curve_secret_key", "CurveZMQ: this side's secret key file (NAME.key_secret from cleanfeed keys)", None),
        Property.string("curve_server_key", "CurveZMQ client: the server side's public key file (NAME.key)", None),
        Property.string("curve_authorized", "CurveZMQ server: folder of the clients' public key files allowed in", None),
    )


def _check_link(el: Element) -> None:
    """What zmqsink and zmqsrc check when built: endpoint, heartbeat timings, key files."""
    check_endpoint(el.endpoint, el.factory, bind=el.bind, public=el.public)
    if el.heartbeat_timeout_s <= el.heartbeat_s:
        raise PropertyError(
            f"{el.factory} property heartbeat_timeout_s must be longer than heartbeat_s ({el.heartbeat_s:g}), "
            f"got {el.heartbeat_timeout_s:g}"
        )
    _curve(el).check(el.factory)


def _curve(el: Element) -> Curve:
    return Curve(el.curve_secret_key or None, el.curve_server_key or None, el.curve_authorized or None)


def _open_link(el: Element, error_cls: type[MediaError]) -> NetLink:
    return NetLink(
        el.endpoint, bind=el.bind, owner=el.name, curve=_curve(el),
        heartbeat=Heartbeat(el.heartbeat_s, el.heartbeat_timeout_s), error_cls=error_cls,
    )


@register
class ZmqSink(Sink):
    factory: ClassVar[str] = "zmqsink"
    klass: ClassVar[str] = "Sink/Network"
    description: ClassVar[str] = (
        "Sends the stream to a zmqsrc in another pipeline, process or host.\n\n"
        "Frames travel with their pixels and masks, packets and EOS follow, so the receiving "
        "pipeline sees exactly this stream. Binds by default; a non-loopback bind needs public=true. "
        "A receiver gone for heartbeat_timeout_s fails this element, saying how many messages it never "
        "acknowledged; curve_* properties encrypt and authenticate the link (keys: cleanfeed keys DIR)."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! segment box=410,96,470,150 ! zmqsink endpoint=tcp://127.0.0.1:5555"
    properties: ClassVar[tuple[Property, ...]] = _link_properties(bind_default=True)


    def configure(self) -> None:
        _check_link(self)
        self._net: NetLink | None = None
        self._sock: zmq.Socket | None = None

    def start(self, caps: Caps) -> Caps:
        self._net = _open_link(self, MediaError)
        self._sock = self._net.sock
        self._unacked = 0
        self._send(StreamStart(caps))
        return caps

    def _check_peer(self) -> None:
        """MediaError when the receiver is gone, saying what it never acknowledged."""
        assert self._net is not None
        try:
            self._net.check()
        except MediaError as exc:
            if self._unacked <= 0:
                raise
            raise MediaError(f"{exc} ({self._unacked} message(s) sent were not acknowledged)") from None

    def _wait(self, done: Callable[[], bool], limit: float, what: str) -> None:
        """Takes acknowledgements in until ``done()``; MediaError after ``limit`` s without one,
        or when the receiver is gone (see the module doc)."""
        assert self._sock is not None
        idle = 0.0
        while not done():
            self._check_peer()
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
        if self._net is None:
            return
        try:
            if not self._net.dead:  # a receiver known to be gone will not read EOS either
                self._send(Eos())
                self._wait(lambda: self._unacked <= 0, self.timeout_s or _EOS_WAIT_S, "acknowledge end of stream")
        finally:
            self._net.close(linger=0)
            self._net = self._sock = None


@register
class ZmqSrc(Source):
    factory: ClassVar[str] = "zmqsrc"
    klass: ClassVar[str] = "Source/Network"
    description: ClassVar[str] = (
        "Receives the stream a zmqsink sends, from another pipeline, process or host.\n\n"
        "Caps come with the stream start; EOS from the far side ends this pipeline, and an error "
        "there fails this one too. Frames are copied into this pipeline's own frame slots. A sender gone for "
        "heartbeat_timeout_s fails this element (\"no heartbeat from ...\"); curve_* properties encrypt "
        "and authenticate the link, and a wrong key fails at once with a message saying which."
    )
    example: ClassVar[str] = "zmqsrc endpoint=tcp://127.0.0.1:5555 ! track ! inpaint ! filesink location=out.mp4"
    properties: ClassVar[tuple[Property, ...]] = _link_properties(bind_default=False) + (
        Property.bool("keep_stamps", "Keep the far side's timestamps (one host only: clocks differ between hosts)", False),
    )

    def configure(self) -> None:
        _check_link(self)
        self._net: NetLink | None = None
        self._sock: zmq.Socket | None = None
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
            assert self._net is not None
            self._net.check()
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
        self._net = _open_link(self, SourceTimeoutError)
        self._sock = self._net.sock
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
        if self._net is not None:
            self._net.close(linger=0 if self._net.dead else 1000)  # the last acknowledgement must still leave
            self._net = self._sock = None
