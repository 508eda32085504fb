"""The DeAOT reference data agrees with itself: layouts, seeded weights, clip and golden files.

The port's parity test trusts these files; if the weight filler or the clip generator drifts
from what the goldens were made with, this test names the culprit instead of a parity failure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from deaot_weights import LAYOUTS_PATH, crc32_of, golden_clip, load_layout, seeded_state_dict

GOLDENS = Path(__file__).resolve().parent / "goldens"
CASE_NAMES = ("deaott_3obj", "r50_deaotl_3obj", "deaott_12obj", "deaots_3obj")
# variant -> (LSTT layers, encoder output channels, id-bank kernel)
VARIANTS = {
    "deaott": (1, 1280, 17),
    "deaots": (2, 1280, 17),
    "deaotb": (3, 1280, 17),
    "deaotl": (3, 1280, 17),
    "r50_deaotl": (3, 1024, 17),
    "swinb_deaotl": (3, 512, 16),
}
MAX_IDS = 11  # 10 objects + background per sub-engine


def _layouts() -> dict:
    return json.loads(LAYOUTS_PATH.read_text())


def test_layouts_name_the_upstream_source() -> None:
    source = _layouts()["_source"]
    assert source["commit"] == "601c138"
    assert source["repo"].endswith("yoxu515/aot-benchmark")
    assert set(_layouts()) == {"_source", *VARIANTS}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_layout_has_the_deaot_parts(variant: str) -> None:
    layers, encoder_dim, kernel = VARIANTS[variant]
    layout = load_layout(variant)
    assert layout["patch_wise_id_bank.weight"] == (256, MAX_IDS, kernel, kernel)
    assert layout["id_norm.weight"] == layout["id_norm.bias"] == (256,)
    assert layout["encoder_projector.weight"] == (256, encoder_dim, 1, 1)
    assert layout["decoder.conv_out.weight"] == (MAX_IDS, 128, 1, 1)
    assert layout["decoder.conv_in.conv.weight"] == (256, 512, 1, 1)
    indices = {int(name.split(".")[2]) for name in layout if name.startswith("LSTT.layers.")}
    assert indices == set(range(layers))
    assert layout["LSTT.layers.0.linear_ID_V.weight"] == (512, 256)
    assert "LSTT.layers.0.linear_ID_U.weight" not in layout  # only deeper layers read the id stream
    for index in range(1, layers):
        assert layout[f"LSTT.layers.{index}.linear_ID_V.weight"] == (512, 512)
        assert layout[f"LSTT.layers.{index}.id_norm1.weight"] == (256,)
    assert layout["LSTT.decoder_norms.0.gn.weight"] == (512,)
    frozen_bn = [name for name in layout if name.endswith(".running_var")]
    assert bool(frozen_bn) == (variant != "swinb_deaotl")
    for name in frozen_bn:
        stem = name.removesuffix("running_var")
        assert {stem + leaf for leaf in ("weight", "bias", "running_mean")} <= set(layout)


def test_deaot_b_and_l_share_one_network() -> None:
    assert load_layout("deaotb") == load_layout("deaotl")
    assert len(load_layout("deaott")) == 325
    assert len(load_layout("swinb_deaotl")) == 463


def test_load_layout_rejects_unknown_variants() -> None:
    with pytest.raises(KeyError, match="variant must be one of .*'deaott'.*got 'deaotx'"):
        load_layout("deaotx")
    with pytest.raises(KeyError, match="got '_source'"):
        load_layout("_source")


def test_seeded_state_dict_is_deterministic_and_keyed_by_name() -> None:
    layout = load_layout("deaott")
    first = seeded_state_dict(layout)
    again = seeded_state_dict(layout)
    assert list(first) == list(layout)
    assert all(torch.equal(first[name], again[name]) for name in layout)
    picked = ["decoder.conv_out.weight", "LSTT.layers.0.norm1.weight", "encoder.features.3.conv.3.running_var"]
    partial = seeded_state_dict({name: layout[name] for name in reversed(picked)})
    assert all(torch.equal(partial[name], first[name]) for name in picked)
    deeper = seeded_state_dict(load_layout("deaots"))
    assert torch.equal(deeper["LSTT.layers.0.linear_QV.weight"], first["LSTT.layers.0.linear_QV.weight"])
    other_seed = seeded_state_dict({name: layout[name] for name in picked}, seed=1)
    assert not any(torch.equal(other_seed[name], first[name]) for name in picked)


def test_seeded_state_dict_fills_by_role() -> None:
    weights = seeded_state_dict(load_layout("r50_deaotl"))
    assert all(t.dtype == torch.float32 for t in weights.values())
    running_var = [t for name, t in weights.items() if name.endswith("running_var")]
    assert min(float(t.min()) for t in running_var) >= 0.75
    assert float(weights["id_norm.weight"].min()) > 0.85
    assert float(weights["decoder.conv_in.conv.bias"].abs().max()) <= 0.05
    projector = weights["encoder_projector.weight"]
    assert abs(float(projector.var()) * 1024 - 1.0) < 0.05  # variance 1 / fan_in
    out = weights["decoder.conv_out.weight"].double()
    assert float(out.sum(dim=(1, 2, 3)).abs().max()) < 1e-5  # zero-sum filters


def test_swin_relative_position_index_is_the_constant_not_noise() -> None:
    weights = seeded_state_dict({"blocks.0.attn.relative_position_index": (4, 4)})
    index = weights["blocks.0.attn.relative_position_index"]
    assert index.dtype == torch.int64
    assert index.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    swin = seeded_state_dict({"x.relative_position_index": (49, 49)})["x.relative_position_index"]
    assert int(swin.min()) == 0 and int(swin.max()) == 13 * 13 - 1
    with pytest.raises(ValueError, match=r"must be \(W\*W, W\*W\), got \(4, 5\)"):
        seeded_state_dict({"x.relative_position_index": (4, 5)})


def test_golden_clip_is_deterministic_and_shows_every_object() -> None:
    frames, label0 = golden_clip(12, 3, 100, 170)
    again, label_again = golden_clip(12, 3, 100, 170)
    assert frames.shape == (3, 100, 170, 3) and frames.dtype == np.uint8
    assert label0.shape == (100, 170) and label0.dtype == np.uint8
    assert np.array_equal(frames, again) and np.array_equal(label0, label_again)
    assert set(np.unique(label0).tolist()) == set(range(13))
    assert not np.array_equal(frames[0], frames[1])  # the shapes move
    with pytest.raises(ValueError, match="num_objects must be in 1..255, got 0"):
        golden_clip(0, 3, 100, 170)


def _restricted(size: int) -> int:
    """Upstream's test resize for align_corners models: the nearest 16k+1 (no scaling below 1040)."""
    return size if (size - 1) % 16 == 0 else int(np.around((size - 1) / 16) * 16 + 1)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden_file_matches_its_inputs(name: str) -> None:
    path = GOLDENS / f"{name}.npz"
    assert path.stat().st_size < 1_000_000
    golden = np.load(path)
    variant, objects = str(golden["variant"]), int(golden["num_objects"])
    frames, height, width = int(golden["frames"]), int(golden["height"]), int(golden["width"])
    assert name.startswith(variant) and int(golden["long_term_mem_gap"]) == 2
    # reference frame plus one every 2 frames, per sub-engine
    assert golden["long_term_frames"].tolist() == [1 + (frames - 1) // 2] * math.ceil(objects / 10)

    clip, label0 = golden_clip(objects, frames, height, width)
    assert crc32_of([clip, label0]) == int(golden["clip_crc32"]), "golden_clip changed since the goldens were made"
    weights = seeded_state_dict(load_layout(variant), seed=int(golden["seed"]))
    assert crc32_of(weights.values()) == int(golden["weights_crc32"]), "the weight filler changed since then"

    model_h, model_w = (int(v) for v in golden["model_size"])
    assert (model_h, model_w) == (_restricted(height), _restricted(width)) != (height, width)
    engines = math.ceil(objects / 10)
    logits = golden["sub_logits"]
    assert logits.dtype == np.float32
    assert logits.shape == (frames - 1, engines, MAX_IDS, (model_h - 1) // 4 + 1, (model_w - 1) // 4 + 1)
    for engine in range(engines):
        used = min(10, objects - 10 * engine) + 1
        assert np.all(logits[:, engine, used:] == np.float32(-1e10))
        live = logits[:, engine, :used]
        assert np.isfinite(live).all() and 0.5 < float(np.abs(live).max()) < 50

    labels, near_tie = golden["labels"], golden["near_tie"]
    assert labels.shape == near_tie.shape == (frames - 1, height, width) and labels.dtype == np.uint8
    assert int(labels.max()) <= objects and float(near_tie.mean()) < 0.01
    for label in labels:
        background = float((label == 0).mean())
        assert 0.01 < background < 0.99 and len(np.unique(label)) >= 3
