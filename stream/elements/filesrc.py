"""filesrc / urisrc: any input FFmpeg reads — files, image sequences, RTSP, HTTP, stdin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from cleanfeed.errors import PropertyError
from cleanfeed.stream.buffers import Caps, Packet, Probe, VideoFrame
from cleanfeed.stream.element import Source
from cleanfeed.stream.media.live import GAP_FILLS, LiveOptions, LiveReader
from cleanfeed.stream.media.naming import Kind, kind_of, local_path
from cleanfeed.stream.media.open import InputOptions
from cleanfeed.stream.media.reader import MediaReader, ReaderOptions
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

_COMMON = (
    Property.bool("audio", "pass audio and subtitle streams through to the sink (false: drop them)", True),
    Property.float("timeout_s", "network inputs: seconds to wait for a connection and for each read", 10.0, 0.1, 3600.0),
    Property.enum("transport", "RTSP lower transport", ("tcp", "udp"), "tcp"),
    Property.fraction("framerate", "image sequences: frames per second (default 25)", None),
    Property.bool("loop", "files only: start again at the end, timestamps continuing (soak tests)", False),
    Property.bool("reconnect", "live network inputs (rtsp, udp, srt, live http): when the input ends or stops "
                  "answering, reconnect with backoff instead of ending the stream", True),
    Property.float("reconnect_timeout", "live inputs: seconds to keep trying to reconnect after a loss before "
                   "ending the stream (EOS)", 30.0, 0.0, 86400.0),
    Property.enum("gap_fill", "live inputs: what keeps the output's cadence while the input is gone: the last "
                  "frame again, or a 'signal lost' slate (counted as repeated, meta gap=true)",
                  GAP_FILLS, "repeat"),
)


@register
class FileSrc(Source):
    factory: ClassVar[str] = "filesrc"
    klass: ClassVar[str] = "Source/Video/File"
    description: ClassVar[str] = (
        "Reads video (and its audio, untouched) from a file, an image sequence, a URL or stdin.\n"
        "location is a file FFmpeg can read, a printf pattern (frames/%05d.png; the first number is "
        "found in the folder), an rtsp:// or http(s):// URL, or - for stdin (mpegts, matroska, y4m). "
        "Frames keep the container's timestamps; 4:2:0 video stays I420 (no RGB conversion), other "
        "layouts and image sequences are delivered as lossless RGB. Corrupt packets are skipped and "
        "counted, never fatal."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! inpaint ! filesink location=out.mp4"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("location", "file, image pattern (frames/%05d.png), URL, or - for stdin", None),
        *_COMMON,
    )

    def configure(self) -> None:
        if not self._where():
            raise PropertyError(f"{self.factory} needs {self._key()}=...")
        if self.framerate is not None and self.framerate <= 0:
            raise PropertyError(f"{self.factory} property framerate must be > 0, got {self.framerate}")
        self._reader: MediaReader | None = None
        self._live: LiveReader | None = None

    def _key(self) -> str:
        return "location"

    def _where(self) -> str:
        return self.location or ""

    def _options(self) -> ReaderOptions:
        return ReaderOptions(
            open=InputOptions(timeout_s=self.timeout_s, transport=self.transport, framerate=self.framerate),
            audio=self.audio,
            loop=self.loop,
        )

    def reads(self) -> list[str]:
        return [self._where()] if kind_of(self._where()) in (Kind.FILE, Kind.SEQUENCE) else []

    def probe(self) -> Probe | None:
        """Files and image sequences are opened once here (a few milliseconds), so a missing or
        unreadable input is the only line printed; pipes and streams are opened once, by the run."""
        if not self.reads():
            return None
        path = local_path(self._where())
        if path.exists() and not path.is_file() and kind_of(self._where()) is Kind.FILE:
            return None  # a named pipe or a device: reading it here would take what the run needs
        reader = MediaReader(self._where(), self._options())
        try:
            return Probe(reader.caps, reader.exact_frames)
        finally:
            reader.close()

    def open(self) -> Caps:
        self.close()
        reader = MediaReader(self._where(), self._options())
        if self.reconnect and reader.caps.live:
            live = LiveOptions(reconnect_timeout_s=self.reconnect_timeout, gap_fill=self.gap_fill)
            self._live = LiveReader(reader, live)
        else:
            self._reader = reader
        return reader.caps

    def read(self) -> Iterator[VideoFrame | Packet]:
        if self._reader is None and self._live is None:
            self.open()
        if self._live is not None:
            yield from self._live.items(self.new_frame, self.count)
        elif self._reader is not None:
            yield from self._reader.items(self.new_frame)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        live, self._live = self._live, None
        if live is not None:
            live.close()


@register
class UriSrc(FileSrc):
    factory: ClassVar[str] = "urisrc"
    klass: ClassVar[str] = "Source/Video/Network"
    description: ClassVar[str] = (
        "Reads video (and its audio, untouched) from a URL: rtsp://, http(s)://, or any protocol FFmpeg knows.\n"
        "RTSP uses TCP unless transport=udp; connecting and every read give up after timeout_s "
        "(SourceTimeoutError). Same implementation as filesrc, which also accepts URLs."
    )
    example: ClassVar[str] = "urisrc uri=rtsp://127.0.0.1:8554/cam timeout_s=5 ! segment box=10,10,90,60 ! track ! inpaint ! stdoutsink"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("uri", "rtsp://, http(s):// or another URL FFmpeg can open (file paths work too)", None),
        *_COMMON,
    )

    def _key(self) -> str:
        return "uri"

    def _where(self) -> str:
        return self.uri or ""

    def configure(self) -> None:
        super().configure()
        if kind_of(self._where()) is Kind.PIPE:
            raise PropertyError("urisrc property uri must be a URL, got '-' (use filesrc location=- for stdin)")
