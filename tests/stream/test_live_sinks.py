"""Live outputs against real receivers on loopback: UDP MPEG-TS read by ffprobe, RTSP push
received by ``ffmpeg -rtsp_flags listen``; SRT where PyAV's FFmpeg has it, else a clear refusal."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from media import frame_count

from cleanfeed.errors import PropertyError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.cli.main import main as cleanfeed_main
from cleanfeed.stream.elements.filesink import FileSink
from cleanfeed.stream.media.containers import protocol_available
from cleanfeed.stream.picture import Picture

W, H, RATE, FRAMES = 160, 96, 25, 40
CAPS = Caps(W, H, Fraction(RATE), Fraction(1, RATE))


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(location: str, frames: int = FRAMES, **props: object) -> float:
    """Renders ``frames`` frames into a filesink at ``location``; returns the seconds it took."""
    sink = FileSink(location=location, preset="ultrafast", tune="zerolatency", **props)
    started = time.monotonic()
    sink.start(CAPS)
    for i in range(frames):
        picture = Picture.empty("yuv420p", W, H)
        picture.data[:H] = (i * 6) % 220 + 16
        sink.render(VideoFrame.new(i, i, CAPS.time_base, picture))
    sink.finish()
    return time.monotonic() - started


_RECEIVERS: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _end_receivers() -> Iterator[None]:
    """A receiver whose sender failed would wait for its own timeout, past the test: ended here."""
    yield
    while _RECEIVERS:
        proc = _RECEIVERS.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def receive(command: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _RECEIVERS.append(proc)
    time.sleep(0.7)  # let the receiver listen before the first packet
    return proc


def test_udp_mpegts_received_by_ffprobe_paced_to_real_time() -> None:
    port = free_port(socket.SOCK_DGRAM)
    probe = receive(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames",
                     "-of", "csv=p=0", "-i", f"udp://127.0.0.1:{port}?timeout=3000000"])
    took = send(f"udp://127.0.0.1:{port}")
    out, err = probe.communicate(timeout=20)
    assert out.split()[0] == f"h264,{FRAMES}", err
    assert took >= (FRAMES - 1) / RATE * 0.95  # never faster than real time


def test_rtsp_push_received_by_ffmpeg_listen(tmp_path: Path) -> None:
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live"
    got = tmp_path / "received.mkv"
    listener = receive(["ffmpeg", "-v", "error", "-rtsp_flags", "listen", "-timeout", "15", "-i", url,
                        "-c", "copy", "-y", str(got)])
    send(url)
    _, err = listener.communicate(timeout=20)
    assert listener.returncode == 0, err
    assert frame_count(got) == FRAMES


def test_srt_where_the_build_has_it() -> None:
    port = free_port(socket.SOCK_DGRAM)
    url = f"srt://127.0.0.1:{port}?mode=caller"
    if protocol_available("srt"):
        probe = receive(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                         "-of", "csv=p=0", "-i", f"srt://127.0.0.1:{port}?mode=listener"])
        send(url)
        out, err = probe.communicate(timeout=20)
        assert out.split()[0] == str(FRAMES), err
    else:
        with pytest.raises(PropertyError, match=r"needs the srt protocol, which the FFmpeg inside PyAV .* does not have"):
            FileSink(location=url)


def test_unknown_output_scheme_lists_the_known_ones() -> None:
    with pytest.raises(PropertyError, match=r"must be a file, an image pattern or a URL starting with one of udp:// srt:// tcp:// rtsp://"):
        FileSink(location="http://127.0.0.1/out")


def test_run_passes_reconnect_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    code = cleanfeed_main(["run", "rtsp://127.0.0.1:8554/cam", "-o", "udp://127.0.0.1:5000", "--box", "1,1,9,9",
                           "--live", "--reconnect-timeout", "7", "--classical", "--print-pipeline"])
    assert code == 0
    line = capsys.readouterr().out
    assert "urisrc" not in line and "filesrc location=rtsp://127.0.0.1:8554/cam reconnect_timeout=7.0" in line
    assert "filesink location=udp://127.0.0.1:5000" in line and "tune=zerolatency" in line
