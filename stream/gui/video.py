"""The video being prompted on: its facts, and any frame by number, decoded as the pipeline decodes it.

Frame numbers are the pipeline's ``seq`` (0, 1, 2... in presentation order), so a prompt placed
on frame N in the app lands on the same picture in the run. Frames are decoded by the same
code as ``filesrc`` (``fill_picture``: I420 stays I420), so masks computed in the app equal the
run's. Seeking uses an index of the video packets' timestamps built once on open (demuxing
only, no decoding); decoded frames are kept in a small cache, and scrubbing forward continues
decoding instead of seeking again.

A live input (rtsp://, a network stream without a duration) cannot be scrubbed: one frame is
grabbed to prompt on, and the run starts from the live stream again.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.media.decode import fill_picture
from cleanfeed.stream.media.naming import Kind, kind_of, local_path
from cleanfeed.stream.media.open import InputOptions, open_input
from cleanfeed.stream.media.reader import MediaReader, ReaderOptions
from cleanfeed.stream.picture import Picture

CACHE_BYTES = 256 * 1024 * 1024
"""Decoded frames kept for scrubbing back and forth (about 80 1080p frames)."""
CONTINUE_FRAMES = 48
"""Decode onward instead of seeking when the wanted frame is at most this far ahead."""


@dataclass(frozen=True)
class VideoFacts:
    """What the page says about the input."""

    location: str
    shown: str
    width: int
    height: int
    fps: Fraction
    frames: int | None
    duration_s: float | None
    audio: str
    """e.g. "aac 48000 Hz stereo", or "none"."""
    live: bool

    def describe(self) -> str:
        """One line for the page."""
        fps = f"{float(self.fps):.3f}".rstrip("0").rstrip(".")
        if self.live:
            length = "live stream (one frame grabbed to prompt on)"
        else:
            duration = f"{self.duration_s:.2f} s" if self.duration_s is not None else "unknown duration"
            length = f"{self.frames} frames, {duration}"
        return f"{self.width}x{self.height}, {fps} fps, {length}, audio: {self.audio}"


def check_upload(path: str | os.PathLike[str], max_mb: float | None) -> None:
    """MediaError for an upload over the configured limit (the page shows it; nothing else changes)."""
    if max_mb is None:
        return
    size = Path(path).stat().st_size
    if size > max_mb * 1024 * 1024:
        raise MediaError(f"video must be at most {max_mb:g} MB (--max-upload-mb), got {size / 1024 / 1024:.1f} MB")


def _audio_of(location: str) -> str:
    """The first audio stream in words, from a fresh open (cheap: headers only)."""
    try:
        opened = open_input(location, InputOptions(timeout_s=5.0))
    except MediaError:
        return "unknown"
    try:
        for stream in opened.container.streams.audio:
            ctx = stream.codec_context
            layout = ctx.layout.name if ctx.layout is not None else f"{ctx.channels} ch"
            return f"{ctx.codec.canonical_name if ctx.codec else ctx.name} {ctx.sample_rate} Hz {layout}"
        return "none"
    finally:
        opened.container.close()


class FrameStore:
    """Frames of one input by number (see the module doc). Not thread-safe: the session serialises calls."""

    def __init__(self, location: str, timeout_s: float = 10.0) -> None:
        self.location = location
        self._options = InputOptions(timeout_s=timeout_s)
        reader = MediaReader(location, ReaderOptions(self._options, audio=False))
        try:
            self.caps: Caps = reader.caps
            self.live = reader.caps.live or reader.caps.frames is None
            self._grabbed: VideoFrame | None = None
            if self.live:
                self._grabbed = self._grab(reader)
            shown = reader.shown
        finally:
            reader.close()
        self._container: Any = None
        self._pts: list[int] = [] if self.live else self._index()
        if not self.live and not self._pts:
            raise MediaError(f"input {shown!r} has no video frames")
        self._cache: OrderedDict[int, Picture] = OrderedDict()
        self._cached_bytes = 0
        self._next: int | None = None  # the frame the open decoder yields next, when known
        self._decoded: Any = None
        frames = 1 if self.live else len(self._pts)
        duration = None if self.live else float(frames / self.caps.rate)
        self.facts = VideoFacts(location, shown, self.caps.width, self.caps.height, self.caps.rate,
                                None if self.live else frames, duration,
                                "unknown" if self.live else _audio_of(location), self.live)

    @property
    def count(self) -> int:
        """Frames that can be shown (1 for a live input)."""
        return 1 if self.live else len(self._pts)

    # -- opening ------------------------------------------------------------------------------
    @staticmethod
    def _grab(reader: MediaReader) -> VideoFrame:
        for item in reader.items(lambda caps, seq, pts, tb: VideoFrame.new(seq, pts, tb, Picture.empty(
                caps.pix_fmt, caps.width, caps.height))):
            if isinstance(item, VideoFrame):
                return item
        raise MediaError(f"input {reader.shown!r} sent no video frame to prompt on")

    def _open(self) -> Any:
        container = open_input(self.location, self._options).container
        container.streams.video[0].thread_type = "AUTO"
        return container

    def _index(self) -> list[int]:
        """Presentation timestamps of every video frame, sorted: frame N is the N-th."""
        container = self._open()
        try:
            video = container.streams.video[0]
            stamps = [p.pts for p in container.demux(video) if p.size and p.pts is not None]
        except av.error.FFmpegError as err:
            raise MediaError(f"input {self.location!r} cannot be read: {err}") from None
        finally:
            container.close()
        return sorted(stamps)

    # -- frames -------------------------------------------------------------------------------
    def frame(self, index: int) -> VideoFrame:
        """Frame ``index`` (0-based) as a fresh VideoFrame (its own pixels, an empty mask)."""
        if not 0 <= index < self.count:
            raise MediaError(f"frame must be 0..{self.count - 1}, got {index}")
        if self._grabbed is not None:
            grabbed = self._grabbed
            return VideoFrame.new(0, grabbed.pts, grabbed.time_base, grabbed.picture.copy())
        picture = self._cache.get(index)
        if picture is None:
            picture = self._decode_to(index)
        else:
            self._cache.move_to_end(index)
        return VideoFrame.new(index, self._pts[index], self.caps.time_base, picture.copy())

    def frames(self, start: int, count: int) -> list[VideoFrame]:
        """Up to ``count`` frames from ``start`` (fewer at the end of the video)."""
        return [self.frame(i) for i in range(start, min(self.count, start + count))]

    def _keep(self, index: int, picture: Picture) -> None:
        if index in self._cache:
            return
        self._cache[index] = picture
        self._cached_bytes += picture.data.nbytes
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.data.nbytes

    def _decode_to(self, index: int) -> Picture:
        if self._next is None or not (self._next <= index <= self._next + CONTINUE_FRAMES):
            self._seek(index)
        position = {pts: i for i, pts in enumerate(self._pts)}
        for av_frame in self._decoded:
            number = position.get(av_frame.pts) if av_frame.pts is not None else self._next
            if number is None:
                continue
            self._next = number + 1
            if number < index - CONTINUE_FRAMES:
                continue
            picture = Picture.empty(self.caps.pix_fmt, self.caps.width, self.caps.height)
            fill_picture(av_frame, picture)
            self._keep(number, picture)
            if number >= index:
                break
        self._next = self._next if index in self._cache else None
        picture = self._cache.get(index)
        if picture is None:
            raise MediaError(f"frame {index} of {self.facts.shown!r} could not be decoded")
        return picture

    def _seek(self, index: int) -> None:
        if self._container is None:
            self._container = self._open()
        video = self._container.streams.video[0]
        try:
            self._container.seek(self._pts[index], stream=video, backward=True, any_frame=False)
        except av.error.FFmpegError:
            self._container.close()
            self._container = self._open()
            video = self._container.streams.video[0]
        self._decoded = self._container.decode(video)
        self._next = None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._cache.clear()
        self._cached_bytes = 0


def is_local(location: str) -> bool:
    """A file or image sequence on this machine (as opposed to a URL)."""
    kind = kind_of(location)
    return kind in (Kind.FILE, Kind.SEQUENCE) and (kind is Kind.SEQUENCE or local_path(location).exists())
