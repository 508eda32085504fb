"""The DeAOT tracking engine: objects in, a label map out per frame, with bounded memory.

Faithful to upstream's inference (aot-benchmark's DeAOTInferEngine as Segment-and-Track-Anything
drives it): a reference frame and its mask go into long-term memory; every later frame is
matched against long-term and short-term memory, its id logits are upsampled to the original
size and argmax'd, and that label map — resized back to model size with nearest — becomes the
short-term memory, and the long-term memory every ``long_term_gap`` frames. More than ten
objects use one sub-engine per ten ids, merged by soft probability aggregation.

Where upstream falls short:
- long-term memory is capped (``MemoryBank``), never evicting the user's first reference;
- objects join mid-video under their own ids in free identity channels (Segment-and-Track-
  Anything numbers the first new object with the current max id, merging two objects); a
  removed object's channel is retired, never handed to a newcomer that would inherit its memory;
- an object that is not seen is kept in memory and picked up when it returns; one unseen for
  more than ``lost_after`` frames is reported in ``lost``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from cleanfeed.engines.deaot.graphs import memory_names
from cleanfeed.engines.deaot.memory import MemoryBank
from cleanfeed.engines.deaot.propagation import Memory
from cleanfeed.engines.deaot.variants import ID_CHANNELS, MAX_OBJECTS, NO_GAP, DeaotArch, model_size, with_gap
from cleanfeed.engines.export_manifest import Manifest, read_export_manifest
from cleanfeed.engines.runners.base import Runner, RunnerConfig
from cleanfeed.errors import BackendError

MAX_ID = 255
"""Object ids are the values of a uint8 label map."""


@dataclass(frozen=True)
class TrackerConfig:
    long_term_gap: int = NO_GAP
    """Frames between long-term memory writes (upstream's TEST_LONG_TERM_MEM_GAP; NO_GAP: references only)."""
    max_long_term: int = 8
    """Long-term slots per sub-engine (references included)."""
    lost_after: int = 30
    """Frames an object may go unseen before it is reported lost."""
    static_memory: bool = False
    """Give the step graph every slot (fixed shapes: CUDA graphs, exported engines) rather than the used ones."""


@dataclass
class _Channel:
    engine: int
    channel: int


@dataclass
class TrackResult:
    labels: np.ndarray
    """HxW uint8 object ids (0 = background)."""
    areas: dict[int, int] = field(default_factory=dict)
    """Pixels per tracked object on this frame."""


class DeaotTracker:
    """Tracks labelled objects through frames of one size; the networks run through three runners."""

    def __init__(self, arch: DeaotArch, reference: Runner, step: Runner, memorise: Runner, config: TrackerConfig,
                 fixed_size: tuple[int, int] | None = None) -> None:
        """``fixed_size``: the only model size the runners take (an export's); None for any."""
        self.arch = arch
        self._fixed_size = fixed_size
        self.config = config
        self._reference, self._step, self._memorise = reference, step, memorise
        self.device = step.device
        self._bank = MemoryBank(config.max_long_term, arch.layers)
        self._objects: dict[int, _Channel] = {}
        self._retired: set[tuple[int, int]] = set()
        self._unseen: dict[int, int] = {}
        self._frame = 0
        self._size: tuple[int, int] | None = None
        self._model_size: tuple[int, int] | None = None
        self._pending: dict[str, torch.Tensor] | None = None
        self._predicted: tuple[np.ndarray, torch.Tensor, np.ndarray] | None = None

    # -- what is tracked -------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return sorted(self._objects)

    @property
    def lost(self) -> list[int]:
        return sorted(i for i, n in self._unseen.items() if n > self.config.lost_after)

    @property
    def engines(self) -> int:
        return self._bank.count

    def long_term_frames(self, engine: int = 0) -> list[int]:
        return self._bank.frames(engine)

    def reference_frames(self, engine: int = 0) -> list[int]:
        return self._bank.references(engine)

    # -- per frame ---------------------------------------------------------------------------
    def track(self, rgb: np.ndarray) -> TrackResult:
        """Predicts the tracked objects on the next frame (call ``update`` with the final labels after)."""
        if not self._objects:
            raise RuntimeError("DeaotTracker.track needs a reference first")
        image = self._image(rgb)
        self._frame += 1
        inputs = {"image": image}
        inputs.update(self._long_term_inputs())
        inputs.update({n: t for n, t in zip(memory_names(self.arch.layers, "short_"), _flat(self._bank.short_term), strict=True)})
        out = self._step(**inputs)
        self._pending = out
        labels, on_device, counts = self._labels(out["logits"])
        self._predicted = (labels, on_device, counts)
        return TrackResult(labels, {obj: int(counts[obj]) for obj in self._objects})

    def update(self, rgb: np.ndarray, labels: np.ndarray, references: set[int] = frozenset()) -> None:
        """Memorises the frame with its final label map; objects in ``references`` (re)start from it.

        A referenced id not yet tracked joins; one with no pixels is removed. Sub-engines holding a
        referenced object store the frame as a reference (pinned in long-term memory); the others
        memorise it as a tracked frame. The first call must carry references.
        """
        labels = np.asarray(labels)
        if labels.shape != rgb.shape[:2]:
            raise ValueError(f"labels must be {rgb.shape[:2]}, got {labels.shape}")
        self._set_size(labels.shape)
        predicted, self._predicted = self._predicted, None
        if predicted is not None and labels is predicted[0]:
            # the tracker's own prediction fed back (every frame without a reference): reuse what is on the device
            on_device, counts = predicted[1], predicted[2]
        else:
            on_device = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device)
            counts = np.bincount(labels.ravel(), minlength=MAX_ID + 1)
        for obj in sorted(references):
            if not counts[obj]:
                self.remove(obj)
            elif obj not in self._objects:
                self._assign(obj)
        touched = {self._objects[o].engine for o in references if o in self._objects}
        if not self._objects:
            self._pending = None
            return
        labels_model = self._labels_at_model_size(on_device)
        if touched:
            self._write_references(rgb, labels_model, sorted(touched))
        rest = [e for e in range(self._bank.count) if e not in touched]
        if rest and self._pending is not None:
            self._write_tracked(labels_model, rest)
        self._pending = None
        for obj in self._objects:
            self._unseen[obj] = 0 if counts[obj] else self._unseen.get(obj, 0) + 1

    def remove(self, obj: int) -> None:
        """Stops tracking ``obj``; its identity channel is retired (never reused: old memories still carry it)."""
        place = self._objects.pop(obj, None)
        if place is not None:
            self._retired.add((place.engine, place.channel))
        self._unseen.pop(obj, None)

    def close(self) -> None:
        for runner in (self._reference, self._step, self._memorise):
            runner.close()

    # -- internals -----------------------------------------------------------------------------
    def _image(self, rgb: np.ndarray) -> torch.Tensor:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"DeAOT frames must be HxWx3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
        self._set_size(rgb.shape[:2])
        h, w = self._model_size  # type: ignore[misc]
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        if (h, w) != size:
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        return image.permute(2, 0, 1)[None].float()

    def _set_size(self, shape: tuple[int, ...]) -> None:
        size = (int(shape[0]), int(shape[1]))
        if self._size is None:
            wanted = model_size(*size, self.arch)
            if self._fixed_size is not None and wanted != self._fixed_size:
                raise ValueError(
                    f"this DeAOT export tracks frames resized to {self._fixed_size[1]}x{self._fixed_size[0]}, got "
                    f"{size[1]}x{size[0]} frames (resized to {wanted[1]}x{wanted[0]}): export for this frame size"
                )
            self._size = size
            self._model_size = wanted
        elif size != self._size:
            raise ValueError(f"DeAOT tracks frames of one size: {self._size}, got {size}")

    def _labels_at_model_size(self, labels: torch.Tensor) -> torch.Tensor:
        return F.interpolate(labels.float()[None, None], size=self._model_size, mode="nearest")[0, 0]

    def _one_hot(self, labels_model: torch.Tensor, engines: list[int]) -> torch.Tensor:
        """``[len(engines), 11, H, W]``: each sub-engine's objects in their channels, everything else background."""
        h, w = labels_model.shape
        one_hot = torch.zeros((len(engines), ID_CHANNELS, h, w), device=self.device)
        for row, engine in enumerate(engines):
            for obj, place in self._objects.items():
                if place.engine == engine:
                    one_hot[row, place.channel] = (labels_model == obj).float()
            one_hot[row, 0] = 1.0 - one_hot[row, 1:].sum(0)
        return one_hot

    def _assign(self, obj: int) -> None:
        if not 1 <= obj <= MAX_ID:
            raise ValueError(f"object ids must be 1..{MAX_ID}, got {obj}")
        taken = {(p.engine, p.channel) for p in self._objects.values()} | self._retired
        engines = 1 + max([e for e, _ in taken] + [self._bank.count - 1])
        for engine in range(engines + 1):  # the existing sub-engines first, then a new one
            for channel in range(1, MAX_OBJECTS + 1):
                if (engine, channel) not in taken:
                    self._objects[obj] = _Channel(engine, channel)
                    self._unseen[obj] = 0
                    return

    def _write_references(self, rgb: np.ndarray, labels_model: torch.Tensor, engines: list[int]) -> None:
        out = self._reference(image=self._image(rgb), one_hot=self._one_hot(labels_model, engines))
        names = memory_names(self.arch.layers, "")
        for row, engine in enumerate(engines):
            memory = [Memory(*(out[names[3 * i + j]][row : row + 1] for j in range(3))) for i in range(self.arch.layers)]
            while engine >= self._bank.count:
                self._bank.add_engine(memory)
            self._bank.remember_short(engine, memory)
            self._bank.remember_long(engine, memory, self._frame, pinned=True)

    def _write_tracked(self, labels_model: torch.Tensor, engines: list[int]) -> None:
        pending = self._pending
        assert pending is not None
        rows = torch.tensor(engines, device=self.device)
        feeds = {"one_hot": self._one_hot(labels_model, engines)}
        feeds.update({f"id_state_{i}": pending[f"id_state_{i}"][rows] for i in range(1, self.arch.layers)})
        ids = self._memorise(**feeds)
        for row, engine in enumerate(engines):
            memory = [
                Memory(pending[f"key_{i}"][engine : engine + 1], pending[f"value_{i}"][engine : engine + 1], ids[f"id_{i}"][row : row + 1])
                for i in range(self.arch.layers)
            ]
            self._bank.remember_short(engine, memory)
            if self._bank.due(engine, self._frame, self.config.long_term_gap):
                self._bank.remember_long(engine, memory, self._frame, pinned=False)

    def _long_term_inputs(self) -> dict[str, torch.Tensor]:
        bank = self._bank
        slots = bank.capacity if self.config.static_memory else bank.used()
        tensors = [t[:, :slots] for t in _flat(bank.long_term)]
        feeds = dict(zip(memory_names(self.arch.layers, "long_"), tensors, strict=True))
        feeds["long_valid"] = bank.valid(self.device)[:, :slots]
        return feeds

    def _labels(self, logits: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
        """Upstream's decode: unused channels to -1e10, bilinear to the original size, soft-aggregate sub-engines, argmax.

        Returns the label map on the host and on the device, and the pixels per id (counted on
        the device: one transfer of the map and 256 counts, no pass over it on the host).
        """
        engines = logits.shape[0]
        used = np.zeros((engines, ID_CHANNELS), dtype=bool)
        used[:, 0] = True
        owner = np.zeros(1 + engines * MAX_OBJECTS, dtype=np.uint8)
        for obj, place in self._objects.items():
            used[place.engine, place.channel] = True
            owner[1 + place.engine * MAX_OBJECTS + place.channel - 1] = obj
        unused = torch.from_numpy(~used).to(logits.device)
        logits = logits.masked_fill(unused[:, :, None, None], -1e10)
        logits = F.interpolate(logits, size=self._size, mode="bilinear", align_corners=self.arch.align_corners)
        if engines > 1:
            probs = torch.softmax(logits, dim=1)
            background = probs[:, :1].prod(dim=0, keepdim=True)
            foreground = probs[:, 1:].reshape(1, engines * MAX_OBJECTS, *logits.shape[-2:])
            logits = torch.logit(torch.cat([background, foreground], dim=1).clamp(1e-5, 1 - 1e-5))
        labels = torch.from_numpy(owner).to(logits.device)[logits[0].argmax(dim=0)]
        counts = torch.bincount(labels.flatten().long(), minlength=MAX_ID + 1)
        return labels.cpu().numpy(), labels, counts.cpu().numpy()


def _flat(memories: list[Memory]) -> list[torch.Tensor]:
    return [t for m in memories for t in m]


@dataclass(frozen=True)
class ExportFacts:
    """What an export folder's manifest.json says the graphs were made for."""

    size: tuple[int, int]
    """The model-size frame (height, width): the step graph's static image shape."""
    max_long_term: int | None
    """Long-term slots the export was profiled for (``cleanfeed export deaot --max-long-term``)."""
    profiles: dict[str, dict[str, tuple[tuple[int, ...], ...]]]
    """Graph name -> TensorRT (min, opt, max) shapes per dynamic input."""


def read_export(folder: Path) -> ExportFacts:
    """The facts of a DeAOT export folder; BackendError in one line when it is not one."""
    manifest = read_export_manifest(folder, "deaot", "a DeAOT export at a fixed frame size (`cleanfeed export deaot`)",
                                    lambda m: _step_size(m) is not None)
    profiles = {g.name: {k: tuple(tuple(int(d) for d in s) for s in v) for k, v in g.profiles.items()}
                for g in manifest.graphs}
    slots = manifest.options.get("max_long_term")
    size = _step_size(manifest)
    assert size is not None  # the reader's check
    return ExportFacts(size, slots if isinstance(slots, int) else None, profiles)


def _step_size(manifest: Manifest) -> tuple[int, int] | None:
    """The step graph's static image (height, width), or None when it has none."""
    step = next((g for g in manifest.graphs if g.name == "step"), None)
    shape = next((t.get("shape") for t in step.inputs if t.get("name") == "image"), None) if step else None
    if not (isinstance(shape, list) and len(shape) == 4):
        return None
    height, width = shape[2], shape[3]
    return (height, width) if all(isinstance(d, int) and d > 0 for d in (height, width)) else None


GRAPH_FILES = ("reference.onnx", "step.onnx", "memorise.onnx")
"""The files ``cleanfeed export deaot`` writes for one frame size, in ReferenceGraph, StepGraph, MemoriseGraph order."""


def open_tracker(
    checkpoint: str | Path,
    model: str,
    config: RunnerConfig,
    tracking: TrackerConfig | None = None,
    long_term_gap: int | None = None,
    onnx_dir: str | Path | None = None,
) -> DeaotTracker:
    """A DeaotTracker for a checkpoint on the backend ``config`` names.

    torch runs the graphs built from the checkpoint (any frame size); onnxruntime and tensorrt
    run ``onnx_dir``'s exported graphs (one frame size, every slot given: static shapes).
    ``long_term_gap`` None keeps upstream's gap for the recognised variant (``tracking``'s is replaced).
    """
    from cleanfeed.engines.deaot.checkpoint import load_deaot
    from cleanfeed.engines.deaot.graphs import MemoriseGraph, ReferenceGraph, StepGraph
    from cleanfeed.engines.runners import get_runner

    net, arch = load_deaot(checkpoint, model)
    arch = with_gap(arch, long_term_gap)
    tracking = replace(tracking or TrackerConfig(), long_term_gap=arch.long_term_gap)
    graphs = (ReferenceGraph, StepGraph, MemoriseGraph)
    if config.backend == "torch":
        static = config.cuda_graphs or tracking.static_memory
        tracking = replace(tracking, static_memory=static)
        runners = []
        for graph in graphs:
            inputs, outputs = graph.specs(arch.layers)
            runners.append(get_runner(config, module=graph(net), inputs=inputs, outputs=outputs))
        return DeaotTracker(arch, *runners, tracking)
    missing = [name for name in GRAPH_FILES if onnx_dir is None or not (Path(onnx_dir) / name).is_file()]
    if missing:
        where = f"'{onnx_dir}' lacks {', '.join(missing)}" if onnx_dir is not None else "no export folder was given"
        raise BackendError(
            f"backend {config.backend} must run DeAOT from an ONNX export, got none ({where}): "
            f"run `cleanfeed export deaot --checkpoint {checkpoint} --size WxH --out DIR` and use that folder"
        )
    folder = Path(onnx_dir)  # type: ignore[arg-type]
    facts = read_export(folder)
    if facts.max_long_term is not None and tracking.max_long_term > facts.max_long_term:
        raise BackendError(
            f"max_long_term must be at most {facts.max_long_term} with the export in '{folder}' (made for that many "
            f"long-term frames), got {tracking.max_long_term}: export again with --max-long-term"
        )
    runners = []
    for graph, name in zip(graphs, GRAPH_FILES, strict=True):
        inputs, outputs = graph.specs(arch.layers, facts.size)
        profiles = facts.profiles.get(name.removesuffix(".onnx"), {})
        runners.append(get_runner(config, onnx_path=folder / name, inputs=inputs, outputs=outputs, profiles=profiles))
    return DeaotTracker(arch, *runners, replace(tracking, static_memory=True), fixed_size=facts.size)
