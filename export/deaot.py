"""DeAOT's contribution to the exporter: its three graphs at one frame size, inputs like a tracker's, parity figures.

A tracker runs ReferenceGraph, StepGraph and MemoriseGraph (engines/deaot/graphs.py). They are
exported for one video frame size — the model size it maps to (``variants.model_size``) fixes
height, width and the token count — with two dynamic axes left: ``engines`` (sub-engines, one
per ten objects; TensorRT profile 1..4, tuned for 1) and ``slots`` (long-term memory slots;
profile 1..max_long_term, tuned for max_long_term, which is what a tracker on an exported graph
always passes, its unused slots masked off by ``long_valid``).

Inputs look like a tracker's. Each sample is a short synthetic clip: a smooth textured scene
with a few coloured ellipses (each sub-engine tracks its own handful, under random identity
channels) drifting a pixel or two per frame. The memories are what the torch graphs make of
earlier frames of that clip (ReferenceGraph per long-term slot and for the short-term memory),
never noise, so keys, values and identity values have the scale and structure real ones have;
``long_valid`` marks some slots empty (slot 0, the user's reference, never) while they still hold
real memories, so a graph that ignored the mask would disagree. MemoriseGraph's identity states
come from a StepGraph run on such a clip.

The trace sample is a sample like the others: torch.export specialises a dynamic axis whose
example size is 1, so samples draw 2..4 sub-engines and 2..max_long_term slots; the exported
graphs are checked at one sub-engine and every slot by the tracker tests (tests/export/).

Limits. fp32: the issue's numbers — max |logits| difference < 1e-3 and the argmax label agreeing
on more than 99.9% of logit pixels — and memories (keys, values, identity values and states)
within a relative error (max difference / max |expected|) of 1e-4; measured on a seeded DeAOT-T
at 97x177: 1.8e-4, 1.0 and 2e-5. fp16 (against the fp32 torch model): argmax agreement > 0.99 (the
issue asks fp16 masks at IoU >= 0.99), logits within 5% of their range, memories within 5%.
Seeded weights cannot show fp16 meets them: the random network amplifies rounding layer by layer
(torch's own ``.half()`` of it is 5% off at the encoder output and tracks with object IoUs of
0.6-0.95), and the fp16 export agrees on 98% of pixels — closer to fp32 than torch's fp16 is. The
fp16 bar is for real checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cleanfeed.export.spec import GraphSpec, ModelSpec, OptionError, Shape

if TYPE_CHECKING:
    import numpy as np
    import torch

    from cleanfeed.engines.deaot.model import DeAOT
    from cleanfeed.engines.runners.base import TensorSpec

MAX_ENGINES = 4
"""Sub-engines the TensorRT profile allows: 40 objects."""
MIN_SIDE = 16
MIN_LONG_TERM = 2
"""A tracker's memory bank holds at least two frames (the reference and one more)."""
SAMPLE_OBJECTS = (1, 4)
"""Objects per sub-engine in a sample (inclusive)."""

STEP_LIMITS = {"max_abs_logits": ("<", 1e-3), "mask_agreement": (">", 0.999), "rel_memory": ("<", 1e-4)}
STEP_LIMITS_FP16 = {"rel_logits": ("<", 5e-2), "mask_agreement": (">", 0.99), "rel_memory": ("<", 5e-2)}
MEMORY_LIMITS = {"rel_memory": ("<", 1e-4)}
MEMORY_LIMITS_FP16 = {"rel_memory": ("<", 5e-2)}


def deaot_spec(checkpoint: Path, model: str | None = None, *, size: tuple[int, int],
               max_long_term: int = 8) -> ModelSpec:
    """The export spec of a DeAOT checkpoint for video frames of ``size`` (height, width).

    ``model`` (auto or a variant name) must match the weights; the spec's model is the variant
    they are. The options (``size``, ``max_long_term``) go into the manifest, so the tracker finds
    the export made for its frame size.
    """
    from cleanfeed.engines.checkpoints import checkpoint_sha256
    from cleanfeed.engines.deaot.checkpoint import load_deaot
    from cleanfeed.engines.deaot.graphs import MemoriseGraph, ReferenceGraph, StepGraph
    from cleanfeed.engines.deaot.variants import model_size

    height, width = check_size(size)
    if isinstance(max_long_term, bool) or not isinstance(max_long_term, int) or max_long_term < MIN_LONG_TERM:
        raise OptionError(f"--max-long-term must be an integer of at least {MIN_LONG_TERM}, got {max_long_term!r}")
    checkpoint = Path(checkpoint)
    net, arch = load_deaot(checkpoint, model or "auto")
    frame = model_size(height, width, arch)
    clip = _ClipMaker(net, frame, max_long_term)
    layers = arch.layers

    def graph(name: str, module: torch.nn.Module, specs: tuple[list[TensorSpec], list[TensorSpec]],
              sample: Callable[[np.random.Generator], dict[str, torch.Tensor]], limits: Mapping[str, tuple[str, float]],
              limits_fp16: Mapping[str, tuple[str, float]]) -> GraphSpec:
        inputs, outputs = specs
        return GraphSpec(name=name, module=module.eval(), inputs=tuple(inputs), outputs=tuple(outputs), sample=sample,
                         profiles=profiles(inputs, max_long_term), compare=compare, limits=limits,
                         limits_fp16=limits_fp16)

    graphs = (
        graph("reference", clip.reference, ReferenceGraph.specs(layers, frame), clip.reference_inputs,
              MEMORY_LIMITS, MEMORY_LIMITS_FP16),
        graph("step", clip.step, StepGraph.specs(layers, frame), clip.step_inputs, STEP_LIMITS, STEP_LIMITS_FP16),
        graph("memorise", clip.memorise, MemoriseGraph.specs(layers, frame), clip.memorise_inputs,
              MEMORY_LIMITS, MEMORY_LIMITS_FP16),
    )
    return ModelSpec(family="deaot", model=arch.name, checkpoint=checkpoint,
                     checkpoint_sha256=checkpoint_sha256(checkpoint), graphs=graphs,
                     options={"size": [height, width], "max_long_term": max_long_term})


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """(height, width) of a video frame, both whole numbers of at least MIN_SIDE pixels."""
    ok = (isinstance(size, (tuple, list)) and len(size) == 2
          and all(isinstance(s, int) and not isinstance(s, bool) and s >= MIN_SIDE for s in size))
    if not ok:
        raise OptionError(f"--size must be the video's WIDTHxHEIGHT, both at least {MIN_SIDE} pixels, "
                          f"got (height, width) {size!r}")
    return int(size[0]), int(size[1])


def profiles(inputs: Sequence[TensorSpec], max_long_term: int) -> dict[str, tuple[Shape, Shape, Shape]]:
    """TensorRT (min, opt, max) shapes of every input with a named axis: engines 1/1/4, slots 1/max/max."""
    bounds = {"engines": (1, 1, MAX_ENGINES), "slots": (1, max_long_term, max_long_term)}
    out = {}
    for spec in inputs:
        if any(isinstance(d, str) for d in spec.shape):
            out[spec.name] = tuple(tuple(bounds[d][k] if isinstance(d, str) else d for d in spec.shape)
                                   for k in range(3))
    return out  # type: ignore[return-value]


def compare(expected: Mapping[str, torch.Tensor], actual: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Logits (if the graph has them): max_abs_logits, rel_logits (over max |logit|) and mask_agreement
    (argmax over the 11 channels, fraction of pixels equal); memories: rel_memory, the worst max
    |difference| / max |expected| over every key, value and identity tensor, and max_abs_memory."""
    figures: dict[str, float] = {}
    rel, worst_abs = 0.0, 0.0
    for name, want in expected.items():
        want, got = want.double(), actual[name].double()
        diff = float((want - got).abs().max()) if want.numel() else 0.0
        scale = float(want.abs().max()) if want.numel() else 0.0
        if name == "logits":
            agree = (want.argmax(dim=1) == got.argmax(dim=1)).double().mean()
            figures.update(max_abs_logits=diff, rel_logits=diff / scale if scale else diff,
                           mask_agreement=float(agree))
        else:
            rel = max(rel, diff / scale if scale else diff)
            worst_abs = max(worst_abs, diff)
    figures.update(rel_memory=rel, max_abs_memory=worst_abs)
    return figures


class _ClipMaker:
    """Random synthetic clips at model size, and the inputs each graph would get while tracking them."""

    def __init__(self, net: DeAOT, frame: tuple[int, int], max_long_term: int) -> None:
        from cleanfeed.engines.deaot.graphs import MemoriseGraph, ReferenceGraph, StepGraph

        self.frame = frame
        self.max_long_term = max_long_term
        self.layers = len(net.LSTT.layers)
        self.reference = ReferenceGraph(net).eval()
        self.step = StepGraph(net).eval()
        self.memorise = MemoriseGraph(net).eval()

    # -- graph inputs --------------------------------------------------------------------------
    def reference_inputs(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        clip = _Clip(rng, self.frame, engines=_draw(rng, 2, MAX_ENGINES))
        return {"image": clip.image(0), "one_hot": clip.one_hot(0)}

    def step_inputs(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return self._step_feeds(rng)[0]

    def memorise_inputs(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The mask of the frame just tracked and the identity states its step produced."""
        import torch

        if self.layers == 1:  # no identity states: only the mask goes in
            clip = _Clip(rng, self.frame, engines=_draw(rng, 2, MAX_ENGINES))
            return {"one_hot": clip.one_hot(0)}
        feeds, clip, t = self._step_feeds(rng)
        with torch.no_grad():
            out = self.step(*feeds.values())
        names = [spec.name for spec in self.step.specs(self.layers, self.frame)[1]]
        states = {n: x for n, x in zip(names, out, strict=True) if n.startswith("id_state_")}
        return {"one_hot": clip.one_hot(t), **states}

    def _step_feeds(self, rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], _Clip, int]:
        """StepGraph's inputs for frame ``t`` of a fresh clip: frames 0..slots-1 in long-term memory, t-1 in short-term."""
        import torch

        from cleanfeed.engines.deaot.graphs import memory_names

        slots = _draw(rng, 2, self.max_long_term)
        clip = _Clip(rng, self.frame, engines=_draw(rng, 2, MAX_ENGINES))
        with torch.no_grad():
            frames = [self.reference(clip.image(t), clip.one_hot(t)) for t in range(slots)]
            short = self.reference(clip.image(slots), clip.one_hot(slots))
        t = slots + 1
        feeds = {"image": clip.image(t)}
        for i, name in enumerate(memory_names(self.layers, "long_")):
            feeds[name] = torch.stack([memory[i] for memory in frames], dim=1)
        valid = torch.from_numpy(rng.random((clip.engines, slots)) < 0.7)
        valid[:, 0] = True  # the user's reference is always there
        feeds["long_valid"] = valid
        feeds.update(zip(memory_names(self.layers, "short_"), short, strict=True))
        return feeds, clip, t


def _draw(rng: np.random.Generator, low: int, high: int) -> int:
    """An integer in low..high (inclusive); callers ask for 2 or more: torch.export fixes an axis traced at size 1."""
    return int(rng.integers(low, max(low, high) + 1))


class _Clip:
    """A smooth textured scene with coloured ellipses drifting across it; each sub-engine owns a few of them.

    Frames are RGB 0..255 float ``[1, 3, H, W]``; a sub-engine's mask is a one-hot ``[engines, 11, H, W]``
    with its objects in random identity channels and everything else (other sub-engines' objects
    included) in channel 0, the background.
    """

    def __init__(self, rng: np.random.Generator, frame: tuple[int, int], engines: int) -> None:
        import numpy as np

        from cleanfeed.engines.deaot.variants import MAX_OBJECTS

        self.engines = engines
        self.frame = frame
        h, w = frame
        coarse = rng.uniform(30, 220, (3, max(2, h // 24), max(2, w // 24)))
        self.background = _resize(coarse, (h, w)) + rng.normal(0, 6, (3, h, w))
        self.objects = []  # (engine, channel, centre y, centre x, radius y, radius x, velocity y, x, colour)
        for engine in range(engines):
            count = int(rng.integers(SAMPLE_OBJECTS[0], SAMPLE_OBJECTS[1] + 1))
            channels = rng.choice(np.arange(1, MAX_OBJECTS + 1), size=count, replace=False)
            for channel in channels:
                self.objects.append((engine, int(channel), rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w,
                                     rng.uniform(0.08, 0.25) * h, rng.uniform(0.06, 0.2) * w,
                                     rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(0, 255, 3)))
        self.texture = rng.normal(0, 10, (3, h, w))

    def _labels(self, t: int) -> np.ndarray:
        """``[engines, H, W]`` int: each sub-engine's identity channels at frame ``t`` (later objects on top)."""
        import numpy as np

        h, w = self.frame
        yy, xx = np.mgrid[0:h, 0:w]
        labels = np.zeros((self.engines, h, w), dtype=np.int64)
        for engine, channel, cy, cx, ry, rx, vy, vx, _ in self.objects:
            inside = ((yy - cy - vy * t) / ry) ** 2 + ((xx - cx - vx * t) / rx) ** 2 <= 1.0
            labels[:, inside] = 0  # an object on top hides those below, whichever sub-engine owns them
            labels[engine, inside] = channel
        return labels

    def image(self, t: int) -> torch.Tensor:
        import numpy as np
        import torch

        h, w = self.frame
        yy, xx = np.mgrid[0:h, 0:w]
        image = self.background.copy()
        for *_, cy, cx, ry, rx, vy, vx, colour in self.objects:
            inside = ((yy - cy - vy * t) / ry) ** 2 + ((xx - cx - vx * t) / rx) ** 2 <= 1.0
            image[:, inside] = colour[:, None] + self.texture[:, inside]
        return torch.from_numpy(np.clip(image, 0, 255).astype(np.float32))[None]

    def one_hot(self, t: int) -> torch.Tensor:
        import torch

        from cleanfeed.engines.deaot.variants import ID_CHANNELS

        labels = torch.from_numpy(self._labels(t))
        return torch.nn.functional.one_hot(labels, ID_CHANNELS).permute(0, 3, 1, 2).float().contiguous()


def _resize(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``[C, h, w]`` planes to ``size``: a smooth background from a coarse grid."""
    import torch

    tensor = torch.from_numpy(planes.astype("float32"))[None]
    return torch.nn.functional.interpolate(tensor, size=size, mode="bilinear", align_corners=True)[0].numpy()
