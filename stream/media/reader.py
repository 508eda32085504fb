"""One input, demuxed in a single pass: video decoded into frames, other streams passed on as packets.

Timestamps are the container's. Frames without one (the first RTSP keyframe arrives with pts
None; some raw streams have none) get the previous pts plus one frame. Corrupt data is
skipped packet by packet and counted; the count is logged once, at close.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import Caps, Packet, StreamInfo, VideoFrame
from cleanfeed.stream.media.decode import fill_picture, picture_format
from cleanfeed.stream.media.naming import Kind
from cleanfeed.stream.media.open import InputOptions, OpenedInput, open_input, translate_read_error
from cleanfeed.stream.media.passthrough import packet_from_av, stream_info
from cleanfeed.stream.timebase import rescale

log = logging.getLogger(__name__)

DEFAULT_RATE = Fraction(25)
MAX_DEMUX_ERRORS = 50
"""Consecutive demux failures after which the input is treated as ended."""

NewFrame = Callable[[Caps, int, "int | None", Fraction], VideoFrame]
"""Allocates an empty frame (Source.new_frame): caps, seq, pts, time_base."""


@dataclass(frozen=True)
class ReaderOptions:
    open: InputOptions
    audio: bool = True
    """Pass audio/subtitle streams on; False drops them."""
    loop: bool = False
    """Files only: start again at the end, timestamps continuing (soak tests)."""


def _rate(stream: Any, shown: str) -> Fraction:
    for candidate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if candidate is not None and candidate > 0:
            return Fraction(candidate)
    log.warning("%s: frame rate unknown, assuming %s fps", shown, DEFAULT_RATE)
    return DEFAULT_RATE


def _frame_count(stream: Any, container: Any, rate: Fraction, counted: int | None) -> tuple[int | None, bool]:
    """The number of frames and whether it is exact (counted files, the container's own
    count) or an estimate (duration times rate)."""
    if counted is not None:
        return counted, True
    if stream.frames:
        return int(stream.frames), True
    if stream.duration and stream.time_base:
        return round(stream.duration * stream.time_base * rate), False
    if container.duration:
        return round(Fraction(container.duration, 1_000_000) * rate), False
    return None, False


def _shift(packet: Packet, ticks: int) -> None:
    if packet.pts is not None:
        packet.pts += ticks
    if packet.dts is not None:
        packet.dts += ticks


def _check_not_indexed_at_end(opened: OpenedInput) -> None:
    """Raises for an MP4 on a pipe that gave no packet: its index (moov) came after the media
    data, which FFmpeg had to read through to find it, and a pipe cannot go back. Without this
    the run ended with no frame and no reason."""
    if opened.kind is Kind.PIPE and "mp4" in (opened.container.format.name or "").split(","):
        raise MediaError(f"input {opened.shown!r} is an MP4 whose index (moov) is at its end, which cannot be read "
                         "from a pipe: give the file itself, or remux it with "
                         "'ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4'")


class MediaReader:
    """Opens an input at construction; :meth:`items` yields its frames and packets once."""

    def __init__(self, location: str, options: ReaderOptions) -> None:
        self.location = location
        self.options = options
        self.corrupt = 0
        self.frames_read = 0
        self._exact_frames: int | None = None
        self._reached_end = False
        self.end_s: Fraction | None = None
        """Where a network presentation of known length ends, in seconds on its own clock (an
        RTSP server serving a file gives its range); None for a live feed."""
        self._opened: OpenedInput | None = None
        self._opened = self._open()
        self.shown = self._opened.shown
        self.caps = self._probe(self._opened)

    # -- opening ------------------------------------------------------------------------------
    def _open(self) -> OpenedInput:
        opened = open_input(self.location, self.options.open)
        container = opened.container
        if container.format is not None and container.format.name == "tty":
            container.close()
            raise MediaError(f"input {opened.shown!r} is not a media file FFmpeg can read")
        if not container.streams.video:
            container.close()
            raise MediaError(f"input {opened.shown!r} has no video stream")
        return opened

    def _probe(self, opened: OpenedInput) -> Caps:
        container = opened.container
        video = container.streams.video[0]
        ctx = video.codec_context
        width, height = int(ctx.width or video.width or 0), int(ctx.height or video.height or 0)
        if width <= 0 or height <= 0:
            opened.container.close()
            raise MediaError(f"input {opened.shown!r} has a video stream of unknown size")
        fmt = ctx.format.name if ctx.format is not None else None
        rate = _rate(video, opened.shown)
        streams: list[StreamInfo] = []
        if self.options.audio:
            for stream in container.streams:
                info = stream_info(stream) if stream.index != video.index else None
                if info is not None:
                    streams.append(info)
        looping = self.options.loop and opened.kind in (Kind.FILE, Kind.SEQUENCE)
        live = opened.kind is Kind.RTSP or (opened.kind.network and not container.duration)
        if live and container.duration and container.duration > 0:
            self.end_s = Fraction(int(container.start_time or 0) + int(container.duration), 1_000_000)
        frames, exact = (None, False) if looping or live else _frame_count(video, container, rate, opened.sequence_frames)
        self._exact_frames = frames if exact else None
        time_base = Fraction(video.time_base) if video.time_base else 1 / rate
        return Caps(width=width, height=height, rate=rate, time_base=time_base,
                    pix_fmt=picture_format(fmt, width, height), streams=tuple(streams),
                    live=live, frames=frames)

    # -- reading ------------------------------------------------------------------------------
    def items(self, new_frame: NewFrame) -> Iterator[VideoFrame | Packet]:
        """Frames (seq gapless from 0) and pass-through packets, in demux order."""
        seq = 0
        offset = 0  # video ticks added to every container pts (looping)
        last: int | None = None
        step = max(1, round(1 / (self.caps.rate * self.caps.time_base)))
        while self._opened is not None:
            first: int | None = None
            for item in self._pass(self._opened):
                if isinstance(item, Packet):
                    if offset:
                        _shift(item, rescale(offset, self.caps.time_base, item.time_base))
                    yield item
                    continue
                pts = item.pts
                if pts is None:
                    pts = 0 if last is None else last + step
                else:
                    first = pts if first is None else first
                    pts += offset
                last = pts
                frame = new_frame(self.caps, seq, pts, self.caps.time_base)
                fill_picture(item, frame.picture)
                seq += 1
                self.frames_read = seq
                yield frame
            if not self._looping or last is None:
                break
            self._opened.container.close()
            self._opened = self._open()
            if first is not None:  # the next pass starts one frame after this one ended
                offset = last + step - first
        self._reached_end = True

    @property
    def exact_frames(self) -> int | None:
        """The number of frames when the input says it exactly (see ``Probe.exact_frames``)."""
        return self._exact_frames

    @property
    def _looping(self) -> bool:
        return self.options.loop and self._opened is not None and self._opened.kind in (Kind.FILE, Kind.SEQUENCE)

    def decoded(self) -> Iterator[Any]:
        """One pass over the input as decoded AVFrames (video, the container's timestamps) and
        Packets (pass-through streams), for a caller that places frames itself (cleanfeed.stream.media.live)."""
        if self._opened is not None:
            yield from self._pass(self._opened)

    def _pass(self, opened: OpenedInput) -> Iterator[Any]:
        """One pass over the container: decoded AVFrames for video, Packets for the rest."""
        container = opened.container
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        wanted = {info.index for info in self.caps.streams}
        selected = [video] + [s for s in container.streams if s.index in wanted]
        held = None  # a damaged video packet, sent to the decoder once another one follows it
        for packet in self._demux(opened, selected):
            if packet.is_corrupt:
                self.corrupt += 1
            if packet.stream.index != video.index:
                if packet.size:
                    yield packet_from_av(packet, packet.stream.index)
                continue
            if packet.size:
                if held is not None:
                    yield from self._decode(video, held)
                    held = None
                if packet.is_corrupt:
                    held = packet
                    continue
            yield from self._decode(video, packet)
        # A damaged last packet is the cut end of a truncated file: FFmpeg cannot decode it either,
        # and with frame threads its error surfaces while the decoder is drained, where PyAV
        # stops collecting and the frames still inside were lost (45 of ffmpeg's 47). So it is
        # never sent.
        yield from self._decode(video, None)

    def _demux(self, opened: OpenedInput, selected: list[Any]) -> Iterator[Any]:
        """Demuxed packets; a corrupt stretch is skipped (demuxing resumes where it failed)."""
        failures = 0
        demuxed = False
        while True:
            try:
                for packet in opened.container.demux(selected):
                    failures = 0
                    demuxed = demuxed or bool(packet.size)
                    yield packet
                if not demuxed:
                    _check_not_indexed_at_end(opened)
                return
            except av.error.InvalidDataError:
                if not demuxed:
                    _check_not_indexed_at_end(opened)
                self.corrupt += 1
                failures += 1
                if failures >= MAX_DEMUX_ERRORS:
                    return
            except av.error.EOFError:
                return
            except (av.error.FFmpegError, OSError) as err:
                raise translate_read_error(err, opened, self.options.open) from None

    def _decode(self, video: Any, packet: Any) -> Iterator[Any]:
        """Decoded frames of one packet; a packet the decoder rejects is counted and skipped."""
        try:
            frames = video.codec_context.decode(packet)
        except av.error.EOFError:
            return
        except av.error.FFmpegError:
            self.corrupt += 1
            return
        for frame in frames:
            if frame.is_corrupt:
                self.corrupt += 1
            yield frame

    def close(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.container.close()
        if self.corrupt:
            log.warning("%s: %d corrupt packet(s) skipped or concealed", self.shown, self.corrupt)
            self.corrupt = 0
        expected, self._exact_frames = self._exact_frames, None
        # a reader stopped early (the run was interrupted or failed downstream) did not find the input short
        if expected is not None and self._reached_end and 0 < self.frames_read < expected:
            log.warning("%s: ended after %d of %d frames (truncated?)", self.shown, self.frames_read, expected)
