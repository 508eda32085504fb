"""DeAOT checkpoints: every official layout builds and loads strictly, variants are read from the weights,
wrong files say what they are, and frames are sized as upstream sizes them."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from deaot_tracking import save_checkpoint  # noqa: E402
from deaot_weights import load_layout, seeded_state_dict  # noqa: E402

from cleanfeed.engines.checkpoints import check_layout  # noqa: E402
from cleanfeed.engines.deaot.checkpoint import deaot_from_state_dict, load_deaot  # noqa: E402
from cleanfeed.engines.deaot.model import DeAOT  # noqa: E402
from cleanfeed.engines.deaot.variants import VARIANTS, model_size, recognise  # noqa: E402
from cleanfeed.errors import CheckpointError  # noqa: E402


def meta_state(variant: str) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in load_layout(variant).items()}


@pytest.mark.parametrize("variant", ["deaott", "deaots", "deaotb", "deaotl", "r50_deaotl", "swinb_deaotl"])
def test_every_official_layout_is_our_network(variant: str) -> None:
    with torch.device("meta"):
        net = DeAOT(VARIANTS[variant])
    check_layout(net.state_dict(), meta_state(variant), f"{variant} layout", "upstream")  # raises on any difference
    net.load_state_dict(meta_state(variant), strict=True, assign=True)


@pytest.mark.parametrize(
    ("variant", "model", "expected"),
    [
        ("deaott", "auto", "deaott"),
        ("deaots", "auto", "deaots"),
        ("deaotb", "auto", "deaotl"),  # B and L are one network: auto reports L (upstream's gap 5 for it)
        ("deaotl", "deaotb", "deaotb"),
        ("r50_deaotl", "auto", "r50_deaotl"),
        ("swinb_deaotl", "auto", "swinb_deaotl"),
    ],
)
def test_variant_is_read_from_the_weights(variant: str, model: str, expected: str) -> None:
    assert recognise(meta_state(variant), model).name == expected


def test_upstream_settings_per_variant() -> None:
    assert {n: a.long_term_gap for n, a in VARIANTS.items()} == {
        "deaott": 9999, "deaots": 9999, "deaotb": 9999, "deaotl": 5, "r50_deaotl": 5, "swinb_deaotl": 5,
    }


def test_file_loads_strictly_and_names_its_variant(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "renamed.pth", "deaott")
    net, arch = load_deaot(path)
    assert arch.name == "deaott" and not net.training
    reference = seeded_state_dict(load_layout("deaott"))
    assert all(torch.equal(v, reference[k]) for k, v in net.state_dict().items())


def test_mismatched_model_names_both(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "R50_DeAOTL_PRE_YTB_DAV.pth", "deaott")
    with pytest.raises(CheckpointError, match=r"must hold R50-DeAOT-L \(resnet50, 3 propagation layers\) weights for "
                       r"model=r50_deaotl, got DeAOT-T \(mobilenetv2, 1 propagation layer\) weights \(model=deaott\)"):
        load_deaot(path, "r50_deaotl")


def test_a_missing_or_reshaped_tensor_is_named() -> None:
    state = seeded_state_dict(load_layout("deaott"))
    state.pop("id_norm.bias")
    with pytest.raises(CheckpointError, match=r"must match the DeAOT-T .* layout, got tensors 1 missing \(e.g. id_norm.bias\)"):
        deaot_from_state_dict(state)
    state = seeded_state_dict(load_layout("deaott"))
    state["LSTT.layers.0.linear_U.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"1 of another shape \(e.g. LSTT.layers.0.linear_U.weight \(3, 3\) vs \(512, 256\)\)"):
        deaot_from_state_dict(state)


def test_foreign_files_say_what_they_are(tmp_path: Path) -> None:
    sam = {"image_encoder.a": torch.zeros(1), "prompt_encoder.b": torch.zeros(1), "mask_decoder.c": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="is a SAM checkpoint, expected a DeAOT checkpoint"):
        deaot_from_state_dict(sam)
    with pytest.raises(CheckpointError, match=r"is not a DeAOT checkpoint: it holds 1 tensors under fc"):
        deaot_from_state_dict({"fc.weight": torch.zeros(1)})
    aot = {k: v for k, v in meta_state("deaott").items() if not k.startswith("id_norm")}
    with pytest.raises(CheckpointError, match=r"plain AOT weights \(no id_norm\)"):
        recognise(aot)
    with pytest.raises(CheckpointError, match="DeAOT model must be auto or one of deaott, .*, got 'aott'"):
        load_deaot(tmp_path / "x.pth", "aott")


@pytest.mark.parametrize(
    ("size", "variant", "expected"),
    [
        ((480, 854), "r50_deaotl", (481, 849)),  # the 849x481
        ((1080, 1920), "r50_deaotl", (577, 1041)),  # 585 -> (584/16 = 36.5 -> 36, half to even) -> 577
        ((100, 170), "deaott", (97, 177)),
        ((720, 1280), "deaott", (577, 1041)),
        ((480, 854), "swinb_deaotl", (480, 848)),  # Swin: multiples of 16
        ((1041, 577), "deaott", (1041, 577)),  # already 16k+1: untouched
        ((5, 9), "deaott", (17, 17)),  # never below one token
    ],
)
def test_model_size_follows_upstreams_rounding(size: tuple[int, int], variant: str, expected: tuple[int, int]) -> None:
    assert model_size(*size, VARIANTS[variant]) == expected
