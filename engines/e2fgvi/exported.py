"""E2FGVI-HQ's window graph, and a stand-in for the torch model that runs its ONNX export.

``cleanfeed export e2fgvi`` (export/e2fgvi.py) writes one model call — ``local`` neighbouring
frames and ``refs`` references, any frame size in multiples of 60x108 — as ``window.onnx``. An
inpainter written against the torch model's call, ``model(masked_frames, num_local_frames) ->
(frames, flows)``, gets the same call from :class:`ExportedWindow` on onnxruntime or TensorRT
(flows are not exported: it returns None for them). The counts are baked into the graph, so a
window of other counts is refused with the export it would need, instead of failing inside the
backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from cleanfeed.engines.e2fgvi.windows import MULTIPLE
from cleanfeed.engines.export_manifest import Manifest, read_export_manifest
from cleanfeed.engines.runners.base import Profile, TensorSpec
from cleanfeed.errors import BackendError

if TYPE_CHECKING:
    from cleanfeed.engines.runners.base import Runner, RunnerConfig

GRAPH_NAME = "window"
GRAPH_FILE = f"{GRAPH_NAME}.onnx"


def window_specs(local: int, refs: int) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The window graph's input and output: ``local + refs`` frames, named axes height and width."""
    frames = local + refs
    return ((TensorSpec("masked_frames", (1, frames, 3, "height", "width")),),
            (TensorSpec("frames", (frames, 3, "height", "width")),))


class WindowGraph(nn.Module):
    """InpaintGenerator with ``num_local_frames`` fixed: ``[1, T, 3, H, W]`` masked frames in [-1, 1]
    to ``[T, 3, H, W]`` inpainted frames (the tanh output); the flows are dropped."""

    def __init__(self, net: nn.Module, local: int) -> None:
        super().__init__()
        self.net = net
        self.local = local

    def forward(self, masked_frames: torch.Tensor) -> torch.Tensor:
        return self.net(masked_frames, self.local)[0]


@dataclass(frozen=True)
class WindowExport:
    """What an export folder's manifest.json says its window graph was made for."""

    folder: Path
    local: int
    refs: int
    precision: str
    profile: Profile | None
    """TensorRT (min, opt, max) shapes of ``masked_frames``; the frame sizes the graph was made for."""

    @property
    def frames(self) -> int:
        return self.local + self.refs


def read_window_export(folder: str | Path) -> WindowExport:
    """The facts of an E2FGVI window export folder; BackendError in one line when it is not one."""
    folder = Path(folder)

    def fits(manifest: Manifest) -> bool:
        local, refs = manifest.options.get("local"), manifest.options.get("refs")
        return any(g.name == GRAPH_NAME for g in manifest.graphs) and isinstance(local, int) and isinstance(refs, int)

    manifest = read_export_manifest(folder, "e2fgvi", "an E2FGVI window export (`cleanfeed export e2fgvi`)", fits)
    local, refs = manifest.options["local"], manifest.options["refs"]
    graph = next(g for g in manifest.graphs if g.name == GRAPH_NAME)
    shapes = graph.profiles.get("masked_frames")
    profile = tuple(tuple(int(d) for d in s) for s in shapes) if shapes else None
    return WindowExport(folder, local, refs, manifest.precision, profile)


class ExportedWindow:
    """The torch model's call, ``window(masked_frames, num_local_frames) -> (frames, None)``, on an export.

    ``masked_frames`` is ``[1, T, 3, H, W]`` in [-1, 1] with holes zeroed, ``T = local + refs`` of
    the export and ``num_local_frames = local``; H and W multiples of 60x108 (within the TensorRT
    profile on tensorrt). Returns ``[T, 3, H, W]`` on the runner's device.
    """

    def __init__(self, runner: Runner, export: WindowExport) -> None:
        self.runner = runner
        self.export = export

    @property
    def description(self) -> str:
        return f"E2FGVI window ({self.export.local} local + {self.export.refs} refs) on {self.runner.description}"

    def __call__(self, masked_frames: torch.Tensor, num_local_frames: int) -> tuple[torch.Tensor, None]:
        self.check(tuple(masked_frames.shape), num_local_frames)
        return self.runner(masked_frames=masked_frames)["frames"], None

    def check(self, shape: tuple[int, ...], num_local_frames: int) -> None:
        """BackendError unless a window of ``shape`` and ``num_local_frames`` fits the export."""
        export = self.export
        if len(shape) != 5 or shape[0] != 1 or shape[2] != 3:
            raise BackendError(f"E2FGVI masked_frames must be [1, T, 3, H, W], got {list(shape)}")
        frames = shape[1]
        if frames != export.frames or num_local_frames != export.local:
            refs = frames - num_local_frames
            raise BackendError(
                f"E2FGVI window must have {export.local} local + {export.refs} reference frames for the export in "
                f"'{export.folder}', got {num_local_frames} local + {refs} reference frames (T={frames}): run "
                f"`cleanfeed export e2fgvi --local {num_local_frames} --refs {refs}` for this window"
            )
        height, width = shape[3], shape[4]
        if height % MULTIPLE[0] or width % MULTIPLE[1] or not height or not width:
            raise BackendError(f"E2FGVI frames must be padded to multiples of {MULTIPLE[1]}x{MULTIPLE[0]} "
                               f"(WIDTHxHEIGHT), got {width}x{height}")
        if self.runner.config.backend == "tensorrt" and export.profile is not None:
            (*_, low_h, low_w), _, (*_, high_h, high_w) = export.profile
            if not (low_h <= height <= high_h and low_w <= width <= high_w):
                raise BackendError(
                    f"E2FGVI frames must be within the export's TensorRT profile {low_w}x{low_h} to "
                    f"{high_w}x{high_h} on backend tensorrt, got {width}x{height}: export with a larger --size"
                )

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> ExportedWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_exported_window(onnx_dir: str | Path, config: RunnerConfig) -> ExportedWindow:
    """An :class:`ExportedWindow` on ``onnx_dir``'s window.onnx, for backend onnxruntime or tensorrt."""
    from cleanfeed.engines.runners import get_runner

    if config.backend == "torch":
        raise BackendError("E2FGVI exports must run on backend onnxruntime or tensorrt, got backend torch: "
                           "call the torch InpaintGenerator itself")
    folder = Path(onnx_dir)
    export = read_window_export(folder)
    inputs, outputs = window_specs(export.local, export.refs)
    profiles = {"masked_frames": export.profile} if export.profile is not None else None
    runner = get_runner(config, onnx_path=folder / GRAPH_FILE, inputs=inputs, outputs=outputs, profiles=profiles)
    return ExportedWindow(runner, export)
