"""filesink: encodes frames into a file (or an image sequence), carrying audio through untouched."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import ClassVar

from cleanfeed.errors import MediaError, PropertyError
from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.media.containers import (
    CONTAINERS,
    IMAGE_CODECS,
    NETWORK_OUTPUTS,
    check_codec,
    container_for,
    network_container,
)
from cleanfeed.stream.media.encode import (
    ENCODER_PROPERTIES,
    EncoderSettings,
    check_encoder,
    check_size,
    check_tune,
    encoder_delay,
    resolve_codec,
)
from cleanfeed.stream.media.naming import Kind, kind_of, local_path, redact
from cleanfeed.stream.media.pacing import FramePacer
from cleanfeed.stream.media.sink import EncodingSink
from cleanfeed.stream.media.writer import MediaWriter, OutputSpec
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

log = logging.getLogger(__name__)

@register
class FileSink(EncodingSink):
    factory: ClassVar[str] = "filesink"
    klass: ClassVar[str] = "Sink/Video/File"
    description: ClassVar[str] = (
        "Encodes frames into a file, keeping the input's timestamps, frame count and audio.\n"
        "The container follows the extension: " + " ".join(sorted(CONTAINERS)) + ". codec=h264 (libx264), "
        "hevc (libx265) or ffv1 (lossless, .mkv/.avi only); auto picks ffv1 for lossless inputs (image "
        "sequences) in .mkv/.avi, else h264. A printf pattern (out/%05d.png) writes one lossless RGB image "
        "per frame into a created folder. Audio and subtitle streams are copied without re-encoding; ones "
        "the container cannot hold are dropped with a warning. The file is finalized (playable) on EOS, "
        "error or interrupt; if no frame ever arrived the empty file is removed. For live streams prefer .ts "
        "or .mkv: they stay readable if the run is killed, where .mp4/.mov need their end. Live outputs: "
        "udp://HOST:PORT, srt://HOST:PORT and tcp://HOST:PORT carry MPEG-TS; rtsp://HOST:PORT/PATH pushes "
        "to an RTSP server over TCP; they are paced to the frames' timestamps (pace=true: never faster "
        "than real time); use tune=zerolatency for them."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! inpaint ! filesink location=out.mp4 crf=18 preset=medium"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("location", "output file (.mp4 .mkv .mov .ts .avi), image pattern (out/%05d.png) or live "
                        "URL (" + " ".join(f"{s}://" for s in NETWORK_OUTPUTS) + ")", None),
        Property.enum("codec", "video codec; auto: ffv1 for lossless inputs in .mkv/.avi, else h264",
                      ("h264", "hevc", "ffv1", "auto"), "h264"),
        *ENCODER_PROPERTIES,
        Property.int("start_number", "image sequences: number of the first file", 0, 0),
        Property.bool("audio", "copy the input's audio and subtitle streams (false: video only)", True),
        Property.bool("pace", "live URL outputs: send each frame no earlier than its timestamp says (real time); "
                      "files are never paced", True),
    )

    def configure(self) -> None:
        if not self.location:
            raise PropertyError("filesink needs location=FILE (or location=out/%05d.png for images)")
        kind = kind_of(self.location)
        if kind is Kind.PIPE:
            raise PropertyError("filesink property location must be a file, got '-' (use stdoutsink to write to stdout)")
        self._kind = kind
        self._writer: MediaWriter | None = None
        self._created: Path | None = None
        self._target: Path | None = None
        self._move_early = False
        self._pacer: FramePacer | None = None
        if kind not in (Kind.FILE, Kind.SEQUENCE):
            try:
                container = network_container(self.location)
                codec = "h264" if self.codec == "auto" else self.codec
                check_codec(redact(self.location), container.muxer, container, codec)
            except MediaError as err:
                raise PropertyError(f"filesink property location: {err}") from None
            check_tune(self.factory, codec, self.tune)
            check_encoder(codec)
            return
        suffix = local_path(self.location).suffix.lower()
        if kind is Kind.SEQUENCE:
            if suffix not in IMAGE_CODECS:
                known = " ".join(IMAGE_CODECS)
                raise PropertyError(f"filesink property location must be an image pattern ending in one of {known}, got {self.location!r}")
        else:
            try:
                container = container_for(self.location, suffix)
                if self.codec != "auto":
                    check_codec(self.location, suffix, container, self.codec)
            except MediaError as err:
                raise PropertyError(str(err)) from None
            check_tune(self.factory, self.codec, self.tune)
            if self.codec != "auto":
                check_encoder(self.codec)

    def delay(self) -> tuple[int, str]:
        """The encoder's delay (codec=auto counted as h264, the worst case); images have none."""
        if self._kind is Kind.SEQUENCE:
            return 0, ""
        codec = "h264" if self.codec == "auto" else self.codec
        return encoder_delay(EncoderSettings(codec=codec, crf=self.crf, preset=self.preset, tune=self.tune))

    def start(self, caps: Caps) -> Caps:
        self.finish()
        if self._kind not in (Kind.FILE, Kind.SEQUENCE):
            self._start_network(caps)
            return caps
        path = local_path(self.location)
        shown = self.location
        suffix = path.suffix.lower()
        if self._kind is Kind.SEQUENCE:
            encoder, pix_fmt = IMAGE_CODECS[suffix]
            self._prepare_folder(path.parent, shown)
            if caps.streams:
                log.warning("%s: image sequences hold video only; dropped %d other stream(s)", shown, len(caps.streams))
            spec = OutputSpec(
                url=str(path), shown=shown, muxer="image2",
                settings=EncoderSettings(codec=encoder, pix_fmt=pix_fmt), passthrough=False,
                container_options={"start_number": str(self.start_number)},
            )
        else:
            container = container_for(shown, suffix)
            codec = resolve_codec(self.codec, caps, "ffv1" in container.codecs)
            check_codec(shown, suffix, container, codec)
            check_tune(self.factory, codec, self.tune)
            settings = EncoderSettings(codec=codec, crf=self.crf, preset=self.preset, tune=self.tune, pix_fmt=self.pix_fmt)
            check_size(shown, settings, caps)
            live = caps.live or self.live
            if live and container.muxer in ("mp4", "mov"):
                log.warning("%s: a live stream into %s: its index is written at the end, so the file cannot be read "
                            "if the run is killed or the power fails before then, and it grows in memory meanwhile; "
                            ".ts or .mkv is written as it goes", shown, suffix)
            part = self._prepare_file(path, shown)
            # a live recording takes its name with its first frame, so that a killed run leaves it readable
            # where the user looks; mp4/mov rewrite their start by name when finalized (faststart)
            self._move_early = live and container.muxer not in ("mp4", "mov")
            spec = OutputSpec(url=str(part), shown=shown, muxer=container.muxer, settings=settings,
                              passthrough=self.audio, container_options=dict(container.options),
                              rate_time_base=container.rate_time_base, carries=container.carries)
        try:
            self._writer = self.open_writer(spec, caps)
        except BaseException:
            self.closed(0)
            raise
        return caps

    def _start_network(self, caps: Caps) -> None:
        """A live output: MPEG-TS over udp/srt/tcp or an RTSP push; FFmpeg connects here, so an
        unreachable peer fails before the first frame."""
        shown = redact(self.location)
        container = network_container(self.location)
        codec = "h264" if self.codec == "auto" else self.codec
        settings = EncoderSettings(codec=codec, crf=self.crf, preset=self.preset, tune=self.tune, pix_fmt=self.pix_fmt)
        check_size(shown, settings, caps)
        spec = OutputSpec(url=self.location, shown=shown, muxer=container.muxer, settings=settings,
                          passthrough=self.audio, container_options=dict(container.options), carries=container.carries)
        self._writer = self.open_writer(spec, caps)
        self._pacer = FramePacer() if self.pace else None

    def writes(self) -> list[str]:
        return [self.location] if self._kind in (Kind.FILE, Kind.SEQUENCE) else []

    def render(self, frame: VideoFrame) -> None:
        if self._pacer is not None:
            self._pacer.wait(frame)
        super().render(frame)
        self._move_once_open()

    def render_packet(self, packet: Packet) -> None:
        super().render_packet(packet)
        self._move_once_open()

    def _move_once_open(self) -> None:
        """A live recording takes its name as soon as FFmpeg has opened the file (with the first
        packet muxed: renaming before that would leave FFmpeg to create the old name afresh)."""
        if self._move_early and self._writer is not None and self._writer.muxed:
            self._move_early = False
            self._move_into_place()

    def _move_into_place(self) -> None:
        part, target = self._created, self._target
        if part is None or target is None or part == target:
            return
        try:
            os.replace(part, target)
        except OSError as err:
            raise MediaError(f"cannot write output {self.location!r}: {err.strerror or err} (the frames so far are "
                             f"in {str(part)!r})") from None
        self._created = target

    def _prepare_file(self, path: Path, shown: str) -> Path:
        """Creates the file the frames go into now, so an unusable output fails before the first
        frame: a hidden file beside the target, renamed over it once finalized. A run that fails
        to start, or writes no frame, leaves an existing file of that name as it was."""
        folder = path.parent
        if not folder.exists():
            raise MediaError(f"cannot write output {shown!r}: folder {str(folder)!r} does not exist")
        if not folder.is_dir():
            raise MediaError(f"cannot write output {shown!r}: {str(folder)!r} is not a folder")
        if path.is_dir():
            raise MediaError(f"output {shown!r} must be a file, got a folder")
        final = Path(os.path.realpath(path))  # through a link, the file it points to is replaced
        part = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
        try:
            os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except OSError as err:
            raise MediaError(f"cannot write output {shown!r}: {err.strerror or err}") from None
        self._created, self._target = part, final
        return self._created

    def _prepare_folder(self, folder: Path, shown: str) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            raise MediaError(f"cannot write output {shown!r}: {err.strerror or err}") from None

    def closed(self, frames: int) -> None:
        """Moves the finalized file into place; without a frame it is removed (the pipeline
        reports a run that wrote nothing as its error)."""
        if frames:
            self._move_into_place()
        created, self._created, self._target = self._created, None, None
        if frames == 0 and created is not None:
            created.unlink(missing_ok=True)
            log.debug("%s: no frame arrived; removed the empty output", self.location)

