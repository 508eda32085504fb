"""What a feed actor killed with its Ray worker leaves (its temp folder, its try's hidden part
file) is removed by the next sweep, and only that: a part file that was there before the try,
and the folder of an actor or a try process still alive, are left alone. No Ray needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cleanfeed.stream.fleet import ray_side


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _folder(tmp: Path, owner: int, output: Path, before: list[Path], pid: int) -> Path:
    folder = tmp / f"{ray_side.FOLDER_PREFIX}{owner}-abcd1234"
    folder.mkdir()
    (folder / ray_side.TRY_FILE).write_text(json.dumps({"output": str(output), "before": [str(p) for p in before],
                                                        "pid": pid}))
    return folder


def test_a_dead_actors_folder_and_its_tries_part_file_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    output = tmp_path / "out" / "a.mp4"
    output.parent.mkdir()
    old, new = output.with_name(".a.mp4.00000000.part"), output.with_name(".a.mp4.11111111.part")
    other = output.with_name(".b.mp4.22222222.part")
    for part in (old, new, other):
        part.write_bytes(b"x")
    dead = _folder(tmp_path, _dead_pid(), output, [old], _dead_pid())
    assert ray_side.sweep() == 1
    assert not dead.exists() and not new.exists()
    assert old.exists() and other.exists()


def test_a_living_actor_or_try_keeps_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    output = tmp_path / "a.mp4"
    part = output.with_name(".a.mp4.11111111.part")
    part.write_bytes(b"x")
    mine = _folder(tmp_path, os.getpid(), output, [], _dead_pid())
    (tmp_path / "live").mkdir()
    finalizing = _folder(tmp_path / "live", _dead_pid(), output, [], os.getpid())  # its process finalizes still
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert ray_side.sweep() == 0
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "live"))
    assert ray_side.sweep() == 0
    assert mine.exists() and finalizing.exists() and part.exists()
    (tmp_path / "cleanfeed-feed-q1w2e3").mkdir()  # a folder of the first naming: no pid to judge by
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert ray_side.sweep() == 0
