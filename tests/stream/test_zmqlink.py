"""zmqsink/zmqsrc: one pipeline split across two processes over TCP; endpoint rules."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cleanfeed.errors import PropertyError, SourceTimeoutError
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.registry import create
from tests.stream.fake_elements import EXTRADATA, expected_crcs

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sender(line: str, mode: str = "thread") -> subprocess.Popen:
    code = (
        "import sys\n"
        "from tests.stream import fake_elements\n"
        "from cleanfeed.stream.pipeline import Pipeline\n"
        f"report = Pipeline.from_launch({line!r}).run(mode={mode!r})\n"
        "print('sent', report.frames_out, report.packets_out)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_pipelines_in_two_processes_over_tcp(tmp_path) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    sender = _sender(f"t_countsrc frames=25 packets_every=5 ! identity ! zmqsink endpoint={endpoint}")
    try:
        out = tmp_path / "rec.json"
        report = Pipeline.from_launch(
            f"zmqsrc endpoint={endpoint} timeout_s=30 ! identity ! t_recordsink location={out}"
        ).run(mode="process")
        stdout, stderr = sender.communicate(timeout=30)
    finally:
        sender.kill()
        sender.wait()
    assert sender.returncode == 0, stderr
    assert stdout.strip() == "sent 25 5"
    rec = json.loads(out.read_text())
    assert rec["finished"] and rec["seqs"] == list(range(25))
    assert rec["crcs"] == expected_crcs(25)
    assert [p[2] for p in rec["packets"]] == [s * 1600 for s in (4, 9, 14, 19, 24)]
    assert repr(EXTRADATA) in rec["caps"]
    assert rec["stamps"] == ["zmqsrc", "identity"]  # the far side's clock stays on the far side
    assert report.frames_in == 25 and report.caps is not None and report.caps.frames == 25


def test_receiver_started_first_and_sender_in_process_mode(tmp_path) -> None:
    """The source binds this time; the sink connects, and runs in process mode itself."""
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "rec.json"
    receiver = Pipeline.from_launch(f"zmqsrc endpoint={endpoint} bind=true timeout_s=30 ! t_recordsink location={out}")
    sender = _sender(f"t_countsrc frames=12 pix_fmt=rgb24 ! zmqsink endpoint={endpoint} bind=false", mode="process")
    try:
        receiver.run(mode="thread")
        stdout, stderr = sender.communicate(timeout=30)
    finally:
        sender.kill()
        sender.wait()
    assert sender.returncode == 0, stderr
    assert json.loads(out.read_text())["crcs"] == expected_crcs(12, "rgb24")


def test_binding_beyond_loopback_needs_public() -> None:
    with pytest.raises(PropertyError, match=r"^zmqsink property endpoint must be a loopback address \(127.0.0.1, ::1, localhost\) unless public=true, got 'tcp://0.0.0.0:5555'$"):
        create("zmqsink", {"endpoint": "tcp://0.0.0.0:5555"})
    with pytest.raises(PropertyError, match=r"^zmqsrc property endpoint must be a loopback address .* got 'tcp://192.168.1.5:7000'$"):
        create("zmqsrc", {"endpoint": "tcp://192.168.1.5:7000", "bind": "true"})
    with pytest.raises(PropertyError, match=r"unless public=true, got 'tcp://\*:5555'$"):
        create("zmqsink", {"endpoint": "tcp://*:5555"})
    assert create("zmqsink", {"endpoint": "tcp://0.0.0.0:5555", "public": "true"}).public is True
    assert create("zmqsink", {"endpoint": "tcp://[::1]:5555"}).bind is True
    assert create("zmqsrc", {"endpoint": "tcp://192.168.1.5:7000"}).bind is False  # connecting out is explicit enough
    assert create("zmqsink", {"endpoint": "tcp://localhost:5555"}).endpoint == "tcp://localhost:5555"


@pytest.mark.parametrize(("endpoint", "message"), [
    (None, r"^zmqsink property endpoint must be tcp://HOST:PORT or ipc://PATH, got nothing$"),
    ("udp://127.0.0.1:5", r"^zmqsink property endpoint must be tcp://HOST:PORT or ipc://PATH, got 'udp://127.0.0.1:5'$"),
    ("tcp://127.0.0.1", r"^zmqsink property endpoint must be tcp://HOST:PORT with a port 1-65535, got 'tcp://127.0.0.1'$"),
    ("tcp://127.0.0.1:70000", r"^zmqsink property endpoint must be tcp://HOST:PORT with a port 1-65535"),
])
def test_endpoints_are_checked(endpoint, message: str) -> None:
    with pytest.raises(PropertyError, match=message):
        create("zmqsink", {} if endpoint is None else {"endpoint": endpoint})


def test_a_silent_link_times_out_as_a_source_timeout(tmp_path) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(SourceTimeoutError, match=rf"^zmqsrc endpoint {endpoint} must deliver a message within 0.3 s, got none$"):
        Pipeline.from_launch(f"zmqsrc endpoint={endpoint} timeout_s=0.3 ! fakesink").run(mode="thread")
    assert time.monotonic() - start < 5
