"""segment: turns the user's prompt (box, points, mask, prompt file) into object masks on the prompted frame."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import cv2
import numpy as np

from cleanfeed.engines.classical import regions
from cleanfeed.engines.classical.segmenter import SegmenterConfig, segment
from cleanfeed.errors import PromptError
from cleanfeed.prompts.promptfile import load_prompts
from cleanfeed.prompts.shapes import Box, ObjectPrompt, load_labels, mask_ids, parse_point
from cleanfeed.stream.adapters.base import ModelSettings
from cleanfeed.stream.adapters.model_choice import check_device, model_properties
from cleanfeed.stream.adapters.segment_sam import SAM, VARIANTS, SamEngine, choose
from cleanfeed.stream.buffers import Caps, Probe, VideoFrame
from cleanfeed.stream.element import EngineChoice, Filter
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

log = logging.getLogger(__name__)



def parse_points(text: str) -> tuple[Any, ...]:
    """``"x,y,l;x,y,l"`` -> Points (label 1 = object, 0 = not object; default 1)."""
    return tuple(parse_point(part.strip()) for part in text.split(";") if part.strip())


def split_mask_objects(prompt: ObjectPrompt) -> list[ObjectPrompt]:
    """One prompt per object of its mask file: a label image or palette PNG of ids 1..N is N objects, not one.

    A mask of one object keeps the prompt's id (a 0/255 mask says no id); a mask of several keeps
    its own ids, so the prompt's id must be left at 1, and a box or points would belong to none of them.
    """
    if prompt.mask is None:
        return [prompt]
    ids = mask_ids(prompt.mask)
    if len(ids) <= 1:
        return [prompt]
    listed = ", ".join(map(str, ids))
    if prompt.box is not None or prompt.points:
        raise PromptError(f"mask file {prompt.mask!r} holds objects {listed}: give it without a box or points, "
                          "or one mask file per object")
    if prompt.obj_id != 1:
        raise PromptError(f"mask file {prompt.mask!r} holds objects {listed} with their own ids: "
                          f"its id must be left at 1, got {prompt.obj_id}")
    return [ObjectPrompt(i, prompt.frame, None, (), prompt.mask, {**prompt.extra, "mask_id": i}) for i in ids]


@register
class Segment(Filter):
    factory: ClassVar[str] = "segment"
    klass: ClassVar[str] = "Filter/Video/Segment"
    description: ClassVar[str] = (
        "Finds each prompted object's mask on its prompted frame (SAM, or GrabCut without a checkpoint).\n\n"
        "Prompts: a box around the object, points on it (label 1) or off it (label 0), a mask PNG, or "
        "a JSON prompt file with several objects ({\"version\": 1, \"objects\": [{\"id\": 1, \"frame\": 0, "
        "\"box\": [x0,y0,x1,y1], \"points\": [[x,y,1]], \"mask\": \"file.png\"}]}). On the prompted frame "
        "the masks are written into the frame's mask (object ids) and meta reference lists their ids, "
        "so `track` takes them as references; other frames pass through. A mask alone is used as is; "
        "with a box or points it is SAM's mask prompt. A mask file of several ids (a palette PNG, as DAVIS "
        "and YouTube-VOS annotate, or a label image whose values 1..N each fill a region) is N objects with "
        "those ids; a mask of one value (0/255), or an anti-aliased one, is one object with object_id.\n\n"
        "engine=auto uses SAM when a checkpoint is found (checkpoint=PATH, or the official file names "
        "in the models folder: models=DIR, $CLEANFEED_MODELS, ~/.cache/cleanfeed/models) and GrabCut "
        "otherwise, and says which and why. SAM encodes the frame once for all its objects; with "
        "multimask it keeps the mask it predicts best, and refine feeds that mask back for a second "
        "pass. When SAM finds nothing, or GrabCut's result is unusable, the classical engine or the "
        "box itself is the mask (meta segment says why).\n\n"
        "detections=true: a frame's meta detections (box prompts an element before this one found, each "
        "with an object id of its own: `logofind emit=prompts`) are segmented on that frame like a box "
        "prompt and listed in meta reference, so `track` adds each object or restarts it from its new mask. "
        "Then no prompt of this element's own is needed; one it has must not use a detected id."
    )
    example: ClassVar[str] = (
        "filesrc location=in.mp4 ! segment box=410,96,470,150 ! track ! dilate ! inpaint "
        "! filesink location=out.mp4"
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.box("box", "Box around the object on the prompted frame", None),
        Property.string("points", "Points X,Y,L separated by ';' (L=1 on the object, 0 off it)", None),
        Property.string("mask_file", "Mask image (frame size, 0 = background): one object, or ids 1..N as N objects", None),
        Property.int("frame", "Frame number (seq, from 0) the box, points and mask_file apply to", 0, 0, None),
        Property.int("object_id", "Id written into the mask for the box/points/mask_file object", 1, 1, 255),
        Property.string("prompts_file", "JSON prompt file with one or more objects", None),
        *model_properties(SAM, "Segmentation", VARIANTS, "sam_vit_b_01ec64.pth, ..."),
        Property.bool("multimask", "SAM: predict three masks and keep the best-scored one", True),
        Property.bool("refine", "SAM: a second pass fed the chosen mask's logits", True),
        Property.int("iterations", "GrabCut iterations", 4, 1, 20),
        Property.bool("detections", "also segment the box prompts in each frame's meta detections "
                      "(logofind emit=prompts)", False),
    )

    def configure(self) -> None:
        prompts: list[ObjectPrompt] = []
        pts = parse_points(self.points) if self.points else ()
        if self.box is not None or pts or self.mask_file:
            box = Box(*self.box) if self.box is not None else None
            prompts.append(ObjectPrompt(self.object_id, self.frame, box, pts, self.mask_file or None))
        if self.prompts_file:
            prompts += load_prompts(self.prompts_file)
        prompts = [q for p in prompts for q in split_mask_objects(p)]
        if not prompts and not self.detections:
            raise PromptError(
                "segment needs a prompt: box=X0,Y0,X1,Y1, points=X,Y,L;..., mask_file=PATH or prompts_file=PATH"
            )
        seen: set[tuple[int, int]] = set()
        for p in prompts:
            p.validate()
            if (p.frame, p.obj_id) in seen:
                raise PromptError(f"object {p.obj_id} must be prompted once per frame, got two prompts on frame {p.frame}")
            seen.add((p.frame, p.obj_id))
        self._prompts = prompts
        self._by_frame: dict[int, list[ObjectPrompt]] = {}
        self._masks: dict[tuple[int, int], np.ndarray] = {}
        check_device(self.factory, self.device)
        self._sam_choice, self._why = choose(self.engine, self.checkpoint, self.model, self.models)
        self._sam: SamEngine | None = None

    def _wants_sam(self) -> bool:
        return self._sam_choice is not None and (self.detections or any(p.box is not None or p.points
                                                                        for p in self._prompts))

    def prepare(self) -> None:
        if self._wants_sam() and self._sam is None:
            assert self._sam_choice is not None
            settings = ModelSettings(backend=self.backend, device=self.device, precision=self.precision)
            sam = SamEngine(self._sam_choice, settings, multimask=self.multimask, refine=self.refine)
            sam.open()
            self._sam = sam

    def engine_choice(self) -> EngineChoice:
        if self._sam_choice is not None and not self._wants_sam():
            return EngineChoice("GrabCut", "the prompts are masks only")
        return SAM.engine_choice(self._sam_choice, self.engine, self.models)

    def _load_masks(self, caps: Caps) -> None:
        """Checks every prompt against the frame size and reads its mask file."""
        for p in self._prompts:
            p.check(caps.width, caps.height)
            if p.mask is not None:
                labels = load_labels(p.mask, caps.width, caps.height)
                mask = labels == p.extra["mask_id"] if "mask_id" in p.extra else labels > 0
                if not mask.any():
                    raise PromptError(f"mask file {p.mask!r} of object {p.obj_id} must mark the object, got an empty mask")
                self._masks[(p.frame, p.obj_id)] = mask

    def check(self, probe: Probe) -> None:
        self._load_masks(probe.caps)
        if probe.exact_frames is not None:
            self._refuse_unreached(probe.exact_frames)

    def _refuse_unreached(self, frames: int) -> None:
        said = self.unmet(frames)
        if said is not None:
            raise PromptError(said)

    def unmet(self, frames: int) -> str | None:
        late = sorted({(p.frame, p.obj_id) for p in self._prompts if p.frame >= frames})
        if not late:
            return None
        which = ", ".join(f"object {obj_id} on frame {frame}" for frame, obj_id in late)
        return (f"prompt frames must be within the video's {frames} frames (0..{frames - 1}), got {which}: "
                "that prompt never applied")

    def start(self, caps: Caps) -> Caps:
        self._by_frame = {}
        self._load_masks(caps)
        for p in self._prompts:
            self._by_frame.setdefault(p.frame, []).append(p)
        if self._wants_sam():
            self.prepare()
            assert self._sam is not None
            log.debug("%s: using %s (%s)", self.name, self._why, self._sam.description)
        return caps

    def stop(self) -> None:
        if self._sam is not None:
            self._sam.close()
            self._sam = None

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        fixed = set(frame.meta.get("fixed", ()))  # objects a logo element before this one removed
        prompts = [p for p in self._by_frame.get(frame.seq, ()) if p.obj_id not in fixed]
        if self.detections:
            prompts += self._detected(frame)
        if not prompts:
            return [frame]
        prompts = sorted(prompts, key=lambda q: q.obj_id)
        found = self._segment_sam(frame, prompts) if self._sam is not None else {}
        outcomes = [found.get(p.obj_id) or self._segment(frame, p) for p in prompts]
        ids = [p.obj_id for p in prompts]
        frame.meta["reference"] = sorted(set(frame.meta.get("reference", [])) | set(ids))
        frame.meta["prompts"] = list(frame.meta.get("prompts", [])) + [p.to_dict() for p in prompts]
        frame.meta["segment"] = outcomes
        return [frame]

    def _detected(self, frame: VideoFrame) -> list[ObjectPrompt]:
        """The box prompts of meta detections, clipped to the frame; an id this element's own prompts use
        would merge two objects into one, so it stops the run."""
        own = {p.obj_id for p in self._prompts}
        out = []
        for found in frame.meta.get("detections", ()):
            obj_id = int(found["id"])
            if obj_id in own:
                raise PromptError(f"object {obj_id} is both prompted and detected (frame {frame.seq}): give the "
                                  "prompted objects ids below the detector's first id (logofind first_id)")
            x0, y0, x1, y1 = (int(v) for v in found["box"])
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(frame.width, x1), min(frame.height, y1)
            if x1 > x0 and y1 > y0:
                out.append(ObjectPrompt(obj_id, frame.seq, Box(x0, y0, x1, y1), extra={"detected": found.get("why", "")}))
        return out

    def _segment_sam(self, frame: VideoFrame, prompts: list[ObjectPrompt]) -> dict[int, dict[str, Any]]:
        """SAM's masks written into the frame's mask; objects SAM found nothing for are left out."""
        assert self._sam is not None
        asked = [p for p in prompts if p.box is not None or p.points]
        if not asked:
            return {}
        given = {p.obj_id: self._masks[(p.frame, p.obj_id)] for p in asked if (p.frame, p.obj_id) in self._masks}
        outcomes = {}
        for obj_id, (mask, said) in self._sam.segment(frame.picture.rgb(), asked, given).items():
            if not mask.any():
                log.info("%s: SAM found nothing for object %d on frame %d; using the classical engine",
                         self.name, obj_id, frame.seq)
                continue
            np.copyto(frame.mask, np.uint8(obj_id), where=mask)
            outcomes[obj_id] = {"id": obj_id, "method": "sam", "reason": "", **said}
        return outcomes

    def _segment(self, frame: VideoFrame, prompt: ObjectPrompt) -> dict[str, Any]:
        """Segments one object with GrabCut on a region around its prompt and writes it into the frame's mask."""
        width, height = frame.width, frame.height
        given = self._masks.get((prompt.frame, prompt.obj_id))
        reach = round(0.12 * min(width, height))
        around: regions.Box | None = prompt.box.as_tuple() if prompt.box is not None else None
        for pt in prompt.points:
            x, y = int(pt.x), int(pt.y)
            around = regions.union(around, (x - reach, y - reach, x + reach + 1, y + reach + 1))
        if given is not None:
            around = regions.union(around, regions.mask_box(given))
        if around is None:
            raise PromptError(f"object {prompt.obj_id} needs a box, a point or a mask")
        size = max(regions.box_size(around))
        crop = frame.picture.align(regions.grow(around, max(32, size), width, height))
        rgb = frame.picture.rgb(crop)
        x0, y0 = crop[0], crop[1]
        box = None
        if prompt.box is not None:
            bx0, by0, bx1, by1 = prompt.box.as_tuple()
            box = (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)
        points = [(pt.x - x0, pt.y - y0, int(pt.positive)) for pt in prompt.points]
        seed = None if given is None else regions.crop(given, crop)
        config = SegmenterConfig(iterations=self.iterations, point_reach=reach)
        cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's RNG: each object's mask must not depend on the ones before
        result = segment(rgb, box=box, points=points, mask=seed, config=config)
        if result.fallback:
            log.info("segment: object %d on frame %d: %s; using the %s", prompt.obj_id, frame.seq,
                        result.reason, result.method)
        np.copyto(regions.crop(frame.mask, crop), np.uint8(prompt.obj_id), where=result.mask)
        return {"id": prompt.obj_id, "method": result.method, "reason": result.reason}
