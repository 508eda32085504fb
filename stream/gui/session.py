"""One user's work in the app: the video, the objects and prompts, previews and runs; no Gradio here.

Every action is a method that either succeeds or raises a CleanfeedError whose one-line
message the page shows; a failed action changes nothing (a bad file does not replace the
video already loaded, a run that cannot start leaves the prompts as they were). The page's
handlers are thin wrappers around these methods, so the whole app is tested without a browser.

Coordinates are pixels of the full-resolution frame (the page maps clicks and drags on the
scaled image back to them). Frame numbers are the pipeline's ``seq``.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cleanfeed.errors import MediaError, PromptError
from cleanfeed.prompts.promptfile import load_prompts, save_prompts
from cleanfeed.prompts.shapes import Box, ObjectPrompt, Point
from cleanfeed.stream.gui.book import FramePrompt, PromptBook
from cleanfeed.stream.gui.masker import Masker, MaskResult, open_masker
from cleanfeed.stream.gui.overlay import draw_box, draw_corner, draw_points, paint_masks
from cleanfeed.stream.gui.preview import preview_clip, track_masks
from cleanfeed.stream.gui.runjob import RunJob, RunSettings, RunStatus, command_line, launch_line, run_options
from cleanfeed.stream.gui.video import FrameStore, VideoFacts, check_upload
from cleanfeed.stream.recipe import chain

MODES = ("positive", "negative", "box")
"""What a click on the frame does: a point on the object, a point off it, a box corner."""
MASK_CACHE = 256
OUTPUT_SUFFIX = {"h264": ".mp4", "hevc": ".mp4", "ffv1": ".mkv"}


@dataclass
class GuiConfig:
    """The app's settings from the command line."""

    workdir: Path
    """Where previews, prompt files and run outputs are written (one folder per session)."""
    models: str | None = None
    """Models folder (else $CLEANFEED_MODELS or ~/.cache/cleanfeed/models)."""
    max_upload_mb: float | None = 2048.0
    preview_seconds: float = 3.0
    device: str = "auto"


@dataclass
class RunOutputs:
    """What a run leaves for download, and how to reproduce it from a shell."""

    folder: Path
    video: Path
    prompts: Path
    masks: Path
    command: str
    launch: str
    job: RunJob | None = field(default=None, repr=False)
    shown: bool = False
    """Whether the page has shown the run's end (result and downloads), which it does once."""


class Session:
    """See the module doc. Methods may be called from several threads; they take turns."""

    def __init__(self, config: GuiConfig, masker: Masker | None = None, masker_note: str = "") -> None:
        self.config = config
        self.workdir = config.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        if masker is None:
            masker, masker_note = open_masker("auto", None, config.models, config.device)
        self.masker = masker
        self.masker_note = masker_note
        self.settings = RunSettings(models=config.models)
        self.book = PromptBook()
        self.store: FrameStore | None = None
        self.frame_index = 0
        self.corner: tuple[int, int] | None = None
        self.last_note = ""
        self.run: RunOutputs | None = None
        self._lock = threading.RLock()
        self._masks: OrderedDict[tuple[int, int, FramePrompt], MaskResult] = OrderedDict()
        self._tracked: dict[int, np.ndarray] = {}
        self._counter = itertools.count(1)

    # -- the video ------------------------------------------------------------------------------
    @property
    def facts(self) -> VideoFacts | None:
        return self.store.facts if self.store is not None else None

    def load(self, location: str, uploaded: bool = False) -> VideoFacts:
        """Opens a video (an upload's temp path, or a path/URL on the server); the old one stays on failure."""
        location = (location or "").strip()
        if not location:
            raise MediaError("video must be an upload or a path/URL on the server, got nothing")
        if uploaded:
            check_upload(location, self.config.max_upload_mb)
        store = FrameStore(location)
        with self._lock:
            old, self.store = self.store, store
            if old is not None:
                old.close()
                if (old.facts.width, old.facts.height) != (store.facts.width, store.facts.height) or self.book.ids:
                    self.book.replace_all([])  # undoable: the old video's objects come back with undo
            self.frame_index = 0
            self.corner = None
            self._masks.clear()
            self._tracked.clear()
            forget = getattr(self.masker, "forget", None)
            if forget is not None:
                forget()
        return store.facts

    def _store(self) -> FrameStore:
        if self.store is None:
            raise MediaError("a video must be loaded first, got none")
        return self.store

    def goto(self, index: int) -> None:
        with self._lock:
            store = self._store()
            self.frame_index = int(min(max(0, index), store.count - 1))
            self.corner = None

    # -- prompting ------------------------------------------------------------------------------
    def click(self, x: float, y: float, mode: str) -> str:
        """A click at pixel (x, y) of the current frame; returns what happened, in words."""
        if mode not in MODES:
            raise PromptError(f"click mode must be one of {', '.join(MODES)}, got {mode!r}")
        with self._lock:
            store = self._store()
            w, h = store.facts.width, store.facts.height
            if not (0 <= x < w and 0 <= y < h):
                raise PromptError(f"click must lie inside the {w}x{h} frame, got {x:g},{y:g}")
            frame = self.frame_index
            if mode == "box":
                if self.corner is None:
                    self.corner = (int(x), int(y))
                    return "box: first corner set; click the opposite corner"
                (x0, y0), self.corner = self.corner, None
                return self._box(x0, y0, int(x), int(y))
            obj = self.book.add_point(frame, Point(float(int(x)), float(int(y)), mode == "positive"))
            self._tracked.clear()
            result = self._mask(obj, frame)
            return self._said(obj, frame, result)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> str:
        """A box dragged on the current frame from corner pixel (x0, y0) to corner pixel (x1, y1).

        Both corners are pixels of the box (included), in any order, as with a box by two
        clicks, which takes the same path: the current object's box on this frame is replaced
        and its mask computed at once. A drag also drops a pending first corner of a 2-click box.
        """
        with self._lock:
            store = self._store()
            w, h = store.facts.width, store.facts.height
            if not all(0 <= v < w for v in (x0, x1)) or not all(0 <= v < h for v in (y0, y1)):
                raise PromptError(f"box must lie inside the {w}x{h} frame, got {x0:g},{y0:g},{x1:g},{y1:g}")
            self.corner = None
            return self._box(int(x0), int(y0), int(x1), int(y1))

    def _box(self, x0: int, y0: int, x1: int, y1: int) -> str:
        """The current object's box on the current frame from two corner pixels (inside the frame)."""
        box = Box(min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1)
        if box.x1 - box.x0 < 3 or box.y1 - box.y0 < 3:
            raise PromptError(f"box must be at least 3x3 pixels, got {box.x1 - box.x0}x{box.y1 - box.y0}")
        frame = self.frame_index
        obj = self.book.set_box(frame, box)
        self._tracked.clear()
        result = self._mask(obj, frame)
        return f"box {box}: {self._said(obj, frame, result)}"  # the --box of `cleanfeed run`

    def _said(self, obj: int, frame: int, result: MaskResult) -> str:
        pixels = int(result.mask.sum())
        how = f"{result.method}" + (f" ({result.reason})" if result.reason else "")
        return f"object {obj} on frame {frame}: {pixels} px by {how}"

    def new_object(self) -> int:
        with self._lock:
            self.corner = None
            return self.book.new_object()

    def select(self, obj_id: int) -> None:
        with self._lock:
            self.book.select(obj_id)
            self.corner = None

    def delete(self, obj_id: int | None = None) -> None:
        with self._lock:
            target = self.book.current if obj_id is None else obj_id
            if target is None:
                raise PromptError("an object must be selected to delete it, got none")
            self.book.delete(target)
            self._tracked.clear()

    def clear(self) -> bool:
        """Removes the current object's prompts on the current frame."""
        with self._lock:
            self.corner = None
            self._tracked.clear()
            return self.book.clear(self.frame_index)

    def undo(self) -> bool:
        with self._lock:
            if self.corner is not None:
                self.corner = None
                return True
            self._tracked.clear()
            return self.book.undo()

    def prompts(self) -> list[ObjectPrompt]:
        return self.book.prompts()

    def save_prompts(self, path: Path | None = None) -> Path:
        """The prompt file for `cleanfeed run IN -o OUT --prompts FILE`."""
        prompts = self.prompts()
        if not prompts:
            raise PromptError("a prompt file must hold at least one object, got none: click the object first")
        extra = {"video": self.facts.shown} if self.facts is not None else None
        return save_prompts(path or self.workdir / "prompts.json", prompts, extra)

    def load_prompts(self, path: str) -> int:
        """Takes a prompt file's objects (undoable); returns how many entries."""
        prompts = load_prompts(path)
        with self._lock:
            store = self._store()
            for p in prompts:
                p.check(store.facts.width, store.facts.height)
                if p.frame >= store.count:
                    raise PromptError(f"prompt frame must be < {store.count} (the video's frames), got {p.frame}")
            self.book.replace_all(prompts)
            self._tracked.clear()
        return len(prompts)

    # -- masks ----------------------------------------------------------------------------------
    def _mask(self, obj: int, frame: int) -> MaskResult:
        """Object ``obj``'s mask on ``frame`` from its prompt there (cached by the prompt's value)."""
        prompt = self.book.get(obj, frame)
        key = (obj, frame, prompt)
        found = self._masks.get(key)
        if found is not None:
            self._masks.move_to_end(key)
            return found
        store = self._store()
        picture = store.frame(frame)
        result = self.masker.mask(store.caps, picture, ObjectPrompt(obj, frame, prompt.box, prompt.points))
        self._masks[key] = result
        while len(self._masks) > MASK_CACHE:
            self._masks.popitem(last=False)
        return result

    def ids_map(self, frame: int) -> np.ndarray:
        """The object-id map `segment` writes on ``frame`` (prompted objects by id, later ids on top)."""
        with self._lock:
            store = self._store()
            ids = np.zeros((store.facts.height, store.facts.width), np.uint8)
            for obj, prompt in self.book.on_frame(frame).items():
                if not prompt.empty:
                    np.copyto(ids, np.uint8(obj), where=self._mask(obj, frame).mask)
            return ids

    def view(self) -> np.ndarray:
        """The current frame with masks, points and boxes drawn (HxWx3 uint8 RGB)."""
        with self._lock:
            store = self._store()
            frame = self.frame_index
            rgb = store.frame(frame).picture.rgb()
            tracked = self._tracked.get(frame)
            if tracked is not None:
                rgb = paint_masks(rgb, tracked, alpha=0.35, outline=False)
            rgb = paint_masks(rgb, self.ids_map(frame))
            for obj, prompt in self.book.on_frame(frame).items():
                if prompt.box is not None:
                    draw_box(rgb, prompt.box, obj)
                draw_points(rgb, prompt.points, obj)
            if self.corner is not None:
                draw_corner(rgb, *self.corner, self.book.current or 1)
            return rgb

    def objects(self) -> list[tuple[int, list[int]]]:
        """(id, frames it is prompted on) for every object."""
        return [(i, self.book.frames_of(i)) for i in self.book.ids]

    # -- preview --------------------------------------------------------------------------------
    def preview(self) -> Path:
        """Tracks the prompted objects over the next ``preview_seconds`` and writes a clip of it.

        It starts at the current frame when something is prompted there, else at the first
        prompted frame."""
        with self._lock:
            store = self._store()
            prompted = sorted({p.frame for p in self.prompts()})
            if not prompted:
                raise PromptError("a preview must have at least one prompted object, got none: click the object first")
            start = self.frame_index if self.frame_index in prompted else prompted[0]
            count = max(1, min(store.count - start, round(self.config.preview_seconds * float(store.caps.rate))))
            references = {f: self.ids_map(f) for f in prompted if start <= f < start + count}
            props = self._track_props()
            masks = track_masks(store.caps, store.frame, start, count, references, props)
            self._tracked = masks
            path = self.workdir / f"preview-{next(self._counter)}.mp4"
            return preview_clip(path, store.caps, store.frame, masks)

    def _track_props(self) -> dict[str, object]:
        s = self.settings
        props: dict[str, object] = {"engine": s.track_engine}
        if s.models:
            props["models"] = s.models
        if s.track_engine == "deaot" and s.deaot_checkpoint:
            props["checkpoint"] = s.deaot_checkpoint
        return props

    # -- the run --------------------------------------------------------------------------------
    def start_run(self) -> RunOutputs:
        """Starts the whole video through the `cleanfeed run` chain in the background."""
        with self._lock:
            store = self._store()
            if self.run is not None and self.run.job is not None and not self.run.job.status().finished:
                raise PromptError("a run must end before the next starts, got one still running: cancel it or wait")
            if not self.prompts():
                raise PromptError("a run must have at least one prompted object, got none: click the object first")
            folder = Path(tempfile.mkdtemp(prefix=f"run-{next(self._counter)}-", dir=self.workdir))
            prompts = self.save_prompts(folder / "prompts.json")
            video = folder / ("cleaned" + OUTPUT_SUFFIX.get(self.settings.codec, ".mp4"))
            masks = folder / "masks"
            options = run_options(store.location, str(video), str(prompts), self.settings, str(masks))
            specs = chain(options)  # refused here, before a worker starts
            shown = replace(options, output=video.name, prompts=prompts.name, save_masks=None)
            outputs = RunOutputs(folder, video, prompts, masks, command_line(shown), launch_line(specs))
            outputs.job = RunJob(options, folder, masks_dir=masks, output=video)
            self.run = outputs
            return outputs

    def run_status(self) -> RunStatus | None:
        """The current run's progress; never waits for the other actions."""
        run = self.run
        return run.job.status() if run is not None and run.job is not None else None

    def cancel_run(self) -> bool:
        run = self.run
        return run.job.cancel() if run is not None and run.job is not None else False

    def close(self) -> None:
        self.cancel_run()
        with self._lock:
            if self.store is not None:
                self.store.close()
                self.store = None
