"""Flow-guided propagation: upstream's layout, upstream's numbers, upstream's flow indexing.

Why: the official E2FGVI checkpoints were trained with upstream's propagation, including the
backward branch reading its flows by step rather than by frame (upstream issues #33/#58). Our port
must keep that; the fingerprints below come from upstream's own BidirectionalPropagation
(MCG-NKU/E2FGVI@709cbe3, run from a scratch folder with mmcv shims whose deformable convolution
was a float64 gather-based transcription of mmcv's kernel, not the op under test).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from e2fgvi_weights import load_layout
from seeded import crc32_of, fingerprint_stats, generator

from cleanfeed.engines.e2fgvi.flow import flow_warp
from cleanfeed.engines.e2fgvi.propagation import BidirectionalPropagation, SecondOrderDeformableAlignment

PREFIX = "feat_prop_module."
CHANNEL = 128


def propagation_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights under upstream's ``feat_prop_module.*`` names (prefix removed).

    Uniform noise from a generator seeded by (seed, name), so upstream's model and ours get the
    same tensors. He-like gain before each LeakyReLU; the offset/mask head (``conv_offset.6``)
    small, so learned offsets stay around a pixel on top of the flows and masks vary around 1/2."""
    layout = {k[len(PREFIX) :]: v for k, v in load_layout("e2fgvi_hq").items() if k.startswith(PREFIX)}
    state = {}
    for name, shape in layout.items():
        gen = generator(name, seed)
        if len(shape) == 1:
            bound = 0.05
        else:
            leaky = (".conv_offset." in name and "conv_offset.6" not in name) or (
                ".backbone." in name and ".0." in name
            )
            gain = 0.02 if "conv_offset.6" in name else 2.0 if leaky else 1.0
            bound = math.sqrt(3.0 * gain / math.prod(shape[1:]))
        state[name] = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1).mul(bound).float()
    return state


def seeded_features(t: int, height: int, width: int, channel: int = CHANNEL) -> torch.Tensor:
    """``[1, T, C, H, W]`` features uniform in [-1, 1] from a fixed CPU generator."""
    gen = torch.Generator().manual_seed(2024)
    return torch.rand(1, t, channel, height, width, generator=gen) * 2 - 1


def analytic_flows(t: int, height: int, width: int, phase: float) -> torch.Tensor:
    """``[1, T - 1, 2, H, W]`` smooth flows of up to ~2.5 px, different for every index (so an
    index mix-up shows), closed-form so identical on every machine."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    flows = []
    for k in range(t - 1):
        a = phase + 0.7 * k
        dx = 1.5 * np.sin(0.31 * xx + 0.17 * yy + a) + 0.5 * (k - 1)
        dy = 1.2 * np.cos(0.23 * xx - 0.29 * yy + 2 * a) - 0.4 * k
        flows.append(np.stack([dx, dy]))
    return torch.from_numpy(np.stack(flows)[None]).float()


# Upstream's BidirectionalPropagation(128)(x, flows_backward, flows_forward) with
# x = seeded_features(5, 16, 24), flows_backward = analytic_flows(5, 16, 24, 0.0),
# flows_forward = analytic_flows(5, 16, 24, 1.0) and propagation_state(0); float32.
# "residual" is the output minus x (what propagation adds). weights_crc32 as in the flow test.
FINGERPRINT = {
    "weights_crc32": 1774824822,
    "residual": {
        "shape": [1, 5, 128, 16, 24],
        "mean": -0.00491124895629819,
        "std": 0.27909870414502963,
        "abs_max": 1.2782949209213257,
        "values": [
            -0.04081326723098755,
            -0.17160311341285706,
            0.2771546244621277,
            -0.13678914308547974,
            -0.2367783784866333,
            -0.2646141052246094,
            -0.1739995777606964,
        ],
    },
}


def test_state_dict_matches_upstream_layout():
    got = {k: tuple(v.shape) for k, v in BidirectionalPropagation(CHANNEL).state_dict().items()}
    for variant in ("e2fgvi_hq", "e2fgvi"):
        expected = {k[len(PREFIX) :]: v for k, v in load_layout(variant).items() if k.startswith(PREFIX)}
        assert got == expected, variant
    assert list(got)[:2] == ["deform_align.backward_.weight", "deform_align.backward_.bias"]


def test_matches_upstreamfingerprint_stats():
    state = propagation_state()
    assert crc32_of(state.values()) == FINGERPRINT["weights_crc32"], "propagation_state() changed: regenerate FINGERPRINT"
    module = BidirectionalPropagation(CHANNEL).eval()
    module.load_state_dict(state, strict=True)
    x = seeded_features(5, 16, 24)
    with torch.no_grad():
        out = module(x, analytic_flows(5, 16, 24, 0.0), analytic_flows(5, 16, 24, 1.0))
    got = fingerprint_stats(out - x)
    expected = FINGERPRINT["residual"]
    assert got["shape"] == expected["shape"]
    for key in ("mean", "std", "abs_max"):
        assert abs(got[key] - expected[key]) <= 1e-4, f"{key}: {got[key]} vs upstream {expected[key]}"
    np.testing.assert_allclose(got["values"], expected["values"], rtol=0, atol=1e-4)


def test_backward_branch_reads_flows_by_step_not_by_frame():
    """The kept quirk, stated directly: alignment call k (k = 0, 1, ...) of EITHER branch gets
    flows[:, k] as its first-order flow, although the backward branch is then at frame T-2-k."""
    module = BidirectionalPropagation(16).eval()
    t, height, width = 4, 6, 8
    calls: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"backward_": [], "forward_": []}
    for name, align in module.deform_align.items():
        align.register_forward_hook(lambda _m, args, _out, name=name: calls[name].append((args[2], args[3])))
    flows_backward = analytic_flows(t, height, width, 0.0)
    flows_forward = analytic_flows(t, height, width, 1.0)
    with torch.no_grad():
        module(seeded_features(t, height, width, 16), flows_backward, flows_forward)
    for name, flows in (("backward_", flows_backward), ("forward_", flows_forward)):
        assert len(calls[name]) == t - 1
        for k, (flow_1, flow_2) in enumerate(calls[name]):
            torch.testing.assert_close(flow_1, flows[:, k], rtol=0, atol=0)
            if k == 0:
                assert flow_2.abs().max() == 0
            else:
                composed = flows[:, k] + flow_warp(flows[:, k - 1], flows[:, k].permute(0, 2, 3, 1))
                torch.testing.assert_close(flow_2, composed, rtol=0, atol=0)


def test_alignment_with_untrained_head_is_flow_warping():
    # The offset head starts at zero: offsets are the flows and the mask is sigmoid(0) = 1/2. With
    # a constant flow, the deformable conv equals a plain conv of the flow-warped features (away
    # from the border, where the conv's zero padding and the warp's disagree), at half strength.
    # The first half of the input channels follows flow_1, the second half flow_2.
    gen = torch.Generator().manual_seed(5)
    align = SecondOrderDeformableAlignment(32, 16, 3, padding=1, deform_groups=16).eval()
    x = torch.rand(1, 32, 12, 14, generator=gen)
    extra = torch.rand(1, 48, 12, 14, generator=gen)
    flow_1 = torch.tensor([1.25, -0.5]).reshape(1, 2, 1, 1).expand(1, 2, 12, 14)
    flow_2 = torch.tensor([-0.75, 1.0]).reshape(1, 2, 1, 1).expand(1, 2, 12, 14)
    with torch.no_grad():
        got = align(x, extra, flow_1, flow_2)
        warped = torch.cat(
            [flow_warp(x[:, :16], flow_1.permute(0, 2, 3, 1)), flow_warp(x[:, 16:], flow_2.permute(0, 2, 3, 1))], dim=1
        )
        expected = F.conv2d(warped, align.weight * 0.5, align.bias, padding=1)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    torch.testing.assert_close(got[inner], expected[inner], rtol=1e-5, atol=1e-5)
    assert math.isclose(align.max_residue_magnitude, 10.0)
