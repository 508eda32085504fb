"""The sliding schedule's settings, apart from the engine: the element checks them when it is
built, in a process that may not have torch (engines/e2fgvi/sliding.py runs them)."""

from __future__ import annotations

from dataclasses import dataclass

from cleanfeed.engines.e2fgvi.regions import REGION_MODES

MODES = ("offline", "stream")
STREAM_NUM_REF = 3
"""``num_ref=-1`` in stream mode: three past reference frames (test.py's -1, every one, needs the future)."""


@dataclass(frozen=True)
class SlidingConfig:
    mode: str = "stream"
    neighbor_stride: int = 5
    ref_step: int = 10
    num_ref: int = -1
    """-1: offline, every ``ref_step``-th frame of the clip (test.py); stream, :data:`STREAM_NUM_REF`."""
    region: str = "auto"
    margin: int = 64
    """Context pixels around the masks in region mode."""
    fixed: tuple[int, int] | None = None
    """(local, references) every model call must have: an exported window's frame counts. Short
    windows (the clip's first and last) are filled with repeats of their edge frames, whose answers
    are not used; stream mode only (offline windows change length along the clip)."""
    resize_to: tuple[int, int] | None = None
    """(height, width) every frame is resized to for the model (the fixed-432x240 E2FGVI's 240x432);
    whole frames only (``region="full"``)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"E2FGVI mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.region not in REGION_MODES:
            raise ValueError(f"E2FGVI region must be one of {', '.join(REGION_MODES)}, got {self.region!r}")
        for name in ("neighbor_stride", "ref_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"E2FGVI {name} must be at least 1, got {getattr(self, name)}")
        if self.num_ref < -1:
            raise ValueError(f"E2FGVI num_ref must be -1 (the mode's default) or more, got {self.num_ref}")
        if self.fixed is not None and (self.mode != "stream" or self.fixed != (2 * self.neighbor_stride + 1,
                                                                              self.stream_refs)):
            raise ValueError(f"E2FGVI fixed windows must be stream mode's ({2 * self.neighbor_stride + 1} local, "
                             f"{self.stream_refs} references), got {self.fixed} in {self.mode} mode")
        if self.resize_to is not None and self.region != "full":
            raise ValueError(f"E2FGVI resize_to must come with region='full' (the model sees whole resized frames), "
                             f"got region={self.region!r}")

    @property
    def stream_refs(self) -> int:
        return STREAM_NUM_REF if self.num_ref == -1 else self.num_ref

    @property
    def lookahead(self) -> int:
        """Frames held before the first one leaves (stream mode; offline holds the whole clip)."""
        return self.neighbor_stride
