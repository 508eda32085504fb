"""The part every encoding sink shares: frames and pass-through packets into a MediaWriter, closed once."""

from __future__ import annotations

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import Packet, VideoFrame
from cleanfeed.stream.element import Sink
from cleanfeed.stream.media.writer import MediaWriter


class EncodingSink(Sink):
    """A sink whose ``start()`` opens ``self._writer``; ``finish()`` closes it exactly once."""

    _writer: MediaWriter | None = None

    def render(self, frame: VideoFrame) -> None:
        if self._writer is None:
            raise MediaError(f"{self.factory} got a frame before start()")
        self._writer.write(frame)

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
