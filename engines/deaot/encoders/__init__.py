"""DeAOT's image encoders, built by the names upstream's configs use (MODEL_ENCODER).

Each returns, for an ImageNet-normalised (N,3,H,W) image, four feature maps at strides 4, 8,
16 and 16 (channels in ``cleanfeed.engines.deaot.variants.ENCODER_DIMS``); parameter and buffer names
equal the ``encoder.*`` keys of the official checkpoints without that prefix.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cleanfeed.engines.deaot.encoders.mobilenetv2 import MobileNetV2Encoder
from cleanfeed.engines.deaot.encoders.resnet import ResNet50Encoder
from cleanfeed.engines.deaot.encoders.swin import SwinEncoder

ENCODERS: dict[str, Callable[[], nn.Module]] = {
    "mobilenetv2": MobileNetV2Encoder,
    "resnet50": ResNet50Encoder,
    "swin_base": SwinEncoder,
}


def build_encoder(name: str) -> nn.Module:
    """A fresh (randomly initialised) encoder; load a checkpoint's ``encoder.*`` weights into it."""
    try:
        factory = ENCODERS[name]
    except KeyError:
        raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {name!r}") from None
    return factory()
