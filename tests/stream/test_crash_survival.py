"""Crash survival: a stage process killed mid-stream is restarted and no frame is lost;
one that dies every time stops the run with a clear message and a finalized output."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest

from cleanfeed.errors import ElementError, PropertyError
from cleanfeed.stream.pipeline import Pipeline, Progress
from cleanfeed.stream.shm import PREFIX, SHM_DIR
from cleanfeed.stream.testclip import SyntheticClip
from tests.stream import fake_elements  # noqa: F401  (registers the t_* elements)
from tests.stream.fake_elements import expected_crcs
from tests.stream.runtime_checks import element_processes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    assert element_processes(os.getpid()) == []
    assert multiprocessing.active_children() == []
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(f"{PREFIX}{os.getpid()}-")]


class KillWhen:
    """A progress callback that SIGKILLs the process whose pid is the first line of
    ``pidfile`` once ``frames`` frames reached the sink (once)."""

    def __init__(self, pidfile: Path, frames: int) -> None:
        self.pidfile, self.frames, self.killed = pidfile, frames, 0

    def __call__(self, p: Progress) -> None:
        if not self.killed and p.frames_out >= self.frames:
            self.killed = int(self.pidfile.read_text().split()[0])
            os.kill(self.killed, signal.SIGKILL)


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]


@pytest.mark.parametrize("after", ["t_lookahead depth=2", "identity"])
def test_a_slow_stage_killed_mid_stream_is_restarted_and_every_frame_arrives(tmp_path, after) -> None:
    out, pidfile = tmp_path / "rec.json", tmp_path / "pids"
    pipe = Pipeline.from_launch(
        f"t_countsrc frames=80 ! identity ! t_slow ms=15 pidfile={pidfile} ! {after} ! t_recordsink location={out}",
        max_restarts=3,
    )
    kill = KillWhen(pidfile, 20)
    report = pipe.run(progress=kill, stats_every_s=0.05)
    rec = json.loads(out.read_text())
    assert kill.killed and len(set(_pids(pidfile))) == 2  # killed once, started twice
    assert rec["finished"] is True
    assert rec["seqs"] == list(range(80))  # every frame once, in order: the ones in flight were re-sent
    assert rec["crcs"] == expected_crcs(80)  # with their own pixels and masks
    assert (report.frames_in, report.frames_out, report.dropped) == (80, 80, 0)
    assert report.restarts == 1 and report.stages["t_slow"]["restarts"] == 1
    assert report.to_json()["restarts"] == 1 and report.error is None


def test_a_stage_holding_frames_dies_holding_them_and_they_are_replayed(tmp_path) -> None:
    out, marker = tmp_path / "rec.json", tmp_path / "crashed"
    pipe = Pipeline.from_launch(
        f"t_countsrc frames=60 ! t_crashonce at=25 depth=4 marker={marker} ! t_lookahead depth=1 ! t_recordsink location={out}",
        max_restarts=1,
    )
    report = pipe.run()
    rec = json.loads(out.read_text())
    assert marker.exists()
    assert rec["seqs"] == list(range(60)) and rec["crcs"] == expected_crcs(60)
    assert report.restarts == 1 and report.frames_out == 60


def test_killed_inpaint_covers_the_frames_in_flight_and_the_output_plays(tmp_path) -> None:
    out, pidfile = tmp_path / "out.mp4", tmp_path / "pids"
    frames = 50
    pipe = Pipeline.from_launch(
        f"t_countsrc frames={frames} width=160 height=96 delay_ms=25 ! t_inpaint engine=classical window=3 "
        f"pidfile={pidfile} ! filesink location={out}",
        max_restarts=3,
    )
    kill = KillWhen(pidfile, 15)
    report = pipe.run(progress=kill, stats_every_s=0.05)
    assert kill.killed and len(_pids(pidfile)) == 2
    assert (report.frames_in, report.frames_out, report.restarts) == (frames, frames, 1)
    # the frames that were inside the dead process (at least its 3 held ones) left covered by
    # the fallback fill, flagged degraded; every other frame went through the engine
    recovered = report.stages["t_inpaint"]["counters"]["recovered_frames"]
    assert recovered >= 3 and report.degraded == recovered
    with av.open(str(out)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == frames


def test_a_restarted_tracker_reseeds_from_the_last_masks_it_emitted(tmp_path) -> None:
    out, pidfile = tmp_path / "masks.json", tmp_path / "pids"
    clip = SyntheticClip(160, 96, 60, 25.0, "pan", "scene", 40, 0)
    x0, y0, x1, y1 = clip.frame(0).box
    pipe = Pipeline.from_launch(
        f"testsrc width=160 height=96 frames=60 rate=25 logo=scene logo_size=40 ! "
        f"segment engine=classical box={x0},{y0},{x1},{y1} ! t_track engine=classical pidfile={pidfile} ! "
        f"t_masksink location={out}",
        max_restarts=3, live=True,  # live: read at 25 fps, so the kill lands mid-stream
    )
    kill = KillWhen(pidfile, 20)
    report = pipe.run(progress=kill, stats_every_s=0.05)
    rows = json.loads(out.read_text())
    assert kill.killed and report.restarts == 1
    assert [r["seq"] for r in rows] == list(range(60))
    assert report.stages["t_track"]["counters"]["reseeded"] == 1
    # without the re-seed a fresh tracker has no reference (segment marks frame 0 only): empty masks
    assert all(r["area"] > 0 for r in rows), [r["seq"] for r in rows if not r["area"]]
    assert min(r["iou"] for r in rows[30:]) > 0.5


def test_a_stage_that_dies_every_time_stops_the_run_with_a_clear_message(tmp_path) -> None:
    out = tmp_path / "rec.json"
    pipe = Pipeline.from_launch(f"t_countsrc frames=200 ! identity ! t_crashonce at=7 ! identity ! t_recordsink location={out}", max_restarts=2)
    with pytest.raises(ElementError) as info:
        pipe.run()
    assert str(info.value) == "t_crashonce: stage t_crashonce died 3 times (last: killed by SIGKILL); stopping"
    assert info.value.element == "t_crashonce"
    report = info.value.report  # type: ignore[attr-defined]
    assert report.restarts == 2 and report.state == "failed"
    rec = json.loads(out.read_text())
    assert rec["finished"] is True and rec["seqs"] == list(range(len(rec["seqs"]))) and len(rec["seqs"]) <= 7


def test_max_restarts_zero_keeps_the_first_death_fatal(tmp_path) -> None:
    with pytest.raises(ElementError, match=r"^t_crashonce: process died from SIGKILL$"):
        Pipeline.from_launch(f"t_countsrc frames=50 ! t_crashonce at=3 ! t_recordsink location={tmp_path / 'r.json'}").run()
    with pytest.raises(PropertyError, match=r"^max_restarts must be >= 0, got -1$"):
        Pipeline(Pipeline.from_launch("t_countsrc ! t_recordsink").elements, max_restarts=-1)


CLI = """
import sys
from tests.stream import fake_elements
from cleanfeed.stream.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_cli_max_restarts_gives_up_with_a_non_zero_exit_and_a_finalized_output(tmp_path) -> None:
    out = tmp_path / "out.mp4"
    line = f"t_countsrc frames=100 width=160 height=96 ! t_crashonce at=12 ! filesink location={out}"
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "--log-level", "error", "launch", "--quiet", "--max-restarts", "1", line],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().endswith("t_crashonce: stage t_crashonce died 2 times (last: killed by SIGKILL); stopping")
    with av.open(str(out)) as container:  # the sink finalized what it had: a playable file
        decoded = sum(1 for _ in container.decode(video=0))
    assert 0 < decoded <= 12
