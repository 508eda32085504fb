"""E2FGVI-HQ's generator: official weight layout, frame-size rules, upstream's numbers.

The fingerprints were computed by upstream's own ``InpaintGenerator`` (MCG-NKU/E2FGVI @ 709cbe3,
model/e2fgvi_hq.py, run from a scratch folder with mmcv stand-ins: ConvModule as a ``conv`` plus
ReLU, and ``cleanfeed.engines.e2fgvi.deform_conv.modulated_deform_conv2d`` as mmcv's deformable convolution)
with ``seeded_state_dict`` weights on the seeded frames of ``_frames``.
"""

from __future__ import annotations

import pytest
import torch
from e2fgvi_weights import crc32_of, load_layout, seeded_state_dict
from seeded import fingerprint

from cleanfeed.engines.e2fgvi.model import Encoder, InpaintGenerator, check_frame_size, deconv

FRAMES, LOCAL = 7, 5
SIZE = (60, 108)

# ``fingerprint`` of upstream's outputs on ``_frames()`` with seed-0 weights, whose crc32 is WEIGHTS_CRC32:
# a change to tests/e2fgvi_weights.py's fill rules means these must be recomputed with upstream.
WEIGHTS_CRC32 = 3628922170
# fmt: off
UPSTREAM_ENCODER = [0.193798, 0.4407887, 0.5809544, 0.604753, 0.732323, 0.6981242, -0.184732, -0.1831253, -0.1637487, -0.1667088]
UPSTREAM_OUTPUT = [0.09812349, 0.4242983, 0.3590493, 0.3733884, 0.3656839, 0.3878715, 0.04283965, 0.07155728, 0.05816928, 0.08309299]
UPSTREAM_FLOWS_FORWARD = [-0.6759517, 1.582755, -1.080484, 1.813968, -1.850495, -0.3520784, 0.2997968, -0.1245013, -2.293058, 0.8175154]
UPSTREAM_FLOWS_BACKWARD = [-0.687911, 1.613465, -0.7933086, 1.748254, -1.969235, 0.02181681, 0.9908049, 0.6620221, -3.455951, 0.8788991]
# fmt: on


def _frames(seed: int = 0) -> torch.Tensor:
    """``[1, FRAMES, 3, 60, 108]`` in [-1, 1]: a smooth scene panning 1 px per frame, plus noise,
    with a zeroed hole (as the inpainter masks frames) that moves with time."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE[0]), torch.arange(SIZE[1] + FRAMES), indexing="ij")
    scene = torch.stack([torch.sin(xx / 7.0 + yy / 11.0), torch.cos(yy / 5.0), torch.sin((xx - yy) / 9.0)])
    frames = torch.stack([scene[:, :, t : t + SIZE[1]] for t in range(FRAMES)]) * 0.8
    frames = frames + 0.05 * torch.randn(frames.shape, generator=gen)
    for t in range(FRAMES):
        frames[t, :, 20:36, 30 + 4 * t : 50 + 4 * t] = 0.0
    return frames.clamp(-1, 1).unsqueeze(0)


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return seeded_state_dict(load_layout("e2fgvi_hq"))


@pytest.fixture(scope="module")
def generator(weights: dict[str, torch.Tensor]) -> InpaintGenerator:
    model = InpaintGenerator().eval()
    model.load_state_dict(weights, strict=True)
    return model


def test_seeded_weights_are_the_fingerprinted_ones(weights: dict[str, torch.Tensor]) -> None:
    assert crc32_of(weights.values()) == WEIGHTS_CRC32, "seeded weights changed: recompute the fingerprints"


def test_state_dict_equals_official_layout() -> None:
    ours = {k: tuple(v.shape) for k, v in InpaintGenerator().state_dict().items()}
    official = load_layout("e2fgvi_hq")
    assert ours == official
    assert list(ours) == list(official), "state_dict order differs from upstream's"


def test_encoder_equals_upstream(generator: InpaintGenerator) -> None:
    with torch.no_grad():
        feats = generator.encoder(_frames()[0])
    assert tuple(feats.shape) == (FRAMES, 128, 15, 27)
    assert fingerprint(feats) == pytest.approx(UPSTREAM_ENCODER, rel=1e-4, abs=1e-4)


def test_encoder_rounds_odd_sizes_up() -> None:
    assert tuple(Encoder()(torch.zeros(2, 3, 61, 107)).shape) == (2, 128, 16, 27)


def test_deconv_doubles_with_aligned_corners() -> None:
    up = deconv(1, 1, kernel_size=1)
    with torch.no_grad():
        up.conv.weight.fill_(1.0)
        up.conv.bias.zero_()
        out = up(torch.tensor([[[[0.0, 3.0]]]]))
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]]]]))


@pytest.fixture(scope="module")
def outputs(generator: InpaintGenerator) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    with torch.no_grad():
        return generator(_frames(), LOCAL)


def test_generator_equals_upstream(outputs: tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]) -> None:
    out, (forward, backward) = outputs
    assert tuple(out.shape) == (FRAMES, 3, *SIZE)
    assert tuple(forward.shape) == tuple(backward.shape) == (1, LOCAL - 1, 2, 15, 27)
    assert out.abs().max() < 1.0
    assert fingerprint(forward) == pytest.approx(UPSTREAM_FLOWS_FORWARD, rel=1e-4, abs=1e-4)
    assert fingerprint(backward) == pytest.approx(UPSTREAM_FLOWS_BACKWARD, rel=1e-4, abs=1e-4)
    assert fingerprint(out) == pytest.approx(UPSTREAM_OUTPUT, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((62, 108), "E2FGVI frame size must be a multiple of 4 on each side, got 62x108"),
        ((100, 200), "E2FGVI token grid must be a multiple of 5x9 windows, got 9x17"),
    ],
)
def test_unsupported_frame_size_raises(size: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_frame_size(*size)


def test_generator_checks_frame_size_first(generator: InpaintGenerator) -> None:
    with pytest.raises(ValueError, match="got 9x17"):
        generator(torch.zeros(1, 3, 3, 100, 200), 2)


@pytest.mark.parametrize("local", [0, 4])
def test_local_frames_out_of_range_raises(generator: InpaintGenerator, local: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^E2FGVI num_local_frames must be 1\.\.3 \(the frames given\), got {local}$"
    ):
        generator(torch.zeros(1, 3, 3, 60, 108), local)


@pytest.mark.parametrize("size", [(60, 108), (120, 216), (56, 104), (240, 432)])
def test_supported_frame_sizes(size: tuple[int, int]) -> None:
    check_frame_size(*size)
