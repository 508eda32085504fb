"""zmqsink/zmqsrc across hosts: a dead or frozen peer is noticed within seconds, CurveZMQ
encrypts and authenticates, a wrong key is refused with a clear message (never a hang)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cleanfeed.errors import MediaError, PropertyError, SourceTimeoutError
from cleanfeed.stream.cli.keys import make_keys
from cleanfeed.stream.cli.main import main as cli_main
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.registry import create
from tests.stream.fake_elements import expected_crcs

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _background(line: str) -> subprocess.Popen:
    """Runs a pipeline in another process (threads mode: one pid to kill or freeze)."""
    code = (
        "from tests.stream import fake_elements\n"
        "from cleanfeed.stream.pipeline import Pipeline\n"
        f"report = Pipeline.from_launch({line!r}).run(mode='thread')\n"
        "print('sent', report.frames_out)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reap(proc: subprocess.Popen, wait_s: float = 0.0) -> tuple[str, str]:
    """Lets it end by itself for ``wait_s``, then kills it (a frozen one too): with no wait, at once."""
    if wait_s:
        try:
            return proc.communicate(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGCONT)
    return proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    clients = folder / "clients"
    out: dict[str, Path] = {"clients": clients}
    for name in ("server", "client", "stranger"):
        out[name], out[f"{name}_secret"] = make_keys(folder, name)
    clients.mkdir()
    (clients / "client.key").write_bytes(out["client"].read_bytes())
    return out


def _server_props(keys: dict[str, Path]) -> str:
    return f"curve_secret_key={keys['server_secret']} curve_authorized={keys['clients']}"


def test_encrypted_link_carries_every_frame(keys, tmp_path) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    sender = _background(f"t_countsrc frames=15 ! zmqsink endpoint={endpoint} {_server_props(keys)}")
    out = tmp_path / "rec.json"
    try:
        report = Pipeline.from_launch(
            f"zmqsrc endpoint={endpoint} timeout_s=30 curve_server_key={keys['server']} "
            f"curve_secret_key={keys['client_secret']} ! t_recordsink location={out}"
        ).run(mode="thread")
    finally:
        stdout, stderr = _reap(sender, wait_s=30)
    assert sender.returncode == 0, stderr
    assert stdout.strip() == "sent 15"
    rec = json.loads(out.read_text())
    assert rec["finished"] and rec["seqs"] == list(range(15))
    assert rec["crcs"] == expected_crcs(15)
    assert report.frames_out == 15


@pytest.mark.parametrize(("client", "message"), [
    ("curve_server_key={stranger} curve_secret_key={client_secret}",
     r"^zmqsrc: handshake with {ep} failed: curve_server_key must be the public key of the side at {ep}, got '.*stranger.key'$"),
    ("curve_server_key={server} curve_secret_key={stranger_secret}",
     r"^zmqsrc: {ep} refused this side's key \(CurveZMQ status 400\): its public key must be in the other side's "
     r"curve_authorized folder$"),
    # libzmq names the mismatch, or (under load) only sees the encrypted side hang up: both say what to check
    ("", r"^zmqsrc: handshake with {ep} failed: both sides must use CurveZMQ or neither, got (encryption on one side "
         r"only|the connection closed during the handshake \(error 0x[0-9a-f]+; is only the other side encrypted\?\))$"),
])
def test_a_wrong_key_is_refused_with_a_clear_message(keys, tmp_path, client: str, message: str) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    sender = _background(f"t_countsrc frames=5 ! zmqsink endpoint={endpoint} {_server_props(keys)}")
    props = client.format(**{k: str(v) for k, v in keys.items()})
    out = tmp_path / "rec.json"
    start = time.monotonic()
    try:
        with pytest.raises(SourceTimeoutError, match=message.format(ep=endpoint)):
            Pipeline.from_launch(f"zmqsrc endpoint={endpoint} timeout_s=20 {props} ! t_recordsink location={out}").run(
                mode="thread"
            )
        assert time.monotonic() - start < 10
        assert sender.poll() is None  # the server side ignores the knock and keeps waiting for its client
    finally:
        _reap(sender)


def test_a_killed_sender_is_noticed_within_seconds(tmp_path) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    sender = _background(f"t_countsrc frames=0 delay_ms=5 ! zmqsink endpoint={endpoint}")
    out = tmp_path / "rec.json"
    killed: list[float] = []

    def kill_after_some_frames(progress) -> None:
        if progress.frames_out >= 10 and not killed:
            os.kill(sender.pid, signal.SIGKILL)
            killed.append(time.monotonic())

    try:
        with pytest.raises(SourceTimeoutError, match=rf"^zmqsrc: no heartbeat from {endpoint} for 1 s$") as info:
            Pipeline.from_launch(
                f"zmqsrc endpoint={endpoint} timeout_s=30 heartbeat_s=0.2 heartbeat_timeout_s=1 ! t_recordsink location={out}"
            ).run(mode="thread", progress=kill_after_some_frames, stats_every_s=0.05)
    finally:
        _reap(sender)
    assert killed and time.monotonic() - killed[0] < 5
    rec = json.loads(out.read_text())
    assert rec["finished"] and rec["seqs"] == list(range(len(rec["seqs"]))) and len(rec["seqs"]) >= 10
    assert info.value.report.frames_out == len(rec["seqs"])  # type: ignore[attr-defined]


def test_a_frozen_sender_is_noticed_by_zeromq_heartbeats(tmp_path) -> None:
    """SIGSTOP keeps the TCP connection open: only heartbeats can tell the peer is gone."""
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    sender = _background(f"t_countsrc frames=0 delay_ms=5 ! zmqsink endpoint={endpoint}")
    stopped: list[float] = []

    def freeze_after_some_frames(progress) -> None:
        if progress.frames_out >= 10 and not stopped:
            os.kill(sender.pid, signal.SIGSTOP)
            stopped.append(time.monotonic())

    try:
        with pytest.raises(SourceTimeoutError, match=rf"^zmqsrc: no heartbeat from {endpoint} for 1 s$"):
            Pipeline.from_launch(
                f"zmqsrc endpoint={endpoint} timeout_s=30 heartbeat_s=0.2 heartbeat_timeout_s=1 ! fakesink"
            ).run(mode="thread", progress=freeze_after_some_frames, stats_every_s=0.05)
    finally:
        _reap(sender)
    assert stopped and time.monotonic() - stopped[0] < 6


def test_a_sink_whose_receiver_died_fails_and_counts_what_was_not_acknowledged(tmp_path) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    receiver = _background(f"zmqsrc endpoint={endpoint} timeout_s=30 ! t_copy ! fakesink")
    killed: list[float] = []

    def kill_after_some_frames(progress) -> None:
        if progress.frames_out >= 10 and not killed:
            os.kill(receiver.pid, signal.SIGKILL)
            killed.append(time.monotonic())

    try:
        with pytest.raises(MediaError, match=rf"^zmqsink: no heartbeat from {endpoint} for 1 s( \(\d+ message\(s\) sent were "
                                             r"not acknowledged\))?$"):
            Pipeline.from_launch(
                f"t_countsrc frames=0 delay_ms=5 ! zmqsink endpoint={endpoint} heartbeat_s=0.2 heartbeat_timeout_s=1"
            ).run(mode="thread", progress=kill_after_some_frames, stats_every_s=0.05)
    finally:
        _reap(receiver)
    assert killed and time.monotonic() - killed[0] < 5


def test_link_properties_are_checked(keys, tmp_path) -> None:
    with pytest.raises(PropertyError, match=r"^zmqsrc property heartbeat_timeout_s must be longer than heartbeat_s \(2\), got 1$"):
        create("zmqsrc", {"endpoint": "tcp://127.0.0.1:5555", "heartbeat_s": "2", "heartbeat_timeout_s": "1"})
    with pytest.raises(PropertyError, match=r"^zmqsink property curve_secret_key must be a secret key file .*got '.*server.key' "
                                            r"\(it has no secret-key line\)$"):
        create("zmqsink", {"endpoint": "tcp://127.0.0.1:5555", "curve_secret_key": str(keys["server"])})
    with pytest.raises(PropertyError, match=r"^zmqsrc property curve_server_key must be a public key file .*got '.*nope.key' "):
        create("zmqsrc", {"endpoint": "tcp://127.0.0.1:5555", "curve_server_key": str(tmp_path / "nope.key")})
    with pytest.raises(PropertyError, match=r"^zmqsrc property curve_authorized must be set only on the CurveZMQ server side"):
        create("zmqsrc", {"endpoint": "tcp://127.0.0.1:5555", "curve_server_key": str(keys["server"]),
                          "curve_authorized": str(keys["clients"])})
    with pytest.raises(PropertyError, match=r"^zmqsink property curve_authorized needs curve_secret_key"):
        create("zmqsink", {"endpoint": "tcp://127.0.0.1:5555", "curve_authorized": str(keys["clients"])})
    garbled = tmp_path / "garbled.key_secret"
    garbled.write_text('public-key = "short"\nsecret-key = "short"\n')
    with pytest.raises(PropertyError, match=r"^zmqsink property curve_secret_key must hold 40-character Z85 keys"):
        create("zmqsink", {"endpoint": "tcp://127.0.0.1:5555", "curve_secret_key": str(garbled)})


def test_keys_command_writes_a_pair_and_keeps_the_secret_private(tmp_path, capsys) -> None:
    assert cli_main(["keys", str(tmp_path / "k"), "--name", "studio"]) == 0
    public, secret = tmp_path / "k" / "studio.key", tmp_path / "k" / "studio.key_secret"
    assert "secret-key" not in public.read_text() and "secret-key" in secret.read_text()
    assert secret.stat().st_mode & 0o077 == 0
    assert str(public) in capsys.readouterr().out
    assert cli_main(["keys", str(tmp_path / "k"), "--name", "studio"]) == 3
    assert "must not exist already" in capsys.readouterr().err
