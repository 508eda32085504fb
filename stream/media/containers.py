"""Output containers by file extension, and which video codecs each may hold.

The table is small on purpose: these are the containers whose timestamps, audio
pass-through and playability are tested. An unknown extension is an error that lists them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import av
import av.error

from cleanfeed.errors import MediaError


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


NETWORK_OUTPUTS: dict[str, Container] = {
    "udp": Container("mpegts", ("h264", "hevc"), carries=TS_CARRIES),
    "srt": Container("mpegts", ("h264", "hevc"), carries=TS_CARRIES),
    "tcp": Container("mpegts", ("h264", "hevc"), carries=TS_CARRIES),
    "rtsp": Container("rtsp", ("h264", "hevc"), (("rtsp_transport", "tcp"),)),
}
"""Live outputs by URL scheme: MPEG-TS over udp/srt/tcp, and RTSP push (ANNOUNCE/RECORD) over TCP
to a server that accepts published streams (``ffmpeg -rtsp_flags listen`` receives one)."""


@functools.lru_cache(maxsize=16)
def protocol_available(scheme: str) -> bool:
    """Whether PyAV's FFmpeg knows a protocol (its wheels may lack some, e.g. libsrt, that the
    system's ffmpeg has): an empty URL of a known protocol fails some other way, at once."""
    try:
        av.open(f"{scheme}://", "r", timeout=1.0).close()
    except av.error.ProtocolNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - any other failure means the protocol itself exists
        return True
    return True


def network_container(location: str) -> Container:
    """The container for a network output URL; raises MediaError naming the known schemes,
    or saying that this FFmpeg build lacks the protocol."""
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    found = NETWORK_OUTPUTS.get(scheme)
    if found is None:
        known = " ".join(f"{s}://" for s in NETWORK_OUTPUTS)
        raise MediaError(f"output {location!r} must be a file, an image pattern or a URL starting with one of {known}")
    if not protocol_available(scheme):
        raise MediaError(f"output {location!r} needs the {scheme} protocol, which the FFmpeg inside PyAV "
                         f"{av.__version__} does not have (use udp:// or rtsp://)")
    return found
