"""Live statistics: the --stats document while a run goes on and at its end, element counters,
degraded and late frames, and the CLI writing it (also for an interrupted run)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.cli.report import LiveStatsFile
from cleanfeed.stream.element import Filter
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register
from tests.stream import fake_elements  # noqa: F401  (registers t_countsrc, t_recordsink)

ROOT = Path(__file__).resolve().parents[2]
LIVE_KEYS = {"state", "final", "frames_in", "frames_out", "in_flight", "degraded", "late", "dropped", "reconnects", "fps",
             "latency_ms", "counters", "stages"}
STAGE_KEYS = {"fps", "frames_in", "frames_out", "busy_s", "busy_fps", "load", "rss_mb", "counters"}


@register
class MarkFilter(Filter):
    """Marks every ``every``-th frame degraded and counts a "reconnects" every ``reconnect_every``-th."""

    factory: ClassVar[str] = "t_statmark"
    description: ClassVar[str] = "Test filter for the stats counters."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("every", "mark every N-th frame degraded", 3, 1),
        Property.int("reconnect_every", "count a reconnect every N-th frame", 5, 1),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if frame.seq % self.every == 0:
            frame.meta["degraded"] = True
        if frame.seq % self.reconnect_every == 0:
            self.count("reconnects")
            self.count("slate_frames", 2)
        return [frame]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_counters_degraded_and_stages_reach_the_report(mode: str) -> None:
    docs: list[dict[str, Any]] = []
    report = Pipeline.from_launch("t_countsrc frames=30 delay_ms=10 ! t_statmark ! identity ! fakesink").run(
        mode=mode, monitor=docs.append, stats_every_s=0.05
    )
    assert report.degraded == 10 and report.reconnects == 6 and report.dropped == 0
    assert report.counters == {"reconnects": 6, "slate_frames": 12}
    assert report.stages["t_statmark"]["counters"] == {"reconnects": 6, "slate_frames": 12}
    assert report.stages["identity"]["counters"] == {}
    final = docs[-1]
    assert final == json.loads(json.dumps(report.to_json(), default=str))
    assert LIVE_KEYS <= set(final) and final["state"] == "done" and final["final"] is True
    assert final["frames_in"] == final["frames_out"] == 30 and final["dropped"] == 0 and final["late"] == 0
    assert set(final["latency_ms"]) == {"p50", "p95", "p99", "max"}
    for name in ("t_countsrc", "t_statmark", "identity", "fakesink"):
        assert set(final["stages"][name]) >= STAGE_KEYS
        assert final["stages"][name]["frames_in"] == final["stages"][name]["frames_out"] == 30
        assert final["stages"][name]["fps"] > 0
    live = [d for d in docs[:-1] if d["frames_out"] > 0]
    assert live, "no live document saw a frame"
    for doc in live:
        assert LIVE_KEYS <= set(doc) and doc["state"] == "running" and doc["final"] is False
        assert doc["frames_in"] - doc["frames_out"] == doc["in_flight"] >= 0
    counts = [d["frames_out"] for d in live]
    assert counts == sorted(counts)


def test_frames_over_the_budget_are_late() -> None:
    elements = Pipeline.from_launch("t_countsrc frames=8 ! identity delay_ms=15 ! fakesink").elements
    report = Pipeline(elements, latency_ms=5).run(mode="thread")
    assert report.late_frames == 8 and report.to_json()["late"] == 8
    assert report.latency_ms["p50"] > 5


def test_the_stats_file_is_rewritten_while_running(tmp_path) -> None:
    path = tmp_path / "sub" / "stats.json"
    seen: list[dict[str, Any]] = []
    writer = LiveStatsFile(path, every_s=0.1)
    assert json.loads(path.read_text()) == {"state": "starting", "final": False}

    def read_it(progress) -> None:
        seen.append(json.loads(path.read_text()))  # never half a document: written by rename

    Pipeline.from_launch("t_countsrc frames=40 delay_ms=10 ! fakesink").run(
        mode="thread", progress=read_it, monitor=writer, stats_every_s=0.05
    )
    running = [d for d in seen if d["state"] == "running"]
    assert len({d["frames_out"] for d in running}) >= 2, "the file did not change while running"
    final = json.loads(path.read_text())
    assert final["state"] == "done" and final["frames_out"] == 40 and final["dropped"] == 0
    assert not [p for p in path.parent.iterdir() if p.name != "stats.json"]  # no temporary files left


def test_an_unwritable_stats_file_fails_before_the_run(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(MediaError, match=r"^stats file '.*file/stats.json' must be writable, got "):
        LiveStatsFile(blocker / "stats.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_launch_writes_live_stats_serves_metrics_and_finalizes_on_sigint(tmp_path) -> None:
    stats, port = tmp_path / "stats.json", _free_port()
    code = (
        "import sys\n"
        "from tests.stream import fake_elements\n"
        "from cleanfeed.stream.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "launch", "t_countsrc frames=0 delay_ms=10 ! identity ! fakesink",
         "--stats", str(stats), "--metrics-port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        doc: dict[str, Any] = {}
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if stats.exists():
                doc = json.loads(stats.read_text())
                if doc.get("frames_out", 0) >= 20:
                    break
            time.sleep(0.1)
        assert doc.get("state") == "running" and LIVE_KEYS <= set(doc), doc
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "cleanfeed_running 1.0" in text
        assert 'cleanfeed_stage_fps{stage="identity"}' in text
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    final = json.loads(stats.read_text())
    assert final["state"] == "interrupted" and final["final"] is True
    assert final["frames_in"] == final["frames_out"] >= doc["frames_out"] and final["dropped"] == 0
    assert f"metrics on http://127.0.0.1:{port}/metrics" in stderr


@register
class BackgroundBusyFilter(Filter):
    """Says its worker threads computed 1.5 s (as a live DeAOT or E2FGVI stage would)."""

    factory: ClassVar[str] = "t_bgbusy"
    description: ClassVar[str] = "Test filter whose background threads report 1.5 busy seconds."
    properties: ClassVar[tuple[Property, ...]] = ()

    def background_busy_s(self) -> float:
        return 1.5

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        return [frame]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_stages_busy_time_includes_its_background_threads(mode: str) -> None:
    report = Pipeline.from_launch("t_countsrc frames=5 ! t_bgbusy ! fakesink").run(mode=mode)
    assert report.elements["t_bgbusy"]["busy_s"] >= 1.5
    assert report.elements["fakesink"]["busy_s"] < 1.5
