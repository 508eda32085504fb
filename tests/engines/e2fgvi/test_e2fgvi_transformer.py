"""E2FGVI-HQ's transformer (soft split, 8 temporal focal blocks, soft composition) against upstream.

The fingerprints were computed by upstream's own modules (MCG-NKU/E2FGVI @ 709cbe3,
model/modules/tfocal_transformer_hq.py, built as model/e2fgvi_hq.py builds them) with
``seeded_state_dict`` weights on the seeded features of ``_features``; the script that printed
them ran upstream from a scratch folder and is not part of the repository. Names and shapes come
from data/e2fgvi_layouts.json (upstream's ``InpaintGenerator.state_dict()``).
"""

from __future__ import annotations

import pytest
import torch
from e2fgvi_weights import crc32_of, load_layout, seeded_state_dict
from seeded import fingerprint

from cleanfeed.engines.e2fgvi.transformer import (
    T2T,
    FusionFeedForward,
    SoftComp,
    SoftSplit,
    TemporalFocalTransformerBlock,
    build_blocks,
    check_grid,
)

FRAMES = 5
# Quarter-size feature maps of 60x108 frames (one 5x9 window) and 120x216 frames (2x2 windows, so
# the rolled neighbours wrap around the border and pooled windows are partly outside the map).
FEATURE_SIZES = [(15, 27), (30, 54)]

# ``fingerprint`` of upstream's soft-composed output per feature size, with seed-0 weights whose crc32
# (``ss.*``, ``sc.*``, ``transformer.*``: layout order) is WEIGHTS_CRC32.
WEIGHTS_CRC32 = 595164201
# fmt: off
UPSTREAM_FINGERPRINTS: dict[tuple[int, int], list[float]] = {
    (15, 27): [0.006423831, 1.536075, 1.190877, 1.108345, 0.9978216, 3.158427, 1.88045, -1.411028, -0.9367118, 0.09695805],
    (30, 54): [0.02045726, 1.65658, 0.8883252, -0.8646011, -1.494569, -0.684182, 0.8235851, -2.145481, 1.456803, -0.2347039],
}
# fmt: on


@pytest.fixture(scope="module")
def parts() -> tuple[SoftSplit, torch.nn.ModuleList, SoftComp]:
    """Soft split, the 8 blocks and soft composition with seed-0 weights (seeded by name, so the
    same values upstream's modules received)."""
    ss, blocks, sc = SoftSplit(128, 512), build_blocks(), SoftComp(128, 512)
    for module, prefix in ((ss, "ss."), (blocks, "transformer."), (sc, "sc.")):
        weights = seeded_state_dict({prefix + k: v for k, v in _layout(prefix).items()})
        module.load_state_dict({k.removeprefix(prefix): v for k, v in weights.items()}, strict=True)
    return ss, blocks, sc


def _features(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """``[FRAMES, 128, h, w]`` encoder-like features (LeakyReLU-shaped, as the encoder's are)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.leaky_relu(torch.randn(FRAMES, 128, *size, generator=gen), 0.2)


def _run(parts: tuple[SoftSplit, torch.nn.ModuleList, SoftComp], feats: torch.Tensor) -> torch.Tensor:
    ss, blocks, sc = parts
    size = tuple(feats.shape[-2:])
    with torch.no_grad():
        tokens = ss(feats, 1, size)
        for block in blocks:
            tokens = block(tokens, size)
        return sc(tokens, feats.shape[0], size)


def _layout(prefix: str) -> dict[str, tuple[int, ...]]:
    return {k.removeprefix(prefix): v for k, v in load_layout("e2fgvi_hq").items() if k.startswith(prefix)}


@pytest.mark.parametrize(
    ("module", "prefix"),
    [(lambda: SoftSplit(128, 512), "ss."), (lambda: SoftComp(128, 512), "sc."), (build_blocks, "transformer.")],
)
def test_state_dict_equals_official_layout(module, prefix: str) -> None:
    ours = {k: tuple(v.shape) for k, v in module().state_dict().items()}
    official = _layout(prefix)
    assert ours == official
    assert list(ours) == list(official), "state_dict order differs from upstream's"


def test_rolled_key_index_is_upstreams() -> None:
    ours = TemporalFocalTransformerBlock().attn.valid_ind_rolled
    constant = seeded_state_dict({"transformer.0.attn.valid_ind_rolled": (120,)})
    assert ours.dtype == torch.int64
    assert torch.equal(ours, constant["transformer.0.attn.valid_ind_rolled"])
    # Rolled from the top-left: rows 0-2 keep columns 5-8 only, rows 3-4 (from index 27) keep all.
    assert ours[:12].tolist() == [5, 6, 7, 8, 14, 15, 16, 17, 23, 24, 25, 26]


@pytest.mark.parametrize(
    ("size", "grid"), [((15, 27), (5, 9)), ((30, 54), (10, 18)), ((25, 50), (9, 17)), ((14, 26), (5, 9))]
)
def test_token_grid(size: tuple[int, int], grid: tuple[int, int]) -> None:
    assert T2T.grid(size) == grid


def test_grid_windows_do_not_tile_raises() -> None:
    with pytest.raises(ValueError, match=r"^E2FGVI token grid must be a multiple of 5x9 windows, got 9x17$"):
        check_grid((9, 17))
    block = TemporalFocalTransformerBlock()
    with pytest.raises(ValueError, match="got 9x17"):
        block(torch.zeros(1, 2, 9, 17, 512), (25, 50))


def test_feed_forward_averages_overlapping_patches() -> None:
    """When every token says the same about every pixel of its patch, averaging the overlaps
    hands each token back what it said, except where its patch hangs over the zero padding."""
    ffn = FusionFeedForward(8, hidden=49)
    with torch.no_grad():
        ffn.conv1[0].weight.zero_()
        ffn.conv1[0].bias.fill_(0.7)
        out = ffn(torch.randn(1, 45, 8), (15, 27)).view(5, 9, 8)
        inside = ffn.conv2(torch.full((49,), 0.7))
        corner = torch.zeros(7, 7)
        corner[3:, 3:] = 0.7
        overhanging = ffn.conv2(corner.flatten())
    torch.testing.assert_close(out[2, 4], inside, rtol=0, atol=1e-6)  # patch rows 3..9, cols 9..15
    torch.testing.assert_close(out[0, 0], overhanging, rtol=0, atol=1e-6)


def test_seeded_weights_are_the_fingerprinted_ones(parts: tuple[SoftSplit, torch.nn.ModuleList, SoftComp]) -> None:
    ss, blocks, sc = parts
    tensors = [t for module in (ss, sc, blocks) for t in module.state_dict().values()]
    assert crc32_of(tensors) == WEIGHTS_CRC32, "seeded weights changed: recompute the fingerprints"


@pytest.mark.parametrize("size", FEATURE_SIZES)
def test_transformer_equals_upstream(
    parts: tuple[SoftSplit, torch.nn.ModuleList, SoftComp], size: tuple[int, int]
) -> None:
    out = _run(parts, _features(size))
    assert tuple(out.shape) == (FRAMES, 128, *size)
    assert fingerprint(out) == pytest.approx(UPSTREAM_FINGERPRINTS[size], rel=1e-4, abs=1e-4)
