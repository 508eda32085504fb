"""Inputs and outputs that cannot be used: one-line errors with the user's own words, never a traceback."""

from __future__ import annotations

import logging
import os
import pty
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from media import frame_count, make_image_sequence, make_video, pump

from cleanfeed.errors import MediaError, PropertyError, SourceTimeoutError
from cleanfeed.stream import registry


def open_source(location: str, factory: str = "filesrc", **props: object) -> None:
    key = "uri" if factory == "urisrc" else "location"
    src = registry.create(factory, {key: location, **props})
    try:
        src.open()
    finally:
        src.close()


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("err") / "in.mp4", 160, 96, frames=6, rate=24)


# -- inputs -------------------------------------------------------------------------------------------
def test_missing_input(tmp_path: Path) -> None:
    path = str(tmp_path / "x.mp4")
    with pytest.raises(MediaError, match=rf"^input '{path}' does not exist$"):
        open_source(path)


def test_folder_as_input(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"is a folder, not a media file \(for images give a pattern such as"):
        open_source(str(tmp_path))


@pytest.mark.parametrize("name", ["x.txt", "x.mp4"])
def test_text_file_is_not_media(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("hello, this is not a video\n" * 20)
    with pytest.raises(MediaError, match=rf"^input '{path}' is not a media file FFmpeg can read$"):
        open_source(str(path))


def test_audio_only_file_has_no_video(tmp_path: Path) -> None:
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(MediaError, match=rf"^input '{path}' has no video stream$"):
        open_source(str(path))


def test_pattern_without_files(tmp_path: Path) -> None:
    pattern = str(tmp_path / "%05d.png")
    with pytest.raises(MediaError, match=rf"^input '{pattern}' matches no files$"):
        open_source(pattern)


def test_missing_location_is_a_property_error() -> None:
    with pytest.raises(PropertyError, match=r"^filesrc needs location=\.\.\.$"):
        registry.create("filesrc", {})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_rtsp_nobody_listening_fails_fast() -> None:
    url = f"rtsp://127.0.0.1:{_free_port()}/cam"
    started = time.monotonic()
    with pytest.raises(MediaError, match=rf"^input '{url}' refused the connection \(is the server running\?\)$"):
        open_source(url, "urisrc", timeout_s=5)
    assert time.monotonic() - started < 2


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join(timeout=5)
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_times_out(silent_server: int, scheme: str) -> None:
    url = f"{scheme}://user:secret@127.0.0.1:{silent_server}/cam"
    started = time.monotonic()
    with pytest.raises(SourceTimeoutError) as caught:
        open_source(url, "urisrc", timeout_s=1)
    elapsed = time.monotonic() - started
    assert str(caught.value) == f"{scheme}://user:***@127.0.0.1:{silent_server}/cam did not answer within 1 s"
    assert 0.5 < elapsed < 2.5


# -- damaged inputs: decode what can be decoded, warn with a count --------------------------------------
@pytest.fixture(scope="module")
def ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("bad") / "in.ts", 320, 180, frames=48, rate=24, bframes=False)


def _transcode_damaged(path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> int:
    out = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING):
        _, frames, _ = pump(registry.create("filesrc", {"location": str(path)}),
                            registry.create("filesink", {"location": str(out)}))
    assert frame_count(out) == frames
    return frames


def test_truncated_ts_decodes_the_first_half(ts: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cut = tmp_path / "cut.ts"
    data = ts.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    frames = _transcode_damaged(cut, tmp_path, caplog)
    assert 10 < frames < 48


def test_flipped_bytes_in_ts_are_skipped_and_counted(ts: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    damaged = bytearray(ts.read_bytes())
    rng = np.random.default_rng(7)
    for pos in rng.integers(4000, len(damaged) - 16, 40):
        damaged[pos : pos + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    path = tmp_path / "flipped.ts"
    path.write_bytes(bytes(damaged))
    frames = _transcode_damaged(path, tmp_path, caplog)
    assert frames > 24
    (line,) = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert line.startswith(f"{path}: ") and line.endswith(" corrupt packet(s) skipped or concealed")
    assert int(line.split(": ")[1].split()[0]) > 0


def test_truncated_mp4_warns_how_far_it_got(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    full = make_video(tmp_path / "full.mp4", 320, 180, frames=48, rate=24, faststart=True)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    frames = _transcode_damaged(cut, tmp_path, caplog)
    assert 10 < frames < 48
    assert f"{cut}: ended after {frames} of 48 frames (truncated?)" in caplog.text


def _ffmpeg_mp4(path: Path, *args: str) -> Path:
    """H.264 with B-frames (x264's default preset, unlike make_video's ultrafast) and AAC, 2 s."""
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi",
                    "-i", "sine", "-t", "2", "-c:v", "libx264", "-c:a", "aac", *args, str(path)], check=True)
    return path


def _ffprobe_frames(path: Path) -> int:
    done = subprocess.run(["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0", "-show_entries",
                           "stream=nb_read_frames", "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    return int(done.stdout.strip())


def test_truncated_mp4_decodes_every_frame_ffmpeg_does(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The cut last packet cannot be decoded; sent to a frame-threaded decoder, its error came
    while the decoder was drained and the frames still inside were lost."""
    full = _ffmpeg_mp4(tmp_path / "full.mp4", "-movflags", "+faststart")
    data = full.read_bytes()
    for fraction in (0.35, 0.6, 0.825):
        cut = tmp_path / f"cut{fraction}.mp4"
        cut.write_bytes(data[: int(len(data) * fraction)])
        expected = _ffprobe_frames(cut)
        assert 5 < expected < 50
        assert _transcode_damaged(cut, tmp_path, caplog) == expected, fraction


@pytest.mark.parametrize("cut_at", ["mdat", "moov"])
def test_truncated_mp4_says_its_index_is_missing(tmp_path: Path, cut_at: str) -> None:
    """Not "not a media file" (the words for a text file): an MP4 without its index is nearly
    always a recording cut short or still being written."""
    if cut_at == "mdat":  # the index is written at the end: gone
        full = _ffmpeg_mp4(tmp_path / "full.mp4")
        cut = len(full.read_bytes()) // 2
    else:  # faststart: the index comes first, cut inside it
        full = _ffmpeg_mp4(tmp_path / "full.mp4", "-movflags", "+faststart")
        cut = 1000
    path = tmp_path / "cut.mp4"
    path.write_bytes(full.read_bytes()[:cut])
    with pytest.raises(MediaError, match=rf"^input '{path}' is an MP4 whose index \(moov\) is missing or cut short: "
                                         "the file is truncated or still being written"):
        open_source(str(path))


# -- outputs ------------------------------------------------------------------------------------------
def start_sink(location: str, mp4: Path, **props: object) -> None:
    caps = registry.create("filesrc", {"location": str(mp4)}).open()
    sink = registry.create("filesink", {"location": location, **props})
    try:
        sink.start(caps)
    finally:
        sink.finish()


def _unwritable(tmp_path: Path) -> Path:
    """A folder nobody may write to: /sys refuses even root; otherwise a read-only tmp folder."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def test_unwritable_output_folder(mp4: Path, tmp_path: Path) -> None:
    out = str(_unwritable(tmp_path) / "out.mp4")
    with pytest.raises(MediaError, match=rf"^cannot write output '{out}': Permission denied$"):
        start_sink(out, mp4)
    pattern = str(_unwritable(tmp_path) / "frames" / "%05d.png")
    with pytest.raises(MediaError, match=r"^cannot write output '.*%05d\.png': (Permission denied|Operation not permitted)$"):
        start_sink(pattern, mp4)


def test_missing_output_folder(mp4: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "nope" / "out.mp4")
    with pytest.raises(MediaError, match=rf"^cannot write output '{out}': folder '{tmp_path / 'nope'}' does not exist$"):
        start_sink(out, mp4)


def test_unknown_extension_lists_the_known_ones() -> None:
    with pytest.raises(PropertyError, match=r"^output 'out\.xyz' extension must be one of \.avi \.m2ts \.m4v \.mkv "
                                            r"\.mov \.mp4 \.ts \(or an image pattern such as out/%05d\.png\), got \.xyz$"):
        registry.create("filesink", {"location": "out.xyz"})
    with pytest.raises(PropertyError, match=r"image pattern ending in one of \.png .*, got 'out/%05d\.gif'$"):
        registry.create("filesink", {"location": "out/%05d.gif"})


def test_ffv1_refused_in_mp4() -> None:
    with pytest.raises(PropertyError, match=r"^output 'out\.mp4': \.mp4 cannot hold ffv1 video; use \.avi or \.mkv$"):
        registry.create("filesink", {"location": "out.mp4", "codec": "ffv1"})


def test_hevc_refuses_x264_only_tunes() -> None:
    with pytest.raises(PropertyError, match=r"^filesink property tune must be one of none, grain, .* for hevc, got 'film'$"):
        registry.create("filesink", {"location": "out.mkv", "codec": "hevc", "tune": "film"})


def test_stdout_is_not_a_file() -> None:
    with pytest.raises(PropertyError, match=r"use stdoutsink to write to stdout"):
        registry.create("filesink", {"location": "-"})


def test_odd_size_into_420_says_what_works(tmp_path: Path) -> None:
    pattern, _ = make_image_sequence(tmp_path / "odd", 161, 97, frames=2)
    out = str(tmp_path / "out.mp4")
    with pytest.raises(MediaError, match=r"^output '.*out\.mp4': h264 yuv420p needs an even width and height, got "
                                         r"161x97 \(use pix_fmt=yuv444p, or codec=ffv1 in \.mkv\)$"):
        start_sink(out, pattern)
    assert not Path(out).exists()


def test_stdoutsink_refuses_a_terminal(mp4: Path) -> None:
    caps = registry.create("filesrc", {"location": str(mp4)}).open()
    leader, follower = pty.openpty()
    saved = os.dup(1)
    try:
        os.dup2(follower, 1)
        with pytest.raises(MediaError, match=r"^stdoutsink must write into a pipe or a file, got a terminal"):
            registry.create("stdoutsink", {}).start(caps)
    finally:
        os.dup2(saved, 1)
        for fd in (saved, leader, follower):
            os.close(fd)
