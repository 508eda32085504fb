"""One output container: the video encoder, the pass-through streams and their timestamps.

Shared by ``filesink`` and ``stdoutsink``. Frames keep the input's pts and time base, so an
output has the input's timing and frame count; pass-through packets are muxed with their
original timestamps (PyAV rescales them to the output stream's time base), so audio stays
in sync. :meth:`MediaWriter.close` always flushes the encoder and writes the trailer, also
after an error mid-stream, so what was written stays playable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import av.error

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.media.encode import EncoderSettings, add_video_stream, frame_from_picture
from cleanfeed.stream.media.passthrough import PassthroughError, add_output_stream, packet_to_av
from cleanfeed.stream.timebase import rescale

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputSpec:
    """Where and how to write: what FFmpeg opens, the muxer and its options."""

    url: str
    """Path, pattern or ``pipe:1``."""
    shown: str
    """The name errors and logs use."""
    muxer: str
    settings: EncoderSettings
    passthrough: bool = True
    """Carry caps.streams (audio, subtitles); False for formats that hold video only."""
    container_options: dict[str, str] = field(default_factory=dict)
    carries: tuple[str, ...] | None = None
    """Pass-through codecs the format can hold (None: whatever FFmpeg accepts)."""
    rate_time_base: bool = False
    """Count video time in frames (time base 1/rate): AVI and y4m store a frame rate, not timestamps."""


class MediaWriter:
    """Writes VideoFrames and pass-through Packets into one container."""

    def __init__(self, spec: OutputSpec, caps: Caps) -> None:
        self.spec = spec
        self.frames = 0
        self.muxed = False
        """Whether anything was muxed yet: FFmpeg opens the output file only then (PyAV opens it with
        the first packet, and an encoder holding its first frames delays that)."""
        self._closed = False
        self._size = (caps.pix_fmt, caps.width, caps.height)
        self._last_pts: int | None = None
        self._fixed_pts = 0
        self._refused = 0
        self._unknown: set[int] = set()
        self._step = 1
        try:
            self._container = av.open(spec.url, mode="w", format=spec.muxer,
                                      container_options=dict(spec.container_options))
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise MediaError(f"cannot write output {spec.shown!r}: {getattr(err, 'strerror', None) or err}") from None
        try:
            video_caps = caps
            if spec.rate_time_base:
                video_caps = caps.with_(time_base=1 / caps.rate if caps.rate > 0 else Fraction(1, 25))
            self._video = add_video_stream(self._container, video_caps, spec.settings)
            self._time_base = video_caps.time_base
            rate = caps.rate if caps.rate > 0 else Fraction(25)
            self._step = max(1, round(1 / (rate * self._time_base)))
            self._streams: dict[int, Any] = {}
            if spec.passthrough:
                self._add_passthrough(caps)
        except BaseException:
            self._container.close()
            raise

    def _add_passthrough(self, caps: Caps) -> None:
        for info in caps.streams:
            try:
                if self.spec.carries is not None and info.codec not in self.spec.carries:
                    raise PassthroughError(f"{self.spec.muxer} cannot hold {info.codec}")
                self._streams[info.index] = add_output_stream(self._container, info)
            except PassthroughError as err:
                log.warning("%s: dropped %s stream %d (%s): %s", self.spec.shown, info.kind, info.index, info.codec, err)

    # -- writing ------------------------------------------------------------------------------
    def _next_pts(self, frame: VideoFrame) -> int:
        """The frame's pts in the output time base, strictly increasing (encoders require it)."""
        pts = frame.pts
        if pts is not None and frame.time_base != self._time_base:
            pts = rescale(pts, frame.time_base, self._time_base)
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        elif self._last_pts is not None and pts <= self._last_pts:
            self._fixed_pts += 1
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def write(self, frame: VideoFrame) -> None:
        if self._closed:
            raise MediaError(f"output {self.spec.shown!r} is already closed")
        pic = frame.picture
        if (pic.pix_fmt, pic.width, pic.height) != self._size:
            fmt, w, h = self._size
            raise MediaError(
                f"cannot write output {self.spec.shown!r}: frame {frame.seq} must be {fmt} {w}x{h} like the "
                f"stream, got {pic.pix_fmt} {pic.width}x{pic.height}"
            )
        av_frame = frame_from_picture(frame.picture, self._next_pts(frame), self._time_base)
        try:
            for packet in self._video.encode(av_frame):
                self._container.mux(packet)
                self.muxed = True
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise MediaError(f"cannot write output {self.spec.shown!r}: {getattr(err, 'strerror', None) or err}") from None
        self.frames += 1

    def write_packet(self, packet: Packet) -> None:
        stream = self._streams.get(packet.stream)
        if stream is None:
            if packet.stream not in self._unknown:
                self._unknown.add(packet.stream)
                log.debug("%s: no output stream for input stream %d; its packets are dropped", self.spec.shown, packet.stream)
            return
        if self._closed:
            return
        try:
            self._container.mux(packet_to_av(packet, stream))
            self.muxed = True
        except ValueError:
            # the muxer refused this packet's timestamps (damaged input, a source that restarted):
            # one bad audio packet must not cost the whole output
            self._refused += 1
        except (av.error.FFmpegError, OSError) as err:
            raise MediaError(f"cannot write output {self.spec.shown!r}: {getattr(err, 'strerror', None) or err}") from None

    def close(self) -> int:
        """Flushes the encoder and writes the trailer; safe to call twice. Returns frames written."""
        if self._closed:
            return self.frames
        self._closed = True
        try:
            if self.frames:
                for packet in self._video.encode(None):
                    self._container.mux(packet)
        except (av.error.FFmpegError, OSError, ValueError) as err:
            log.warning("%s: flushing the encoder failed: %s", self.spec.shown, getattr(err, "strerror", None) or err)
        finally:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError) as err:
                log.warning("%s: finishing the file failed: %s", self.spec.shown, getattr(err, "strerror", None) or err)
        if self._refused:
            log.warning("%s: dropped %d pass-through packet(s) with timestamps the muxer refused", self.spec.shown, self._refused)
        if self._fixed_pts:
            log.warning("%s: %d frame(s) had timestamps that did not increase; moved them forward", self.spec.shown, self._fixed_pts)
        return self.frames
