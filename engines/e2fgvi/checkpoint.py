"""Loading an E2FGVI checkpoint strictly, its variant told from the weights.

The two releases differ in one tensor: E2FGVI-HQ's soft composition learns its bias with a
convolution (``sc.bias_conv.*``, any frame size), the fixed-432x240 E2FGVI stores it as a
``sc.bias`` map of the 60x108 feature grid of a 240x432 frame. The variant found builds the
matching network (the 432x240 one refuses other frame sizes), so neither file is ever loaded
into the other's layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cleanfeed.engines.checkpoints import check_layout, read_state_dict, require_family
from cleanfeed.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from cleanfeed.engines.e2fgvi.model import InpaintGenerator

VARIANTS = ("e2fgvi_hq", "e2fgvi")
OFFICIAL_FILES = {"e2fgvi_hq": "E2FGVI-HQ-CVPR22.pth", "e2fgvi": "E2FGVI-CVPR22.pth"}
"""The file names the authors publish the weights under (CC BY-NC 4.0: non-commercial)."""
TITLES = {"e2fgvi_hq": "E2FGVI-HQ (any frame size)", "e2fgvi": "E2FGVI (fixed 432x240)"}


def variant_of(state: Mapping[str, torch.Tensor]) -> str:
    """``e2fgvi_hq`` or ``e2fgvi``, from the soft composition's bias."""
    if "sc.bias_conv.weight" in state:
        return "e2fgvi_hq"
    if "sc.bias" in state:
        return "e2fgvi"
    raise CheckpointError(
        "checkpoint must hold E2FGVI weights with a soft composition bias (sc.bias_conv or sc.bias), got neither"
    )


def load_e2fgvi(path: str | Path, model: str = "auto") -> tuple[InpaintGenerator, str]:
    """Our InpaintGenerator (eval, CPU, fp32, no grad) with the weights in ``path``, and the variant.

    For ``e2fgvi`` the network takes only 240x432 frames (``net.fixed_size``); callers resize.
    """
    if model != "auto" and model not in VARIANTS:
        raise CheckpointError(f"E2FGVI model must be auto or one of {', '.join(VARIANTS)}, got {model!r}")
    return e2fgvi_from_state_dict(read_state_dict(path), model, source=f"'{path}'")


def e2fgvi_from_state_dict(
    state: Mapping[str, torch.Tensor], model: str = "auto", source: str = "the checkpoint"
) -> tuple[InpaintGenerator, str]:
    """``load_e2fgvi`` for weights already in memory."""
    from cleanfeed.engines.e2fgvi.model import FIXED_FRAME, InpaintGenerator

    require_family(state, "E2FGVI", source, None if model == "auto" else model)
    found = variant_of(state)
    if model != "auto" and found != model:
        raise CheckpointError(f"{source} holds {TITLES[found]} weights, expected {TITLES[model]} for model={model}")
    net = InpaintGenerator(FIXED_FRAME if found == "e2fgvi" else None)
    check_layout(net.state_dict(), state, f"the {TITLES[found]} layout", source)
    net.load_state_dict(state, strict=True)
    net.float().eval().requires_grad_(False)
    return net, found
