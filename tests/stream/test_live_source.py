"""Live network input against a real RTSP server on loopback: kills, restarts, silence.

The server (tests/stream/rtsp_server.py, run by Debian's /usr/bin/python3 with GstRtspServer)
serves a clip whose frames carry their number as 8 black/white blocks, and prints ``sent`` for
each frame it hands to its RTP payloader, so the test knows what was served per session.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import frame_pts

from cleanfeed.errors import SourceTimeoutError
from cleanfeed.stream.elements.filesink import FileSink
from cleanfeed.stream.elements.filesrc import UriSrc
from cleanfeed.stream.media.live import _place

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
REPO = Path(__file__).resolve().parents[2]
W, H, RATE = 160, 96, 25


def _gst_rtsp_missing() -> str | None:
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer")
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{SYSTEM_PYTHON} cannot run: {err}"
    if done.returncode:
        return "GStreamer RTSP server packages missing (apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0)"
    return None


MISSING = _gst_rtsp_missing()
needs_gst = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip(path: Path, frames: int = 300, audio: bool = False) -> Path:
    """H.264 in Matroska; frame i shows i in binary as 8 blocks across the top half; ``audio``
    adds an AAC tone as long as the video."""
    out = av.open(str(path), "w", format="matroska")
    stream = out.add_stream("libx264", rate=RATE)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.codec_context.options = {"tune": "zerolatency", "preset": "ultrafast", "g": "25", "crf": "18"}
    if audio:
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        samples = frames * 48000 // RATE
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = np.ascontiguousarray(np.stack([tone[start : start + 1024]] * 2))
            block = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            block.sample_rate, block.pts = 48000, start
            for packet in sound.encode(block):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    for i in range(frames):
        data = np.full((H * 3 // 2, W), 128, np.uint8)
        data[:H] = 60
        for bit in range(8):
            data[: H // 2, bit * 20 : (bit + 1) * 20] = 235 if (i >> bit) & 1 else 16
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, RATE)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return path


def frame_number(luma: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if luma[: H // 2, bit * 20 : (bit + 1) * 20].mean() > 128)


class RtspServer:
    """One server process at a time on a fixed port; counts the frames each process sent."""

    def __init__(self, clip: Path, port: int, once: bool = False, audio: bool = False) -> None:
        self.clip, self.port, self.once, self.audio = clip, port, once, audio
        self.sent: list[int] = []  # frames sent, per server process
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/clip"

    def start(self) -> None:
        command = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--file", str(self.clip)]
        proc = subprocess.Popen(command + ["--once"] * self.once + ["--audio"] * self.audio, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"server did not start: {line!r} {err}")
        self.sent.append(0)
        index = len(self.sent) - 1

        def count() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.startswith("sent"):
                    self.sent[index] += 1

        threading.Thread(target=count, daemon=True).start()
        self._proc = proc

    def wait(self, timeout: float) -> bool:
        """True when the server process ended by itself (``once``) within ``timeout`` seconds."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        time.sleep(0.1)
        return True

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            time.sleep(0.1)  # let the counting thread read what was printed before the kill


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RtspServer]:
    srv = RtspServer(make_clip(tmp_path / "clip.mkv"), free_port())
    srv.start()
    yield srv
    srv.kill()


def silent_server(port: int, stop: threading.Event) -> threading.Thread:
    """Accepts connections on 127.0.0.1:port and never says a word."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)

    def run() -> None:
        held = []
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
        for conn in held:
            conn.close()
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- timestamps on the running clock (no server needed) -----------------------------------------
class _Decoded:
    def __init__(self, pts: int | None, time_base: Fraction = Fraction(1, 90000)) -> None:
        self.pts, self.time_base = pts, time_base


def test_running_clock_first_keyframe_without_pts_and_sessions_continue() -> None:
    tb, step = Fraction(1, 90000), 3600
    out, offset = _place(_Decoded(None), tb, step, None, None, True)  # RTSP's first keyframe: pts None
    assert out == 0 and offset is None
    out, offset = _place(_Decoded(3600), tb, step, out, offset, True)  # first session keeps its clock
    assert (out, offset) == (3600, 0)
    out, offset = _place(_Decoded(7200), tb, step, out, offset, True)
    assert out == 7200
    # a new session restarts near 0: it continues one frame after the last frame sent
    out, offset = _place(_Decoded(1800), tb, step, 7200, None, False)
    assert out == 10800
    out, offset = _place(_Decoded(5400), tb, step, out, offset, False)
    assert out == 14400
    out, _ = _place(_Decoded(5400), tb, step, out, offset, False)  # never backwards
    assert out == 18000


# -- against a real server ------------------------------------------------------------------------
@needs_gst
def test_killed_server_reconnects_every_frame_accounted_for(server: RtspServer, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    kills = 3
    src = UriSrc(uri=server.url, timeout_s=2, reconnect_timeout=1.5)
    caps = src.open()
    assert caps.live and caps.rate == RATE
    out_path = tmp_path / "out.mkv"
    sink = FileSink(location=str(out_path), preset="ultrafast", tune="zerolatency")
    sink.start(caps)
    real: list[list[int]] = [[]]  # frame numbers received, per session (the clip restarts at 0)
    repeated, seqs, pts, gaps_wall = 0, [], [], []
    last_wall: float | None = None
    killed = 0
    for item in src.read():
        if not hasattr(item, "picture"):
            continue
        now = time.monotonic()
        if last_wall is not None:
            gaps_wall.append(now - last_wall)
        last_wall = now
        seqs.append(item.seq)
        pts.append(item.pts)
        sink.render(item)
        if item.meta.get("gap"):
            repeated += 1
            assert not item.mask.any()
            continue
        number = frame_number(item.picture.luma())
        if number == 0 and real[-1]:
            real.append([])
        real[-1].append(number)
        if len(real[-1]) == 30 and len(real) == killed + 1:  # about 1.2 s into each session: kill it
            server.kill()
            if killed < kills:
                threading.Thread(target=lambda: (time.sleep(0.5), server.start()), daemon=True).start()
            killed += 1
    sink.finish()
    src.close()

    counts = src.counted()
    assert counts["reconnects"] == kills
    assert len(real) == kills + 1
    # every session starts at the clip's first frame and lost none of what reached the wire; the
    # server counts a frame when its payloader takes it, so the one frame between payloader and
    # socket at the instant of SIGKILL dies with the server, never served
    for got, sent in zip(real, server.sent, strict=True):
        assert got == list(range(len(got))), got
        assert sent - 1 <= len(got) <= sent, (len(got), sent, server.sent)
    # output continuous: gapless seq, pts one frame apart, cadence kept by repeated frames
    assert seqs == list(range(len(seqs)))
    assert set(np.diff(pts)) == {90000 // RATE}
    assert counts["repeated"] == repeated > 0
    assert max(gaps_wall) < 0.5, max(gaps_wall)  # never a stall as long as a reconnection
    written = frame_pts(out_path)
    assert len(written) == len(seqs) == sum(map(len, real)) + repeated
    assert all(b > a for a, b in zip(written, written[1:], strict=False))
    assert "ending the stream" in caplog.text and "reconnected after" in caplog.text


@needs_gst
def test_reconnect_to_a_silent_server_times_out_with_slate(server: RtspServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cleanfeed.stream.media.live")
    src = UriSrc(uri=server.url, timeout_s=1, reconnect_timeout=2.5, gap_fill="slate")
    src.open()
    stop = threading.Event()
    real = slates = 0
    ended_at = lost_at = None
    try:
        for item in src.read():
            if not hasattr(item, "picture"):
                continue
            if item.meta.get("gap"):
                slates += 1
                luma = item.picture.luma()
                assert luma.mean() < 60 and luma.max() >= 150  # dark with bright "SIGNAL LOST" text
                continue
            real += 1
            if real == 10:
                server.kill()
                silent_server(server.port, stop)  # the port now answers the connection and says nothing
                lost_at = time.monotonic()
        ended_at = time.monotonic()
    finally:
        stop.set()
        src.close()
    assert lost_at is not None and ended_at is not None
    assert ended_at - lost_at < 2.5 + 2 * 1 + 1.5, ended_at - lost_at  # reconnect timeout plus one attempt's timeout
    assert slates >= 2.5 * RATE * 0.8
    assert src.counted().get("reconnects", 0) == 0
    assert "did not answer within" in caplog.text
    assert "ending the stream" in caplog.text


@pytest.fixture
def short_server(tmp_path: Path) -> Iterator[RtspServer]:
    """Serves a 2 s clip: a presentation of known length (the server announces its range)."""
    srv = RtspServer(make_clip(tmp_path / "short.mkv", frames=SHORT, audio=True), free_port(), audio=True)
    srv.start()
    yield srv
    srv.kill()


SHORT = 50


def numbers_in(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame_number(f.to_ndarray(format="gray")) for f in container.decode(video=0)]


@needs_gst
def test_a_presentation_of_known_length_ends_with_every_frame(short_server: RtspServer, tmp_path: Path) -> None:
    """A server serving a file reaches its end: the run ends (exit 0) with the file's frames, each
    once, instead of reconnecting and replaying it for ever."""
    out = tmp_path / "out.mkv"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cleanfeed.stream.cli.main", "launch",
                           f"urisrc uri={short_server.url} timeout_s=3 ! filesink location={out}"],
                          capture_output=True, text=True, timeout=30, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < SHORT / RATE + 10
    assert numbers_in(out) == list(range(SHORT))
    with av.open(str(out)) as container:  # the audio too, to its end
        sound = [p for p in container.demux(audio=0) if p.size]
    end = (sound[-1].pts + sound[-1].duration) * sound[-1].time_base - sound[0].pts * sound[0].time_base
    assert abs(end - SHORT / RATE) < 0.1, float(end)
    assert "the presentation ended" in done.stderr and "reconnect" not in done.stderr


@needs_gst
def test_a_presentation_cut_short_reconnects_then_ends(short_server: RtspServer, caplog: pytest.LogCaptureFixture) -> None:
    """A killed server looks like a clean end: before the end of the range the session was lost,
    and is reconnected; the session that plays to the end ends the stream."""
    caplog.set_level(logging.INFO, logger="cleanfeed.stream.media.live")
    src = UriSrc(uri=short_server.url, timeout_s=2, reconnect_timeout=5)
    src.open()
    real: list[list[int]] = [[]]
    repeated = 0
    try:
        for item in src.read():
            if not hasattr(item, "picture"):
                continue
            if item.meta.get("gap"):
                repeated += 1
                continue
            number = frame_number(item.picture.luma())
            if number == 0 and real[-1]:
                real.append([])
            real[-1].append(number)
            if len(real) == 1 and len(real[0]) == 20:
                short_server.kill()
                threading.Thread(target=lambda: (time.sleep(0.5), short_server.start()), daemon=True).start()
            assert sum(map(len, real)) < 4 * SHORT, "the presentation is replayed for ever"
    finally:
        src.close()
    assert src.counted()["reconnects"] == 1
    assert len(real) == 2 and real[1] == list(range(SHORT))
    assert repeated > 0
    assert "the presentation ended" in caplog.text and "ending the stream" not in caplog.text


def test_silent_server_at_open_is_a_timeout_not_a_hang() -> None:
    stop = threading.Event()
    port = free_port()
    silent_server(port, stop)
    src = UriSrc(uri=f"rtsp://127.0.0.1:{port}/x", timeout_s=1)
    started = time.monotonic()
    try:
        with pytest.raises(SourceTimeoutError, match=rf"rtsp://127.0.0.1:{port}/x did not answer within 1 s"):
            src.open()
    finally:
        stop.set()
    assert time.monotonic() - started < 2 * 1 + 1
