"""Feeds split in two parts (decode, then from ``split`` on) on a local Ray instance the command
starts: one runs to completion with every frame counted by its sink part and a playable output,
its link is encrypted with keys the fleet assigned (a sender without them gets nothing through),
and when one part dies both start again; Ctrl+C then stops the other, still running, with both
parts finalized. One fleet run serves every assertion (a local Ray start costs seconds on two
cores); the bad split values are tests/fleet/test_fleet_spec.py's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fleet_cli import make_testsrc_clip, read_stats, start_fleet
from media import frame_count

pytest.importorskip("ray", reason="cleanfeed fleet needs Ray: pip install 'cleanfeed[fleet]'")

BOX = "box = [100, 5, 150, 40]\n"
FRAMES = 200
LONG_FRAMES = 2000
"""A second split feed, still running (80 s of input) when the fleet is stopped once the first is done."""
"""Read live (25 fps, 8 s): long enough for a stranger to knock and then a part to be killed midway
(a process started on two busy cores takes seconds to say anything)."""


def _decode_part(endpoint: str) -> int | None:
    """The pid of the process sending to ``endpoint`` (the split feed's decode part)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "cleanfeed.stream.cli.main launch" in command and f"zmqsink endpoint={endpoint} " in command:
            return int(proc.name)
    return None


@dataclass
class SplitRun:
    folder: Path
    code: int
    err: str
    doc: dict[str, Any]
    first_link: str
    stranger: subprocess.CompletedProcess[str] | None
    killed: int | None


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> SplitRun:
    folder = tmp_path_factory.mktemp("split")
    make_testsrc_clip(folder / "in.mp4", FRAMES, 3)
    make_testsrc_clip(folder / "long.mp4", LONG_FRAMES, 4)
    (folder / "fleet.toml").write_text(
        f'[fleet]\nmax_restarts = 2\n[[feeds]]\nname = "s"\ninput = "in.mp4"\noutput = "out/s.mkv"\n{BOX}live = true\n'
        f'split = "inpaint"\ndecode_cpus = 1\n[[feeds]]\nname = "l"\ninput = "long.mp4"\noutput = "out/l.mkv"\n{BOX}'
        'live = true\nsplit = "dilate"\n')
    stats = folder / "stats.json"
    proc, err_path = start_fleet(folder / "fleet.toml", "--stats", str(stats), tmp=folder / "tmp")
    first_link, stranger, killed = "", None, None
    stranger_proc: subprocess.Popen[str] | None = None
    stopped_at: int | None = None
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            feed = read_stats(stats)["feeds"].get("s", {})
            if feed.get("state") == "running" and feed.get("frames_out", 0) >= 5 and feed.get("link"):
                if stranger_proc is None:  # a sender without the fleet's keys, at the feed's endpoint
                    first_link = feed["link"]
                    stranger_proc = subprocess.Popen(
                        [sys.executable, "-m", "cleanfeed.stream.cli.main", "launch", "--quiet",
                         f"testsrc width=160 height=96 frames=20 ! zmqsink endpoint={first_link} bind=false timeout_s=3"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                elif killed is None and stranger_proc.poll() is not None and feed["link"] == first_link:
                    killed = _decode_part(first_link)  # once the stranger is done, the first try's decode part dies
                    if killed:
                        os.kill(killed, signal.SIGKILL)
            if read_stats(stats)["feeds"].get("s", {}).get("state") == "done" and stopped_at is None:
                long = read_stats(stats)["feeds"]["l"]
                if long["state"] == "running" and long["frames_out"] >= 10:  # Ctrl+C once s is done
                    proc.send_signal(signal.SIGINT)
                    stopped_at = long["frames_out"]
            time.sleep(0.1)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        if stranger_proc is not None:
            _, err = stranger_proc.communicate(timeout=60)
            stranger = subprocess.CompletedProcess(stranger_proc.args, stranger_proc.returncode, "", err)
    return SplitRun(folder, code, err_path.read_text(), read_stats(stats), first_link, stranger, killed)


def test_a_split_feed_runs_to_completion_with_every_frame_counted_by_its_sink_part(split_run: SplitRun) -> None:
    assert split_run.code == 130, split_run.err[-2000:]  # stopped with Ctrl+C once this feed was done
    assert list(split_run.doc["feeds"]) == ["s", "l"]  # one row per feed, not per part
    feed = split_run.doc["feeds"]["s"]
    assert feed["state"] == "done", feed
    assert feed["frames_in"] == feed["frames_out"] == FRAMES, feed
    assert list(feed["stats"]["elements"]) == ["zmqsrc", "inpaint", "filesink"]  # the sink part's figures
    assert frame_count(split_run.folder / "out" / "s.mkv") == FRAMES
    assert not list(split_run.folder.rglob(".*.part"))


def test_ctrl_c_stops_both_parts_of_a_split_feed_with_a_playable_output(split_run: SplitRun) -> None:
    feed = split_run.doc["feeds"]["l"]
    assert feed["state"] == "stopped" and 10 <= feed["frames_out"] < LONG_FRAMES, feed
    assert frame_count(split_run.folder / "out" / "l.mkv") == feed["frames_out"]
    # no part's process is left (the session's leak check would fail the run on one)


def test_the_link_is_encrypted_with_the_fleets_keys_and_a_sender_without_them_gets_nothing_through(
        split_run: SplitRun) -> None:
    assert split_run.first_link.startswith("tcp://") and not split_run.first_link.startswith("tcp://127.")
    assert split_run.stranger is not None, split_run.err[-2000:]
    assert split_run.stranger.returncode != 0
    # refused at the handshake, or (when only the hang-up is seen) nothing it sent was ever acknowledged
    assert "CurveZMQ" in split_run.stranger.stderr or "must acknowledge a message" in split_run.stranger.stderr, \
        split_run.stranger.stderr
    # and its 20 frames did not reach the feed: the output has the input's frames and no more (first test)
    assert not list((split_run.folder / "tmp").glob("cleanfeed-feed-*"))  # key files went with the actors' folders


def test_when_one_part_dies_both_start_again_with_a_new_link(split_run: SplitRun) -> None:
    assert split_run.killed, split_run.err[-2000:]
    feed = split_run.doc["feeds"]["s"]
    assert feed["restarts"] == 1, feed
    assert feed["link"] != split_run.first_link
