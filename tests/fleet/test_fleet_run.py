"""`cleanfeed fleet` end to end on a local Ray instance the command starts: testsrc feeds and a
batch of files run to completion with every frame counted, a killed feed is restarted into a
complete output, a feed with a missing input fails alone, a re-run resumes past finished
outputs, and Ctrl+C stops everything with playable outputs and no process left.

One fleet run is shared by most assertions (a local Ray start costs seconds on two cores)."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fleet_cli import make_testsrc_clip, read_stats, start_fleet
from leaks import MARKER, leftovers
from logo_scenes import write_logo_png, write_scene_clip
from media import frame_count, make_video

pytest.importorskip("ray", reason="cleanfeed fleet needs Ray: pip install 'cleanfeed[fleet]'")

BOX = "box = [100, 5, 150, 40]\n"
TESTSRC = {"t1": 40, "t2": 100, "t3": 100}
"""testsrc clips and their frames; t2 and t3 are read live (at 25 fps, 4 s) so that they can be
killed midway: t2's `cleanfeed run` process, t3's Ray worker (as when its node dies)."""
LIVE = ("t2", "t3")
BATCH = 4
BATCH_FRAMES = 24
LOGO_FRAMES = 16
"""A feed with ``logo = ["brand.png"]`` (a list: the flag repeated), on logo_scenes' clip."""


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


@dataclass
class FleetRun:
    folder: Path
    code: int
    err: str
    doc: dict[str, Any]
    killed_pid: int
    back_in_s: float
    killed_worker: int
    scraped: str


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> FleetRun:
    folder = tmp_path_factory.mktemp("fleet")
    for seed, (name, frames) in enumerate(TESTSRC.items()):
        make_testsrc_clip(folder / f"{name}.mp4", frames, seed)
    (folder / "archive").mkdir()
    for i in range(BATCH):
        make_video(folder / "archive" / f"clip{i}.mp4", frames=BATCH_FRAMES, rate=25, audio=False)
    feeds = "".join(f'[[feeds]]\nname = "{n}"\ninput = "{n}.mp4"\noutput = "out/{n}.mp4"\n{BOX}'
                    + ("live = true\n" if n in LIVE else "") for n in TESTSRC)
    feeds += f'[[feeds]]\ninputs = "archive/*.mp4"\noutput = "clean/{{stem}}.mp4"\n{BOX}'
    write_logo_png(folder / "brand.png")
    write_scene_clip(folder / "scene.mp4", set(range(3, 12)))
    feeds += '[[feeds]]\nname = "logo"\ninput = "scene.mp4"\noutput = "out/logo.mp4"\nlogo = ["brand.png"]\n'
    feeds += f'[[feeds]]\nname = "bad"\ninput = "missing.mp4"\noutput = "out/bad.mp4"\n{BOX}'
    (folder / "fleet.toml").write_text("[fleet]\nmax_restarts = 2\nconcurrency = 4\n" + feeds)
    stats = folder / "stats.json"
    proc, err_path = start_fleet(folder / "fleet.toml", "--stats", str(stats), "--metrics-port", "0", tmp=folder / "tmp")
    killed, back_in, scraped, worker = 0, -1.0, "", 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            t2 = read_stats(stats)["feeds"].get("t2", {})
            if not killed and t2.get("state") == "running" and t2.get("frames_out", 0) >= 10:
                url = re.search(r"metrics on (\S+)", err_path.read_text())
                if url:
                    scraped = urllib.request.urlopen(url.group(1), timeout=5).read().decode()
                killed = t2["pid"]
                os.kill(killed, signal.SIGKILL)
                killed_at = time.monotonic()
            t3 = read_stats(stats)["feeds"].get("t3", {})
            if not worker and t3.get("state") == "running" and t3.get("frames_out", 0) >= 10:
                worker = _parent(t3["pid"])
                os.kill(worker, signal.SIGKILL)
            if killed and back_in < 0 and t2.get("state") == "running" and t2.get("pid") not in (None, killed):
                back_in = time.monotonic() - killed_at
            time.sleep(0.1)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    return FleetRun(folder, code, err_path.read_text(), read_stats(stats), killed, back_in, worker, scraped)


def test_every_feed_but_the_bad_one_runs_to_completion_with_every_frame(fleet_run: FleetRun) -> None:
    feeds = fleet_run.doc["feeds"]
    assert fleet_run.doc["final"]
    expected = {**TESTSRC, **{f"clip{i}": BATCH_FRAMES for i in range(BATCH)}, "logo": LOGO_FRAMES}
    assert set(feeds) == {*expected, "bad"}
    for name, frames in expected.items():
        assert feeds[name]["state"] == "done", (name, feeds[name])
        assert feeds[name]["frames_in"] == feeds[name]["frames_out"] == frames, (name, feeds[name])
        out = fleet_run.folder / ("clean" if name.startswith("clip") else "out") / f"{name}.mp4"
        assert frame_count(out) == frames, name
    assert not list(fleet_run.folder.rglob("*.part"))


def test_a_logo_feed_gets_its_logo_flag_and_removes_the_logo(fleet_run: FleetRun) -> None:
    logo = fleet_run.doc["feeds"]["logo"]
    assert logo["stats"]["counters"].get("logo_frames", 0) >= 9, logo["stats"]["counters"]  # it shows on 9


def test_a_killed_worker_leaves_no_temp_folder_or_part_file(fleet_run: FleetRun) -> None:
    assert fleet_run.killed_worker
    assert not list((fleet_run.folder / "tmp").glob("cleanfeed-feed-*"))
    assert not list(fleet_run.folder.rglob(".*.part"))


def test_a_killed_feed_is_restarted_into_a_complete_playable_output(fleet_run: FleetRun) -> None:
    assert fleet_run.killed_pid, f"t2 never ran: {fleet_run.err[-2000:]}"
    t2 = fleet_run.doc["feeds"]["t2"]
    assert t2["restarts"] == 1 and t2["state"] == "done"
    assert 0 <= fleet_run.back_in_s <= 5.0, fleet_run.back_in_s
    assert fleet_run.doc["feeds"]["t2"]["error"] is None  # it ended well: the killed try's error is history
    assert frame_count(fleet_run.folder / "out" / "t2.mp4") == TESTSRC["t2"]


def test_a_feed_whose_ray_worker_died_gets_a_new_one_and_completes(fleet_run: FleetRun) -> None:
    assert fleet_run.killed_worker, f"t3 never ran: {fleet_run.err[-2000:]}"
    t3 = fleet_run.doc["feeds"]["t3"]
    assert t3["restarts"] == 1 and t3["state"] == "done", t3
    assert frame_count(fleet_run.folder / "out" / "t3.mp4") == TESTSRC["t3"]


def test_a_bad_feed_fails_alone_with_its_error(fleet_run: FleetRun) -> None:
    bad = fleet_run.doc["feeds"]["bad"]
    assert bad["state"] == "failed" and bad["restarts"] == 2
    assert "missing.mp4" in bad["error"]
    assert fleet_run.code == 1
    last = fleet_run.err.strip().splitlines()[-1]
    assert last.startswith("cleanfeed: error: 1 of 9 feeds failed: bad: ") and "missing.mp4" in last
    assert re.search(r"^bad\s+failed\s+2\b.*missing\.mp4", fleet_run.err, re.M)  # the final table


def test_prometheus_has_every_feed_with_a_feed_label(fleet_run: FleetRun) -> None:
    for name in ("t1", "t2", "clip0", "bad"):
        assert f'cleanfeed_frames_out_total{{feed="{name}"}}' in fleet_run.scraped
    assert 'cleanfeed_running{feed="t2"} 1.0' in fleet_run.scraped


def test_a_rerun_skips_complete_outputs_without_starting_ray(fleet_run: FleetRun) -> None:
    folder = fleet_run.folder
    (folder / "batch.toml").write_text(f'[[feeds]]\ninputs = "archive/*.mp4"\noutput = "clean/{{stem}}.mp4"\n{BOX}')
    before = {p: p.stat().st_mtime_ns for p in (folder / "clean").iterdir()}
    proc, err = start_fleet(folder / "batch.toml")
    assert proc.wait(timeout=60) == 0, err.read_text()
    assert "ray started" not in err.read_text()
    assert err.read_text().count("skipped") == BATCH
    assert {p: p.stat().st_mtime_ns for p in (folder / "clean").iterdir()} == before


def test_ctrl_c_stops_every_feed_with_playable_outputs_and_no_process_left(tmp_path: Path) -> None:
    make_testsrc_clip(tmp_path / "long.mp4", 250, 0)
    (tmp_path / "fleet.toml").write_text("".join(
        f'[[feeds]]\nname = "{n}"\ninput = "long.mp4"\noutput = "live/{n}.{ext}"\n{BOX}live = true\n'
        for n, ext in (("a", "mp4"), ("b", "mkv"))))
    stats = tmp_path / "stats.json"
    proc, err = start_fleet(tmp_path / "fleet.toml", "--stats", str(stats))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            feeds = read_stats(stats)["feeds"]
            if feeds and all(f["state"] == "running" and f["frames_out"] >= 10 for f in feeds.values()):
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130, err.read_text()
    doc = read_stats(stats)
    for name, ext in (("a", "mp4"), ("b", "mkv")):
        feed = doc["feeds"][name]
        assert feed["state"] == "stopped" and 10 <= feed["frames_out"] < 250, feed
        assert frame_count(tmp_path / "live" / f"{name}.{ext}") == feed["frames_out"]
    deadline = time.monotonic() + 10
    while (left := leftovers(os.environ[MARKER], os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, left


def test_an_address_where_no_cluster_listens_is_one_line_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cleanfeed.stream.cli.main import main

    make_video(tmp_path / "in.mp4", frames=2, audio=False)
    (tmp_path / "fleet.toml").write_text(f'[[feeds]]\nname = "a"\ninput = "in.mp4"\noutput = "out.mp4"\n{BOX}')
    start = time.monotonic()
    assert main(["fleet", str(tmp_path / "fleet.toml"), "--address", "127.0.0.1:1", "--quiet"]) == 2
    assert time.monotonic() - start < 10
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "cleanfeed: error: --address 127.0.0.1:1 must be a running Ray cluster, got Connection refused"
