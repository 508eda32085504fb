"""Which engine `segment` runs: checkpoint given, found in the models folder, or classical, and why."""

from __future__ import annotations

import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from cleanfeed.engines.models import find_checkpoint, models_dir
from cleanfeed.errors import CheckpointError
from cleanfeed.stream.adapters.segment_sam import OFFICIAL_FILES, choose
from cleanfeed.stream.registry import create


def test_models_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLEANFEED_MODELS", str(tmp_path / "env"))
    assert models_dir(tmp_path / "given") == tmp_path / "given"
    assert models_dir(None) == tmp_path / "env"
    monkeypatch.delenv("CLEANFEED_MODELS")
    assert models_dir(None) == Path("~/.cache/cleanfeed/models").expanduser()


def test_find_checkpoint_prefers_in_order(tmp_path: Path) -> None:
    (tmp_path / OFFICIAL_FILES["vit_b"]).write_bytes(b"x")
    (tmp_path / OFFICIAL_FILES["vit_l"]).write_bytes(b"x")
    assert find_checkpoint(OFFICIAL_FILES, tmp_path, ("vit_h", "vit_l", "vit_b")) == (
        "vit_l", tmp_path / OFFICIAL_FILES["vit_l"])
    assert find_checkpoint(OFFICIAL_FILES, tmp_path, ("vit_h",)) is None


def test_auto_without_checkpoint_is_classical_and_says_where_it_looked(no_user_models: Path) -> None:
    choice, why = choose("auto", None, "auto", None)
    assert choice is None
    assert str(no_user_models) in why and "sam_vit_h_4b8939.pth" in why


def test_auto_finds_the_largest_official_file(tmp_path: Path) -> None:
    for variant in ("vit_b", "vit_h"):
        (tmp_path / OFFICIAL_FILES[variant]).write_bytes(b"x")
    choice, why = choose("auto", None, "auto", str(tmp_path))
    assert choice is not None and choice.checkpoint == tmp_path / "sam_vit_h_4b8939.pth"
    assert choice.model is None  # the file's own architecture decides
    assert "sam_vit_h_4b8939.pth" in why


def test_model_narrows_the_search(tmp_path: Path) -> None:
    (tmp_path / OFFICIAL_FILES["vit_h"]).write_bytes(b"x")
    choice, _ = choose("auto", None, "vit_b", str(tmp_path))
    assert choice is None
    (tmp_path / OFFICIAL_FILES["vit_b"]).write_bytes(b"x")
    choice, _ = choose("auto", None, "vit_b", str(tmp_path))
    assert choice is not None and choice.model == "vit_b" and choice.checkpoint.name == "sam_vit_b_01ec64.pth"


def test_classical_ignores_checkpoints(tmp_path: Path) -> None:
    (tmp_path / OFFICIAL_FILES["vit_b"]).write_bytes(b"x")
    assert choose("classical", None, "auto", str(tmp_path))[0] is None


def test_sam_without_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"engine=sam needs a SAM checkpoint.*found none"):
        choose("sam", None, "auto", str(tmp_path))


def test_missing_checkpoint_file_fails_when_the_element_is_built(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"SAM checkpoint '.*nope.pth' must be a file, got nothing there"):
        create("segment", {"box": (1, 1, 5, 5), "checkpoint": str(tmp_path / "nope.pth")})


def test_engine_choice_is_said_once_by_the_command_not_logged_by_the_element(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The command prints every stage's engine in one line (Pipeline.engine_choices); the element's
    own start says nothing at the default level, so the choice is never said twice."""
    from cleanfeed.stream.buffers import Caps
    from cleanfeed.stream.element import EngineChoice

    seg = create("segment", {"box": (1, 1, 9, 9), "models": str(tmp_path)})
    assert seg.engine_choice() == EngineChoice("GrabCut", "no SAM checkpoint", str(tmp_path))
    with caplog.at_level(logging.INFO):
        seg.start(Caps(width=32, height=32, rate=Fraction(25), time_base=Fraction(1, 25)))
    assert not [r.getMessage() for r in caplog.records if "engine" in r.getMessage()]
    classical = create("segment", {"box": (1, 1, 9, 9), "engine": "classical"})
    assert classical.engine_choice() == EngineChoice("GrabCut", "engine=classical")


def test_cli_sam_flags_build_the_segment_element(tmp_path: Path) -> None:
    ckpt = tmp_path / "sam.pth"
    ckpt.write_bytes(b"x")
    out = subprocess.run(
        [sys.executable, "-m", "cleanfeed.stream.cli.main", "run", "in.mp4", "-o", "out.mp4", "--box", "1,1,5,5",
         "--sam", str(ckpt), "--device", "cpu", "--precision", "bf16", "--print-pipeline"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert f"segment frame=0 engine=sam checkpoint={ckpt} device=cpu precision=bf16 box=1,1,5,5 ! track" in out


def test_cli_missing_sam_file_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cleanfeed.stream.cli.main", "run", "in.mp4", "-o", str(tmp_path / "o.mp4"), "--box", "1,1,5,5",
         "--sam", str(tmp_path / "missing.pth")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"cleanfeed: error: SAM checkpoint '{tmp_path / 'missing.pth'}' must be a file, got nothing there"]


def test_one_conversion_from_prompts_to_sam_serves_the_element_and_the_app() -> None:
    import numpy as np

    from cleanfeed.prompts.shapes import Box, ObjectPrompt, Point
    from cleanfeed.stream.adapters.segment_sam import sam_prompt

    p = sam_prompt(ObjectPrompt(1, 0, Box(1, 2, 30, 40), (Point(5, 6), Point(7.5, 8, False))))
    assert p.points.dtype == np.float32 and p.points.tolist() == [[5, 6], [7.5, 8]]
    assert p.labels.dtype == np.int64 and p.labels.tolist() == [1, 0]
    assert p.box == (1.0, 2.0, 30.0, 40.0) and p.mask_logits is None
    empty = sam_prompt(ObjectPrompt(2, 0, None, ()), np.zeros((256, 256), np.float32))
    assert empty.points.shape == (0, 2) and empty.box is None and empty.mask_logits.shape == (256, 256)
    for module in ("gui/masker.py", "adapters/segment_sam.py"):  # nobody builds SAM's arrays by hand again
        source = (Path(__file__).resolve().parents[2] / "stream" / module).read_text(encoding="utf-8")
        assert source.count("SamPrompt(") == (1 if module.endswith("segment_sam.py") else 0), module
