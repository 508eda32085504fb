"""SPyNet and flow warping: upstream's parameter layout and upstream's numbers.

Why: E2FGVI fine-tunes SPyNet inside its generator (``update_spynet``), so the official checkpoint
must load into ours strictly and give the flows upstream's code gives. Upstream cannot be imported
here (it needs mmcv); its outputs on seeded weights and analytic frames were recorded once as
fingerprints (FINGERPRINTS below, made by running MCG-NKU/E2FGVI@709cbe3's flow_comp.SPyNet with
mmcv shims from a scratch folder).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from e2fgvi_weights import load_layout
from seeded import crc32_of, fingerprint_stats, generator

from cleanfeed.engines.e2fgvi.flow import SPyNet, flow_warp

PREFIX = "update_spynet."


def _seeded(name: str, shape: tuple[int, ...], gain: float, bias: float, seed: int) -> torch.Tensor:
    """Uniform noise from a generator seeded by (seed, name): the same for upstream's model and ours."""
    gen = generator(name, seed)
    bound = bias if len(shape) == 1 else math.sqrt(3.0 * gain / math.prod(shape[1:]))
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1).mul(bound).float()


def spynet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights under upstream's ``update_spynet.*`` names (prefix removed).

    He-like gain before each ReLU; the last conv of each level, which predicts a flow residual
    that later levels double up to 32 times, gets a small gain so flows stay around a pixel;
    mean and std are upstream's constants."""
    layout = {k[len(PREFIX) :]: v for k, v in load_layout("e2fgvi_hq").items() if k.startswith(PREFIX)}
    state = {}
    for name, shape in layout.items():
        if name in ("mean", "std"):
            values = (0.485, 0.456, 0.406) if name == "mean" else (0.229, 0.224, 0.225)
            state[name] = torch.tensor(values).reshape(shape)
        elif ".basic_module.4." in name:
            state[name] = _seeded(name, shape, gain=0.05, bias=0.002, seed=seed)
        else:
            state[name] = _seeded(name, shape, gain=2.0, bias=0.05, seed=seed)
    return state


def analytic_pair(n: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two smooth RGB frames in [0, 1], ``[n, 3, H, W]``; the second is the first moved by
    (+1.5, -0.75) px (batch item ``b`` moves ``b + 1`` times as far). Closed-form, so identical
    on every machine."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for shift in (0.0, 1.0):
        batch = []
        for b in range(n):
            x = xx - shift * 1.5 * (b + 1)
            y = yy + shift * 0.75 * (b + 1)
            batch.append(
                np.stack(
                    [
                        0.5 + 0.3 * np.sin(0.21 * x + 0.13 * y) + 0.1 * np.cos(0.05 * x * (1 + c) - 0.11 * y)
                        for c in range(3)
                    ]
                )
            )
        frames.append(torch.from_numpy(np.stack(batch)).float())
    return frames[0], frames[1]


# Upstream's SPyNet(ref, supp) on analytic_pair(2, H, W) with spynet_state(0), float32
# on CPU, torch 2.13.0; weights_crc32 is seeded.crc32_of() of those weights.
FINGERPRINTS = {
    "weights_crc32": 1335446615,
    (64, 96): {
        "shape": [2, 2, 64, 96],
        "mean": -0.3917816327073543,
        "std": 0.5998097932021111,
        "abs_max": 2.1741037368774414,
        "values": [
            0.3443171977996826,
            -1.0926772356033325,
            -0.19265706837177277,
            0.27086228132247925,
            -1.2365665435791016,
            -0.25075191259384155,
            -0.33820003271102905,
        ],
    },
    (50, 90): {
        "shape": [2, 2, 50, 90],
        "mean": -0.36163014127086474,
        "std": 0.5543122780838251,
        "abs_max": 2.0997393131256104,
        "values": [
            0.35610902309417725,
            -0.6634617447853088,
            0.1940658539533615,
            0.3574856221675873,
            -0.599445641040802,
            0.1611485630273819,
            0.036927755922079086,
        ],
    },
}


def test_state_dict_matches_upstream_layout():
    for variant in ("e2fgvi_hq", "e2fgvi"):
        expected = {k[len(PREFIX) :]: v for k, v in load_layout(variant).items() if k.startswith(PREFIX)}
        got = {k: tuple(v.shape) for k, v in SPyNet().state_dict().items()}
        assert got == expected, variant


def test_buffers_are_imagenet_statistics():
    spynet = SPyNet()
    torch.testing.assert_close(spynet.mean.reshape(-1), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(spynet.std.reshape(-1), torch.tensor([0.229, 0.224, 0.225]))


@pytest.mark.parametrize("size", [(64, 96), (50, 90)], ids=["multiple_of_32", "resized"])
def test_spynet_matches_upstreamfingerprint_stats(size):
    state = spynet_state()
    assert crc32_of(state.values()) == FINGERPRINTS["weights_crc32"], "spynet_state() changed: regenerate FINGERPRINTS"
    spynet = SPyNet().eval()
    spynet.load_state_dict(state, strict=True)
    ref, supp = analytic_pair(2, *size)
    with torch.no_grad():
        flow = spynet(ref, supp)
    expected = FINGERPRINTS[size]
    got = fingerprint_stats(flow)
    assert got["shape"] == expected["shape"]
    for key in ("mean", "std", "abs_max"):
        assert abs(got[key] - expected[key]) <= 1e-4, f"{key}: {got[key]} vs upstream {expected[key]}"
    np.testing.assert_allclose(got["values"], expected["values"], rtol=0, atol=1e-4)


def test_flow_warp_zero_flow_is_identity():
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(flow_warp(x, torch.zeros(2, 5, 7, 2)), x, rtol=0, atol=1e-6)


def test_flow_warp_reads_displaced_pixels_bilinearly():
    # flow (dx, dy) = (1.25, -0.5): pixel (r, c) reads x at (r - 0.5, c + 1.25); outside reads 0.
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 6, 8, generator=gen, dtype=torch.float64)
    flow = torch.zeros(1, 6, 8, 2, dtype=torch.float64)
    flow[..., 0], flow[..., 1] = 1.25, -0.5
    got = flow_warp(x, flow)
    padded = F.pad(x, (1, 1, 1, 1))  # zeros around the image, so the reference indexes freely
    expected = torch.zeros_like(x)
    for r in range(6):
        for c in range(8):
            y, xx = r - 0.5 + 1, c + 1.25 + 1
            y0, x0 = int(np.floor(y)), int(np.floor(xx))
            fy, fx = y - y0, xx - x0

            def at(yi, xi):
                return padded[0, :, yi, xi] if yi < 8 and xi < 10 else torch.zeros(2, dtype=torch.float64)

            expected[0, :, r, c] = (
                (1 - fy) * (1 - fx) * at(y0, x0)
                + (1 - fy) * fx * at(y0, x0 + 1)
                + fy * (1 - fx) * at(y0 + 1, x0)
                + fy * fx * at(y0 + 1, x0 + 1)
            )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_flow_warp_border_padding_clamps():
    # Far left and far down: every pixel reads the bottom-left one (row 2, column 0 = 8).
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    flow = torch.tensor([-10.0, 10.0]).expand(1, 3, 4, 2)
    torch.testing.assert_close(flow_warp(x, flow, padding_mode="border"), torch.full_like(x, 8.0))
    assert flow_warp(x, flow).abs().max() == 0  # zeros padding reads nothing there


def test_flow_warp_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match=r"flow must cover the input's \(5, 7\) pixels, got \(5, 6\)"):
        flow_warp(torch.zeros(1, 3, 5, 7), torch.zeros(1, 5, 6, 2))


def test_spynet_output_keeps_input_size_and_scales_flow():
    spynet = SPyNet().eval()
    ref, supp = analytic_pair(1, 40, 70)
    with torch.no_grad():
        flow = spynet(ref, supp)
        ref_up, supp_up = (F.interpolate(t, size=(64, 96), mode="bilinear", align_corners=False) for t in (ref, supp))
        raw = F.interpolate(spynet.compute_flow(ref_up, supp_up), size=(40, 70), mode="bilinear", align_corners=False)
    assert flow.shape == (1, 2, 40, 70)
    torch.testing.assert_close(flow[:, 0], raw[:, 0] * 70 / 96)
    torch.testing.assert_close(flow[:, 1], raw[:, 1] * 40 / 64)
