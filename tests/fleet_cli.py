"""Running `cleanfeed fleet` from tests: a testsrc clip to feed it, the command started as a
process with this checkout first on its path, and its stats file read while it may be half written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def make_testsrc_clip(path: Path, frames: int, seed: int) -> None:
    from cleanfeed.stream.pipeline import Pipeline

    Pipeline.from_launch(f"testsrc width=160 height=96 frames={frames} rate=25 seed={seed} ! "
                         f"filesink location={path}").run(mode="thread")


def start_fleet(fleet_file: Path, *args: str, tmp: Path | None = None) -> tuple[subprocess.Popen[str], Path]:
    """``tmp``: the fleet's TMPDIR, where its actors' temp folders go (Ray's own stay in /tmp:
    a deep TMPDIR would make its socket paths too long)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if tmp is not None:
        tmp.mkdir(exist_ok=True)
        env.update(TMPDIR=str(tmp), RAY_TMPDIR="/tmp")
    err = fleet_file.with_suffix(".err")
    with open(err, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cleanfeed.stream.cli.main", "fleet", str(fleet_file), *args],
                                cwd=fleet_file.parent, env=env, stdout=subprocess.DEVNULL, stderr=fh, text=True)
    return proc, err


def read_stats(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"feeds": {}}
