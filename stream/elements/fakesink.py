"""fakesink: takes every frame and discards it, counting."""

from __future__ import annotations

import time
from typing import ClassVar

from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.element import Sink
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register
from cleanfeed.stream.timebase import seconds


@register
class FakeSink(Sink):
    factory: ClassVar[str] = "fakesink"
    klass: ClassVar[str] = "Sink/Video"
    description: ClassVar[str] = (
        "Discards every frame and packet, counting them.\n\n"
        "The sink for benchmarks and tests: it costs nothing, so a run measures the rest of the "
        "pipeline. With sync=true it releases frames at their presentation times, like a display."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! identity ! fakesink sync=true"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.bool("sync", "Hold each frame until its presentation time (relative to the first frame)", False),
    )

    def start(self, caps: Caps) -> Caps:
        self.frames = 0
        self.packets = 0
        self._rate = caps.rate
        self._origin: tuple[float, float] | None = None
        return caps

    def _due(self, frame: VideoFrame) -> float:
        if frame.pts is not None:
            return seconds(frame.pts, frame.time_base)
        return float(frame.seq / self._rate) if self._rate else 0.0

    def render(self, frame: VideoFrame) -> None:
        if self.sync:
            due = self._due(frame)
            if self._origin is None:
                self._origin = (time.monotonic(), due)
            wait = self._origin[0] + (due - self._origin[1]) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self.frames += 1

    def render_packet(self, packet: Packet) -> None:
        self.packets += 1
