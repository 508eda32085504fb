"""E2FGVI checkpoints: the official HQ layout loads strictly, the 432x240 release is told apart by
its soft composition (tests/engines/e2fgvi/test_e2fgvi_432.py loads it), and foreign or damaged
files say what they are."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from e2fgvi_weights import load_layout, seeded_state_dict  # noqa: E402

from cleanfeed.engines.e2fgvi.checkpoint import e2fgvi_from_state_dict, load_e2fgvi, variant_of  # noqa: E402
from cleanfeed.errors import CheckpointError  # noqa: E402


def meta_state(variant: str) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in load_layout(variant).items()}


def test_the_official_hq_file_loads_strictly(tmp_path: Path) -> None:
    state = seeded_state_dict(load_layout("e2fgvi_hq"))
    path = tmp_path / "renamed.pth"
    torch.save(state, path)  # the authors release a plain state dict
    net, variant = load_e2fgvi(path)
    assert variant == "e2fgvi_hq" and not net.training
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_variants_are_told_apart_by_their_soft_composition() -> None:
    assert variant_of(meta_state("e2fgvi_hq")) == "e2fgvi_hq"
    assert variant_of(meta_state("e2fgvi")) == "e2fgvi"
    with pytest.raises(CheckpointError, match=r"holds E2FGVI-HQ \(any frame size\) weights, expected E2FGVI \(fixed 432x240\)"):
        e2fgvi_from_state_dict(meta_state("e2fgvi_hq"), "e2fgvi")


def test_a_missing_tensor_is_named() -> None:
    state = seeded_state_dict(load_layout("e2fgvi_hq"))
    state.pop("update_spynet.mean")
    with pytest.raises(CheckpointError, match=r"must match the E2FGVI-HQ .* layout, got tensors 1 missing \(e.g. update_spynet.mean\)"):
        e2fgvi_from_state_dict(state)


def test_foreign_files_say_what_they_are() -> None:
    sam = {"image_encoder.a": torch.zeros(1), "prompt_encoder.b": torch.zeros(1), "mask_decoder.c": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="is a SAM checkpoint, expected an E2FGVI checkpoint"):
        e2fgvi_from_state_dict(sam)
    with pytest.raises(CheckpointError, match="is not an E2FGVI checkpoint: it holds 1 tensors under fc"):
        e2fgvi_from_state_dict({"fc.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="E2FGVI model must be auto or one of e2fgvi_hq, e2fgvi, got 'propainter'"):
        load_e2fgvi("x.pth", "propainter")
