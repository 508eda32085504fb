"""DeAOT's FPN head: official weight layout, output shape, upstream's numbers.

The fingerprints were computed by upstream's own head (aot-benchmark @ 601c138,
``FPNSegmentationHead`` with ``decode_intermediate_input=False`` as DeAOT builds it) with
``seeded_weights`` on the seeded inputs of ``_inputs``. The official layouts come from
data/deaot_layouts.json (written from upstream's models by goldens/make_goldens.py).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from cleanfeed.engines.deaot.decoder import FpnDecoder
from cleanfeed.engines.deaot.variants import EMBED_DIM, ID_CHANNELS, VARIANTS

LAYOUTS_PATH = Path(__file__).resolve().parent / "data" / "deaot_layouts.json"
IN_DIM = 2 * EMBED_DIM
# Stride-16 map sizes upstream feeds: 97x177 frames for the CNN encoders, 96x176 for Swin.
GRIDS = {True: [(25, 45), (13, 23), (7, 12)], False: [(24, 44), (12, 22), (6, 11)]}
FINGERPRINT_VARIANTS = ("deaott", "r50_deaotl", "swinb_deaotl")

# ``fingerprint`` of upstream's logits per variant.
# fmt: off
UPSTREAM_FINGERPRINTS: dict[str, list[float]] = {
    "deaott": [1.021148, 2.430751, 0.7591813, -2.272675, 4.707188, -1.757559, 3.05213, 3.284341, -3.563083, 4.12243, 3.399829, -0.07140112, 0.9292073, 3.664815, -0.8970752, 2.733423],
    "r50_deaotl": [0.9758237, 2.153904, 0.8157053, -2.389841, 4.672823, -1.728198, 3.174127, 3.345238, -3.361376, 4.04212, 3.401352, 1.271767, -0.5550678, 0.4950013, -0.9880095, -4.430346],
    "swinb_deaotl": [0.9671654, 2.283586, 0.8442991, -2.671852, 4.758967, -1.868458, 3.007404, 3.151362, -3.532863, 4.150153, 3.407694, 2.174772, -0.5021556, 1.170398, 1.148089, 4.784525],
}
# fmt: on


def _decoder(variant: str) -> FpnDecoder:
    arch = VARIANTS[variant]
    return FpnDecoder(IN_DIM, ID_CHANNELS, EMBED_DIM, arch.encoder_dims, arch.align_corners).eval()


def seeded_weights(state: Mapping[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Values that depend only on (seed, name, shape): He-scaled convs (the output conv scaled
    so logits are O(1..10)), GroupNorm scales 1 +- 0.1, biases +- 0.1."""
    weights = {}
    for name, tensor in state.items():
        gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{name}".encode()))
        if tensor.dim() >= 2:
            gain = 36.0 if name.startswith("conv_out.") else 2.0
            bound = math.sqrt(3.0 * gain / math.prod(tensor.shape[1:]))
            low, high = -bound, bound
        elif name.endswith("gn.weight"):
            low, high = 0.9, 1.1
        else:
            low, high = -0.1, 0.1
        weights[name] = torch.rand(tensor.shape, generator=gen) * (high - low) + low
    return weights


def _inputs(variant: str, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The propagated map and the four encoder outputs (strides 4, 8, 16, 16; the last one
    already projected to EMBED_DIM, as DeAOT passes it)."""
    arch = VARIANTS[variant]
    gen = torch.Generator().manual_seed(seed)
    (h4, w4), (h8, w8), (h16, w16) = GRIDS[arch.align_corners]
    dims = arch.encoder_dims
    shortcuts = [
        torch.randn(1, dims[0], h4, w4, generator=gen),
        torch.randn(1, dims[1], h8, w8, generator=gen),
        torch.randn(1, dims[2], h16, w16, generator=gen),
        torch.randn(1, EMBED_DIM, h16, w16, generator=gen),
    ]
    return torch.randn(1, IN_DIM, h16, w16, generator=gen), shortcuts


def fingerprint(t: torch.Tensor) -> list[float]:
    """Per logit channel the mean, plus the first channel at the four corners and the centre."""
    first = t[0, 0]
    h, w = first.shape
    corners = [first[0, 0], first[0, -1], first[-1, 0], first[-1, -1], first[h // 2, w // 2]]
    return [float(v) for v in t[0].mean(dim=(1, 2))] + [float(v) for v in corners]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_state_dict_equals_official_layout(variant: str) -> None:
    ours = {k: tuple(v.shape) for k, v in _decoder(variant).state_dict().items()}
    layout = json.loads(LAYOUTS_PATH.read_text())[variant]
    official = {k.removeprefix("decoder."): tuple(v) for k, v in layout.items() if k.startswith("decoder.")}
    assert ours == official
    assert list(ours) == list(official), "state_dict order differs from upstream's"
    assert "adapter_16x.weight" in ours and "conv_in.gn.weight" in ours


@pytest.mark.parametrize("variant", FINGERPRINT_VARIANTS)
def test_logits_equal_upstream(variant: str) -> None:
    decoder = _decoder(variant)
    decoder.load_state_dict(seeded_weights(decoder.state_dict()), strict=True)
    x, shortcuts = _inputs(variant)
    with torch.no_grad():
        logits = decoder(x, shortcuts)
    assert tuple(logits.shape) == (1, ID_CHANNELS, *GRIDS[VARIANTS[variant].align_corners][0])
    assert fingerprint(logits) == pytest.approx(UPSTREAM_FINGERPRINTS[variant], rel=1e-4, abs=1e-4)


def test_last_shortcut_is_not_read() -> None:
    """Upstream indexes shortcuts from the end and skips [-1] (the map DeAOT propagates)."""
    decoder = _decoder("deaott")
    x, shortcuts = _inputs("deaott")
    with torch.no_grad():
        full = decoder(x, shortcuts)
        three = decoder(x, shortcuts[:3] + [torch.zeros(1, 1, 1, 1)])
    assert torch.equal(full, three)


def test_output_takes_the_stride4_shortcut_size() -> None:
    decoder = _decoder("swinb_deaotl")
    x = torch.randn(2, IN_DIM, 5, 9)
    dims = VARIANTS["swinb_deaotl"].encoder_dims
    shortcuts = [torch.randn(2, dims[0], 19, 35), torch.randn(2, dims[1], 10, 18), torch.randn(2, dims[2], 5, 9)]
    shortcuts.append(torch.randn(2, EMBED_DIM, 5, 9))
    with torch.no_grad():
        assert tuple(decoder(x, shortcuts).shape) == (2, ID_CHANNELS, 19, 35)
