"""inpaint: paints the masked objects out with what neighbouring frames show behind them."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from engines.classical.inpainter import METHODS, Filled, FlowInpainter, InpaintConfig
from stream.buffers import Caps, VideoFrame
from stream.element import Filter
from stream.errors import ElementError
from stream.properties import Property
from stream.registry import register

ENGINES = ("classical", "auto")


@register
class Inpaint(Filter):
    factory: ClassVar[str] = "inpaint"
    klass: ClassVar[str] = "Filter/Video/Inpaint"
    description: ClassVar[str] = (
        "Removes every masked object, filling it from neighbouring frames (flow-guided), else spatially.\n\n"
        "method=propagate pulls each hidden pixel from the nearest of the `window` frames before and "
        "after that shows it (motion estimated around the mask, never from the logo itself), then "
        "from the previous output, then fills the rest with cv2.inpaint (Telea). It holds `window` "
        "frames (the lookahead: window/rate seconds of latency) and emits in order. window=0, "
        "method=telea or method=ns inpaint each frame on its own with no delay. Only mask pixels are "
        "written (for yuv420p, chroma of the 2x2 blocks they touch); frames with an empty mask pass "
        "through untouched."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! dilate "
        "! inpaint window=5 ! filesink location=out.mp4"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.enum("engine", "Inpainting engine (auto picks the best available)", ENGINES, "auto"),
        Property.int("window", "Frames used before and after each frame (= lookahead); 0 = spatial only", 5, 0, 30),
        Property.enum("method", "propagate: flow-guided from neighbour frames; telea / ns: per-frame cv2.inpaint",
                      METHODS, "propagate"),
        Property.int("margin", "Known pixels kept around the mask as context (pixels)", 16, 4, 256),
        Property.int("radius", "cv2.inpaint neighbourhood radius (pixels)", 5, 1, 32),
        Property.int("flow_margin", "Ring around the mask whose motion guides propagation (pixels)", 32, 8, 256),
    )

    engine: str
    window: int
    method: str
    margin: int
    radius: int
    flow_margin: int

    def _config(self, align: int = 1) -> InpaintConfig:
        return InpaintConfig(window=self.window, method=self.method, margin=self.margin, radius=self.radius,
                             flow_margin=self.flow_margin, align=align)

    @property
    def lookahead(self) -> int:
        return self._config().lookahead

    def start(self, caps: Caps) -> Caps:
        self._engine = FlowInpainter(self._config(align=2 if caps.pix_fmt == "yuv420p" else 1))
        self._held: deque[VideoFrame] = deque()
        self._emitted = 0
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        results = self._engine.push(frame.picture.luma(), frame.picture.rgb, frame.mask)
        self._held.append(frame)
        return [self._write(r) for r in results]

    def flush(self) -> list[VideoFrame]:
        return [self._write(r) for r in self._engine.flush()]

    def _write(self, result: Filled) -> VideoFrame:
        if result.index != self._emitted or not self._held:
            raise ElementError(self.name, f"result for frame {self._emitted} expected, got {result.index}")
        self._emitted += 1
        frame = self._held.popleft()
        if result.box is not None and result.rgb is not None and result.where is not None:
            frame.picture.put_rgb(result.rgb, result.box, where=result.where)
            frame.meta["inpaint"] = result.counts
        return frame
