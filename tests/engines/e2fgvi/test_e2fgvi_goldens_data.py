"""The E2FGVI reference data agrees with itself: layouts, seeded weights, clip and golden files.

The port's parity tests trust these files; if the weight filler or the clip generator drifts
from what the goldens were made with, this test names the culprit instead of a parity failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from e2fgvi_weights import LAYOUTS_PATH, crc32_of, golden_clip, load_layout, seeded_state_dict

GOLDENS = Path(__file__).resolve().parent / "goldens"
CASE_NAMES = ("e2fgvi_hq_20f", "e2fgvi_11f")
VARIANTS = ("e2fgvi_hq", "e2fgvi")
# Encoder convs (index in encoder.layers): (out, in / groups); groups 1, 2, 4, 8, 1 from layer 8 on.
ENCODER = {0: (64, 3), 2: (64, 64), 4: (128, 64), 6: (256, 128), 8: (384, 256), 10: (512, 320), 12: (384, 192)}
ENCODER |= {14: (256, 80), 16: (128, 512)}


def _layouts() -> dict:
    return json.loads(LAYOUTS_PATH.read_text())


def test_layouts_name_the_upstream_source() -> None:
    source = _layouts()["_source"]
    assert source["commit"] == "709cbe3"
    assert source["repo"].endswith("MCG-NKU/E2FGVI")
    assert set(_layouts()) == {"_source", *VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_layout_has_the_e2fgvi_parts(variant: str) -> None:
    layout = load_layout(variant)
    for index, (out, per_group) in ENCODER.items():
        assert layout[f"encoder.layers.{index}.weight"] == (out, per_group, 3, 3)
    assert layout["decoder.0.conv.weight"] == (128, 128, 3, 3)  # deconv: upsample then conv
    assert layout["decoder.6.weight"] == (3, 64, 3, 3)
    for direction, backbone_in in (("backward_", 256), ("forward_", 384)):
        align = f"feat_prop_module.deform_align.{direction}"
        # mmcv's ModulatedDeformConv2d registers weight and bias only, no buffers
        own = {name.removeprefix(align + ".") for name in layout if name.startswith(align + ".")}
        assert {n for n in own if not n.startswith("conv_offset.")} == {"weight", "bias"}
        assert layout[f"{align}.weight"] == (128, 256, 3, 3) and layout[f"{align}.bias"] == (128,)
        assert layout[f"{align}.conv_offset.0.weight"] == (128, 3 * 128 + 4, 3, 3)
        assert layout[f"{align}.conv_offset.6.weight"] == (27 * 16, 128, 3, 3)  # 16 deform groups
        assert layout[f"feat_prop_module.backbone.{direction}.0.weight"] == (128, backbone_in, 3, 3)
    assert layout["feat_prop_module.fusion.weight"] == (128, 256, 1, 1)
    assert layout["ss.embedding.weight"] == (512, 7 * 7 * 128)
    assert layout["sc.embedding.weight"] == (7 * 7 * 128, 512)
    blocks = {int(name.split(".")[1]) for name in layout if name.startswith("transformer.")}
    assert blocks == set(range(8))
    for block in range(8):
        assert layout[f"transformer.{block}.attn.valid_ind_rolled"] == (120,)
        assert layout[f"transformer.{block}.pool_layers.0.weight"] == (1, 45)
        assert layout[f"transformer.{block}.attn.qkv.weight"] == (1536, 512)
        assert layout[f"transformer.{block}.mlp.conv1.0.weight"] == (1960, 512)
        assert layout[f"transformer.{block}.mlp.conv2.1.weight"] == (512, 1960)
    spynet = [name for name in layout if name.startswith("update_spynet.")]
    assert len(spynet) == 2 + 6 * 5 * 2
    assert layout["update_spynet.mean"] == layout["update_spynet.std"] == (1, 3, 1, 1)
    for level in range(6):
        stem = f"update_spynet.basic_module.{level}.basic_module"
        assert layout[f"{stem}.0.conv.weight"] == (32, 8, 7, 7)
        assert layout[f"{stem}.4.conv.weight"] == (2, 16, 7, 7)


def test_hq_and_fixed_size_layouts_differ_only_in_softcomp() -> None:
    hq, fixed = load_layout("e2fgvi_hq"), load_layout("e2fgvi")
    assert len(hq) == 244 and len(fixed) == 243
    assert set(hq) - set(fixed) == {"sc.bias_conv.weight", "sc.bias_conv.bias"}
    assert set(fixed) - set(hq) == {"sc.bias"}
    assert fixed["sc.bias"] == (128, 60, 108)  # a learned bias for the 240x432 input only
    assert all(hq[name] == fixed[name] for name in set(hq) & set(fixed))


def test_load_layout_rejects_unknown_variants() -> None:
    with pytest.raises(KeyError, match="variant must be one of .*'e2fgvi_hq'.*got 'e2fgvi_xl'"):
        load_layout("e2fgvi_xl")
    with pytest.raises(KeyError, match="got '_source'"):
        load_layout("_source")


def test_seeded_state_dict_is_deterministic_and_keyed_by_name() -> None:
    layout = load_layout("e2fgvi_hq")
    first = seeded_state_dict(layout)
    again = seeded_state_dict(layout)
    assert list(first) == list(layout)
    assert all(torch.equal(first[name], again[name]) for name in layout)
    assert all(tuple(first[name].shape) == layout[name] for name in layout)
    picked = ["decoder.6.weight", "transformer.3.norm1.weight", "update_spynet.basic_module.2.basic_module.4.conv.bias"]
    partial = seeded_state_dict({name: layout[name] for name in reversed(picked)})
    assert all(torch.equal(partial[name], first[name]) for name in picked)
    fixed = seeded_state_dict(load_layout("e2fgvi"))
    assert torch.equal(fixed["transformer.0.attn.qkv.weight"], first["transformer.0.attn.qkv.weight"])
    other_seed = seeded_state_dict({name: layout[name] for name in picked}, seed=1)
    assert not any(torch.equal(other_seed[name], first[name]) for name in picked)


def test_seeded_buffers_are_upstreams_constants() -> None:
    weights = seeded_state_dict(load_layout("e2fgvi_hq"), seed=5)
    index = weights["transformer.0.attn.valid_ind_rolled"]
    assert index.dtype == torch.int64
    # rolled top-left keys: the bottom 2 rows and right 4 columns of a 5x9 window
    assert index[:12].tolist() == [5, 6, 7, 8, 14, 15, 16, 17, 23, 24, 25, 26]
    assert index[-4:].tolist() == [171, 172, 173, 174] and len(set(index.tolist())) == 120
    assert all(torch.equal(weights[f"transformer.{b}.attn.valid_ind_rolled"], index) for b in range(8))
    assert weights["update_spynet.mean"].flatten().tolist() == torch.tensor([0.485, 0.456, 0.406]).tolist()
    assert weights["update_spynet.std"].flatten().tolist() == torch.tensor([0.229, 0.224, 0.225]).tolist()
    with pytest.raises(ValueError, match=r"valid_ind_rolled shape must be \(120,\) for a \(5, 9\) window, got \(99,\)"):
        seeded_state_dict({"x.attn.valid_ind_rolled": (99,)})


def test_seeded_state_dict_fills_by_role() -> None:
    weights = seeded_state_dict(load_layout("e2fgvi"))
    floats = {name: t for name, t in weights.items() if not name.endswith("valid_ind_rolled")}
    assert all(t.dtype == torch.float32 for t in floats.values())
    biases = [t for name, t in floats.items() if name.endswith("bias")]
    assert max(float(t.abs().max()) for t in biases) <= 0.05
    assert float(weights["sc.bias"].abs().max()) <= 0.05  # a 3-D bias is still a bias
    norm = weights["transformer.0.norm2.weight"]
    assert 0.9 <= float(norm.min()) and float(norm.max()) <= 1.1
    qkv = weights["transformer.0.attn.qkv.weight"].double()
    assert abs(float(qkv.var()) * 512 / 2.0 - 1.0) < 0.05  # variance gain 2 / fan_in
    decoder = weights["decoder.2.weight"].double()
    assert float(decoder.sum(dim=(1, 2, 3)).abs().max()) < 1e-5  # zero-sum decoder filters
    # SPyNet's flow-residual bias is nearly zero: doubled over 6 levels it would be a uniform flow
    for level in range(6):
        assert float(weights[f"update_spynet.basic_module.{level}.basic_module.4.conv.bias"].abs().max()) <= 0.002
    offset_head = weights["feat_prop_module.deform_align.forward_.conv_offset.6.weight"].double()
    assert abs(float(offset_head.var()) * 128 * 9 / 0.02 - 1.0) < 0.05  # small residual offsets


def test_golden_clip_is_deterministic_and_its_mask_moves() -> None:
    frames, masks = golden_clip(7, 100, 200)
    again, masks_again = golden_clip(7, 100, 200)
    assert frames.shape == (7, 100, 200, 3) and frames.dtype == np.uint8
    assert masks.shape == (7, 100, 200) and masks.dtype == bool
    assert np.array_equal(frames, again) and np.array_equal(masks, masks_again)
    shares = masks.mean(axis=(1, 2))
    assert np.all((shares > 0.02) & (shares < 0.2))
    assert all(not np.array_equal(masks[t], masks[t + 1]) for t in range(6))
    columns = [np.flatnonzero(m.any(axis=0)) for m in masks]
    assert columns[6].min() > columns[0].min()  # the ellipse drifts right
    assert not np.array_equal(frames[0], frames[1])  # the scene pans
    with pytest.raises(ValueError, match="clip must be at least 1 frame of 16x16, got 0x100x200"):
        golden_clip(0, 100, 200)


def _plan(length: int) -> list[list[int]]:
    """test.py's windows: neighbours f-5..f+5 for f = 0, 5, ..., then every 10th frame outside."""
    plan = []
    for f in range(0, length, 5):
        neighbors = list(range(max(0, f - 5), min(length, f + 6)))
        plan.append(neighbors + [i for i in range(0, length, 10) if i not in neighbors])
    return plan


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden_file_matches_its_inputs(name: str) -> None:
    path = GOLDENS / f"{name}.npz"
    assert path.stat().st_size < 2_000_000
    golden = np.load(path)
    variant, length = str(golden["variant"]), int(golden["frames"])
    height, width = int(golden["height"]), int(golden["width"])
    clip, masks = golden_clip(length, height, width)
    assert crc32_of([clip, masks]) == int(golden["clip_crc32"]), "golden_clip changed since the goldens were made"
    weights = seeded_state_dict(load_layout(variant), seed=int(golden["seed"]))
    assert crc32_of(weights.values()) == int(golden["weights_crc32"]), "the weight filler changed since then"

    assert golden["size"].tolist() == [height, width]  # both cases keep the clip's size
    model_h, model_w = (int(v) for v in golden["model_size"])
    assert model_h % 60 == 0 and model_w % 108 == 0 and 0 <= model_h - height < 60 and 0 <= model_w - width < 108

    plan = _plan(length)
    assert [[i for i in row if i >= 0] for row in golden["window_frames"].tolist()] == plan
    local = golden["window_local"].tolist()
    assert local == [len(range(max(0, f - 5), min(length, f + 6))) for f in range(0, length, 5)]

    # test.py's mask dilation: a 3x3 cross, 4 iterations
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    dilated = np.stack([cv2.dilate(m.astype(np.uint8), cross, iterations=4) > 0 for m in masks])
    assert np.array_equal(golden["dilated"], dilated)

    # final frames are stored inside the holes only (outside them test.py keeps the input pixels)
    final = golden["final_masked"]
    assert final.shape == (int(dilated.sum()), 3) and final.dtype == np.uint8
    assert float(np.abs(final.astype(int) - clip[dilated]).mean()) > 5  # the holes are filled anew
    near = golden["near_step"]  # values within 0.02 of a uint8 step in some window
    assert near.shape == clip.shape and not near[~dilated].any() and near.sum() < 0.25 * final.size

    stride = int(golden["raw_stride"])
    raw_keys = sorted(k for k in golden.files if k.startswith("raw_w"))
    assert raw_keys
    for key in raw_keys:
        window = int(key.removeprefix("raw_w"))
        raw = golden[key]
        assert raw.dtype == np.float32
        assert raw.shape == (len(plan[window]), 3, -(-height // stride), -(-width // stride))
        assert np.isfinite(raw).all() and float(np.abs(raw).max()) <= 1.0
        assert float((np.abs(raw) > 0.99).mean()) < 0.01 and float(raw.std()) > 0.1  # not saturated, not flat
    if "raw_full_w0_t0" in golden.files:
        full = golden["raw_full_w0_t0"]
        assert full.shape == (3, model_h, model_w)
        assert np.array_equal(full[:, :height:stride, :width:stride], golden["raw_w0"][0])
    flows = golden["flows_forward_w0"], golden["flows_backward_w0"]
    assert all(f.shape == (local[0] - 1, 2, model_h // 4, model_w // 4) for f in flows)
