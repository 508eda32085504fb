"""A feed split across two nodes: its chain cut before one element (``split = "segment"``), the part
before it (decode) on one node, the part from it on (models, encode, the output) on another, joined
by a zmqsink/zmqsrc link.

Each part is a `cleanfeed launch` of the chain `cleanfeed run` would build, so a split feed does
what the same feed unsplit does; only the link is added, per try: the receiving part binds its
node's address on a port free there (its actor tells the fleet through Ray) and the sending part
connects to it. The link is always encrypted and authenticated with CurveZMQ, with two key pairs
made for that try alone (:func:`link`): the receiver is the CurveZMQ server and lets in only the
sender's public key, and the sender only talks to the receiver's. Keys travel to each part's actor
as small arguments through Ray (never frames), are written into the actor's private temp folder
(a 0700 folder, 0600 files, removed with it) and never into a command line or a log; a
:class:`LinkEnd`'s repr leaves them out.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DECODE = "decode"
MODELS = "models"
"""The parts' names in errors and the fleet's document: the part before ``split`` and the part from it on."""


@dataclass(frozen=True)
class Split:
    """A feed's two parts as `cleanfeed launch` arguments, each without its link element (added per
    try by :meth:`LinkEnd.args`): ``decode`` reads the input up to the element ``at``, ``models``
    runs from ``at`` to the output. Resources: ``decode_cpus`` for the decode part, the feed's own
    ``cpus`` and ``gpus`` for the models part."""

    at: str
    decode: tuple[str, ...]
    models: tuple[str, ...]


@dataclass(frozen=True)
class LinkEnd:
    """One part's end of its link for one try: the endpoint, which side it is, and its keys
    (Z85 text): its own pair and the other end's public key."""

    endpoint: str
    receives: bool
    public: str = field(repr=False)
    secret: str = field(repr=False)
    peer: str = field(repr=False)

    def element(self, folder: str | Path) -> str:
        """Writes this end's key files into ``folder`` (made private) and returns its link element."""
        folder = Path(folder)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.receives:
            clients = folder / "clients"
            clients.mkdir(mode=0o700, exist_ok=True)
            _write_key(folder / "server.key_secret", self.public, self.secret)
            _write_key(clients / "sender.key", self.peer)
            return (f"zmqsrc endpoint={self.endpoint} bind=true public=true "
                    f"curve_secret_key={_quote(folder / 'server.key_secret')} curve_authorized={_quote(clients)}")
        _write_key(folder / "sender.key_secret", self.public, self.secret)
        _write_key(folder / "server.key", self.peer)
        return (f"zmqsink endpoint={self.endpoint} bind=false "
                f"curve_server_key={_quote(folder / 'server.key')} curve_secret_key={_quote(folder / 'sender.key_secret')}")

    def args(self, part: tuple[str, ...] | list[str], folder: str | Path) -> list[str]:
        """``part`` (``["launch", CHAIN, *flags]``) with this end's element joined to its chain:
        before it on the receiving side, after it on the sending side."""
        element = self.element(folder)
        chain = f"{element} ! {part[1]}" if self.receives else f"{part[1]} ! {element}"
        return [part[0], chain, *part[2:]]


def link(endpoint: str) -> tuple[LinkEnd, LinkEnd]:
    """The (sending, receiving) ends of a link at ``endpoint``, with two fresh CurveZMQ key pairs."""
    import zmq

    server_public, server_secret = (k.decode() for k in zmq.curve_keypair())
    sender_public, sender_secret = (k.decode() for k in zmq.curve_keypair())
    return (LinkEnd(endpoint, False, sender_public, sender_secret, server_public),
            LinkEnd(endpoint, True, server_public, server_secret, sender_public))


def tcp_endpoint(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def _write_key(path: Path, public: str, secret: str | None = None) -> None:
    """A key file in zmq.auth's certificate format (what the curve_* properties read), created
    readable by its owner alone before anything is written into it."""
    text = f'metadata\ncurve\n    public-key = "{public}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret}"\n'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _quote(path: Path) -> str:
    text = str(path)
    return shlex.quote(text) if any(c.isspace() or c in "!'\"" for c in text) else text
