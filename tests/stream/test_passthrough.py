"""Pass-through streams: described as plain data by the source, recreated by the sink without re-encoding."""

from __future__ import annotations

import logging
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import msgpack
import pytest
from media import frame_count, make_video, packet_pts, pump, streams

from cleanfeed.stream import registry
from cleanfeed.stream.buffers import Caps, Packet, StreamInfo, VideoFrame
from cleanfeed.stream.media.encode import EncoderSettings
from cleanfeed.stream.media.passthrough import (
    PassthroughError,
    add_output_stream,
    packet_from_av,
    packet_to_av,
    stream_info,
)
from cleanfeed.stream.media.writer import MediaWriter, OutputSpec
from cleanfeed.stream.picture import Picture


def demuxed(path: Path) -> tuple[StreamInfo, list[Packet]]:
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        info = stream_info(audio)
        packets = [packet_from_av(p, audio.index) for p in container.demux(audio) if p.size]
    assert info is not None
    return info, packets


def remux(info: StreamInfo, packets: list[Packet], out: Path, muxer: str) -> None:
    """Audio only: what the sink does with caps.streams, without a video encoder in the way."""
    with av.open(str(out), "w", format=muxer) as container:
        stream = add_output_stream(container, info)
        for packet in packets:
            container.mux(packet_to_av(packet, stream))


def decodes_cleanly(path: Path) -> str:
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True)
    return done.stderr if done.returncode == 0 else done.stderr or "failed"


@pytest.fixture(scope="module")
def aac_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("pass") / "aac.mp4", 160, 96, frames=12, rate=24)


def test_stream_info_is_plain_data(aac_mp4: Path) -> None:
    info, packets = demuxed(aac_mp4)
    assert (info.kind, info.codec, info.time_base) == ("audio", "aac", Fraction(1, 48000))
    assert {"sample_rate", "layout", "channels", "format", "bit_rate", "frame_size", "extradata"} <= set(info.params)
    assert msgpack.unpackb(msgpack.packb(info.params)) == info.params
    first = packets[0]
    assert isinstance(first.data, bytes) and first.time_base == Fraction(1, 48000) and first.keyframe
    assert first.pts == packet_pts(aac_mp4, "a:0")[0]


@pytest.mark.parametrize(("suffix", "muxer"), [(".mp4", "mp4"), (".mkv", "matroska"), (".ts", "mpegts"), (".mov", "mov")])
def test_aac_remuxes_playably_into_each_container(aac_mp4: Path, tmp_path: Path, suffix: str, muxer: str) -> None:
    info, packets = demuxed(aac_mp4)
    out = tmp_path / f"audio{suffix}"
    remux(info, packets, out, muxer)
    (audio,) = streams(out)
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)
    assert decodes_cleanly(out) == ""
    assert frame_count(out, "a:0") >= len(packets) - 1


@pytest.mark.parametrize(("suffix", "muxer"), [(".mkv", "matroska"), (".mp4", "mp4")])
def test_opus_keeps_its_header(tmp_path: Path, suffix: str, muxer: str) -> None:
    info, packets = demuxed(make_video(tmp_path / "opus.mkv", 160, 96, frames=12, rate=24, audio_codec="libopus"))
    assert info.codec == "opus" and info.params["extradata"].startswith(b"OpusHead")
    out = tmp_path / f"audio{suffix}"
    remux(info, packets, out, muxer)
    assert streams(out)[0]["codec_name"] == "opus" and decodes_cleanly(out) == ""


def test_timestamps_are_rescaled_to_the_output_time_base(aac_mp4: Path, tmp_path: Path) -> None:
    info, packets = demuxed(aac_mp4)
    out = tmp_path / "audio.mkv"  # Matroska counts in milliseconds
    remux(info, packets, out, "matroska")
    expected = [round(p.pts * 1000 / 48000) for p in packets]
    assert [abs(a - b) <= 1 for a, b in zip(packet_pts(out, "a:0"), expected, strict=True)] == [True] * len(packets)


def test_streams_a_container_cannot_hold_are_refused(tmp_path: Path) -> None:
    with av.open(str(tmp_path / "x.mp4"), "w") as container:
        with pytest.raises(PassthroughError, match=r"subtitle|cannot"):
            add_output_stream(container, StreamInfo(3, "subtitle", "ass", Fraction(1, 1000)))
        with pytest.raises(PassthroughError, match=r"data streams are not carried"):
            add_output_stream(container, StreamInfo(4, "data", "bin_data", Fraction(1, 1000)))
        with pytest.raises(PassthroughError, match=r"cannot describe nosuchcodec streams"):
            add_output_stream(container, StreamInfo(5, "audio", "nosuchcodec", Fraction(1, 1000)))


def test_writer_drops_unholdable_streams_with_one_warning(aac_mp4: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    info, packets = demuxed(aac_mp4)
    odd = StreamInfo(7, "audio", "opus", Fraction(1, 48000), {"sample_rate": 48000, "layout": "stereo"})
    caps = Caps(160, 96, Fraction(24), Fraction(1, 24), streams=(info, odd))
    spec = OutputSpec(url=str(tmp_path / "v.avi"), shown="v.avi", muxer="avi", rate_time_base=True,
                      settings=EncoderSettings(preset="ultrafast"))
    with caplog.at_level(logging.WARNING):
        writer = MediaWriter(spec, caps)
        for i in range(3):
            writer.write(VideoFrame.new(i, i, Fraction(1, 24), Picture.empty("yuv420p", 160, 96)))
        for packet in packets:
            writer.write_packet(packet)
        writer.write_packet(Packet(7, b"\x00" * 8, 0, 0, 1, Fraction(1, 48000)))  # the dropped stream: ignored
        assert writer.close() == 3
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] == [
        "v.avi: dropped audio stream 7 (opus): avi cannot hold opus"
    ]
    assert sorted(s["codec_name"] for s in streams(tmp_path / "v.avi")) == ["aac", "h264"]


def test_the_inputs_extradata_reaches_the_output_not_the_encoders(tmp_path: Path) -> None:
    info, packets = demuxed(make_video(tmp_path / "opus.mkv", 160, 96, frames=6, rate=24, audio_codec="libopus"))
    head = bytearray(info.params["extradata"])
    head[10:12] = (400).to_bytes(2, "little")  # OpusHead pre-skip: libopus would write 312
    info = StreamInfo(info.index, info.kind, info.codec, info.time_base, {**info.params, "extradata": bytes(head)})
    out = tmp_path / "audio.mkv"
    remux(info, packets, out, "matroska")
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.extradata == bytes(head)


def test_codecs_travel_by_canonical_name_and_ts_refuses_unlabelled_ones(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    src = make_video(tmp_path / "mp3.mkv", 160, 96, frames=12, rate=24, audio_codec="libmp3lame")
    info, _ = demuxed(src)
    assert info.codec == "mp3"  # the codec, not FFmpeg's decoder ("mp3float")
    flac = StreamInfo(9, "audio", "flac", Fraction(1, 48000), {"sample_rate": 48000, "layout": "stereo"})
    caps = Caps(160, 96, Fraction(24), Fraction(1, 24), streams=(info, flac))
    out = tmp_path / "out.ts"
    sink = registry.create("filesink", {"location": str(out)})
    with caplog.at_level(logging.WARNING):
        sink.start(caps)
        sink.render(VideoFrame.new(0, 0, Fraction(1, 24), Picture.empty("yuv420p", 160, 96)))
        sink.finish()
    assert f"{out}: dropped audio stream 9 (flac): mpegts cannot hold flac" in caplog.text
    out = tmp_path / "out2.ts"
    pump(registry.create("filesrc", {"location": str(src)}), registry.create("filesink", {"location": str(out)}))
    assert sorted(s["codec_name"] for s in streams(out)) == ["h264", "mp3"] and decodes_cleanly(out) == ""


def test_subtitles_are_copied_where_the_container_holds_them(tmp_path: Path) -> None:
    src = tmp_path / "subs.mkv"
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        subs = out.add_mux_stream("subrip")
        subs.time_base = Fraction(1, 1000)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(Picture.empty("yuv420p", 160, 96).data, format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        for start, text in [(0, b"hello"), (250, b"world")]:
            packet = av.Packet(text)
            packet.pts = packet.dts = start
            packet.duration, packet.time_base, packet.stream = 200, Fraction(1, 1000), subs
            out.mux(packet)
        out.mux(video.encode(None))
    out = tmp_path / "out.mkv"
    pump(registry.create("filesrc", {"location": str(src)}), registry.create("filesink", {"location": str(out)}))
    assert [s["codec_name"] for s in streams(out)] == ["h264", "subrip"]
    text = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-map", "0:s", "-f", "srt", "-"],
                          capture_output=True, text=True).stdout
    assert "00:00:00,250 --> 00:00:00,450\nworld" in text


def test_a_stream_that_fails_setup_leaves_the_output_intact(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = StreamInfo(3, "audio", "aac", Fraction(1, 12345), {"sample_rate": 12345, "layout": "stereo"})
    spec = OutputSpec(url=str(tmp_path / "v.mkv"), shown="v.mkv", muxer="matroska", settings=EncoderSettings(preset="ultrafast"))
    with caplog.at_level(logging.WARNING):
        writer = MediaWriter(spec, Caps(160, 96, Fraction(24), Fraction(1, 24), streams=(bad,)))
        for i in range(4):
            writer.write(VideoFrame.new(i, i, Fraction(1, 24), Picture.empty("yuv420p", 160, 96)))
        writer.close()
    assert "v.mkv: dropped audio stream 3 (aac): cannot set up aac for muxing" in caplog.text
    assert [s["codec_name"] for s in streams(tmp_path / "v.mkv")] == ["h264"] and frame_count(tmp_path / "v.mkv") == 4
