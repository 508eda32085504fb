"""The JSON prompt file: round trip, errors, and a later entry of an id as a correcting reference."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from chain import run_filters

from cleanfeed.errors import PromptError
from cleanfeed.prompts.promptfile import load_prompts, prompts_to_json, save_prompts
from cleanfeed.prompts.shapes import Box, ObjectPrompt, Point
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.registry import create


def test_save_then_load_gives_the_same_prompts(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    mask = str(tmp_path / "m" / "obj2.png")
    prompts = [
        ObjectPrompt(1, 30, None, (Point(10.5, 20, True), Point(40, 20, False))),
        ObjectPrompt(1, 0, Box(1, 2, 30, 40)),
        ObjectPrompt(2, 0, None, (), mask),
    ]
    path = save_prompts(tmp_path / "p.json", prompts, extra={"video": "in.mp4"})
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["video"] == "in.mp4"
    assert [(o["id"], o["frame"]) for o in data["objects"]] == [(1, 0), (2, 0), (1, 30)]
    assert data["objects"][1]["mask"] == "m/obj2.png"  # relative to the file: the folder can move
    assert data["objects"][2]["points"] == [[10.5, 20.0, 1], [40.0, 20.0, 0]]
    back = load_prompts(path)
    assert sorted(back, key=lambda p: (p.frame, p.obj_id)) == sorted(prompts, key=lambda p: (p.frame, p.obj_id))


def test_bad_prompt_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="prompts file 'nope.json' does not exist"):
        load_prompts("nope.json")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(PromptError, match="must be JSON, got an unreadable file"):
        load_prompts(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"version": 2, "objects": []}))
    with pytest.raises(PromptError, match="must have \"version\": 1, got 2"):
        load_prompts(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"version": 1, "objects": []}))
    with pytest.raises(PromptError, match="must list at least one object under \"objects\", got \\[\\]"):
        load_prompts(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"version": 1, "objects": [{"id": 1, "box": [1, 2]}]}))
    with pytest.raises(PromptError, match="prompt must be"):
        load_prompts(tmp_path / "d.json")
    with pytest.raises(PromptError, match="must hold at least one object, got none"):
        save_prompts(tmp_path / "e.json", [])
    assert prompts_to_json([])["objects"] == []


def _jumping_logo(frames: int, jump_at: int) -> tuple[Caps, list[VideoFrame]]:
    """A textured 160x96 scene whose 24x16 logo jumps from the left to the right at ``jump_at``
    (a cut no tracker follows: only a new reference finds it there)."""
    rng = np.random.default_rng(3)
    scene = (rng.random((96, 160, 3)) * 120).astype(np.uint8)
    out = []
    for i in range(frames):
        rgb = scene.copy()
        x = 20 if i < jump_at else 110
        rgb[40:56, x:x + 24] = (250, 250, 250)
        rgb[44:52, x + 4:x + 20] = (230, 40, 40)
        out.append(VideoFrame.new(i, i, Fraction(1, 24), Picture.from_rgb(rgb, "yuv420p")))
    return Caps(160, 96, Fraction(24), Fraction(1, 24), frames=frames), out


def test_a_later_entry_of_an_id_is_a_new_reference_for_it(tmp_path: Path) -> None:
    caps, frames = _jumping_logo(12, jump_at=6)
    path = save_prompts(tmp_path / "p.json", [ObjectPrompt(1, 0, Box(18, 38, 46, 58)),
                                                ObjectPrompt(1, 6, Box(108, 38, 136, 58))])
    out = run_filters(caps, frames, [create("segment", {"prompts_file": str(path), "engine": "classical"}),
                                     create("track", {"engine": "classical"})])
    assert out[0].meta["reference"] == [1] and out[6].meta["reference"] == [1]
    for f in out:
        ys, xs = np.nonzero(f.mask == 1)
        assert len(xs), f"frame {f.seq} lost the object"
        side = "left" if xs.mean() < 80 else "right"
        assert side == ("left" if f.seq < 6 else "right"), f"frame {f.seq}: mask on the {side}"
