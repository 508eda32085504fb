"""Output containers by file extension, and which video codecs each may hold.

The table is small on purpose: these are the containers whose timestamps, audio
pass-through and playability are tested. An unknown extension is an error that lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.errors import MediaError


@dataclass(frozen=True)
class Container:
    """An output format: FFmpeg's muxer name and the video codecs it is allowed to hold."""

    muxer: str
    codecs: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()
    rate_time_base: bool = False
    """The format stores a frame rate rather than timestamps (AVI, y4m): video time base 1/rate."""
    carries: tuple[str, ...] | None = None
    """Pass-through codecs it can hold, where FFmpeg's own check is too lenient (None: trust FFmpeg)."""


TS_CARRIES = ("aac", "aac_latm", "mp3", "mp2", "ac3", "eac3", "opus", "dts", "truehd", "dvb_subtitle", "dvb_teletext")
"""What MPEG-TS signals with a stream type players know; FFmpeg would write anything else as
an unlabelled private data stream that nobody can play."""


CONTAINERS: dict[str, Container] = {
    ".mp4": Container("mp4", ("h264", "hevc"), (("movflags", "+faststart"),)),
    ".m4v": Container("mp4", ("h264", "hevc"), (("movflags", "+faststart"),)),
    ".mov": Container("mov", ("h264", "hevc"), (("movflags", "+faststart"),)),
    ".mkv": Container("matroska", ("h264", "hevc", "ffv1")),
    ".ts": Container("mpegts", ("h264", "hevc"), carries=TS_CARRIES),
    ".m2ts": Container("mpegts", ("h264", "hevc"), carries=TS_CARRIES),
    ".avi": Container("avi", ("h264", "ffv1"), rate_time_base=True),
}

STREAM_FORMATS: dict[str, Container] = {
    "mpegts": Container("mpegts", ("h264", "hevc"), carries=TS_CARRIES),
    "matroska": Container("matroska", ("h264", "hevc", "ffv1")),
    "y4m": Container("yuv4mpegpipe", ("rawvideo",), rate_time_base=True),
}
"""Formats for a pipe (stdoutsink); mp4 is absent because it needs a seekable output."""

IMAGE_CODECS: dict[str, tuple[str, str]] = {
    ".png": ("png", "rgb24"),
    ".tif": ("tiff", "rgb24"),
    ".tiff": ("tiff", "rgb24"),
    ".bmp": ("bmp", "bgr24"),
    ".jpg": ("mjpeg", "yuvj444p"),
    ".jpeg": ("mjpeg", "yuvj444p"),
}
"""Image-sequence outputs: encoder and pixel format (PNG/TIFF/BMP are lossless RGB)."""


def container_for(location: str, suffix: str) -> Container:
    """The container for an output file; raises MediaError naming the known extensions."""
    found = CONTAINERS.get(suffix.lower())
    if found is None:
        known = " ".join(sorted(CONTAINERS))
        shown = suffix or "none"
        raise MediaError(f"output {location!r} extension must be one of {known} (or an image pattern such as out/%05d.png), got {shown}")
    return found


def check_codec(location: str, suffix: str, container: Container, codec: str) -> None:
    """Refuses a codec the container is not meant to hold, saying where it fits."""
    if codec in container.codecs:
        return
    fits = sorted(ext for ext, c in CONTAINERS.items() if codec in c.codecs)
    where = f"; use {' or '.join(fits)}" if fits else ""
    raise MediaError(f"output {location!r}: {suffix} cannot hold {codec} video{where}")
