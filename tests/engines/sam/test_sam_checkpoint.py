"""SAM checkpoints: strict round trip, the official layouts, the size read from the file, and every bad file."""

from __future__ import annotations

import datetime
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from cleanfeed.engines.checkpoints import checkpoint_sha256, identify, read_state_dict
from cleanfeed.engines.sam.checkpoint import arch_from_state_dict, load_sam, sam_from_state_dict
from cleanfeed.engines.sam.package import sam_package
from cleanfeed.engines.sam.variants import OFFICIAL_FILES, PIXEL_MEAN, PIXEL_STD, VARIANTS, SamArch, build
from cleanfeed.errors import CheckpointError

# Parameter counts of the official models (image encoder + prompt encoder + mask decoder), as published.
OFFICIAL_PARAMS = {"vit_b": 93_735_472, "vit_l": 312_342_832, "vit_h": 641_090_608}


def test_round_trip_is_strict_and_exact(tiny_sam: Any, tiny_checkpoint: Path, tiny_arch: SamArch) -> None:
    sam, arch = load_sam(tiny_checkpoint)
    assert arch == tiny_arch
    assert arch.name == "custom"
    original = tiny_sam.state_dict()
    loaded = sam.state_dict()
    assert loaded.keys() == original.keys()
    for key, tensor in original.items():
        assert torch.equal(loaded[key], tensor), key
    tensors = [*sam.parameters(), *sam.buffers()]
    assert not any(t.is_meta for t in tensors)
    assert all(t.dtype == torch.float32 and not t.requires_grad for t in tensors)
    assert not sam.training
    assert torch.equal(sam.pixel_mean, tiny_sam.pixel_mean) and torch.equal(sam.pixel_std, tiny_sam.pixel_std)
    assert sam.pixel_mean.flatten().tolist() == pytest.approx(PIXEL_MEAN)
    assert sam.pixel_std.flatten().tolist() == pytest.approx(PIXEL_STD)


def test_tiny_checkpoint_given_an_official_size_is_refused(tiny_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        load_sam(tiny_checkpoint, "vit_b")
    assert str(err.value) == (
        f"'{tiny_checkpoint}' is a SAM checkpoint of a custom size (embed dim 32, 2 blocks), "
        "expected vit_b (embed dim 768, 12 blocks)"
    )


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_official_layout_is_what_the_loader_expects(name: str) -> None:
    public_builder = getattr(sam_package().build_sam, f"build_sam_{name}")
    with torch.device("meta"):
        official_model = public_builder()  # the package's public builder, on meta: no weights
    official = official_model.state_dict()
    assert sum(p.numel() for p in official_model.parameters()) == OFFICIAL_PARAMS[name]
    arch = arch_from_state_dict(official)
    assert arch == VARIANTS[name]
    expected = build(arch, "meta").state_dict()
    assert {k: tuple(v.shape) for k, v in expected.items()} == {k: tuple(v.shape) for k, v in official.items()}
    sam, loaded_arch = sam_from_state_dict(official, name)  # strict load of the meta tensors
    assert loaded_arch == VARIANTS[name]
    assert sam.image_encoder.blocks[arch.global_attn_indexes[0]].window_size == 0
    assert OFFICIAL_FILES[name].startswith(f"sam_{name}_")


def test_official_variants_are_named_from_their_numbers() -> None:
    assert SamArch("custom", 768, 12, 12, (2, 5, 8, 11)).named() == VARIANTS["vit_b"]
    assert SamArch("custom", 768, 12, 12, (2, 5, 8)).named().name == "custom"


def test_vit_b_file_given_as_vit_h_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(_partial_layout(VARIANTS["vit_b"]), path)
    with pytest.raises(CheckpointError) as err:
        load_sam(path, "vit_h")
    assert str(err.value) == (
        f"'{path}' is a SAM vit_b checkpoint (embed dim 768, 12 blocks), expected vit_h (embed dim 1280, 32 blocks)"
    )
    with pytest.raises(
        CheckpointError,
        match=r"must match the SAM vit_b layout \(embed dim 768, 12 blocks\), got "
        r"tensors \d+ missing \(e\.g\. image_encoder\.pos_embed\), 1 unexpected \(e\.g\. mask_decoder\.x\)",
    ):
        load_sam(path)


def test_reshaped_tensor_is_named(tiny_sam: Any, tmp_path: Path) -> None:
    state = dict(tiny_sam.state_dict())
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 128)
    path = tmp_path / "reshaped.pth"
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=re.escape("1 of another shape (e.g. mask_decoder.iou_token.weight (1, 128) vs (1, 256))")
    ):
        load_sam(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "sam_vit_h_4b8939.pth"
    with pytest.raises(CheckpointError) as err:
        load_sam(path)
    assert str(err.value) == f"checkpoint must be an existing file, got '{path}' (not found)"
    with pytest.raises(CheckpointError, match="must be a file, got .* \\(not a regular file\\)"):
        load_sam(tmp_path)


def test_truncated_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    data = tiny_checkpoint.read_bytes()
    path = tmp_path / "sam_vit_b_01ec64.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_sam(path)
    assert str(err.value) == (
        f"checkpoint must be a complete PyTorch checkpoint file, got '{path}' "
        f"(truncated: a zip archive without its end, {len(data) // 2} bytes; download it again)"
    )


def test_truncated_legacy_file(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    torch.save({"a": torch.zeros(1000)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(read_state_dict(path)["a"], torch.zeros(1000))  # the old format loads (without mmap)
    path.write_bytes(path.read_bytes()[:2000])  # cut inside the tensor data, where a stopped download ends
    with pytest.raises(CheckpointError, match=r"got '.*legacy.pth' \(truncated; download it again\)"):
        load_sam(path)


def test_text_and_empty_files(tmp_path: Path) -> None:
    text = tmp_path / "sam_vit_b_01ec64.pth"
    text.write_text("<html><body>404 Not Found</body></html>\n")
    with pytest.raises(CheckpointError) as err:
        load_sam(text)
    assert str(err.value) == (
        f"checkpoint must be a PyTorch checkpoint file, got '{text}' "
        "(not a checkpoint: a text file starting '<html><body>404 Not Foun')"
    )
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"got '.*empty.pth' \(empty file\)"):
        load_sam(empty)


def test_binary_and_pickled_objects(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pth"
    noise.write_bytes(bytes(range(7, 256)) * 4)
    with pytest.raises(CheckpointError, match=r"\(not a checkpoint: binary data torch cannot read, starting 07 08 09"):
        load_sam(noise)
    objects = tmp_path / "objects.pth"
    torch.save({"created": datetime.date(2023, 4, 5)}, objects)
    with pytest.raises(
        CheckpointError, match=r"\(it holds a Python object \(datetime.date\), not only tensors; refusing"
    ):
        load_sam(objects)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listing)
    with pytest.raises(
        CheckpointError, match=r"must hold a state dict \(parameter name -> tensor\), got .* holding a list"
    ):
        load_sam(listing)


def test_deaot_checkpoint_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "DeAOTL_PRE_YTB_DAV.pth"
    torch.save({"state_dict": _deaot_state(), "optimizer": {"state": {}, "param_groups": []}}, path)
    with pytest.raises(CheckpointError) as err:
        load_sam(path, "vit_b")
    assert str(err.value) == f"'{path}' is a DeAOT checkpoint, expected a SAM checkpoint (vit_b)"


def test_e2fgvi_checkpoint_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "E2FGVI-HQ-CVPR22.pth"
    torch.save(_e2fgvi_state(), path)
    with pytest.raises(CheckpointError) as err:
        load_sam(path)
    assert str(err.value) == f"'{path}' is an E2FGVI checkpoint, expected a SAM checkpoint (vit_b, vit_l or vit_h)"


def test_unknown_checkpoint_lists_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError) as err:
        load_sam(path)
    assert str(err.value) == (
        f"'{path}' is not a SAM checkpoint: it holds 3 tensors under conv1, fc, "
        "expected SAM vit_b, vit_l or vit_h (tensors under image_encoder, prompt_encoder, mask_decoder)"
    )


def test_unknown_model_name(tiny_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match=r"^SAM model must be one of vit_b, vit_l, vit_h, got 'vit_x'$"):
        load_sam(tiny_checkpoint, "vit_x")


def test_identify_families(tiny_sam: Any) -> None:
    assert identify(tiny_sam.state_dict()) == "SAM"
    assert identify(_deaot_state()) == "DeAOT"
    assert identify({f"module.{k}": v for k, v in _deaot_state().items()}) == "DeAOT"
    assert identify(_e2fgvi_state()) == "E2FGVI"
    aot = {k: v for k, v in _deaot_state().items() if not k.startswith("id_norm")}
    assert identify(aot) == "unknown"  # AOT (without DeAOT's id_norm) is another model
    assert identify({}) == "unknown"


def test_wrappers_and_prefixes_are_unwrapped(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"model": {"module.a.weight": torch.ones(2)}, "epoch": 3}, path)
    assert list(read_state_dict(path)) == ["a.weight"]


def test_checkpoint_sha256(tiny_checkpoint: Path, tmp_path: Path) -> None:
    assert checkpoint_sha256(tiny_checkpoint) == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    path = tmp_path / "changing.pth"
    path.write_bytes(b"one")
    first = checkpoint_sha256(path)
    path.write_bytes(b"three")  # another size: not served from the cache
    assert first == hashlib.sha256(b"one").hexdigest()
    assert checkpoint_sha256(path) == hashlib.sha256(b"three").hexdigest()
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint_sha256(tmp_path / "absent.pth")


def _partial_layout(arch: SamArch) -> dict[str, torch.Tensor]:
    """The tensors the size is read from, at their official shapes; the rest of a real file left out."""
    state = {"image_encoder.patch_embed.proj.weight": torch.zeros(arch.embed_dim, 3, 16, 16)}
    head_dim = arch.embed_dim // arch.num_heads
    for i in range(arch.depth):
        rows = 127 if i in arch.global_attn_indexes else 27
        state[f"image_encoder.blocks.{i}.attn.rel_pos_h"] = torch.zeros(rows, head_dim)
    state["prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 256)
    state["mask_decoder.x"] = torch.zeros(1)
    return state


def _deaot_state() -> dict[str, torch.Tensor]:
    """Key names of aot-benchmark's DeAOT (networks/models/deaot.py, layers/transformer.py), tiny tensors."""
    names = [
        "encoder.features.0.0.weight",
        "encoder_projector.weight",
        "encoder_projector.bias",
        "LSTT.layers.0.linear_QV.weight",
        "LSTT.layers.0.linear_ID_KV.weight",
        "LSTT.decoder_norms.0.weight",
        "decoder.conv_in.conv.weight",
        "patch_wise_id_bank.weight",
        "id_norm.weight",
        "id_norm.bias",
    ]
    return {name: torch.zeros(2) for name in names}


def _e2fgvi_state() -> dict[str, torch.Tensor]:
    """Key names of E2FGVI-HQ's InpaintGenerator (model/e2fgvi_hq.py), tiny tensors."""
    names = [
        "encoder.layers.0.weight",
        "decoder.0.conv.weight",
        "feat_prop_module.deform_align.backward_.conv_offset.0.weight",
        "ss.embedding.weight",
        "sc.embedding.weight",
        "transformer.0.attention.qkv.weight",
        "update_spynet.basic_module.0.basic_module.0.weight",
    ]
    return {name: torch.zeros(2) for name in names}
