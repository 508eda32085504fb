"""What flows through a pipeline: stream-start (caps), video frames, pass-through packets, EOS, errors.

Every item is plain data (numbers, strings, bytes, numpy arrays, small dicts), so links can
serialise it with a versioned header and raw payloads, never with pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from cleanfeed.stream.picture import Picture


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream of the input (audio, subtitles, data) passed through to the sink.

    ``params`` holds what the muxer needs to recreate the stream without re-encoding
    (sample rate, channel layout, sample format, bit rate, frame size, ``extradata`` bytes):
    msgpack-able values only.
    """

    index: int
    kind: str  # "audio" | "subtitle" | "data"
    codec: str
    time_base: Fraction
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Caps:
    """The video's format, fixed for the whole stream (elements do not change frame size).

    ``rate`` is frames per second; ``time_base`` is the unit of every frame's ``pts``.
    ``frames`` is the total count when the source knows it (files), else None (live).
    """

    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    pix_fmt: str = "yuv420p"
    streams: tuple[StreamInfo, ...] = ()
    live: bool = False
    frames: int | None = None

    def with_(self, **changes: Any) -> Caps:
        return replace(self, **changes)


@dataclass(frozen=True)
class Probe:
    """What a source can tell of its input before the run starts (``Source.probe``), so that
    settings which cannot work with it (a prompt past the last frame, a box outside the picture)
    are refused before any process starts, not seconds into the run."""

    caps: Caps
    exact_frames: int | None = None
    """The number of frames when it is known exactly (an indexed file, an image sequence);
    ``caps.frames`` may be an estimate from the duration."""


@dataclass(eq=False)
class VideoFrame:
    """One decoded frame travelling down the pipeline.

    - ``seq``: 0, 1, 2, ... per stream, gapless; every element emits each seq exactly once.
    - ``pts``: presentation time in ``time_base`` units, as the container gave it (None only
      where a source could not give one; sources fill gaps from the frame rate).
    - ``picture``: the pixels in the source's layout; use ``picture.rgb(box)`` /
      ``picture.put_rgb(...)`` to touch a region, ``picture.luma()`` for grey work.
    - ``mask``: HxW uint8 object-id map, 0 = keep, 1..255 = object ids to remove.
    - ``meta``: msgpack-able dict: ``prompts`` (list of prompt dicts), ``reference``
      (ids whose mask on this frame came from a prompt, not from tracking), ``degraded``
      (bool), ``objects_lost`` (ids), ``logo_box`` (testsrc's truth) ...
    - ``stamps``: element name -> time.monotonic() when it emitted this frame (the source's
      entry is the frame's birth); CLOCK_MONOTONIC is shared by all processes of a host.

    - ``slot``: the shared-memory slot holding picture and mask in process mode (None: heap);
      runners own it, elements ignore it.

    Ownership: once an element returns a frame from ``process``, it belongs downstream and
    its pixels may be reused; an element that needs them later keeps a ``copy()``.
    """

    seq: int
    pts: int | None
    time_base: Fraction
    picture: Picture
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)
    slot: int | None = None

    @classmethod
    def new(
        cls, seq: int, pts: int | None, time_base: Fraction, picture: Picture, meta: dict[str, Any] | None = None
    ) -> VideoFrame:
        mask = np.zeros((picture.height, picture.width), np.uint8)
        return cls(seq, pts, time_base, picture, mask, dict(meta or {}))

    @property
    def width(self) -> int:
        return self.picture.width

    @property
    def height(self) -> int:
        return self.picture.height

    @property
    def image(self) -> np.ndarray:
        """The whole frame as a new HxWx3 uint8 RGB array (a full conversion: use sparingly)."""
        return self.picture.rgb()

    @property
    def born(self) -> float | None:
        """When the frame left its source (monotonic seconds), if stamped."""
        return next(iter(self.stamps.values()), None)

    def copy(self) -> VideoFrame:
        return VideoFrame(
            self.seq, self.pts, self.time_base, self.picture.copy(), self.mask.copy(),
            dict(self.meta), dict(self.stamps),
        )


@dataclass(eq=False)
class Packet:
    """An encoded packet of a pass-through stream (``StreamInfo.index``), remuxed by the sink."""

    stream: int
    data: bytes
    pts: int | None
    dts: int | None
    duration: int | None
    time_base: Fraction
    keyframe: bool = False


@dataclass(frozen=True)
class StreamStart:
    caps: Caps


@dataclass(frozen=True)
class Eos:
    """End of stream: flush and pass it on."""


@dataclass(frozen=True)
class ErrorEvent:
    """An element failed; downstream elements flush and pass it on so outputs are finalized."""

    element: str
    message: str


Item = StreamStart | VideoFrame | Packet | Eos | ErrorEvent
