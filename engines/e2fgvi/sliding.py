"""E2FGVI over a stream of frames: which windows run when, on what region, and when a frame is done.

Two schedules share the windows of test.py (centred every ``neighbor_stride`` frames, holding the
frames within ``neighbor_stride`` of the centre):

- **offline** is test.py: reference frames are every ``ref_step``-th frame of the whole clip (or
  ``num_ref`` around the centre), so nothing can run before the clip has ended; then the windows
  run in test.py's order and every frame is averaged over all the windows that hold it. Only the
  masks are kept here (as boxes); the frames are read back from the caller's store, which may be
  on disk.
- **stream** is for live input. Reference frames come from the past only (the ``num_ref`` most
  recent every-``ref_step``-th frames before the window), and frame ``i`` is finished by the
  windows centred at or before it — so a window runs as soon as its last neighbour arrives, and
  a frame leaves at most ``neighbor_stride`` frames after it came in (the element's lookahead).
  The windows centred after a frame still see it as context. Frames, masks and answers are kept
  only while a window still needs them, so memory is constant for any length.

Each window runs on its region (engines/e2fgvi/regions.py): the whole frame, or a crop around its
local frames' masks. A window whose local frames have no mask is skipped: test.py's compositing
would give back the untouched frames.

``resize_to`` is for the fixed-432x240 E2FGVI, which takes frames of one size only: every frame
and mask is resized to it as test.py does (Pillow, bicubic for frames, nearest for masks), the
schedule runs at that size, and each finished frame is resized back (bicubic) and written only
inside its own mask, dilated at the frame's size as test.py dilates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch

from cleanfeed.engines.e2fgvi.regions import Box, Patch, RegionCompositor, SparseMask, window_region
from cleanfeed.engines.e2fgvi.schedule import SlidingConfig
from cleanfeed.engines.e2fgvi.windows import MULTIPLE, Window, dilate_mask, offline_windows, pad_by_mirroring

WindowModel = Callable[[torch.Tensor, int], tuple[torch.Tensor, object]]
"""``model(masked_frames [1, T, 3, H, W] in [-1, 1], num_local_frames) -> (output [T, 3, H, W], anything)``."""


class FrameStore(Protocol):
    """Where the frames a window needs are read from (RAM for streams, possibly disk offline)."""

    def put(self, index: int, rgb: np.ndarray) -> None: ...

    def rgb(self, index: int) -> np.ndarray:
        """The whole HxWx3 uint8 RGB frame."""
        ...

    def discard(self, index: int) -> None: ...


class MemoryStore:
    """Frames kept in a dict: the stream schedule discards each one once no window needs it."""

    def __init__(self) -> None:
        self._frames: dict[int, np.ndarray] = {}

    def put(self, index: int, rgb: np.ndarray) -> None:
        self._frames[index] = rgb

    def rgb(self, index: int) -> np.ndarray:
        return self._frames[index]

    def discard(self, index: int) -> None:
        self._frames.pop(index, None)

    def __len__(self) -> int:
        return len(self._frames)


def past_references(center: int, stride: int, ref_step: int, num_ref: int) -> tuple[int, ...]:
    """Stream mode's references: the ``num_ref`` latest every-``ref_step``-th frames before the window, oldest first."""
    first = max(0, center - stride)
    if num_ref <= 0 or first == 0:
        return ()
    last = (first - 1) // ref_step * ref_step
    return tuple(range(last, -1, -ref_step))[:num_ref][::-1]


class FrameResizer:
    """test.py's resizing for the fixed-size model: frames through Pillow's default filter
    (bicubic), masks nearest; answers go back to the frame's size with the same bicubic filter.

    Pillow comes with the torch extra; a frame already at the model's size is left as it is, as
    Pillow's resize does.
    """

    def __init__(self, frame: tuple[int, int], model: tuple[int, int]) -> None:
        from PIL import Image

        self._image = Image
        self.frame, self.model = (int(frame[0]), int(frame[1])), (int(model[0]), int(model[1]))

    def _resize(self, array: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
        if array.shape[:2] == size:
            return array
        image = self._image.fromarray(np.ascontiguousarray(array))
        method = self._image.Resampling.NEAREST if nearest else self._image.Resampling.BICUBIC
        return np.asarray(image.resize((size[1], size[0]), method))

    def rgb(self, rgb: np.ndarray) -> np.ndarray:
        """An HxWx3 uint8 frame at the model's size."""
        return self._resize(rgb, self.model, nearest=False)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A mask (non-zero = remove) at the model's size, 0/1, as test.py reads a 0/255 PNG."""
        return (self._resize((np.asarray(mask) > 0).astype(np.uint8) * 255, self.model, nearest=True) > 0).astype(np.uint8)

    def back(self, rgb: np.ndarray) -> np.ndarray:
        """A model-size frame at the frame's size."""
        return self._resize(rgb, self.frame, nearest=False)


class ResizedStore:
    """The caller's store seen at the model's size: frames handed in are kept resized, frames that
    were already there (an offline spill holds whole frames) are resized as they are read."""

    def __init__(self, store: FrameStore, resizer: FrameResizer) -> None:
        self.store = store
        self.resizer = resizer

    def put(self, index: int, rgb: np.ndarray) -> None:
        self.store.put(index, self.resizer.rgb(rgb))

    def rgb(self, index: int) -> np.ndarray:
        return self.resizer.rgb(self.store.rgb(index))

    def discard(self, index: int) -> None:
        self.store.discard(index)


class SlidingInpainter:
    """Feeds frames in as they come, runs the windows that can run, hands back finished frames in order."""

    def __init__(self, model: WindowModel, config: SlidingConfig, height: int, width: int,
                 store: FrameStore | None = None, device: torch.device | str = "cpu",
                 on_window: Callable[[Window, Box, np.ndarray], None] | None = None) -> None:
        self.model = model
        self.config = config
        self.height, self.width = height, width
        self.store: FrameStore = store if store is not None else MemoryStore()
        self._resizer: FrameResizer | None = None
        self._frame_masks: dict[int, SparseMask] = {}  # resize_to: the masks at the frame's size
        if config.resize_to is not None:
            self._resizer = FrameResizer((height, width), config.resize_to)
            self.store = ResizedStore(self.store, self._resizer)
        self.device = torch.device(device)
        self.on_window = on_window
        self._masks: dict[int, SparseMask] = {}
        self._compositor = RegionCompositor()
        self._count = 0
        self._next_center = 0
        self._next_out = 0
        self.windows_run = 0
        self.windows_skipped = 0
        self.pixels_run = 0
        """Model input pixels (per frame) summed over the windows run: the region mode's saving, measured."""

    @property
    def count(self) -> int:
        return self._count

    def push(self, rgb: np.ndarray | None, mask: np.ndarray) -> list[Patch]:
        """Adds the next frame (HxWx3 uint8 RGB, HxW mask non-zero = remove); returns the frames now finished.

        ``rgb`` may be None when the store already holds the frame (an offline spill).
        """
        if mask.shape != (self.height, self.width) or (rgb is not None and rgb.shape != (self.height, self.width, 3)):
            raise ValueError(f"frames must be {self.height}x{self.width} RGB with a mask of that size, "
                             f"got {None if rgb is None else rgb.shape} and {mask.shape}")
        index = self._count
        self._count += 1
        if self._resizer is not None:
            self._frame_masks[index] = SparseMask.of(dilate_mask(mask))
            mask = self._resizer.mask(mask)
        self._masks[index] = SparseMask.of(dilate_mask(mask))
        if rgb is not None:
            self.store.put(index, rgb)
        if self.config.mode == "offline":
            return []
        return list(self._stream(final=False))

    def finish(self) -> Iterator[Patch]:
        """Every frame not handed back yet, in order (offline: this is where the windows run)."""
        if self.config.mode == "offline":
            yield from self._offline()
        else:
            yield from self._stream(final=True)

    # -- schedules ------------------------------------------------------------------------
    def _offline(self) -> Iterator[Patch]:
        c = self.config
        windows = offline_windows(self._count, c.neighbor_stride, c.ref_step, c.num_ref)
        last_use = {i: w.center for w in windows for i in w.neighbors}
        for window in windows:
            self._run(window, window.neighbors)
            while self._next_out < self._count and last_use[self._next_out] <= window.center:
                yield self._finish_next()

    def _stream(self, final: bool) -> Iterator[Patch]:
        c = self.config
        stride = c.neighbor_stride
        while self._next_center < self._count:
            center = self._next_center
            if not final and center + stride >= self._count:
                break
            neighbors = tuple(range(max(0, center - stride), min(self._count, center + stride + 1)))
            refs = past_references(center, stride, c.ref_step, c.stream_refs)
            self._run(Window(center, neighbors, refs), tuple(i for i in neighbors if i >= center))
            self._next_center += stride
            done = self._count if self._next_center >= self._count and final else self._next_center
            while self._next_out < done:
                yield self._finish_next()
            self._forget()
        while final and self._next_out < self._count:
            yield self._finish_next()

    def _forget(self) -> None:
        """Drops what no later stream window needs: frames before its neighbours, except references."""
        c = self.config
        first = max(0, self._next_center - c.neighbor_stride)
        keep = set(past_references(self._next_center, c.neighbor_stride, c.ref_step, c.stream_refs))
        for index in [i for i in self._masks if i < first and i < self._next_out and i not in keep]:
            del self._masks[index]
            self.store.discard(index)

    def _finish_next(self) -> Patch:
        index = self._next_out
        self._next_out += 1
        patch = self._compositor.pop(index, self._masks[index])
        return patch if self._resizer is None else self._resized_back(patch)

    def _resized_back(self, patch: Patch) -> Patch:
        """A model-size answer as a patch of the frame: the composited model-size frame resized back,
        kept only inside the frame's own dilated mask (nothing when the model had no hole to fill)."""
        mask = self._frame_masks.pop(patch.index)
        if patch.box is None or mask.box is None:
            return Patch(patch.index, None, None, None)
        small = np.array(self.store.rgb(patch.index))
        np.copyto(small[patch.box.slices], patch.rgb, where=patch.where[..., None])
        return Patch(patch.index, mask.box, self._resizer.back(small)[mask.box.slices], mask.crop.astype(bool))

    # -- one model call -------------------------------------------------------------------
    def _call_frames(self, window: Window) -> tuple[list[int], int]:
        """The frames the model is given and how many repeats lead the local ones (fixed windows only)."""
        if self.config.fixed is None:
            return list(window.frames), 0
        local, refs = self.config.fixed
        neighbors = list(window.neighbors)
        lead = 0
        if window.center - self.config.neighbor_stride < 0:  # the clip's start: repeat its first frame
            lead = local - len(neighbors)
            neighbors = [neighbors[0]] * lead + neighbors
        neighbors += [neighbors[-1]] * (local - len(neighbors))  # the end of the stream: repeat its last
        references = list(window.references) or [window.neighbors[0]]
        references = [references[0]] * (refs - len(references)) + references
        return neighbors + references[:refs], lead

    def _run(self, window: Window, outputs: tuple[int, ...]) -> None:
        """Runs ``window`` on its region and adds its answer for the local frames in ``outputs``."""
        region = window_region([self._masks[i] for i in window.neighbors], self.config.margin, self.config.region)
        if region is None:
            self.windows_skipped += 1
            return
        ids, lead = self._call_frames(window)
        crops = np.stack([self.store.rgb(i)[region.slices] for i in ids])
        holes = np.stack([self._masks[i].within(region) for i in ids])
        # test.py's arithmetic, step for step: [-1, 1] images, holes from uint8*255/255, zeroed.
        images = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255) * 2 - 1
        masks = torch.from_numpy(holes * 255)[:, None].float().div(255)
        masked = (images * (1 - masks)).numpy()
        padded = torch.from_numpy(np.ascontiguousarray(pad_by_mirroring(masked, MULTIPLE))).to(self.device)
        local = len(window.neighbors) if self.config.fixed is None else self.config.fixed[0]
        with torch.no_grad():
            output, _ = self.model(padded[None], local)
        output = output[:, :, : region.height, : region.width].float().cpu().numpy()
        self.windows_run += 1
        self.pixels_run += int(padded.shape[-1] * padded.shape[-2])
        if self.on_window is not None:
            self.on_window(window, region, output)
        for row, index in enumerate(window.neighbors, start=lead):
            if index in outputs:
                self._compositor.add(index, self._masks[index], output[row].transpose(1, 2, 0), crops[row], region)
