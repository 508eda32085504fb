"""DeAOT's released variants: their networks, upstream's inference settings, and recognising them from weights.

aot-benchmark's configs (configs/models/deaot*.py, r50_deaotl.py, swinb_deaotl.py) differ in only
three things that shape the network — the image encoder, the number of propagation layers and
whether features are aligned by corners (16k+1 inputs) — plus one inference setting, the
long-term memory gap. DeAOT-B and DeAOT-L are the same network and the same weights layout: only
the gap tells them apart, so a checkpoint can say "B or L" but never which. This module imports
no torch: the CLI and ``cleanfeed inspect`` read it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cleanfeed.errors import CheckpointError

EMBED_DIM = 256
"""Channels of the propagated features (MODEL_ENCODER_EMBEDDING_DIM)."""
MAX_OBJECTS = 10
"""Objects one network pass carries (MODEL_MAX_OBJ_NUM); more use one sub-engine per ten."""
ID_CHANNELS = MAX_OBJECTS + 1
"""Identity channels: background plus one per object."""
STRIDE = 16
"""Encoder output stride; the id bank patchifies masks at the same stride."""
MAX_LONG_EDGE = 1040
"""Upstream's test-time cap on the longer side (TEST_MAX_LONG_EDGE = 800 * 1.3)."""
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
"""ImageNet normalisation of 0..1 RGB, as upstream's MultiToTensor applies it."""
NO_GAP = 9999
"""Upstream's "never": a long-term gap this large means only reference frames are remembered."""

ENCODER_DIMS: dict[str, tuple[int, int, int, int]] = {
    "mobilenetv2": (24, 32, 96, 1280),
    "resnet50": (256, 512, 1024, 1024),
    "swin_base": (128, 256, 512, 512),
}
"""Channels of the encoder's four outputs (strides 4, 8, 16, 16)."""


@dataclass(frozen=True)
class DeaotArch:
    """One released variant: its network and upstream's test-time long-term memory gap."""

    name: str
    encoder: str
    layers: int
    long_term_gap: int
    checkpoint_file: str
    title: str

    @property
    def encoder_dims(self) -> tuple[int, int, int, int]:
        return ENCODER_DIMS[self.encoder]

    @property
    def align_corners(self) -> bool:
        """CNN variants work on 16k+1 sides with corner-aligned resampling; Swin on 16k sides."""
        return self.encoder != "swin_base"

    def network(self) -> tuple[str, int]:
        """What the weights determine: (encoder, propagation layers)."""
        return self.encoder, self.layers

    def describe(self) -> str:
        return f"{self.title} ({self.encoder}, {self.layers} propagation layer{'s' * (self.layers > 1)})"


VARIANTS: dict[str, DeaotArch] = {
    "deaott": DeaotArch("deaott", "mobilenetv2", 1, NO_GAP, "DeAOTT_PRE_YTB_DAV.pth", "DeAOT-T"),
    "deaots": DeaotArch("deaots", "mobilenetv2", 2, NO_GAP, "DeAOTS_PRE_YTB_DAV.pth", "DeAOT-S"),
    "deaotb": DeaotArch("deaotb", "mobilenetv2", 3, NO_GAP, "DeAOTB_PRE_YTB_DAV.pth", "DeAOT-B"),
    "deaotl": DeaotArch("deaotl", "mobilenetv2", 3, 5, "DeAOTL_PRE_YTB_DAV.pth", "DeAOT-L"),
    "r50_deaotl": DeaotArch("r50_deaotl", "resnet50", 3, 5, "R50_DeAOTL_PRE_YTB_DAV.pth", "R50-DeAOT-L"),
    "swinb_deaotl": DeaotArch("swinb_deaotl", "swin_base", 3, 5, "SwinB_DeAOTL_PRE_YTB_DAV.pth", "SwinB-DeAOT-L"),
}
"""The released variants with upstream's TEST_LONG_TERM_MEM_GAP (9999 = reference frames only)."""

OFFICIAL_FILES: dict[str, str] = {name: arch.checkpoint_file for name, arch in VARIANTS.items()}
"""The file names the authors publish the PRE_YTB_DAV weights under; the models folder is searched for these."""

PREFERENCE = ("r50_deaotl", "swinb_deaotl", "deaotl", "deaotb", "deaots", "deaott")
"""Which variant ``auto`` picks when the models folder holds several: Segment-and-Track-Anything's default first."""


def model_size(height: int, width: int, arch: DeaotArch) -> tuple[int, int]:
    """The (height, width) upstream feeds the network for a frame of this size.

    MultiRestrictSize: scale the longer side down to MAX_LONG_EDGE (never up), truncate to int,
    then snap each side to 16k+1 (16k for Swin) with numpy's rounding — half to even, so a side
    of 585 becomes 577, not 593.
    """
    import numpy as np

    scale = min(1.0, MAX_LONG_EDGE / max(height, width))
    sides = [int(height * scale), int(width * scale)]
    extra = 1 if arch.align_corners else 0
    for i, side in enumerate(sides):
        if (side - extra) % STRIDE:
            sides[i] = max(int(np.around((side - extra) / STRIDE)) * STRIDE + extra, STRIDE + extra)
    return sides[0], sides[1]


def recognise(state_dict: Mapping[str, Any], model: str = "auto") -> DeaotArch:
    """The variant these weights are, from their names and shapes; ``model`` names one to insist on.

    Raises CheckpointError naming what the weights are when they are not a DeAOT, or when they
    are a different network than ``model`` asks for. ``deaotb``/``deaotl`` both accept B/L weights.
    """
    found = _network(state_dict)
    matches = [arch for arch in VARIANTS.values() if arch.network() == found]
    if not matches:
        encoder, layers = found
        raise CheckpointError(
            f"checkpoint must be one of the DeAOT variants ({', '.join(VARIANTS)}), got a DeAOT network "
            f"with a {encoder} encoder and {layers} propagation layers"
        )
    if model == "auto":
        return matches[-1]
    wanted = VARIANTS[model]
    if wanted not in matches:
        raise CheckpointError(
            f"checkpoint must hold {wanted.describe()} weights for model={model}, got "
            f"{matches[-1].describe()} weights (model={' or '.join(m.name for m in matches)})"
        )
    return wanted


def with_gap(arch: DeaotArch, long_term_gap: int | None) -> DeaotArch:
    """``arch`` with the long-term gap overridden (``None`` keeps upstream's)."""
    return arch if long_term_gap is None else replace(arch, long_term_gap=long_term_gap)


def _network(state_dict: Mapping[str, Any]) -> tuple[str, int]:
    keys = [k.removeprefix("module.") for k in state_dict]
    if not {"patch_wise_id_bank.weight", "id_norm.weight"} <= set(keys) or not any(
        k.startswith("LSTT.layers.") for k in keys
    ):
        roots = sorted({k.split(".", 1)[0] for k in keys})
        what = "plain AOT weights (no id_norm)" if "LSTT" in roots and "id_norm" not in roots else (
            f"weights under {', '.join(roots[:4]) or 'nothing'}"
        )
        raise CheckpointError(f"checkpoint must hold DeAOT weights (LSTT, patch_wise_id_bank, id_norm), got {what}")
    layers = 1 + max(int(k.split(".")[2]) for k in keys if k.startswith("LSTT.layers."))
    if any(k.startswith("encoder.features.") for k in keys):
        encoder = "mobilenetv2"
    elif any(k.startswith("encoder.patch_embed.") for k in keys):
        encoder = "swin_base"
    elif any(k.startswith("encoder.layer3.") for k in keys):
        blocks = {k.split(".")[2] for k in keys if k.startswith("encoder.layer3.")}
        encoder = "resnet50" if len(blocks) == 6 else f"resnet with {len(blocks)} blocks in layer3"
    else:
        encoder = "unknown"
    return encoder, layers
