"""`cleanfeed keys DIR`: a CurveZMQ key pair for zmqsink/zmqsrc links across untrusted networks.

Writes DIR/NAME.key (the public key: give it to the other side) and DIR/NAME.key_secret
(keep it on this machine only, readable by its owner alone), in the certificate format of
``zmq.auth`` that the ``curve_*`` properties read.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from cleanfeed.errors import MediaError, PropertyError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="make a CurveZMQ key pair for encrypted zmqsink/zmqsrc links",
                       description="Write DIR/NAME.key (public: copy it to the other side) and DIR/NAME.key_secret "
                                   "(secret: stays here). The sending side usually is the server: "
                                   "zmqsink curve_secret_key=DIR/server.key_secret curve_authorized=CLIENTS_DIR; "
                                   "the receiver: zmqsrc curve_server_key=DIR/server.key curve_secret_key=DIR/client.key_secret.")
    p.add_argument("dir", metavar="DIR", help="folder to write the key files into (created if missing)")
    p.add_argument("--name", default="cleanfeed", help="base name of the two files (default cleanfeed)")
    p.add_argument("--force", action="store_true", help="replace an existing key pair of that name")
    p.set_defaults(func=main)


def make_keys(folder: str | Path, name: str = "cleanfeed", force: bool = False) -> tuple[Path, Path]:
    """Creates the pair; returns (public file, secret file). The secret file is mode 0600."""
    import zmq.auth

    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise PropertyError(f"key name must be a plain file name, got {name!r}")
    folder = Path(folder)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists() and not force:
            raise MediaError(f"key file {str(path)!r} must not exist already (use --force to replace it), got an existing file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
        os.chmod(made_secret, 0o600)
    except OSError as err:
        raise MediaError(f"key folder {str(folder)!r} must be writable, got {err.strerror or err}") from None
    return Path(made_public), Path(made_secret)


def main(args: argparse.Namespace) -> int:
    public, secret = make_keys(args.dir, args.name, args.force)
    print(f"public key: {public} (give this file to the other side)")
    print(f"secret key: {secret} (keep it here; never copy it)")
    return 0
