"""identity: passes every frame through untouched."""

from __future__ import annotations

import time
from typing import ClassVar

from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register


@register
class Identity(Filter):
    factory: ClassVar[str] = "identity"
    klass: ClassVar[str] = "Filter/Generic"
    description: ClassVar[str] = (
        "Passes every frame through unchanged.\n\n"
        "A hop that does no work: put several in a chain to measure what links and processes cost, "
        "or give it delay_ms to see how latency and back-pressure behave with a slow stage."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! identity delay_ms=5 ! fakesink"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.float("delay_ms", "Sleep this many milliseconds per frame (a stand-in for a slow stage)", 0.0, 0.0, 60_000.0),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)
        return [frame]
