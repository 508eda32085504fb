"""logocheck: counts the frames on which a logo is still visible, trusting nothing upstream."""

from __future__ import annotations

import logging
from typing import ClassVar

from cleanfeed.engines.detect.reference import load_reference
from cleanfeed.errors import PropertyError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.logos import Sighting, load_finder, sighting, split_paths
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

log = logging.getLogger(__name__)


@register
class LogoCheck(Filter):
    factory: ClassVar[str] = "logocheck"
    klass: ClassVar[str] = "Filter/Video/Analyzer"
    description: ClassVar[str] = (
        "Looks for the logo on every frame that passes and counts those that show it.\n\n"
        "An independent on-air check: it reads the pixels as they leave the chain, not the masks "
        "upstream believed, with the same classical finder as `cleanfeed check` (keypoints, or "
        "templates for a flat logo). Frames pass through unchanged. Counters logo_visible and "
        "logo_checked (in --stats; on the Prometheus endpoint as cleanfeed_logo_visible_total); each "
        "appearance's first and last frame and time are logged. Several logos: logo=a.png;b.png."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! logofind logo=brand.png ! dilate ! inpaint ! logocheck logo=brand.png "
        "! filesink location=out.mp4"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("logo", "reference image(s) of the logo: a PNG with alpha or a tight crop; several "
                        "separated by ;", None),
        Property.int("every", "check one frame in this many (1: every frame)", 1, 1, 10_000),
    )

    def configure(self) -> None:
        self.paths = split_paths(self.logo)
        if not self.paths:
            raise PropertyError("logocheck needs logo=IMAGE")
        for path in self.paths:
            load_reference(path)  # a bad file is refused before anything runs
        self.sightings: list[Sighting] = []

    def reads(self) -> list[str]:
        return list(self.paths)

    def start(self, caps: Caps) -> Caps:
        self._finder = load_finder(self.paths, caps.width, caps.height)
        self._showing: Sighting | None = None
        self._last: Sighting | None = None
        self.sightings = []
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if frame.seq % self.every:
            return [frame]
        self.count("logo_checked")
        seen = sighting(frame, self._finder.find(frame.image))
        if seen is not None:
            self.count("logo_visible")
            self.sightings.append(seen)
            if self._showing is None:
                log.warning("logocheck: %s visible from frame %d (%s)", ", ".join(sorted(set(seen.logos))), seen.frame,
                            _when(seen))
                self._showing = seen
            self._last = seen
        elif self._showing is not None:
            self._ended()
        frame.meta["logo_visible"] = seen is not None
        return [frame]

    def _ended(self) -> None:
        if self._showing is not None and self._last is not None:
            log.warning("logocheck: visible until frame %d (%s)", self._last.frame, _when(self._last))
        self._showing = None

    def flush(self) -> list[VideoFrame]:
        self._ended()
        if not self.counted().get("logo_visible"):
            log.info("logocheck: the logo was on none of the %d frames checked", self.counted().get("logo_checked", 0))
        return []


def _when(seen: Sighting) -> str:
    return "t=?" if seen.time_s is None else f"t={seen.time_s:.3f}s"
