"""DeAOT's image encoders: official weight layouts, output strides and channels, upstream's numbers.

The fingerprints below were computed by running upstream's own encoders (aot-benchmark @
601c138, ``build_encoder(name, frozen_bn=True)``) with ``seeded_weights`` on the seeded inputs
of ``_image``; our port must reproduce them without importing upstream. The official layouts
come from data/deaot_layouts.json (written from upstream's models by goldens/make_goldens.py).
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from torch import nn

from cleanfeed.engines.deaot.encoders import ENCODERS, build_encoder
from cleanfeed.engines.deaot.encoders.frozen_bn import FrozenBatchNorm2d
from cleanfeed.engines.deaot.variants import VARIANTS

LAYOUTS_PATH = Path(__file__).resolve().parent / "data" / "deaot_layouts.json"
CNN_SIZE = (97, 177)
SWIN_SIZE = (96, 176)

# (channels, height, width) of the four outputs; upstream's own shapes at these input sizes.
EXPECTED_SHAPES = {
    "mobilenetv2": [(24, 25, 45), (32, 13, 23), (96, 7, 12), (1280, 7, 12)],
    "resnet50": [(256, 25, 45), (512, 13, 23), (1024, 7, 12), (1024, 7, 12)],
    "swin_base": [(128, 24, 44), (256, 12, 22), (512, 6, 11), (512, 6, 11)],
}

# Per output, ``fingerprint``'s seven numbers, from upstream's encoders.
UPSTREAM_FINGERPRINTS: dict[str, list[list[float]]] = {
    "mobilenetv2": [
        [-1.793419, -4.226561, -2.57404, 0.0007032156, -5.384779, 0.4119946, 3.577021],
        [-6.062061, 2.02368, 2.995926, -0.1764681, -3.386475, -0.261178, 5.046975],
        [-4.018885, -3.989454, 3.282837, 0.591718, 5.618608, 0.1131472, 4.658407],
        [0.7057951, -4.289724, -2.443738, -2.854215, -3.78452, 1.507517, 2.053943],
    ],
    "resnet50": [
        [-0.9599824, -0.8766523, -2.290204, -1.30239, -2.939889, 1.813009, 2.109061],
        [3.818134, 1.332017, 1.163715, 3.210837, 4.614305, 2.556328, 2.704571],
        [-3.516395, -1.343372, -1.213681, -4.019023, -7.284223, 3.657064, 3.953807],
        [-3.516395, -1.343372, -1.213681, -4.019023, -7.284223, 3.657064, 3.953807],
    ],
    "swin_base": [
        [0.1861799, -1.470828, -0.7413639, 0.07407288, -1.128388, -0.003007229, 0.9992638],
        [0.3210746, 0.7393097, 0.2274396, 2.010431, -0.9687421, 0.0008108719, 1.005443],
        [0.6263685, 0.6128207, 0.408376, 1.646322, 0.5444641, 0.001162578, 1.001598],
        [0.6263685, 0.6128207, 0.408376, 1.646322, 0.5444641, 0.001162578, 1.001598],
    ],
}


@functools.cache
def _encoder(name: str) -> nn.Module:
    return build_encoder(name).eval()


def _encoder_layout(variant: str) -> dict[str, tuple[int, ...]]:
    layout = json.loads(LAYOUTS_PATH.read_text())[variant]
    return {k.removeprefix("encoder."): tuple(v) for k, v in layout.items() if k.startswith("encoder.")}


def seeded_weights(state: Mapping[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic, numerically healthy values for every float tensor of a state dict.

    Each tensor depends only on (seed, name, shape), so upstream's module and ours get the same
    values. Integer buffers (Swin's position indices) are kept: they are constants each model
    builds itself. Conv weights get He-scaled uniform values, linears unit-scaled; FrozenBN
    statistics are non-trivial; a ResNet block's last BN scale is 0.3 so the residual stream stays O(1).
    """
    weights = {}
    for name, tensor in state.items():
        if not tensor.dtype.is_floating_point:
            weights[name] = tensor
            continue
        gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{name}".encode()))
        shape, leaf = tensor.shape, name.rsplit(".", 1)[-1]
        if leaf == "relative_position_bias_table":
            low, high = -0.04, 0.04
        elif tensor.dim() >= 2:
            bound = math.sqrt(3.0 * (2.0 if tensor.dim() == 4 else 1.0) / math.prod(shape[1:]))
            low, high = -bound, bound
        elif leaf == "running_var":
            low, high = 0.75, 1.25
        elif leaf == "weight":
            centre = 0.3 if name.endswith("bn3.weight") else 1.0
            low, high = 0.9 * centre, 1.1 * centre
        else:  # biases and running means
            low, high = -0.1, 0.1
        weights[name] = torch.rand(shape, generator=gen) * (high - low) + low
    return weights


def _seeded_encoder(name: str, seed: int = 0) -> nn.Module:
    encoder = build_encoder(name).eval()
    encoder.load_state_dict(seeded_weights(encoder.state_dict(), seed), strict=True)
    return encoder


def _image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def fingerprint(t: torch.Tensor) -> list[float]:
    """Seven numbers that move when any region or channel of a (1,C,h,w) map changes: a fixed
    random mix of the channels at the four corners and the centre, then the map's mean and std."""
    mix = torch.randn(t.shape[1], generator=torch.Generator().manual_seed(7)) / t.shape[1] ** 0.5
    m = torch.einsum("chw,c->hw", t[0], mix)
    h, w = m.shape
    points = [m[0, 0], m[0, -1], m[-1, 0], m[-1, -1], m[h // 2, w // 2], t.mean(), t.std()]
    return [float(p) for p in points]


@pytest.mark.parametrize("variant", [v for v in VARIANTS])
def test_state_dict_equals_official_layout(variant: str) -> None:
    encoder = _encoder(VARIANTS[variant].encoder)
    ours = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    official = _encoder_layout(variant)
    assert sorted(set(ours) - set(official)) == [], "names upstream does not have"
    assert sorted(set(official) - set(ours)) == [], "names upstream has that we lack"
    wrong = {k: (ours[k], official[k]) for k in official if ours[k] != official[k]}
    assert wrong == {}
    assert list(ours) == list(official), "state_dict order differs from upstream's"


def test_only_swin_position_indices_are_integer_buffers() -> None:
    for name in ENCODERS:
        for key, tensor in _encoder(name).state_dict().items():
            expected = torch.int64 if key.endswith("relative_position_index") else torch.float32
            assert tensor.dtype == expected, key


def test_swin_position_index_is_upstream_constant() -> None:
    """The index is a buffer built at construction and checkpoints carry the same constant:
    token i = (r, c) of a 7x7 window reads bias row (r_i - r_j + 6) * 13 + (c_i - c_j + 6)."""
    state = _encoder("swin_base").state_dict()
    keys = [k for k in state if k.endswith("relative_position_index")]
    assert len(keys) == 2 + 2 + 18
    index = state[keys[0]]
    assert index.shape == (49, 49)
    assert [int(index[0, j]) for j in (0, 1, 6, 7, 48)] == [84, 83, 78, 71, 0]
    assert int(index[48, 0]) == 168
    assert torch.equal(index + index.t(), torch.full((49, 49), 168))
    assert all(torch.equal(state[k], index) for k in keys)


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet50"])
def test_cnn_outputs_on_odd_sizes(name: str) -> None:
    """Tracker inputs are 16k+1 pixels; every stride-2 conv gives (s - 1) // 2 + 1."""
    with torch.no_grad():
        outputs = _encoder(name)(_image(*CNN_SIZE))
    assert [tuple(o.shape[1:]) for o in outputs] == EXPECTED_SHAPES[name]


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet50", "swin_base"])
def test_outputs_equal_upstream(name: str) -> None:
    encoder = _seeded_encoder(name)
    size = SWIN_SIZE if name == "swin_base" else CNN_SIZE
    with torch.no_grad():
        outputs = encoder(_image(*size))
    assert [tuple(o.shape[1:]) for o in outputs] == EXPECTED_SHAPES[name]
    got = [fingerprint(o) for o in outputs]
    for i, (ours, theirs) in enumerate(zip(got, UPSTREAM_FINGERPRINTS[name], strict=True)):
        assert ours == pytest.approx(theirs, rel=1e-4, abs=1e-4), f"output {i}"
    if name != "mobilenetv2":
        assert torch.equal(outputs[2], outputs[3]), "the last stride-16 map is returned twice"


def test_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match=r"encoder must be one of mobilenetv2, resnet50, swin_base, got 'resnet101'"):
        build_encoder("resnet101")


def test_frozen_bn_applies_stored_statistics() -> None:
    bn = FrozenBatchNorm2d(3)
    assert list(dict(bn.named_parameters())) == []
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    assert torch.allclose(bn.running_var, torch.full((3,), 1 - 1e-5))
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(bn(x), x, atol=1e-6), "a fresh layer is the identity"
    bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    bn.running_mean.copy_(torch.tensor([0.5, 0.0, -2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    shape = (1, 3, 1, 1)
    expected = (x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + 1e-5)
    expected = expected * bn.weight.view(shape) + bn.bias.view(shape)
    bn.train()
    assert torch.allclose(bn(x), expected, atol=1e-6), "statistics stay frozen even in train mode"


def test_mobilenet_dilates_instead_of_striding_past_16() -> None:
    """Dilation does not change any weight's shape, so the layout test cannot see it; upstream
    dilates the depthwise convs of blocks 15..17 by 2 (block 14 keeps 1) and strides nothing there."""
    features = _encoder("mobilenetv2").features
    depthwise = {i: features[i].conv[-3][0] for i in range(1, 18)}
    assert {i: conv.dilation[0] for i, conv in depthwise.items() if conv.dilation[0] != 1} == {15: 2, 16: 2, 17: 2}
    assert {i for i, conv in depthwise.items() if conv.stride[0] == 2} == {2, 4, 7}
    assert all(conv.padding[0] == conv.dilation[0] for conv in depthwise.values())


def test_resnet_has_no_layer4_and_no_dilation() -> None:
    encoder = _encoder("resnet50")
    assert not hasattr(encoder, "layer4")
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.dilation == (1, 1) for c in convs)
    assert [n for n, m in encoder.named_modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)] == [
        "conv1",
        "layer2.0.conv2",
        "layer2.0.downsample.0",
        "layer3.0.conv2",
        "layer3.0.downsample.0",
    ]
