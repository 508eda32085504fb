"""Pictures into AVFrames, and the video encoder's setup.

A yuv420p Picture is already the buffer ``VideoFrame.from_ndarray(.., 'yuv420p')`` takes, so
it goes to the encoder without any colour conversion; an rgb24 Picture is handed over as RGB
and the encoder's own reformatter converts it once, to the output's pixel format.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from cleanfeed.errors import MediaError, PropertyError
from cleanfeed.stream.buffers import Caps
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.properties import Property

VIDEO_CODECS = ("h264", "hevc", "ffv1")
"""The codec tokens users type; ``auto`` picks one of these (see :func:`resolve_codec`)."""

ENCODERS = {"h264": "libx264", "hevc": "libx265", "ffv1": "ffv1"}

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
TUNES_X264 = ("none", "film", "animation", "grain", "stillimage", "fastdecode", "zerolatency", "psnr", "ssim")
TUNES_X265 = ("none", "grain", "animation", "fastdecode", "zerolatency", "psnr", "ssim")

ENCODER_PROPERTIES = (
    Property.int("crf", "h264/hevc quality: 0 lossless .. 51 worst; 18-23 looks transparent", 20, 0, 51),
    Property.enum("preset", "x264/x265 speed preset (slower: smaller files)", PRESETS, "veryfast"),
    Property.enum("tune", "x264/x265 tune; zerolatency removes the encoder's frame delay",
                  tuple(dict.fromkeys(TUNES_X264 + TUNES_X265)), "none"),
    Property.enum("pix_fmt", "output pixel format (auto: yuv420p for h264/hevc, the input's layout for ffv1)",
                  ("auto", "yuv420p", "yuv422p", "yuv444p"), "auto"),
)


def check_tune(factory: str, codec: str, tune: str) -> None:
    """x265 knows fewer tunes than x264; refuse the others before anything runs."""
    if codec == "hevc" and tune not in TUNES_X265:
        raise PropertyError(f"{factory} property tune must be one of {', '.join(TUNES_X265)} for hevc, got {tune!r}")


@dataclass(frozen=True)
class EncoderSettings:
    """The user's choices for the video encoder (filesink / stdoutsink properties)."""

    codec: str = "h264"
    """h264 | hevc | ffv1 (after resolving ``auto``) | rawvideo (y4m) | an image codec (png...)."""
    crf: int = 20
    """Constant rate factor for h264/hevc: 0 (lossless) .. 51 (worst); 18-23 looks transparent."""
    preset: str = "veryfast"
    """x264/x265 speed preset."""
    tune: str = "none"
    """x264/x265 tune; zerolatency removes the encoder's frame delay (live outputs)."""
    pix_fmt: str = "auto"
    """Output pixel format; auto: yuv420p for h264/hevc, the input's layout for lossless codecs."""


def resolve_codec(codec: str, caps: Caps, lossless_ok: bool) -> str:
    """``auto`` is ffv1 for lossless inputs (rgb24 pictures, e.g. PNG frames) when the
    container can hold it, else h264; other tokens pass through."""
    if codec != "auto":
        return codec
    return "ffv1" if lossless_ok and caps.pix_fmt == "rgb24" else "h264"


def output_pix_fmt(settings: EncoderSettings, caps: Caps) -> str:
    if settings.pix_fmt != "auto":
        return settings.pix_fmt
    if settings.codec == "ffv1":
        return "yuv420p" if caps.pix_fmt == "yuv420p" else "bgr0"  # bgr0 holds RGB exactly
    if settings.codec == "rawvideo":
        return "yuv420p" if caps.pix_fmt == "yuv420p" else "yuv444p"
    return "yuv420p"


def check_encoder(codec: str) -> str:
    """The FFmpeg encoder name for a codec token; a clear error when this build lacks it."""
    name = ENCODERS.get(codec, codec)
    try:
        av.Codec(name, "w")
    except Exception:
        raise MediaError(f"codec {codec} needs the {name} encoder, which this FFmpeg build does not have") from None
    return name


def check_size(shown: str, settings: EncoderSettings, caps: Caps) -> None:
    """Chroma subsampling needs even sizes; say what works instead of letting the encoder fail cryptically."""
    pix_fmt = "yuv420p" if settings.pix_fmt == "auto" and settings.codec not in ("ffv1", "rawvideo") else settings.pix_fmt
    odd_width, odd_height = caps.width % 2 == 1, caps.height % 2 == 1
    if (pix_fmt == "yuv420p" and (odd_width or odd_height)) or (pix_fmt == "yuv422p" and odd_width):
        raise MediaError(
            f"output {shown!r}: {settings.codec} {pix_fmt} needs an even width and height, "
            f"got {caps.width}x{caps.height} (use pix_fmt=yuv444p, or codec=ffv1 in .mkv)"
        )


def add_video_stream(container: Any, caps: Caps, settings: EncoderSettings) -> Any:
    """Adds and configures the video stream; the output keeps the input's time base and rate.

    The encoder is not opened here: the muxer opens it with the first frame, after every
    pass-through stream has been added.
    """
    name = check_encoder(settings.codec)
    pix_fmt = output_pix_fmt(settings, caps)
    rate = caps.rate if caps.rate > 0 else Fraction(25)
    try:
        stream = container.add_stream(name, rate=rate)
    except ValueError as err:
        raise MediaError(f"output format {container.format.name} cannot hold {settings.codec} video: {err}") from None
    stream.width, stream.height = caps.width, caps.height
    stream.pix_fmt = pix_fmt
    stream.time_base = caps.time_base
    ctx = stream.codec_context
    ctx.time_base = caps.time_base
    ctx.framerate = rate
    ctx.thread_count = 0  # let the encoder pick (x264/x265/ffv1 threads: auto)
    configure_encoder(ctx, name, settings)
    return stream


def configure_encoder(ctx: Any, name: str, settings: EncoderSettings) -> None:
    """Threads and options of an encoder context (also used to measure its delay)."""
    options: dict[str, str] = {}
    if name in ("libx264", "libx265"):
        # PyAV's default is slice threading, which x264 turns into sliced threads: 1080p veryfast
        # encoded at 82 fps on 2 cores, 133 fps with frame threading (bench/results). Frame threads
        # add frames of encoder delay (veryfast: 17 instead of 11 on 2 cores), and even with
        # tune=zerolatency they hold 2 frames: zerolatency keeps slice threads (0 frames).
        ctx.thread_type = "SLICE" if settings.tune == "zerolatency" else "AUTO"
        options.update(crf=str(settings.crf), preset=settings.preset)
        if settings.tune != "none":
            options["tune"] = settings.tune
        if name == "libx265":
            options["x265-params"] = "log-level=error"
    elif name == "ffv1":
        options.update(level="3", slicecrc="1")
        ctx.thread_type = "SLICE"
    ctx.options = options


PROBE_SIZE = (640, 360)
"""Frame size at which :func:`encoder_delay` measures: big enough that x264 picks its usual
thread count (it caps threads by macroblock rows), small enough to take milliseconds."""


@functools.lru_cache(maxsize=32)
def encoder_delay(settings: EncoderSettings) -> tuple[int, str]:
    """Frames the encoder takes in before its first packet, and its name for messages
    (``(17, "x264 veryfast")``): part of a live run's latency.

    Measured, not tabulated: it depends on the preset, the tune and the thread count x264
    picks from the machine's cores (docs/streaming.md; here: veryfast 11 with slice threads, 17 with
    frame threads on 2 cores; zerolatency 0). Codecs without lookahead (ffv1, raw, images)
    hold none.
    """
    name = ENCODERS.get(settings.codec, settings.codec)
    if name not in ("libx264", "libx265"):
        return 0, ""
    label = f"{name[3:]} {settings.preset}" + (f" tune={settings.tune}" if settings.tune != "none" else "")
    width, height = PROBE_SIZE
    try:
        ctx = av.CodecContext.create(name, "w")
    except Exception:
        return 0, label
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
    ctx.thread_count = 0
    configure_encoder(ctx, name, settings)
    noise = np.random.default_rng(0).integers(0, 256, (height * 3 // 2, width), np.uint8)
    held = 0
    for i in range(250):
        frame = av.VideoFrame.from_ndarray(noise, format="yuv420p")
        frame.pts = i
        if ctx.encode(frame):
            break
        held += 1
    return held, label


def frame_from_picture(picture: Picture, pts: int | None, time_base: Fraction) -> av.VideoFrame:
    """An AVFrame holding a copy of the picture (the Picture's buffer may be reused at once)."""
    frame = av.VideoFrame.from_ndarray(picture.data, format=picture.pix_fmt)
    frame.pts = pts
    frame.time_base = time_base
    return frame
