"""stdoutsink: the clean video as a stream on stdout, for `| ffplay -` or `| ffmpeg -i - ...`."""

from __future__ import annotations

import logging
import os
from typing import ClassVar

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import Caps
from cleanfeed.stream.media.containers import STREAM_FORMATS, check_codec
from cleanfeed.stream.media.encode import (
    ENCODER_PROPERTIES,
    EncoderSettings,
    check_encoder,
    check_size,
    check_tune,
    encoder_delay,
)
from cleanfeed.stream.media.sink import EncodingSink
from cleanfeed.stream.media.writer import MediaWriter, OutputSpec
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

log = logging.getLogger(__name__)


@register
class StdoutSink(EncodingSink):
    factory: ClassVar[str] = "stdoutsink"
    klass: ClassVar[str] = "Sink/Video/Stream"
    description: ClassVar[str] = (
        "Writes the video to stdout (file descriptor 1) as a stream another program reads.\n"
        "format=mpegts (default: h264 plus the input's audio, copied), matroska (the same in Matroska) "
        "or y4m (raw frames, video only, for tools that read YUV4MPEG). tune defaults to zerolatency so "
        "a viewer sees each frame as soon as it is encoded. Nothing else may write to stdout meanwhile."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! inpaint ! stdoutsink format=mpegts  # | ffplay -"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.enum("format", "stream format on stdout", tuple(STREAM_FORMATS), "mpegts"),
        Property.enum("codec", "video codec for mpegts/matroska (y4m is raw)", ("h264", "hevc"), "h264"),
        *(p if p.name != "tune" else Property.enum(p.name, p.blurb, p.choices, "zerolatency") for p in ENCODER_PROPERTIES),
        Property.bool("audio", "copy the input's audio streams (mpegts/matroska only)", True),
    )

    def configure(self) -> None:
        if self.format != "y4m":
            check_tune(self.factory, self.codec, self.tune)
            check_encoder(self.codec)
        self._writer: MediaWriter | None = None

    def delay(self) -> tuple[int, str]:
        """The encoder's delay (y4m is raw: none)."""
        if self.format == "y4m":
            return 0, ""
        return encoder_delay(EncoderSettings(codec=self.codec, crf=self.crf, preset=self.preset, tune=self.tune))

    def start(self, caps: Caps) -> Caps:
        self.finish()
        if os.isatty(1):
            raise MediaError("stdoutsink must write into a pipe or a file, got a terminal (try: ... | ffplay -)")
        container = STREAM_FORMATS[self.format]
        if self.format == "y4m":
            settings = EncoderSettings(codec="rawvideo", pix_fmt=self.pix_fmt)
        else:
            check_codec("stdout", self.format, container, self.codec)
            settings = EncoderSettings(codec=self.codec, crf=self.crf, preset=self.preset, tune=self.tune,
                                       pix_fmt=self.pix_fmt)
        check_size("stdout", settings, caps)
        if self.format == "y4m" and caps.streams and self.audio:
            log.warning("stdout: y4m holds video only; dropped %d other stream(s)", len(caps.streams))
        spec = OutputSpec(
            url="pipe:1", shown="stdout", muxer=container.muxer, settings=settings,
            passthrough=self.audio and self.format != "y4m", rate_time_base=container.rate_time_base,
            carries=container.carries,
        )
        self._writer = self.open_writer(spec, caps)
        return caps
