"""testsrc: a synthetic panning shot with a logo, whose ground truth is known."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import ClassVar

import cv2
import numpy as np

from cleanfeed.errors import PropertyError
from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.element import Source
from cleanfeed.stream.picture import FORMATS
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register
from cleanfeed.stream.testclip import LOGOS, MOTIONS, SyntheticClip
from cleanfeed.stream.testlogo import SCENARIOS, LogoScenes


@register
class SyntheticSrc(Source):
    factory: ClassVar[str] = "testsrc"
    klass: ClassVar[str] = "Source/Video"
    description: ClassVar[str] = (
        "Renders a synthetic shot with a logo to remove: no file and no download needed.\n\n"
        "A textured scene seen through a camera that pans (2-6 px/frame, sub-pixel), optionally "
        "zooming, with a screen-fixed channel bug (logo=fixed) or a sign printed on the scene "
        "(logo=scene). Deterministic from seed. Each frame carries meta logo_box=[x0,y0,x1,y1], the "
        "logo's true box; truth_mask=true also writes the true logo mask (object 1) into the frame's "
        "mask, so inpainting can be tested without segmenting and tracking.\n\n"
        "scenario=scaled|rotated|perspective|leaving|cuts|two renders a sponsor emblem on a busy scene "
        "instead, for `logofind` and `cleanfeed check`: its reference PNG is written by "
        "cleanfeed.stream.testlogo.write_png(path, logo_size[, variant]). Meta logo_boxes lists each "
        "logo's box; truth_mask writes logo variant v as object v+1."
    )
    example: ClassVar[str] = (
        "testsrc frames=90 logo=fixed ! segment box=1139,19,1246,86 ! track ! dilate "
        "! inpaint ! filesink location=out.mp4"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("width", "Frame width in pixels (even for yuv420p)", 1280, 32, 7680),
        Property.int("height", "Frame height in pixels (even for yuv420p)", 720, 32, 4320),
        Property.int("frames", "Number of frames before end of stream", 150, 1, 10_000_000),
        Property.fraction("rate", "Frames per second", Fraction(30)),
        Property.enum("motion", "Camera motion", MOTIONS, "pan"),
        Property.enum("logo", "A screen-fixed channel bug, a sign moving with the scene, or none", LOGOS, "fixed"),
        Property.int("logo_size", "Logo width in pixels (height is about 0.6x)", 100, 8, 4000),
        Property.enum("scenario", "A logo-finding scenario instead of the panning shot (none: the shot; see "
                      "cleanfeed.stream.testlogo.SCENARIOS): the sponsor emblem scaled, rotated, in perspective, "
                      "leaving and returning, across hard cuts, or two logos", ("none", *SCENARIOS), "none"),
        Property.int("seed", "Seed of the scene and the camera path", 0, 0, 2**31 - 1),
        Property.bool("truth_mask", "Write the true logo mask (object 1) into every frame's mask", False),
        Property.enum("pix_fmt", "Pixel layout of the frames", FORMATS, "yuv420p"),
    )

    def configure(self) -> None:
        if self.rate <= 0:
            raise PropertyError(f"testsrc property rate must be > 0, got {self.rate}")
        if self.pix_fmt == "yuv420p" and (self.width % 2 or self.height % 2):
            raise PropertyError(f"testsrc size must be even for yuv420p, got {self.width}x{self.height}")
        self._clip: SyntheticClip | None = None
        self._caps: Caps | None = None

    def open(self) -> Caps:
        self._clip = SyntheticClip(self.width, self.height, self.frames, float(self.rate), self.motion,
                                   self.logo, self.logo_size, self.seed)
        self._caps = Caps(self.width, self.height, self.rate, 1 / self.rate, self.pix_fmt, frames=self.frames)
        return self._caps

    def read(self) -> Iterator[VideoFrame | Packet]:
        if self._clip is None or self._caps is None:
            raise RuntimeError("testsrc: read() must follow open()")
        if self.scenario != "none":
            yield from self._scenario(self._caps)
            return
        clip, caps = self._clip, self._caps
        for i in range(self.frames):
            truth = clip.frame(i)
            frame = self.new_frame(caps, i, i, caps.time_base)
            if self.pix_fmt == "yuv420p":
                cv2.cvtColor(truth.image, cv2.COLOR_RGB2YUV_I420, dst=frame.picture.data)
            else:
                frame.picture.data[...] = truth.image
            if self.truth_mask:
                np.copyto(frame.mask, truth.mask.view(np.uint8))
            frame.meta["logo_box"] = list(truth.box)
            yield frame

    def _scenario(self, caps: Caps) -> Iterator[VideoFrame]:
        scenes = LogoScenes(self.scenario, self.width, self.height, self.frames, self.logo_size, self.seed)
        for i in range(self.frames):
            image, shown = scenes.frame(i)
            frame = self.new_frame(caps, i, i, caps.time_base)
            if self.pix_fmt == "yuv420p":
                cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420, dst=frame.picture.data)
            else:
                frame.picture.data[...] = image
            boxes = []
            frame.mask[...] = 0
            for variant, support in shown:
                ys, xs = np.nonzero(support)
                boxes.append([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1])
                if self.truth_mask:
                    frame.mask[support & (frame.mask == 0)] = variant + 1
            frame.meta["logo_boxes"] = boxes
            frame.meta["logo_box"] = ([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                                       max(b[3] for b in boxes)] if boxes else [0, 0, 0, 0])
            yield frame

    def close(self) -> None:
        self._clip = None
