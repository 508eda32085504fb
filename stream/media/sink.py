"""The part every encoding sink shares: frames and pass-through packets into a MediaWriter, closed once."""

from __future__ import annotations

import logging
import time

from cleanfeed.errors import LateError, MediaError
from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.element import Sink
from cleanfeed.stream.media.encode import ENCODERS, EncoderSettings
from cleanfeed.stream.media.writer import MediaWriter, OutputSpec
from cleanfeed.stream.shedding import ChainCheck

log = logging.getLogger(__name__)


def encoder_label(settings: EncoderSettings) -> str:
    """``x264 superfast``, ``ffv1``, ``png``: the encoder as a message names it."""
    name = ENCODERS.get(settings.codec, settings.codec)
    if name in ("libx264", "libx265"):
        return f"{name[3:]} {settings.preset}"
    return name


class EncodingSink(Sink):
    """A sink whose ``start()`` opens ``self._writer`` (with :meth:`open_writer`); ``finish()``
    closes it exactly once.

    A sink cannot shed: in a live run with a budget its encoder's cost is part of every frame's,
    so it times its first frames and checks that the chain's cheapest paths, its own included,
    keep up with the input (cleanfeed.stream.shedding.ChainCheck): a warning, or LateError with
    --fail-on-late; counter ``encode_us`` (its median time a frame).
    """

    _writer: MediaWriter | None = None
    _chain: ChainCheck | None = None

    def open_writer(self, spec: OutputSpec, caps: Caps) -> MediaWriter:
        writer = MediaWriter(spec, caps)
        what = f"the {encoder_label(spec.settings)} encoder"
        self._chain = ChainCheck(self.name, what, caps.rate) if self.deadline is not None else None
        return writer

    def render(self, frame: VideoFrame) -> None:
        if self._writer is None:
            raise MediaError(f"{self.factory} got a frame before start()")
        t0 = time.monotonic()
        self._writer.write(frame)
        if self._chain is not None:
            self._check_chain(self._chain, frame, time.monotonic() - t0)

    def _check_chain(self, chain: ChainCheck, frame: VideoFrame, seconds: float) -> None:
        measured = chain.own_s is not None
        said = chain.timed(frame, seconds)
        own = chain.own_s
        if not measured and own is not None:
            self.count("encode_us", round(own * 1e6))
        if said is None:
            return
        self._chain = None  # said once
        if self.fail_on_late:
            raise LateError(said)
        log.warning("%s", said)

    def render_packet(self, packet: Packet) -> None:
        if self._writer is not None:
            self._writer.write_packet(packet)

    def finish(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self.closed(writer.close())

    def closed(self, frames: int) -> None:
        """Called once after the output is finalized, with the number of frames written."""

    def stop(self) -> None:
        self.finish()
