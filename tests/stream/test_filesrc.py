"""filesrc / urisrc driven by their methods: caps, frames, timestamps, pass-through packets."""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys
import threading
from fractions import Fraction
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import msgpack
import numpy as np
import pytest
from media import frame_pts, make_image_sequence, make_video, packet_pts, pattern_rgb

from cleanfeed.errors import PropertyError
from cleanfeed.stream import registry
from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.picture import Picture

REPO = Path(__file__).resolve().parents[2]


def read_all(location: str, **props: object) -> tuple[Caps, list[VideoFrame], list[Packet]]:
    src = registry.create("filesrc", {"location": location, **props})
    caps = src.open()
    frames: list[VideoFrame] = []
    packets: list[Packet] = []
    try:
        for item in src.read():
            (frames if isinstance(item, VideoFrame) else packets).append(item)
    finally:
        src.close()
    return caps, frames, packets


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "in.mp4", 160, 96, frames=24, rate=24)


def test_mp4_caps_describe_video_and_audio(mp4: Path) -> None:
    caps = registry.create("filesrc", {"location": str(mp4)}).open()
    assert (caps.width, caps.height, caps.rate, caps.pix_fmt, caps.frames) == (160, 96, Fraction(24), "yuv420p", 24)
    with av.open(str(mp4)) as container:
        assert caps.time_base == container.streams.video[0].time_base
    assert not caps.live
    (audio,) = caps.streams
    assert (audio.kind, audio.codec, audio.time_base) == ("audio", "aac", Fraction(1, 48000))
    assert audio.params["sample_rate"] == 48000 and audio.params["layout"] == "stereo"
    assert audio.params["frame_size"] == 1024 and len(audio.params["extradata"]) >= 2
    assert msgpack.unpackb(msgpack.packb(audio.params)) == audio.params  # crosses process links


def test_frames_keep_container_pts_and_packets_pass_through(mp4: Path) -> None:
    caps, frames, packets = read_all(str(mp4))
    assert [f.seq for f in frames] == list(range(24))
    assert [f.pts for f in frames] == frame_pts(mp4)
    assert all(f.time_base == caps.time_base for f in frames)
    assert len(packets) == len(packet_pts(mp4, "a:0"))
    assert all(p.stream == caps.streams[0].index and p.time_base == Fraction(1, 48000) and p.data for p in packets)
    assert sorted(p.pts for p in packets) == packet_pts(mp4, "a:0")


def test_yuv420p_frames_are_the_decoded_planes_without_rgb(tmp_path: Path) -> None:
    # 200 px wide: chroma rows of 100 bytes sit in padded lines, so stride handling is exercised
    path = make_video(tmp_path / "pad.mkv", 200, 96, frames=8, rate=25, audio=False)
    caps, frames, _ = read_all(str(path))
    assert caps.pix_fmt == "yuv420p"
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
    assert len(frames) == len(decoded) == 8
    for frame, planes in zip(frames, decoded, strict=True):
        assert frame.picture.pix_fmt == "yuv420p"
        diff = np.argwhere(frame.picture.data != planes)
        assert diff.size == 0, f"frame {frame.seq} differs first at {diff[0].tolist()}"


def test_frames_are_filled_in_place_in_the_allocators_buffers(mp4: Path) -> None:
    pool = [np.zeros((96 * 3 // 2, 160), np.uint8) for _ in range(3)]
    calls: list[int] = []

    def allocator(caps: Caps) -> tuple[Picture, np.ndarray, int]:
        slot = len(calls) % len(pool)
        calls.append(slot)
        return Picture(caps.pix_fmt, caps.width, caps.height, pool[slot]), np.zeros((caps.height, caps.width), np.uint8), slot

    src = registry.create("filesrc", {"location": str(mp4)})
    src.allocator = allocator
    src.open()
    first = next(item for item in src.read() if isinstance(item, VideoFrame))
    src.close()
    assert first.slot == 0 and first.picture.data is pool[0] and pool[0].any()


def test_image_sequence_starting_anywhere_is_lossless_rgb(tmp_path: Path) -> None:
    pattern, images = make_image_sequence(tmp_path / "frames", 161, 97, frames=5, start=1000)
    caps, frames, packets = read_all(str(pattern))
    assert (caps.pix_fmt, caps.width, caps.height, caps.frames, caps.rate) == ("rgb24", 161, 97, 5, Fraction(25))
    assert not packets
    for frame, rgb in zip(frames, images, strict=True):
        assert np.array_equal(frame.picture.data, rgb), f"frame {frame.seq} changed"
    caps, frames, _ = read_all(str(pattern), framerate="30")
    assert caps.rate == 30 and caps.time_base == Fraction(1, 30) and [f.pts for f in frames] == [0, 1, 2, 3, 4]


def test_444_input_is_delivered_as_rgb(tmp_path: Path) -> None:
    path = make_video(tmp_path / "444.mkv", 160, 96, frames=3, rate=25, audio=False, pix_fmt="yuv444p")
    caps, frames, _ = read_all(str(path))
    assert caps.pix_fmt == "rgb24"
    with av.open(str(path)) as container:
        expected = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert all(np.array_equal(f.picture.data, e) for f, e in zip(frames, expected, strict=True))


def test_missing_pts_are_extrapolated_from_the_rate(tmp_path: Path) -> None:
    raw = tmp_path / "raw.h264"  # an elementary stream: no container timestamps at all
    with av.open(str(raw), "w", format="h264") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(pattern_rgb(i, 160, 96), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    caps, frames, _ = read_all(str(raw))
    step = round(1 / (caps.rate * caps.time_base))
    assert [f.pts for f in frames] == [i * step for i in range(6)]


def test_audio_false_drops_pass_through_streams(mp4: Path) -> None:
    caps, frames, packets = read_all(str(mp4), audio="false")
    assert caps.streams == () and packets == [] and len(frames) == 24


def test_loop_restarts_with_increasing_timestamps(tmp_path: Path) -> None:
    path = make_video(tmp_path / "short.mkv", 160, 96, frames=5, rate=25)
    src = registry.create("filesrc", {"location": str(path), "loop": True})
    caps = src.open()
    assert caps.frames is None
    items = list(itertools.islice(src.read(), 60))
    src.close()
    frames = [i for i in items if isinstance(i, VideoFrame)]
    assert len(frames) > 10
    assert [f.seq for f in frames] == list(range(len(frames)))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), pts
    assert pts[5] - pts[4] == pts[1] - pts[0]  # the second pass continues one frame later
    audio = [i.pts for i in items if isinstance(i, Packet)]
    assert max(audio) > max(packet_pts(path, "a:0"))


def test_stdin_is_probed_from_the_pipe(tmp_path: Path) -> None:
    ts = make_video(tmp_path / "in.ts", 160, 96, frames=12, rate=24)
    out = tmp_path / "from_stdin.mkv"
    code = (
        "import sys; from cleanfeed.stream import registry; from media import pump; "
        "caps, n, p = pump(registry.create('filesrc', {'location': '-'}), "
        f"registry.create('filesink', {{'location': {str(out)!r}}})); print(n, p, caps.pix_fmt)"
    )
    with open(ts, "rb") as stdin:
        done = subprocess.run([sys.executable, "-c", code], stdin=stdin, capture_output=True, text=True,
                              cwd=REPO, env={"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"},
                              timeout=120)
    assert done.returncode == 0, done.stderr
    frames, packets, pix_fmt = done.stdout.split()
    assert (int(frames), pix_fmt) == (12, "yuv420p") and int(packets) == len(packet_pts(ts, "a:0"))
    assert len(frame_pts(out)) == 12


@pytest.mark.parametrize("faststart", [False, True])
def test_mp4_indexed_at_its_end_on_stdin_says_why_it_cannot_be_read(tmp_path: Path, faststart: bool) -> None:
    """FFmpeg reads through the media data to find an index at the end, and a pipe cannot go
    back: no packet ever comes. The run must say so (exit 3), not end with an empty output."""
    clip = make_video(tmp_path / "in.mp4", 320, 240, frames=48, rate=24, faststart=faststart)
    assert clip.stat().st_size > 150_000  # more than FFmpeg keeps buffered from the pipe
    out = tmp_path / "out.mkv"
    with open(clip, "rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "cleanfeed.stream.cli.main", "launch", "--quiet",
                               f"filesrc location=- ! filesink location={out}"], stdin=stdin, capture_output=True,
                              text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    if faststart:
        assert done.returncode == 0, done.stderr
        assert len(frame_pts(out)) == 48
        return
    assert done.returncode == 3, done.stderr
    assert ("error: input 'stdin' is an MP4 whose index (moov) is at its end, which cannot be read from a pipe: give "
            "the file itself, or remux it with 'ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4'") in done.stderr


def test_urisrc_takes_uri_and_refuses_stdin() -> None:
    src = registry.create("urisrc", {"uri": "rtsp://127.0.0.1:1/x", "transport": "udp", "timeout_s": 2})
    assert (src.uri, src.transport, src.timeout_s) == ("rtsp://127.0.0.1:1/x", "udp", 2.0)
    with pytest.raises(PropertyError, match=r"urisrc property uri must be a URL, got '-'"):
        registry.create("urisrc", {"uri": "-"})
    with pytest.raises(PropertyError, match=r"transport must be one of tcp, udp, got 'http'"):
        registry.create("urisrc", {"uri": "rtsp://x/y", "transport": "http"})


def test_http_input_is_read_like_a_file(tmp_path: Path) -> None:
    path = make_video(tmp_path / "web.mp4", 160, 96, frames=12, rate=24, faststart=True)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        caps, frames, packets = read_all(f"http://127.0.0.1:{server.server_address[1]}/web.mp4", timeout_s=5)
    finally:
        server.shutdown()
        server.server_close()
    assert (caps.width, caps.frames, caps.live) == (160, 12, False)
    assert [f.pts for f in frames] == frame_pts(path) and len(packets) == len(packet_pts(path, "a:0"))
