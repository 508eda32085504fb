"""Audio and subtitle streams carried from the input to the output without re-encoding.

The source describes each stream as a StreamInfo (plain data, so it crosses process
boundaries) and sends its packets untouched; the sink recreates the stream from that
description and muxes the packets with their original timestamps, so sound stays in sync.

Why an encoder context: PyAV 18's ``add_mux_stream`` makes a stream without a codec
context, so its channel layout and ``extradata`` (AAC's AudioSpecificConfig, Opus's
OpusHead) cannot be set, and MP4/Matroska then write audio nobody can decode;
``add_stream_from_template`` needs the live input stream, which lives in another process.
So the sink adds a stream for the codec's encoder, sets the input's parameters, opens the
encoder itself (so the muxer will not reopen it) and then restores the input's extradata,
which the muxer copies into the header, or clears the encoder's own when the input has none
(ADTS AAC from MPEG-TS: the muxer learns the header from the packets). No packet ever goes
through that encoder.

Subtitles use ``add_mux_stream``: text subtitles (SubRip, mov_text) need no header to be
read, so losing mov_text's styling extradata is acceptable; ASS/SSA, whose header is
required, are dropped with a warning.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av

from cleanfeed.stream.buffers import Packet, StreamInfo

PASS_KINDS = ("audio", "subtitle")


def stream_info(stream: Any) -> StreamInfo | None:
    """Describes an input stream for the sink, or None for kinds that are not carried."""
    if stream.type not in PASS_KINDS:
        return None
    ctx = stream.codec_context
    if ctx is None:
        return None
    params: dict[str, Any] = {"extradata": bytes(ctx.extradata) if ctx.extradata else b""}
    if stream.type == "audio":
        params.update(
            sample_rate=int(ctx.sample_rate or 0),
            layout=ctx.layout.name if ctx.layout is not None else "",
            channels=int(ctx.channels or 0),
            format=ctx.format.name if ctx.format is not None else "",
            bit_rate=int(ctx.bit_rate or 0),
            frame_size=int(ctx.frame_size or 0),
        )
    language = stream.metadata.get("language")
    if language:
        params["language"] = str(language)
    return StreamInfo(
        index=int(stream.index),
        kind=str(stream.type),
        codec=str(ctx.codec.canonical_name if ctx.codec is not None else ctx.name),  # "mp3", not "mp3float"
        time_base=Fraction(stream.time_base),
        params=params,
    )


def packet_from_av(packet: Any, index: int) -> Packet:
    """A demuxed packet as plain data (the payload is copied: the AVPacket is reused)."""
    tb = packet.time_base
    return Packet(
        stream=index,
        data=bytes(packet),
        pts=packet.pts,
        dts=packet.dts,
        duration=packet.duration or None,
        time_base=Fraction(tb) if tb is not None else Fraction(1, 90000),
        keyframe=bool(packet.is_keyframe),
    )


class PassthroughError(ValueError):
    """A stream the output cannot carry; the sink drops it with a warning."""


def add_output_stream(container: Any, info: StreamInfo) -> Any:
    """Adds a stream for ``info`` to an output container that has not started writing.

    Raises PassthroughError (with a reason fit for a one-line warning) when the container
    or this FFmpeg build cannot carry the codec without re-encoding. The setup is first tried
    on a scratch container in memory: PyAV cannot remove a stream, and one left half set up
    would make the whole output unwritable.
    """
    if info.kind not in PASS_KINDS:
        raise PassthroughError(f"{info.kind} streams are not carried")
    if info.kind == "subtitle" and info.codec in HEADER_SUBTITLES:
        raise PassthroughError(f"{info.codec} subtitles need their header, which cannot be copied without re-encoding")
    with av.open(io.BytesIO(), "w", format=container.format.name) as scratch:
        _setup(scratch, info)
    return _setup(container, info)


HEADER_SUBTITLES = ("ass", "ssa")
"""Subtitle codecs whose extradata (the script header) is required to read a single event."""


def _setup(container: Any, info: StreamInfo) -> Any:
    if info.kind == "subtitle":
        # A subtitle stream has no encoder worth opening; styling extradata (mov_text) is lost.
        try:
            stream = container.add_mux_stream(info.codec)
        except (ValueError, av.error.FFmpegError):
            raise PassthroughError(f"{container.format.name} cannot hold {info.codec}") from None
        stream.time_base = info.time_base
        return stream
    params = info.params
    try:
        codec = av.Codec(info.codec, "w")
    except Exception:
        raise PassthroughError(f"this FFmpeg build cannot describe {info.codec} streams for muxing") from None
    try:
        stream = container.add_stream(codec.name, rate=params.get("sample_rate") or None)
    except (ValueError, av.error.FFmpegError):
        raise PassthroughError(f"{container.format.name} cannot hold {info.codec}") from None
    ctx = stream.codec_context
    try:
        _describe_audio(ctx, codec, params)
        ctx.time_base = info.time_base
        stream.time_base = info.time_base
        ctx.options = {"strict": "experimental"}
        ctx.open()
    except (ValueError, RuntimeError, av.error.FFmpegError) as err:
        raise PassthroughError(f"cannot set up {info.codec} for muxing: {getattr(err, 'strerror', None) or err}") from None
    # the input's extradata, or none: what the encoder made up describes its own output, not
    # these packets (AAC from MPEG-TS has none, its packets carry ADTS headers; the muxer then
    # converts them and writes the header it learns, as ``ffmpeg -c copy`` does, where an
    # invented one made Matroska rewrite its header over the next elements)
    ctx.extradata = bytes(params["extradata"]) if params.get("extradata") else None
    if params.get("language"):
        stream.metadata["language"] = params["language"]
    return stream


def _describe_audio(ctx: Any, codec: Any, params: dict[str, Any]) -> None:
    """Sets what the muxer writes (rate, layout, bit rate); the sample format only has to
    satisfy the encoder, since compressed audio does not store it."""
    rate = int(params.get("sample_rate") or 0)
    if rate:
        ctx.sample_rate = rate
    layout = params.get("layout") or ""
    if layout:
        ctx.layout = layout
    elif params.get("channels"):
        ctx.layout = {1: "mono", 2: "stereo"}.get(int(params["channels"]), f"{int(params['channels'])}c")
    formats = [f.name for f in (codec.audio_formats or ())]
    wanted = params.get("format") or ""
    if wanted and (not formats or wanted in formats):
        ctx.format = wanted
    elif formats:
        ctx.format = formats[0]
    if params.get("bit_rate"):
        ctx.bit_rate = int(params["bit_rate"])


def packet_to_av(packet: Packet, stream: Any) -> av.Packet:
    """An AVPacket for ``stream`` with the original timestamps; mux() rescales them."""
    out = av.Packet(packet.data)
    out.pts = packet.pts
    out.dts = packet.dts
    if packet.duration:
        out.duration = packet.duration
    out.time_base = packet.time_base
    out.is_keyframe = packet.keyframe
    out.stream = stream
    return out
