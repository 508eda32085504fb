"""Links across hosts (zmqsink/zmqsrc, :class:`NetLink`): what a single run's private
sockets do not need.

Liveness: ZeroMQ's own heartbeats (ZMTP PING/PONG, answered by ZeroMQ's I/O thread, so a
busy or back-pressured peer still counts as alive) drop a connection whose peer froze or
whose network vanished; a killed peer's connection drops at once. :class:`LinkWatch`
follows the socket's monitor events and fails the element when the peer stayed gone for
``heartbeat_timeout_s``. Security: optional CurveZMQ encryption and authentication
(:class:`Curve`) with key files in ``zmq.auth`` certificate format (``cleanfeed keys DIR``
makes them). Endpoints are checked before anything binds (:func:`check_endpoint`): a
non-loopback bind must be asked for.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.utils import z85

from cleanfeed.errors import MediaError, PropertyError

log = logging.getLogger(__name__)

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
