"""Shedding under overload (cleanfeed.stream.shedding): an element slower than its input takes
its cheap path before doing the work, so no full-path result is computed and thrown away.

A test element's full path sleeps longer than the frame interval (t_slowinpaint, t_slowtrack:
the real elements, slowed), and a CPU hog spins on one core beside the run. What must hold
under any load is asserted: every frame out, in order, the logo covered on every one (testsrc's
truth), nothing dropped, no result discarded, and the counters agreeing with each other. No
wall-clock bound is asserted; the shedding arithmetic itself is tested on fixed numbers.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from cleanfeed.errors import LateError
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Deadline
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.shedding import (
    SINK_CALIBRATE_FRAMES,
    ChainCheck,
    Shedder,
    calibrate_warning,
    carry_cheap_cost,
    chain_fps,
    chain_warning,
    shed_total_of,
)
from tests.stream import fake_elements  # noqa: F401  (registers t_slowinpaint, t_coversink, ...)
from tests.stream.hog import CpuHog

FRAMES = 60
BUDGET_MS = 800.0
SRC = f"testsrc width=160 height=96 frames={FRAMES} rate=25 logo_size=40 truth_mask=true"


def _frame(born: float) -> VideoFrame:
    import numpy as np

    from cleanfeed.stream.picture import Picture

    frame = VideoFrame(0, 0, Fraction(1, 25), Picture.empty("rgb24", 16, 16), np.zeros((16, 16), np.uint8))
    frame.stamps["src"] = born
    return frame


def test_the_decision_sheds_a_frame_short_of_slack_and_comes_back_only_after_a_run_of_good_ones() -> None:
    counted: dict[str, int] = {}
    shed = Shedder(Deadline(1.0), Fraction(25), lambda k, n=1: counted.__setitem__(k, counted.get(k, 0) + n),
                   lookahead=5, leave_after=3)
    shed.full.add(0.010)  # need: 5 * 40 ms + 10 ms = 210 ms of slack
    assert shed.decide(_frame(born=0.0), now=0.5) is None  # 500 ms left
    assert shed.decide(_frame(born=0.0), now=0.85) == "late"  # 150 ms left
    assert shed.shedding and counted["shed_entered"] == 1
    # enough slack for the frame, not yet for leaving (need + cost + interval = 260 ms)
    assert shed.decide(_frame(born=0.0), now=0.76) == "backlog"
    assert [shed.decide(_frame(born=0.0), now=0.5) for _ in range(3)] == ["backlog", "backlog", None]
    assert not shed.shedding
    assert counted["slack_le_250ms"] == 2 and counted["slack_le_500ms"] == 4 and "slack_le_1000ms" not in counted
    assert shed_total_of({"shed_late": 1, "shed_backlog": 3, "shed_entered": 1}) == 4


def test_the_start_check_warns_only_when_the_cheap_path_is_slower_than_the_input() -> None:
    assert calibrate_warning("inpaint", 0.030, Fraction(25), "fill") is None
    said = calibrate_warning("inpaint", 1 / 18, Fraction(25), "the inpaint fallback fill")
    assert said is not None and "at 18.0 fps" in said and "the input is 25 fps: frames will be late" in said


def _run(tmp_path: Path, chain: str, mode: str) -> tuple[Any, list[dict[str, Any]]]:
    rows = tmp_path / f"rows-{mode}.json"
    line = f"{SRC} ! {chain} ! t_coversink location={rows} frames={FRAMES} logo_size=40"
    with CpuHog():
        report = Pipeline(Pipeline.from_launch(line).elements, latency_ms=BUDGET_MS, live=True).run(mode=mode)
    return report, json.loads(rows.read_text())


def _covered_and_complete(report: Any, rows: list[dict[str, Any]], factor: float = 3.0) -> None:
    assert [r["seq"] for r in rows] == list(range(FRAMES))
    assert report.frames_in == report.frames_out == FRAMES and report.dropped == 0
    for r in rows:  # shed or not, the scene shows where the logo was
        assert r["to_clean"] < r["to_logo"] / factor, r
    assert report.degraded == sum(r["degraded"] for r in rows)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_an_inpainter_slower_than_its_input_sheds_instead_of_discarding(tmp_path: Path, mode: str) -> None:
    # 80 ms a frame on the full path, frames every 40 ms: it cannot keep up, under any load
    report, rows = _run(tmp_path, "t_slowinpaint engine=classical window=5 full_ms=80", mode)
    _covered_and_complete(report, rows)
    c = report.counters
    shed = c.get("shed_late", 0) + c.get("shed_backlog", 0)
    assert shed > 0 and c.get("shed_entered", 0) >= 1, c
    assert c.get("discarded", 0) == 0, c
    # every frame covered by the fallback was shed, expired (the safety net) or recovered
    assert c.get("fallback_frames", 0) == shed + c.get("expired", 0) == report.degraded, c
    assert sum(v for k, v in c.items() if k.startswith("slack_")) >= shed, c


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_a_tracker_slower_than_its_input_sheds_to_grown_stale_masks_never_uncovering(tmp_path: Path, mode: str) -> None:
    chain = "t_reference at=0 ! t_slowtrack full_ms=80 ! inpaint engine=classical window=0 method=telea"
    report, rows = _run(tmp_path, chain, mode)
    # a grown stale mask is a larger hole for Telea on a 160x96 frame: covered, less like the scene
    _covered_and_complete(report, rows, factor=2.0)
    c = report.counters
    shed = c.get("shed_late", 0) + c.get("shed_backlog", 0)
    assert c.get("stale_masks", 0) == shed, c
    if mode == "process":  # threads: the full links hold the source back, so frames are born later, not late
        assert shed > 0, c
    assert report.degraded == shed  # the inpainter (no lookahead) had no reason to degrade any


def test_fail_on_late_makes_a_too_slow_cheap_path_an_error(tmp_path: Path) -> None:
    # a 1 fps budget check: the fallback fill of a 1280x720 testsrc logo cannot run at 1000 fps
    line = ("testsrc width=320 height=192 frames=20 rate=1000 logo_size=120 truth_mask=true "
            "! inpaint engine=classical window=3 ! fakesink")
    pipeline = Pipeline(Pipeline.from_launch(line).elements, latency_ms=5000, live=True)
    with pytest.raises(LateError, match=r"inpaint: this machine does the cheapest path .* frames will be late"):
        pipeline.run(mode="thread", fail_on_late=True)


def test_the_chain_check_counts_the_encoder_that_cannot_shed() -> None:
    # the slowest stage sets the pace; on 2 cores the sum of the stages also bounds it
    costs = {"inpaint": (0.004, "the inpaint fallback fill"), "filesink": (0.045, "the x264 veryfast encoder")}
    said = chain_warning(costs, Fraction(25), cores=2)
    assert said is not None and "cheapest chain at 22.2 fps" in said and "filesink 45 ms (the x264 veryfast" in said
    assert "the input is 25 fps: frames will be late" in said
    assert chain_warning({"a": (0.030, "x"), "b": (0.030, "y"), "c": (0.030, "z")}, Fraction(25), cores=2) is not None
    assert chain_warning({"a": (0.030, "x"), "b": (0.030, "y"), "c": (0.030, "z")}, Fraction(25), cores=4) is None
    assert chain_fps({"inpaint": (0.004, ""), "filesink": (0.012, "")}, cores=2) == pytest.approx(1 / 0.012)


def test_the_sink_s_check_waits_for_its_own_frames_and_hears_of_upstream_costs_from_the_frames() -> None:
    check = ChainCheck("filesink", "the x264 superfast encoder", Fraction(25), cores=2)
    frame = _frame(born=0.0)
    assert check.timed(frame, 1.0) is None  # the first frame opens the encoder: not counted
    assert [check.timed(frame, 0.010) for _ in range(SINK_CALIBRATE_FRAMES)] == [None] * SINK_CALIBRATE_FRAMES
    assert check.own_s == pytest.approx(0.010) and check.samples == [0.010] * SINK_CALIBRATE_FRAMES
    slow = _frame(born=0.0)
    carry_cheap_cost(slow, "inpaint", 0.050, "the inpaint fallback fill")
    said = check.timed(slow, 0.010)  # a stage reporting for the first time: checked again
    assert said is not None and "cheapest chain at 20.0 fps" in said and "inpaint 50 ms" in said
    assert check.timed(slow, 0.010) is None  # said once


def test_fail_on_late_makes_an_encoder_slower_than_the_input_an_error(tmp_path: Path) -> None:
    # no filter at all: x264 cannot encode 640x360 at 2000 fps here, and a sink cannot shed
    # tune=zerolatency, as live outputs are: x264 encodes each frame as it is given (with frame
    # threads it only queues the first frames, which takes well under the 0.5 ms a frame at 2000 fps)
    line = (f"testsrc width=640 height=360 frames=30 rate=2000 ! filesink location={tmp_path / 'out.ts'} "
            "preset=veryfast tune=zerolatency")
    pipeline = Pipeline(Pipeline.from_launch(line).elements, latency_ms=5000, live=True)
    with pytest.raises(LateError, match=r"this machine does the cheapest chain at .* \(filesink \d+ ms \(the x264 "
                                        r"veryfast encoder\) a frame, on \d+ cores\); the input is 2000 fps"):
        pipeline.run(mode="thread", fail_on_late=True)


def test_a_sink_that_keeps_up_says_nothing_and_counts_its_cost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    line = f"testsrc width=128 height=96 frames=12 rate=25 logo_size=24 ! filesink location={tmp_path / 'out.ts'} preset=ultrafast"
    report = Pipeline(Pipeline.from_launch(line).elements, latency_ms=5000, live=True).run(mode="thread", fail_on_late=True)
    assert report.frames_out == 12 and report.counters.get("encode_us", 0) > 0, report.counters
    assert "cheapest chain" not in caplog.text
