"""logo: removes a screen-fixed overlay (a channel bug) by learning its matte from the stream.

The matte estimator, un-blending and fill live in cleanfeed.engines.classical (matte, unblend,
smoothfill); this element holds the first frames while it learns, then treats every frame with
the same fixed linear operations on the box's neighbourhood only: no optical flow, no tracking.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.matte import Matte, estimate_matte, load_matte
from cleanfeed.engines.classical.planes import PlaneRemover, estimate_yuv
from cleanfeed.engines.classical.smoothfill import ORDERS, SmoothFill
from cleanfeed.engines.classical.unblend import Unblender
from cleanfeed.errors import PromptError
from cleanfeed.prompts.shapes import Box
from cleanfeed.stream.buffers import Caps, Probe, VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

log = logging.getLogger(__name__)

THIN = 8
"""Opaque parts no thicker than twice this (px) are filled here even over a moving scene: a harmonic
fill across a thin stroke beats propagation, whose flow the static stroke itself misleads."""
MAX_LEARN = 400
"""Frames a moving scene's matte is refined from at most (re-learned at 2x, 4x, ... the lookahead)."""
MIN_LOOK = 20
"""Fewest frames a matte is learnt from when a long first look tries its shorter parts."""


@register
class Logo(Filter):
    factory: ClassVar[str] = "logo"
    klass: ClassVar[str] = "Filter/Video/Inpaint"
    description: ClassVar[str] = (
        "Removes a screen-fixed overlay (a channel bug) inside `box`, learning its matte from the stream.\n\n"
        "A static overlay keeps its colours and edges while the scene under it changes (I = a*L + (1-a)*B). "
        "Over its first `learn` frames (its lookahead) the element finds the bug's exact support, its "
        "per-pixel opacity a and colour L, and the opaque parts of other colours of a multi-coloured bug "
        "(cleanfeed.engines.classical.matte). A still scene's first look of a quarter of the lookahead "
        "is its matte; over a moving scene, of mattes learnt from a quarter, a half and all of the "
        "lookahead it keeps the one of the smallest support, and it keeps learning. "
        "In every frame it un-blends translucent pixels, B = (I - a*L)/(1-a) (over a still, smooth "
        "background it fills them instead where a fill measures closer), and fills what is opaque (a >= "
        "a_max) from its border with a fixed harmonic or biharmonic interpolation (`fill`), so a static "
        "background gets an identical fill in every frame. Over a moving scene the thick opaque parts (a "
        "disc, a banner) are also written into the frame's mask as object `object_id`, exact and marked "
        "so, for a following `inpaint` to propagate what other frames show (`opaque`). The object is "
        "marked removed (meta fixed), so a following `segment` leaves its prompt alone. No optical flow "
        "here: the bug does not move.\n\n"
        "file=FILE uses a matte saved earlier with save=FILE (an .npz of alpha, colour, solid parts and "
        "where it lies) instead of learning: no lookahead. A file for another frame size or not a matte "
        "is refused.\n\n"
        "When the box holds no static overlay: with absent=mask the element says so once (a warning) and "
        "passes the box on as object `object_id` in the frame's mask, grown by `fallback_grow` px, for a "
        "following `inpaint`; with absent=pass (the default chain of `cleanfeed run --box`) it passes the "
        "frames on untouched for the `segment` and `track` that follow. In live runs with a latency "
        "budget, frames due before the matte is learned leave with the whole box covered by the harmonic "
        "fill, flagged degraded."
    )
    example: ClassVar[str] = "filesrc location=in.mp4 ! logo box=560,20,620,60 save=bug.npz ! inpaint ! filesink location=out.mp4"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.box("box", "Box around the bug (it must stay put)", None),
        Property.string("file", "A matte saved with save=FILE, used instead of learning", None),
        Property.string("save", "Write the learned matte to this .npz file", None),
        Property.int("learn", "Frames the matte is learned from (the lookahead)", 25, 2, 250),
        Property.int("ring", "Pixels around the box that show the scene (the estimator's reference)", 8, 2, 64),
        Property.float("a_max", "Opacity above which pixels are filled instead of un-blended", 0.85, 0.05, 1.0),
        Property.int("grow", "Grow the filled (opaque) part by this many pixels (the estimated support is "
                     "exact, its faint rim included)", 0, 0, 16),
        Property.enum("fill", "Fill of the opaque part: harmonic, biharmonic, or auto (biharmonic over a moving "
                      "scene, harmonic over a still one)", ("auto", *ORDERS), "auto"),
        Property.enum("opaque", "The opaque part: fill it here, or mask it for a following inpaint "
                      "(auto: mask its thick parts when the scene moves, where inpaint's temporal propagation "
                      "is better; thin strokes are filled here)", ("auto", "fill", "mask"), "auto"),
        Property.int("object_id", "Mask id given to the box when no static overlay is found", 1, 1, 255),
        Property.int("fallback_grow", "Grow the box passed on as a mask by this many pixels", 8, 0, 64),
        Property.enum("absent", "When the box holds no static overlay: mask the box for inpaint, or pass frames on "
                      "untouched for a following segment and track (the default chain of `cleanfeed run --box`)",
                      ("mask", "pass"), "mask"),
        Property.int("mask_grow", "Grow the opaque part passed on as a mask (opaque=mask) by this many pixels",
                     2, 0, 16),
    )

    box: tuple[int, int, int, int] | None
    file: str | None
    save: str | None
    learn: int
    ring: int
    a_max: float
    grow: int
    fill: str
    opaque: str
    object_id: int
    fallback_grow: int
    absent: str
    mask_grow: int

    def configure(self) -> None:
        if self.box is None and not self.file:
            raise PromptError("logo needs box=X0,Y0,X1,Y1 or file=MATTE")
        if self.box is not None and self.file:
            raise PromptError("logo takes box= or file=, not both (the file says where the bug is)")
        self._matte: Matte | None = load_matte(self.file) if self.file else None

    @property
    def lookahead(self) -> int:
        return 0 if self.file else self.learn

    def reads(self) -> list[str]:
        return [self.file] if self.file else []

    def writes(self) -> list[str]:
        return [self.save] if self.save else []

    def check(self, probe: Probe) -> None:
        self._check_size(probe.caps.width, probe.caps.height)

    def _check_size(self, width: int, height: int) -> None:
        if self.box is not None:
            Box(*self.box).check(width, height)
        if self.file:
            load_matte(self.file, (width, height))

    def start(self, caps: Caps) -> Caps:
        self._check_size(caps.width, caps.height)
        self._held: list[VideoFrame] = []
        self._crops: list[np.ndarray] = []
        self._emitted = 0
        self._remove: Unblender | None = None
        self._planes: PlaneRemover | None = None
        self._uvs: list[np.ndarray] = []
        self._seen = 0
        self._next = 0  # frame count at which a moving scene's matte is learned again (0: never)
        self._cover: SmoothFill | None = None
        self._looks: list[Matte] = []
        if self._matte is not None:
            self._crop = self._matte.crop
            self._use(self._matte)
            return caps
        assert self.box is not None
        self._crop = regions.grow(self.box, self.ring, caps.width, caps.height, align=2)
        x0, y0, x1, y1 = self._crop
        bx0, by0, bx1, by1 = self.box
        self._inbox = np.zeros((y1 - y0, x1 - x0), bool)
        self._inbox[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = True
        self._size = (caps.width, caps.height)
        return caps

    def _order(self, matte: Matte) -> str:
        """Biharmonic over a moving scene, harmonic over a still one, chosen by measurement on the
        delogo study's clips: continuing the gradients across a thin stroke follows moving texture
        better (a pan behind 3-px strokes 39.0 dB against 36.8; a 16-px bug over moving bikes 37.7
        against 34.3, Y plane), while over a still ceiling or sky biharmonic overshoots (46.6
        against 49.0; 53.6 against 54.2)."""
        if self.fill != "auto":
            return self.fill
        return "biharmonic" if matte.why == "moving" else "harmonic"

    def _use(self, matte: Matte) -> None:
        self._matte = matte
        self._planes = None
        if matte.present:
            self._remove = Unblender(matte.alpha, matte.colour, self.a_max, self.grow, self._order(matte),
                                     solid=matte.solid)
            hole = self._remove.hole
            if self.opaque == "auto":  # measured: a pan behind 3-px strokes 33.2 dB filled, 27.9 propagated; a 16-px
                # disc over moving bikes 26.7 filled, 23.9 propagated;
                # behind the demo's disc and banner 27.8 filled, 36.7 propagated
                hole = regions.thick_parts(hole, THIN) if matte.why == "moving" else np.zeros_like(hole)
            elif self.opaque == "fill":
                hole = np.zeros_like(hole)
            # the exact opaque part, grown a little for the rim whose opacity is least certain: the
            # following inpaint invents only what the bug hides, not the box around it
            self._hole_mask = regions.grow_mask(hole, self.mask_grow)
            self._mask_hole = bool(hole.any())
            log.info("%s: overlay found (%s scene, %d frames): opacity %.2f, %d px un-blended, %d px filled",
                     self.name, matte.why or "saved", matte.frames, matte.a0, int(self._remove.blend.sum()),
                     int(self._remove.hole.sum()))
        elif self.absent == "pass":  # the chain's segment and track take the box: nothing went wrong
            log.info("%s: no static overlay in box %s (%s); segmenting and tracking what is in it",
                     self.name, ",".join(map(str, self.box or ())), matte.why)
        else:
            log.warning("%s: no static overlay in box %s (%s); passing the box on as mask id %d for inpaint",
                        self.name, ",".join(map(str, self.box or ())), matte.why, self.object_id)
        if self.save:
            matte.save(self.save)

    def _sample(self, frame: VideoFrame) -> None:
        """Keeps the crop for learning: the Y and (U, V) planes of a yuv420p picture, as they are
        (the matte is estimated and removed in the space the frame is written back in), else RGB."""
        pic = frame.picture
        if pic.pix_fmt == "yuv420p":
            y, u, v = pic.planes(self._crop)
            self._crops.append(y.copy())
            self._uvs.append(np.stack([u, v], axis=-1))
        else:
            self._crops.append(pic.rgb(self._crop))
        self._seen += 1

    def _estimate(self, count: int) -> Matte:
        """The matte of the first ``count`` frames kept."""
        crops = np.stack(self._crops[:count])
        if self._uvs and len(self._uvs) == len(self._crops) and count >= 2:
            return estimate_yuv(crops, np.stack(self._uvs[:count]), self._inbox, self._crop, self._size)
        return estimate_matte(crops, self._inbox, self._crop, self._size)

    def _look(self) -> Matte | None:
        """The first look over a long lookahead also tries its first quarter and half, as the frames
        arrive. A still scene has nothing more to teach after a second (measured: an opaque bug over a
        still ceiling, 45.4 dB learnt from 25 frames, 44.4 from 100): its first still look is the
        matte, and the frames held so far leave at once instead of waiting out the whole lookahead
        while the stages behind it idle."""
        n = len(self._crops)
        if n < MIN_LOOK or n not in (self.learn // 4, self.learn // 2):
            return None
        look = self._estimate(n)
        if look.present and look.why == "static":
            return look
        self._looks.append(look)
        return None

    def _learn(self, matte: Matte | None = None) -> None:
        if matte is None:
            matte = self._estimate(len(self._crops))
        if self._matte is None and matte.why == "moving":
            # over a moving scene, of the first looks the one of the smallest support (:meth:`_better`)
            for other in self._looks:
                if other.present and self._better(other, matte):
                    matte = other
        self._looks = []
        # a moving scene keeps teaching (each frame shows the bug over another background): learn
        # again at twice as many frames, up to MAX_LEARN; a static one has nothing more to say
        refine = matte.present and matte.why == "moving" and self._seen < MAX_LEARN
        self._next = min(2 * self._seen, MAX_LEARN) if refine else 0
        if not refine:
            self._crops, self._uvs = [], []
        held = self._matte
        if held is not None and held.present and matte.present and not self._better(matte, held):
            log.debug("%s: kept the matte of %d frames (the one of %d frames leaves more of the bug)", self.name,
                      held.frames, matte.frames)
            return
        self._use(matte)

    @staticmethod
    def _better(new: Matte, held: Matte) -> bool:
        """Whether another look's matte removes the bug better than the one in use: the smaller
        support wins. What a longer look adds is scene structure that stayed in its mean (a horizon
        along a pan), what a shorter one adds is noise, and either is damage where the bug is not
        (measured, 25/50/100 frames: an opaque bug over a pan 1998/1987/2009 px, 38.9/37.6/35.8 dB;
        a 60 % one 1997/2045/2119 px, 46.6/40.0/34.2 dB; a 60 % bug over grass 3926/2913/2209 px,
        25.1/32.6/38.6 dB; over a face 242/226/185 px, 29.0/33.7/34.3 dB, Y plane). Judging by the
        outline un-blending leaves instead chose the face's 50-frame look."""
        return int(new.support.sum()) < int(held.support.sum())

    def _apply(self, frame: VideoFrame) -> VideoFrame:
        matte = self._matte
        assert matte is not None
        if self._remove is None and self.absent == "pass":
            return frame  # the segment and track that follow remove what is in the box
        if self._remove is not None:
            # the box's object is this overlay, removed here: a following segment leaves it alone,
            # a following dilate leaves its exact mask as it is
            frame.meta["fixed"] = sorted(set(frame.meta.get("fixed", [])) | {self.object_id})
        if self._remove is not None and frame.picture.pix_fmt == "yuv420p":
            if self._planes is None:
                self._planes = PlaneRemover(matte, self.a_max, self.grow, self._order(matte))
            self._planes(*frame.picture.planes(self._crop))
            self.count("logo_frames")
        elif self._remove is not None:
            crop = frame.picture.rgb(self._crop)
            frame.picture.put_rgb(self._remove(crop), self._crop, where=self._remove.where)
            self.count("logo_frames")
        if self._remove is not None and self._mask_hole:
            # an opaque bug over a moving scene: the following inpaint fills its exact shape with
            # temporal propagation (the scene moves, so other frames show what it hides)
            x0, y0, x1, y1 = self._crop
            region = frame.mask[y0:y1, x0:x1]
            region[self._hole_mask & (region == 0)] = self.object_id
            frame.meta["exact_ids"] = sorted(set(frame.meta.get("exact_ids", [])) | {self.object_id})
        elif self._remove is None and self.box is not None:
            # no overlay: the following inpaint removes the box (grown) as an object
            x0, y0, x1, y1 = regions.grow(self.box, self.fallback_grow, frame.width, frame.height)
            region = frame.mask[y0:y1, x0:x1]
            region[region == 0] = self.object_id
        return frame

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if self._matte is not None:
            if self._next:
                self._sample(frame)
                if self._seen >= self._next:
                    self._learn()
            return [self._apply(frame)]
        self._sample(frame)
        self._held.append(frame)
        still = self._look()
        if still is None and len(self._crops) + self._emitted < self.learn:
            return []
        self._learn(still)
        out = [self._apply(f) for f in self._held]
        self._held = []
        return out

    def flush(self) -> list[VideoFrame]:
        if self.save and self._next and self._matte is not None and self._matte.present:
            self._matte.save(self.save)  # the latest refinement
        if self._matte is None and (self._crops or self._emitted):
            if len(self._crops) >= 2:
                self._learn()
            else:
                self._use(Matte(np.zeros(self._inbox.shape, np.float32), np.zeros(3, np.float32), self._crop,
                                self._size, False, "too few frames to learn from"))
        out = [self._apply(f) for f in self._held]
        self._held = []
        return out

    def expire(self, now: float) -> list[VideoFrame]:
        """Live runs: frames due while the matte is still being learned leave with the box covered."""
        deadline = self.deadline
        out: list[VideoFrame] = []
        while deadline is not None and self._held and deadline.due(self._held[0]) <= now:
            frame = self._held.pop(0)
            if self._cover is None:
                self._cover = SmoothFill(self._inbox)
            crop = frame.picture.rgb(self._crop)
            filled = np.clip(self._cover(crop) + 0.5, 0, 255).astype(np.uint8)
            frame.picture.put_rgb(filled, self._crop, where=self._inbox)
            frame.meta["degraded"] = True
            self._emitted += 1
            self.count("fallback_frames")
            out.append(frame)
        return out
