"""The ends of a link: bounded queues between threads, ZeroMQ sockets between processes.

Every end has the same two verbs so the runner does not care which it has:
``Inlet.get(timeout) -> item | None`` (None when nothing came in time: the runner checks
the abort flag between waits) and ``Outlet.put(item)``, which gives up with
:class:`Aborted` when the run is aborted, so a runner blocked on a full link still ends.

ZeroMQ links are PUSH/PULL (PUB/SUB loses what is sent before the subscriber joins) with a
high-water mark of 2; the receiving end binds an ``ipc://`` endpoint in the run's private
directory. HWM alone does not bound memory (kernel buffers hold thousands of small
messages, see docs/streaming.md), so frames in flight are bounded by shared-memory slots and
the credits that return them (:class:`CreditReturns`, :class:`CreditSender`).

ZeroMQ drops the messages a receiver had not yet taken in (beyond its HWM) when their
sender disconnects, linger or not: a sender's last frames and its EOS. So a sending end
does not close until its receiver says it read EOS (``delivered``, a flag in the run's
control file); zmqsink/zmqsrc use acknowledgements instead (cleanfeed.stream.elements.zmqlink).

Links across hosts (zmqsink/zmqsrc, :class:`NetLink`) add two things. Liveness: ZeroMQ's
own heartbeats (ZMTP PING/PONG, answered by ZeroMQ's I/O thread, so a busy or back-pressured
peer still counts as alive) drop a connection whose peer froze or whose network vanished; a
killed peer's connection drops at once. :class:`LinkWatch` follows the socket's monitor
events and fails the element when the peer stayed gone for ``heartbeat_timeout_s``.
Security: optional CurveZMQ encryption and authentication (:class:`Curve`) with key files in
``zmq.auth`` certificate format (``cleanfeed keys DIR`` makes them).
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import zmq
import zmq.auth
from zmq.utils import z85

from cleanfeed.errors import MediaError, PropertyError
from cleanfeed.stream.buffers import Eos, Item, StreamStart, VideoFrame
from cleanfeed.stream.runner import Aborted, Control
from cleanfeed.stream.wire import Part, decode, encode, pack

if TYPE_CHECKING:
    from cleanfeed.stream.shm import ShmSlots

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
class Board(Protocol):
    """A link's restart fields (cleanfeed.stream.supervisor.FileControl, see its ``FIELDS``)."""

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


# -- across hosts: CurveZMQ ---------------------------------------------------------------
log = logging.getLogger(__name__)


def _load_key(path: str, owner: str, prop: str, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) from a zmq.auth certificate file; PropertyError naming the property."""
    what = "a secret key file (NAME.key_secret from cleanfeed keys)" if secret else "a public key file (NAME.key from cleanfeed keys)"
    try:
        public, private = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise PropertyError(f"{owner} property {prop} must be {what}, got {path!r} ({exc})") from None
    keys = [public] + ([private] if secret else [])
    if secret and private is None:
        raise PropertyError(f"{owner} property {prop} must be {what}, got {path!r} (it has no secret-key line)")
    for key in keys:
        if key is None or len(key) != 40:
            raise PropertyError(f"{owner} property {prop} must hold 40-character Z85 keys, got {path!r}")
        try:
            z85.decode(key)
        except (ValueError, KeyError, IndexError):
            raise PropertyError(f"{owner} property {prop} must hold 40-character Z85 keys, got {path!r}") from None
    return public, private


@dataclass(frozen=True)
class Curve:
    """CurveZMQ settings of one end of a network link (all paths; None: not used).

    The side without ``server_key`` but with ``secret_key`` is the CurveZMQ *server* (usually
    the side that binds); with ``authorized`` (a folder of clients' public ``.key`` files) it
    accepts only those clients, else any client that knows its public key. The side with
    ``server_key`` (the server's public key file) is a *client*; its own ``secret_key`` is
    needed when the server checks clients, otherwise a throwaway key pair is made.
    Either way the link is encrypted, and the client knows it talks to the right server.
    """

    secret_key: str | None = None
    server_key: str | None = None
    authorized: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.secret_key or self.server_key)

    @property
    def is_server(self) -> bool:
        return self.enabled and not self.server_key

    def check(self, owner: str) -> None:
        """Raises PropertyError for a combination or a key file that cannot work."""
        if self.authorized and self.server_key:
            raise PropertyError(
                f"{owner} property curve_authorized must be set only on the CurveZMQ server side (without "
                f"curve_server_key), got both curve_authorized and curve_server_key"
            )
        if self.authorized and not self.secret_key:
            raise PropertyError(f"{owner} property curve_authorized needs curve_secret_key (the server's own key), got none")
        if self.authorized and not Path(self.authorized).is_dir():
            raise PropertyError(f"{owner} property curve_authorized must be a folder of clients' .key files, got {self.authorized!r}")
        if self.secret_key:
            _load_key(self.secret_key, owner, "curve_secret_key", secret=True)
        if self.server_key:
            _load_key(self.server_key, owner, "curve_server_key", secret=False)

    def apply(self, ctx: zmq.Context, sock: zmq.Socket, owner: str) -> Any:
        """Sets the socket's CurveZMQ options (before bind/connect); returns the started
        authenticator (stop it before the context ends) when clients are checked, else None."""
        if not self.enabled:
            return None
        if self.secret_key:
            public, secret = _load_key(self.secret_key, owner, "curve_secret_key", secret=True)
        else:
            public, secret = zmq.curve_keypair()
        sock.curve_publickey, sock.curve_secretkey = public, secret
        if self.server_key:
            sock.curve_serverkey = _load_key(self.server_key, owner, "curve_server_key", secret=False)[0]
            return None
        sock.curve_server = True
        if not self.authorized:
            return None
        from zmq.auth.thread import ThreadAuthenticator

        auth = ThreadAuthenticator(ctx, log=logging.getLogger("cleanfeed.stream.links.auth"))
        auth.start()
        auth.configure_curve(domain="*", location=self.authorized)
        return auth


# -- across hosts: liveness ---------------------------------------------------------------
@dataclass(frozen=True)
class Heartbeat:
    """ZMTP heartbeats every ``interval_s``; a peer gone for ``timeout_s`` is dead."""

    interval_s: float = 0.5
    timeout_s: float = 2.0

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(self.interval_s * 1000)))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(self.timeout_s * 1000)))
        sock.setsockopt(zmq.HEARTBEAT_TTL, min(max(100, int(self.timeout_s * 1000)), 6_553_500))


_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "no detail",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth",
}


class LinkWatch:
    """Follows one socket's monitor events: is a peer connected (handshake done), since when
    is none, and did a handshake fail.

    :meth:`check` raises ``error_cls`` once the peer that was there stayed away for the
    heartbeat timeout (nothing is said before a first peer ever came: waiting for one is
    the element's ``timeout_s`` business). A failed handshake on the connecting side raises
    at once with what is wrong (a key, or encryption on one side only); on the binding side
    it is logged and ignored, so a stranger knocking cannot stop the feed.
    """

    def __init__(
        self, sock: zmq.Socket, endpoint: str, owner: str, *, bind: bool, curve: Curve, timeout_s: float,
        error_cls: type[MediaError] = MediaError,
    ) -> None:
        self.endpoint, self.owner, self.bind, self.curve = endpoint, owner, bind, curve
        self.timeout_s = timeout_s
        self.error_cls = error_cls
        self._sock = sock
        self._mon: zmq.Socket | None = sock.get_monitor_socket()
        self._pending: deque[int] = deque()  # connections not yet through their handshake
        self._live: set[int] = set()
        self.ever_up = False
        self.down_since: float | None = None
        self.failure: MediaError | None = None

    @property
    def up(self) -> bool:
        return bool(self._live)

    def poll(self) -> None:
        """Takes in the events that arrived (never blocks)."""
        if self._mon is None:
            return
        from zmq.utils.monitor import parse_monitor_message

        while True:
            try:
                parts = self._mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(parts)
            self._event(int(event["event"]), int(event["value"]))

    def _event(self, event: int, value: int) -> None:
        if event in (zmq.EVENT_CONNECTED, zmq.EVENT_ACCEPTED):
            self._pending.append(value)
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            fd = self._pending.popleft() if self._pending else -1
            self._live.add(fd)
            self.ever_up, self.down_since = True, None
        elif event in _FAILED:
            if self._pending:
                self._pending.popleft()
            self._handshake_failed(event, value)
        elif event == zmq.EVENT_DISCONNECTED:
            if value in self._pending:
                self._pending.remove(value)  # never got through its handshake
                return
            was_up = self.up
            self._live.discard(value if value in self._live else -1)
            if was_up and not self.up:
                self.down_since = time.monotonic()

    def _handshake_failed(self, event: int, value: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            why = (f"{self.endpoint} refused this side's key (CurveZMQ status {value}): its public key must be in "
                   "the other side's curve_authorized folder")
        elif value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            why = (f"handshake with {self.endpoint} failed: both sides must use CurveZMQ or neither, "
                   "got encryption on one side only")
        elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and not self.curve.enabled:
            # a plain side talking to an encrypted one may only see the peer hang up (EPIPE) under load
            why = (f"handshake with {self.endpoint} failed: both sides must use CurveZMQ or neither, got the "
                   f"connection closed during the handshake (error {value:#x}; is only the other side encrypted?)")
        elif self.curve.server_key:
            why = (f"handshake with {self.endpoint} failed: curve_server_key must be the public key of the side at "
                   f"{self.endpoint}, got {self.curve.server_key!r}")
        else:
            why = f"handshake with {self.endpoint} failed ({_FAILED[event]} error {value:#x}): check both sides' curve_* keys"
        if self.bind:
            log.warning("%s: a peer was refused: %s", self.owner, why)
        elif self.failure is None:
            self.failure = self.error_cls(f"{self.owner}: {why}")

    def check(self) -> None:
        """Raises when the link is known to be unusable (see the class doc)."""
        self.poll()
        if self.failure is not None:
            raise self.failure
        if self.down_since is not None and time.monotonic() - self.down_since >= self.timeout_s:
            self.failure = self.error_cls(self.dead_message())
            raise self.failure

    def dead_message(self) -> str:
        return f"{self.owner}: no heartbeat from {self.endpoint} for {self.timeout_s:g} s"

    def close(self) -> None:
        if self._mon is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self._mon.close(linger=0)
            self._mon = None


class NetLink:
    """One DEALER socket of a zmqsink/zmqsrc with its own context, liveness watch and (for
    CurveZMQ servers that check clients) authenticator; :meth:`close` ends them in order."""

    def __init__(
        self, endpoint: str, *, bind: bool, owner: str, curve: Curve, heartbeat: Heartbeat,
        error_cls: type[MediaError] = MediaError,
    ) -> None:
        self.endpoint = endpoint
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self._auth: Any = None
        self.watch: LinkWatch | None = None
        try:
            heartbeat.apply(self.sock)
            self._auth = curve.apply(self.ctx, self.sock, owner)
            self.watch = LinkWatch(
                self.sock, endpoint, owner, bind=bind, curve=curve, timeout_s=heartbeat.timeout_s, error_cls=error_cls
            )
            if bind:
                self.sock.bind(endpoint)
            else:
                self.sock.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close(linger=0)
            raise MediaError(f"endpoint {endpoint} must be {'bindable' if bind else 'reachable'}, got {exc}") from None
        except BaseException:
            self.close(linger=0)
            raise

    def check(self) -> None:
        assert self.watch is not None
        self.watch.check()

    @property
    def dead(self) -> bool:
        return self.watch is not None and self.watch.failure is not None

    def close(self, linger: int = 0) -> None:
        if self.watch is not None:
            self.watch.close()
        self.sock.close(linger=linger)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self.ctx.term()
