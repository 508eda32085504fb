"""Loading a DeAOT checkpoint strictly, its variant recognised from the weights, not the file name.

Upstream's loader keeps the keys it knows, drops the others silently and leaves missing ones at
random initialisation, so a wrong file "works" and tracks nothing. Here every name and shape
must match the recognised variant's network, and a foreign file says what it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cleanfeed.engines.checkpoints import check_layout, read_state_dict, require_family
from cleanfeed.engines.deaot.variants import VARIANTS, DeaotArch, recognise
from cleanfeed.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from cleanfeed.engines.deaot.model import DeAOT


def load_deaot(path: str | Path, model: str = "auto") -> tuple[DeAOT, DeaotArch]:
    """Our DeAOT (eval, CPU, fp32, no grad) with the weights in ``path``, and the variant they are.

    ``model`` (a VARIANTS name) insists on a variant; ``auto`` takes what the file holds (B/L
    weights are reported as DeAOT-L, whose long-term gap upstream uses for them).
    """
    _check_model(model)
    return deaot_from_state_dict(read_state_dict(path), model, source=f"'{path}'")


def deaot_from_state_dict(
    state: Mapping[str, torch.Tensor], model: str = "auto", source: str = "the checkpoint"
) -> tuple[DeAOT, DeaotArch]:
    """``load_deaot`` for weights already in memory."""
    from cleanfeed.engines.deaot.model import DeAOT

    _check_model(model)
    require_family(state, "DeAOT", source, None if model == "auto" else model)
    try:
        arch = recognise(state, model)
    except CheckpointError as err:
        raise CheckpointError(f"{source}: {err}") from None
    net = DeAOT(arch)
    check_layout(net.state_dict(), state, f"the {arch.describe()} layout", source)
    net.load_state_dict(state, strict=True)
    net.float().eval().requires_grad_(False)
    return net, arch


def _check_model(model: str) -> None:
    if model != "auto" and model not in VARIANTS:
        raise CheckpointError(f"DeAOT model must be auto or one of {', '.join(VARIANTS)}, got {model!r}")
