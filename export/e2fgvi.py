"""E2FGVI-HQ's contribution to the exporter: one model call (a "window") for a fixed frame count, any padded size.

An inpainter calls InpaintGenerator once per window: ``local`` consecutive frames (whose outputs
it keeps) then ``refs`` sparse reference frames, padded to multiples of 60x108 (windows.MULTIPLE),
holes zeroed. The graph is that call with the counts baked in — the propagation is a Python loop
over the local frames, so it unrolls — input ``masked_frames [1, local + refs, 3, H, W]`` in
[-1, 1], output ``frames [local + refs, 3, H, W]`` (the tanh output; the flows are not exported,
an engine only needs the images). H and W stay dynamic in steps of 60 and 108 (traced as
60 x a count, 108 x a count, so the model's divisibility checks hold for every size). The
options (local, refs, size) go into the manifest, so an engine finds the export made for its
window (engines/e2fgvi/exported.py reads them back).

Sizes. TensorRT profile: min one multiple (60x108, the smallest frame the model takes); opt
``size`` — the padded frame size the engine will run, 240x432 (upstream's 432x240 test size) when
not given; max 1080x1944, what a 1920x1080 video pads to, or ``size`` when that is larger. A
TensorRT engine allocates for its max, so a user with small videos may export with a smaller
``size``; onnxruntime takes any multiple within the bounds.

Samples look like real windows: a smooth textured scene (random low-frequency sinusoids plus a
finer texture) panning slowly (up to 1.5 px per frame, sub-pixel) under a moving coloured ellipse,
quantised to 8 bits as decoded video is; the local frames are consecutive and the references
every 10th frame further on, as test.py picks them; a moving elliptical hole (a logo's dilated
mask) is zeroed in every frame. torch.export specialises a dynamic axis traced at size 1, so
every sample (the trace's included) has 2 or 3 multiples per side (120 or 180 by 216 or 324);
the tests run the graph at one multiple (60x108) too.

Limits (fp32). Measured on CPU onnxruntime 1.23 against the torch model (seeded weights, local
3 + refs 2, 120x216 to 180x324): max |frame difference| 3.0e-5 to 3.5e-5 of the [-1, 1] range,
mean 1.4e-6 to 1.7e-6, and no pixel more than one uint8 level apart after the inpainter's
truncation (a level boundary between two nearly equal values flips). The limits: 1e-4 on the max
(about 3x the worst measured) and 1 uint8 level. fp16 (compared with the fp32 torch model;
measured at 120x216: max 5e-3 to 1.8e-2, mean 7e-4 to 1.8e-3, 2 uint8 levels): max < 0.1 and
mean < 0.01, loose because flows, deformable offsets and sampling positions computed in fp16 move
features by fractions of a pixel, more so at large sizes; the grid samplers themselves stay fp32
(``keep_fp32``). Seeded weights cannot show what fp16 does to real checkpoints' outputs: the fp16
bar is a sanity check, not a quality claim.

Export cost (this 2-core CPU, torch 2.13): about 2.5 minutes when the machine is otherwise idle
(torch.export ~50 s and the ONNX translation ~55 s, both mostly sympy reasoning about the symbolic
sizes, then ~40 s of graph optimisation); window.onnx is 171 MB (the fp32 weights) with ~4,400
nodes at 3 + 2 frames (each further local frame adds two unrolled propagation steps).

Standard ops only (onnxruntime runs it; TensorRT 10.1's operator matrix finds nothing to reject):
the deformable convolution and the warps are GridSample, the soft split an unfold the exporter
writes with Pad/Gather, and the soft compositions' ``F.fold`` — ONNX Col2Im, which TensorRT's
parser lacks — is traced as cleanfeed.engines.e2fgvi.transformer.fold_by_phases (slices, pads, adds, a
pixel shuffle; the same bits as CPU ``F.fold``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cleanfeed.engines.e2fgvi.windows import MULTIPLE
from cleanfeed.export.spec import GraphSpec, ModelSpec, OptionError, Shape

if TYPE_CHECKING:
    import torch
DEFAULT_OPT = (240, 432)
"""The profile's opt size when ``size`` is not given: upstream's 432x240 test frames."""
MAX_SIZE = (1080, 1944)
"""The profile's max unless ``size`` is larger: a 1920x1080 video padded to multiples."""
MIN_LOCAL = 2
"""Flows are computed between neighbouring local frames: a window has at least two."""
SAMPLE_MULTIPLES = (2, 3)
"""Multiples per side of the samples (inclusive): 1 would make torch.export fix the axis."""
REF_STEP = 10
"""test.py's ref_step: reference frames lie this many frames apart."""

LIMITS = {"max_abs_frames": ("<", 1e-4), "max_uint8_levels": ("<=", 1.0)}
LIMITS_FP16 = {"max_abs_frames": ("<", 0.1), "mean_abs_frames": ("<", 0.01)}
KEEP_FP32 = ("GridSample",)
"""Bilinear sampling at fp32 grid positions: the warps and the deformable convolution."""


def e2fgvi_spec(checkpoint: Path, model: str | None = None, *, local: int, refs: int,
                size: tuple[int, int] | None = None) -> ModelSpec:
    """The export spec of an E2FGVI-HQ checkpoint: one window of ``local`` + ``refs`` frames.

    ``size`` (height, width), multiples of 60x108, is the padded frame size the TensorRT profile
    is tuned for (default 240x432). The options — local, refs and the opt size — go into the
    manifest, so an engine finds the export made for its window.
    """
    from cleanfeed.engines.checkpoints import checkpoint_sha256
    from cleanfeed.engines.e2fgvi.checkpoint import load_e2fgvi
    from cleanfeed.engines.e2fgvi.exported import GRAPH_NAME, WindowGraph, window_specs

    local, refs = check_counts(local, refs)
    opt = check_size(size)
    checkpoint = Path(checkpoint)
    net, variant = load_e2fgvi(checkpoint, model or "auto")
    if net.fixed_size is not None:
        raise OptionError(f"{checkpoint} holds the fixed-432x240 E2FGVI, whose window export is not built (only "
                          "E2FGVI-HQ's, with dynamic frame sizes): run it on backend=torch")
    inputs, outputs = window_specs(local, refs)
    graph = GraphSpec(
        name=GRAPH_NAME, module=WindowGraph(net, local).eval(), inputs=inputs, outputs=outputs,
        sample=lambda rng: {"masked_frames": sample_window(rng, local, refs)}, profiles=profiles(local + refs, opt),
        compare=compare, limits=LIMITS, limits_fp16=LIMITS_FP16, keep_fp32=KEEP_FP32,
        axis_multiples={"height": MULTIPLE[0], "width": MULTIPLE[1]})
    return ModelSpec(family="e2fgvi", model=variant, checkpoint=checkpoint,
                     checkpoint_sha256=checkpoint_sha256(checkpoint), graphs=(graph,),
                     options=window_options(local, refs, opt))


def window_options(local: int, refs: int, size: tuple[int, int] = DEFAULT_OPT) -> dict[str, object]:
    """The manifest options of a window export, as find_export matches them."""
    return {"local": local, "refs": refs, "size": [size[0], size[1]]}


def check_counts(local: int, refs: int) -> tuple[int, int]:
    """(local, refs) as integers: at least MIN_LOCAL local frames, no negative reference count."""
    if isinstance(local, bool) or not isinstance(local, int) or local < MIN_LOCAL:
        raise OptionError(f"--local must be an integer of at least {MIN_LOCAL} (flows need neighbouring frames), "
                          f"got {local!r}")
    if isinstance(refs, bool) or not isinstance(refs, int) or refs < 0:
        raise OptionError(f"--refs must be an integer of at least 0, got {refs!r}")
    return local, refs


def check_size(size: Sequence[int] | None) -> tuple[int, int]:
    """The profile's opt (height, width): ``size`` if given, whole multiples of 60x108, else DEFAULT_OPT."""
    if size is None:
        return DEFAULT_OPT
    ok = (isinstance(size, (tuple, list)) and len(size) == 2
          and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size))
    if not ok or size[0] % MULTIPLE[0] or size[1] % MULTIPLE[1]:
        hint = ""
        if ok:
            height, width = (-(-s // m) * m for s, m in zip(size, MULTIPLE, strict=True))
            hint = f": frames pad to {width}x{height}"
        raise OptionError(f"--size must be the padded frame size WIDTHxHEIGHT, multiples of "
                          f"{MULTIPLE[1]}x{MULTIPLE[0]}, got (height, width) {size!r}{hint}")
    return int(size[0]), int(size[1])


def profiles(frames: int, opt: tuple[int, int]) -> dict[str, tuple[Shape, Shape, Shape]]:
    """TensorRT (min, opt, max) of ``masked_frames``: one multiple, ``opt``, MAX_SIZE or ``opt`` if larger."""
    top = (max(opt[0], MAX_SIZE[0]), max(opt[1], MAX_SIZE[1]))
    return {"masked_frames": tuple((1, frames, 3, h, w) for h, w in (MULTIPLE, opt, top))}  # type: ignore[dict-item]


def compare(expected: Mapping[str, torch.Tensor], actual: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """max_abs_frames, mean_abs_frames (of the [-1, 1] outputs) and max_uint8_levels: the largest
    difference after the inpainter's conversion to uint8 (``uint8((x + 1) / 2 * 255)``, truncated)."""
    want, got = expected["frames"].double(), actual["frames"].double()
    diff = (want - got).abs()
    levels = (_uint8(expected["frames"]) - _uint8(actual["frames"])).abs().max()
    return {"max_abs_frames": float(diff.max()), "mean_abs_frames": float(diff.mean()),
            "max_uint8_levels": float(levels)}


def _uint8(frames: torch.Tensor) -> torch.Tensor:
    """What windows.Compositor makes of model output: truncated to uint8 (as int16, to subtract)."""
    import torch

    return ((frames.float() + 1) / 2 * 255).to(torch.uint8).to(torch.int16)


def sample_window(rng: np.random.Generator, local: int, refs: int,
                  size: tuple[int, int] | None = None) -> torch.Tensor:
    """``[1, local + refs, 3, H, W]`` float32 in [-1, 1]: a window of a synthetic clip, holes zeroed.

    ``size`` (height, width) defaults to a random 2..3 multiples per side.
    """
    import torch

    if size is None:
        low, high = SAMPLE_MULTIPLES
        size = (int(rng.integers(low, high + 1)) * MULTIPLE[0], int(rng.integers(low, high + 1)) * MULTIPLE[1])
    start = int(rng.integers(0, 20))
    times = [start + i for i in range(local)] + [start + local - 1 + REF_STEP * (j + 1) for j in range(refs)]
    clip = _Clip(rng, size)
    frames = np.stack([clip.masked(t) for t in times])
    return torch.from_numpy(frames.astype(np.float32))[None]


class _Clip:
    """A smooth textured scene panning slowly under a moving ellipse, with a moving elliptical hole.

    Everything is an analytic function of continuous coordinates, so motion is sub-pixel and
    exact; frames are RGB in [-1, 1], quantised to 8-bit levels.
    """

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]) -> None:
        self.size = size
        height, width = size
        self.pan = rng.uniform(-1.5, 1.5, 2)  # px per frame (y, x)
        # (amplitude per channel [3], frequency y, frequency x, phase): broad shapes, then a finer texture
        self.waves = [(rng.uniform(0.1, 0.3, 3), *rng.uniform(-1, 1, 2) * 2 * np.pi / rng.uniform(40, 120),
                       rng.uniform(0, 2 * np.pi)) for _ in range(4)]
        self.waves += [(rng.uniform(0.02, 0.08, 3), *rng.uniform(-1, 1, 2) * 2 * np.pi / rng.uniform(4, 12),
                        rng.uniform(0, 2 * np.pi)) for _ in range(6)]
        self.base = rng.uniform(-0.3, 0.3, 3)
        # the object and the hole: centre (y, x), radii (y, x), velocity (y, x) px per frame
        self.object = (rng.uniform(0.2, 0.8, 2) * size, rng.uniform(0.1, 0.25, 2) * size, rng.uniform(-1, 1, 2),
                       rng.uniform(-0.8, 0.8, 3))
        self.hole = (rng.uniform(0.3, 0.7, 2) * size, rng.uniform(0.08, 0.2, 2) * size, rng.uniform(-0.5, 0.5, 2))
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float64)

    def _inside(self, centre: np.ndarray, radii: np.ndarray, velocity: np.ndarray, t: int) -> np.ndarray:
        cy, cx = centre + velocity * t
        return ((self.yy - cy) / radii[0]) ** 2 + ((self.xx - cx) / radii[1]) ** 2 <= 1.0

    def frame(self, t: int) -> np.ndarray:
        """``[3, H, W]`` in [-1, 1], 8-bit levels."""
        y, x = self.yy + self.pan[0] * t, self.xx + self.pan[1] * t
        image = np.broadcast_to(self.base[:, None, None], (3, *self.size)).copy()
        for amplitude, fy, fx, phase in self.waves:
            image += amplitude[:, None, None] * np.sin(fy * y + fx * x + phase)[None]
        centre, radii, velocity, colour = self.object
        image[:, self._inside(centre, radii, velocity, t)] = colour[:, None]
        levels = np.round((np.clip(image, -1, 1) + 1) / 2 * 255)
        return levels / 255 * 2 - 1

    def masked(self, t: int) -> np.ndarray:
        """Frame ``t`` with the hole zeroed, as the inpainter hands frames to the model."""
        image = self.frame(t)
        image[:, self._inside(*self.hole, t)] = 0.0
        return image
