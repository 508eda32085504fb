"""filesink / stdoutsink: frame count, timestamps, rate and audio survive; outputs are always finalized."""

from __future__ import annotations

import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import (
    frame_count,
    frame_pts,
    make_image_sequence,
    make_video,
    packet_pts,
    pump,
    read_rgb_frames,
    start_seconds,
    streams,
)

from cleanfeed.errors import MediaError
from cleanfeed.stream import registry
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.picture import Picture

REPO = Path(__file__).resolve().parents[2]


def transcode(src: Path | str, dst: Path | str, limit: int | None = None, **props: object) -> tuple[Caps, int, int]:
    source = registry.create("filesrc", {"location": str(src)})
    sink = registry.create("filesink", {"location": str(dst), **props})
    return pump(source, sink, limit=limit)


def by_type(path: Path, kind: str) -> dict:
    return next(s for s in streams(path) if s["codec_type"] == kind)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("sink") / "in.mp4", 160, 96, frames=30, rate=30)


def test_mp4_round_trip_keeps_frames_pts_rate_and_audio(mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    _, frames, packets = transcode(mp4, out, crf=23)
    assert frames == 30 and frame_count(out) == 30
    assert frame_pts(out) == frame_pts(mp4)
    v_in, v_out = by_type(mp4, "video"), by_type(out, "video")
    assert (v_out["time_base"], v_out["avg_frame_rate"], v_out["codec_name"]) == (v_in["time_base"], "30/1", "h264")
    a_in, a_out = by_type(mp4, "audio"), by_type(out, "audio")
    assert (a_out["codec_name"], a_out["sample_rate"], a_out["channels"]) == ("aac", a_in["sample_rate"], 2)
    assert packet_pts(out, "a:0") == packet_pts(mp4, "a:0") and packets == len(packet_pts(mp4, "a:0"))
    # in sync: the audio starts where it started relative to the video
    lead_in = start_seconds(mp4, "a:0") - start_seconds(mp4, "v:0")
    assert start_seconds(out, "a:0") - start_seconds(out, "v:0") == pytest.approx(lead_in, abs=1e-3)
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("suffix", [".mkv", ".ts", ".mov", ".avi"])
def test_other_containers_keep_frame_count_timing_and_audio(mp4: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    transcode(mp4, out)
    assert frame_count(out) == 30
    assert by_type(out, "audio")["codec_name"] == "aac"
    assert len(packet_pts(out, "a:0")) >= len(packet_pts(mp4, "a:0"))
    if suffix != ".avi":  # AVI stores no presentation times
        tb = Fraction(by_type(out, "video")["time_base"])
        times = [float(p * tb) for p in frame_pts(out)]
        expected = [i / 30 for i in range(30)]
        offset = times[0]  # mpegts shifts everything by a muxing delay
        assert [round(t - offset, 3) for t in times] == [round(t, 3) for t in expected]
        lead = start_seconds(out, "a:0") - start_seconds(out, "v:0")
        assert lead == pytest.approx(start_seconds(mp4, "a:0") - start_seconds(mp4, "v:0"), abs=2e-3)


def test_opus_in_matroska_round_trip(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mkv", 160, 96, frames=24, rate=24, audio_codec="libopus")
    out = tmp_path / "out.mkv"
    transcode(src, out)
    assert frame_pts(out) == frame_pts(src)
    assert by_type(out, "audio")["codec_name"] == "opus"
    assert packet_pts(out, "a:0") == packet_pts(src, "a:0")


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_adts_aac_from_mpegts_makes_a_clean_header(tmp_path: Path, suffix: str) -> None:
    """AAC in MPEG-TS has no extradata (ADTS headers in every packet): the header must be the one
    the muxer learns from the packets, as with ``ffmpeg -c copy``, not one the encoder made up
    (Matroska then rewrote its header over the next elements: 'Duplicate element')."""
    src = tmp_path / "in.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x96:rate=25", "-f", "lavfi",
                    "-i", "sine", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts",
                    str(src)], check=True)
    out = tmp_path / f"out{suffix}"
    transcode(src, out)
    probed = subprocess.run(["ffprobe", "-v", "warning", str(out)], capture_output=True, text=True)
    assert probed.returncode == 0 and probed.stderr == "", probed.stderr
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], capture_output=True, text=True)
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    assert frame_count(out) == 50
    audio = by_type(out, "audio")
    assert (audio["codec_name"], audio["sample_rate"]) == ("aac", "44100")
    assert len(packet_pts(out, "a:0")) == len(packet_pts(src, "a:0"))


def test_ffv1_is_lossless_for_rgb_and_yuv(mp4: Path, tmp_path: Path) -> None:
    pattern, images = make_image_sequence(tmp_path / "png", 161, 97, frames=4)
    out = tmp_path / "rgb.mkv"
    transcode(pattern, out, codec="auto")  # auto: lossless input into mkv -> ffv1
    assert by_type(out, "video")["codec_name"] == "ffv1"
    for got, want in zip(read_rgb_frames(out), images, strict=True):
        assert np.array_equal(got, want)
    out = tmp_path / "yuv.mkv"
    transcode(mp4, out, codec="ffv1")
    assert by_type(out, "video")["pix_fmt"] == "yuv420p"
    with av.open(str(mp4)) as a, av.open(str(out)) as b:
        pairs = zip(a.decode(video=0), b.decode(video=0), strict=True)
        assert all(np.array_equal(x.to_ndarray(format="yuv420p"), y.to_ndarray(format="yuv420p")) for x, y in pairs)


def test_hevc_when_the_build_has_libx265(mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    try:
        av.Codec("libx265", "w")
    except Exception:
        with pytest.raises(MediaError, match=r"codec hevc needs the libx265 encoder, which this FFmpeg build does not have"):
            transcode(mp4, out, codec="hevc")
        return
    transcode(mp4, out, codec="hevc", preset="ultrafast", tune="fastdecode")
    assert by_type(out, "video")["codec_name"] == "hevc" and frame_pts(out) == frame_pts(mp4)


def test_image_sequence_out_is_exact_and_numbered(tmp_path: Path) -> None:
    pattern, images = make_image_sequence(tmp_path / "in", 161, 97, frames=4, start=3)
    out = tmp_path / "deep" / "er" / "%04d.png"
    transcode(pattern, out, start_number=5)
    assert sorted(p.name for p in out.parent.iterdir()) == ["0005.png", "0006.png", "0007.png", "0008.png"]
    for i, want in enumerate(images):
        assert np.array_equal(read_rgb_frames(out.parent / f"{5 + i:04d}.png")[0], want)


def test_rgb_input_to_h264_and_encoder_options(tmp_path: Path) -> None:
    pattern, _ = make_image_sequence(tmp_path / "in", 160, 96, frames=6)
    out = tmp_path / "out.mp4"
    transcode(pattern, out, pix_fmt="yuv444p", tune="zerolatency", preset="ultrafast")
    video = by_type(out, "video")
    assert (video["pix_fmt"], video["has_b_frames"], frame_count(out)) == ("yuv444p", 0, 6)


def test_partial_write_is_finalized_and_playable(mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "partial.mp4"
    _, frames, _ = transcode(mp4, out, limit=10)
    assert frames == 10 and frame_count(out) == 10
    assert by_type(out, "audio")["codec_name"] == "aac"


def test_error_mid_stream_then_finish_leaves_what_was_written(mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "broken.mkv"
    source = registry.create("filesrc", {"location": str(mp4)})
    sink = registry.create("filesink", {"location": str(out)})
    sink.start(source.open())
    frames = (i for i in source.read() if isinstance(i, VideoFrame))
    for _ in range(7):
        sink.render(next(frames))
    bad = next(frames)
    bad.picture = Picture.empty("yuv420p", 32, 32)  # not the stream's size: the encoder refuses it
    with pytest.raises(MediaError, match=r"^cannot write output .*broken\.mkv"):
        sink.render(bad)
    sink.finish()
    sink.finish()  # idempotent, as is stop() after it
    sink.stop()
    source.close()
    assert frame_count(out) == 7


def test_no_frame_leaves_no_file_and_an_existing_output_as_it_was(mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty.mp4"
    out.write_bytes(b"an earlier result")
    sink = registry.create("filesink", {"location": str(out)})
    sink.start(registry.create("filesrc", {"location": str(mp4)}).open())
    parts = list(tmp_path.glob(".empty.mp4.*.part"))
    assert len(parts) == 1  # created at start, beside the target: an unusable output fails before any frame
    assert out.read_bytes() == b"an earlier result"
    sink.finish()
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


def test_the_finalized_file_replaces_the_target_and_keeps_a_link_pointing_at_it(mp4: Path, tmp_path: Path) -> None:
    real, link = tmp_path / "real.mkv", tmp_path / "link.mkv"
    real.write_bytes(b"old")
    link.symlink_to(real)
    source = registry.create("filesrc", {"location": str(mp4)})
    pump(source, registry.create("filesink", {"location": str(link)}))
    assert link.is_symlink() and frame_count(real) == frame_count(mp4)
    assert oct(real.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_stdout(src: Path, fmt: str) -> subprocess.CompletedProcess[bytes]:
    code = (
        "from cleanfeed.stream import registry; from media import pump; "
        f"pump(registry.create('filesrc', {{'location': {str(src)!r}}}), registry.create('stdoutsink', {{'format': {fmt!r}}}))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=120,
                          env={"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("fmt", ["mpegts", "matroska", "y4m"])
def test_stdoutsink_streams_to_stdout(mp4: Path, tmp_path: Path, fmt: str) -> None:
    done = run_stdout(mp4, fmt)
    assert done.returncode == 0, done.stderr.decode()
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                            "stream=codec_type,codec_name,nb_read_frames", "-of", "csv=p=0", "-"],
                           input=done.stdout, capture_output=True, timeout=60)
    rows = sorted(probe.stdout.decode().split())
    video = {"mpegts": "h264,video,30", "matroska": "h264,video,30", "y4m": "rawvideo,video,30"}[fmt]
    assert video in rows
    assert any(r.startswith("aac,audio,") for r in rows) == (fmt != "y4m"), rows



def test_a_live_stream_into_mp4_is_warned_about(mp4: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = registry.create("filesrc", {"location": str(mp4)})
    sink = registry.create("filesink", {"location": str(tmp_path / "live.mp4")})
    with caplog.at_level(logging.WARNING):
        sink.start(source.open().with_(live=True))
    sink.finish()
    source.close()
    assert "cannot be read if the run is killed" in caplog.text and ".ts or .mkv is written as it goes" in caplog.text


def _decodable_frames(path: Path) -> int:
    """Frames that decode from a file cut off anywhere (its last packets may be torn)."""
    count = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                count += len(packet.decode())
            except av.error.InvalidDataError:
                continue
    return count


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".ts", ".mkv"])
def test_a_live_recording_is_readable_after_the_run_was_killed(tmp_path: Path, suffix: str) -> None:
    """SIGKILL (or a power cut) leaves no chance to write a trailer."""
    import os
    import signal
    import time

    out = tmp_path / f"rec{suffix}"
    line = f"testsrc width=640 height=360 frames=100000 rate=25 ! filesink location={out} tune=zerolatency crf=18"
    proc = subprocess.Popen([sys.executable, "-m", "cleanfeed.stream.cli.main", "launch", "--quiet", "--live", line],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 100_000):
        time.sleep(0.05)  # past FFmpeg's 32 KB write buffer
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.5)  # the sink's process goes with its supervisor (PR_SET_PDEATHSIG)
    assert _decodable_frames(out) >= 25


def test_a_live_run_tells_the_sink_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """--live on a file input (caps not live) still makes the stream live for the sink."""
    from cleanfeed.stream.pipeline import Pipeline

    line = f"testsrc width=160 height=96 frames=5 rate=25 ! filesink location={tmp_path / 'out.mp4'}"
    with caplog.at_level(logging.WARNING):
        Pipeline(Pipeline.from_launch(line).elements, live=False).run(mode="thread")
    assert "a live stream into" not in caplog.text
    with caplog.at_level(logging.WARNING):
        Pipeline(Pipeline.from_launch(line).elements, live=True).run(mode="thread")
    assert "a live stream into .mp4" in caplog.text


def test_a_live_recording_behind_an_encoder_delay_takes_its_name_and_every_frame(tmp_path: Path) -> None:
    """x264 veryfast holds its first frames: the file is opened by FFmpeg only with the first
    packet, and a live recording may take its name only after that (else FFmpeg writes a new
    hidden file and the name keeps an empty one)."""
    from cleanfeed.stream.pipeline import Pipeline

    out = tmp_path / "rec.mkv"
    line = f"testsrc width=160 height=96 frames=30 rate=25 ! filesink location={out}"
    Pipeline(Pipeline.from_launch(line).elements, live=True).run(mode="thread")
    assert frame_count(out) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mkv"]
