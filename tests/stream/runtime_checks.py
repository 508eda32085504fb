"""End-to-end scenarios run in both modes (threads and processes) by the pipeline tests.

Each function takes the mode and a temporary directory, runs a pipeline of fake elements
and checks what the recording sink wrote, so the two test modules state the same
contract for both runtimes.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from cleanfeed.errors import ElementError, MediaError
from cleanfeed.stream.pipeline import Pipeline, Progress
from tests.stream import fake_elements  # noqa: F401  (registers the t_* elements)
from tests.stream.fake_elements import EXTRADATA, FakeEngineError, expected_crcs


def run_and_read(line: str, mode: str, out: Path, **kw: Any) -> tuple[Any, dict[str, Any]]:
    report = Pipeline.from_launch(f"{line} location={out}").run(mode=mode, **kw)
    return report, json.loads(out.read_text())


def read(out: Path) -> dict[str, Any]:
    return json.loads(out.read_text())


def five_hops_keep_everything(mode: str, tmp: Path) -> None:
    """Every seq once and in order; pixels, masks, meta, packets and caps survive 5 hops."""
    out = tmp / "rec.json"
    progress: list[Progress] = []
    line = "t_countsrc frames=30 packets_every=7 ! " + "identity ! " * 5 + "t_recordsink"
    report, rec = run_and_read(line, mode, out, progress=progress.append, stats_every_s=0.05)
    assert rec["finished"] is True
    assert rec["seqs"] == list(range(30))
    assert rec["crcs"] == expected_crcs(30)
    assert rec["meta"][1] == repr({"n": 1, "frac": Fraction(1, 2), "tags": ["a", {"b": 1}], "blob": b"\x00\x01"})
    assert rec["stamps"] == ["t_countsrc"] + [f"identity{i}" for i in range(5)]
    assert rec["packets"] == [[1, bytes([s % 256]).hex() * 5, s * 1600] for s in (6, 13, 20, 27)]
    assert "'extradata': " + repr(EXTRADATA) in rec["caps"] and "Fraction(1, 3)" in rec["caps"]
    assert (report.frames_in, report.frames_out, report.packets_out) == (30, 30, 4)
    assert report.mode == mode and report.error is None and not report.interrupted
    assert set(report.elements) == {"t_countsrc", *(f"identity{i}" for i in range(5)), "t_recordsink"}
    assert all(e["frames"] == 30 for e in report.elements.values())
    assert set(report.latency_ms) == {"p50", "p95", "p99", "max"}
    assert 0 < report.latency_ms["p50"] <= report.latency_ms["p95"] <= report.latency_ms["max"]
    assert report.fps > 0 and report.peak_rss_mb > 10 and report.caps is not None and report.caps.frames == 30
    json.dumps(report.to_json())
    assert progress and progress[-1].frames_out == 30 and progress[-1].frames_total == 30


def lookahead_and_copies(mode: str, tmp: Path) -> None:
    """A filter holding 6 frames, one that replaces every frame by an inverted copy, a
    source that builds frames on the heap, and rgb24 pictures."""
    line = "t_countsrc frames=40 heap=true pix_fmt=rgb24 ! t_lookahead depth=6 ! t_copy invert=true ! t_lookahead depth=2 ! t_recordsink"
    report, rec = run_and_read(line, mode, tmp / "rec.json")
    assert rec["seqs"] == list(range(40))
    assert rec["crcs"] == expected_crcs(40, "rgb24", invert=True)
    assert report.lookahead == 8 and report.frames_out == 40


def element_error_finalizes(mode: str, tmp: Path) -> None:
    out = tmp / "rec.json"
    with pytest.raises(ElementError) as info:
        Pipeline.from_launch(f"t_countsrc frames=50 ! identity ! t_fail at=5 ! identity ! t_recordsink location={out}").run(mode=mode)
    err = info.value
    assert str(err) == "t_fail: RuntimeError: t_fail broke on frame 5"
    assert err.element == "t_fail"
    rec = read(out)
    assert rec["finished"] is True and rec["seqs"] == list(range(5))
    assert err.report.error == str(err) and err.report.frames_out == 5  # type: ignore[attr-defined]
    assert any("t_fail broke" in note for note in getattr(err, "__notes__", []))  # the element's traceback


def media_error_stays_media_error(mode: str, tmp: Path) -> None:
    out = tmp / "rec.json"
    with pytest.raises(MediaError) as info:
        Pipeline.from_launch(f"t_countsrc frames=30 ! t_fail at=3 error=media ! t_recordsink location={out}").run(mode=mode)
    assert str(info.value) == "t_fail input must be readable, got a bad frame 3"
    assert type(info.value) is MediaError and info.value.element == "t_fail"  # type: ignore[attr-defined]
    assert read(out)["seqs"] == [0, 1, 2]


def plugin_error_class_survives(mode: str, tmp: Path) -> None:
    with pytest.raises(FakeEngineError) as info:
        Pipeline.from_launch(f"t_countsrc frames=30 ! t_fail at=2 error=engine ! t_recordsink location={tmp / 'r.json'}").run(mode=mode)
    assert str(info.value) == "t_fail engine must have weights, got none at frame 2" and info.value.exit_code == 4


def open_error_surfaces(mode: str, tmp: Path) -> None:
    out = tmp / "rec.json"
    with pytest.raises(MediaError, match=r"^t_countsrc input must exist, got missing-64.mp4$") as info:
        Pipeline.from_launch(f"t_countsrc fail_open=true ! identity ! t_recordsink location={out}").run(mode=mode)
    assert not out.exists()  # the sink never started, so it has nothing to finalize
    assert info.value.report.latency_ms == {} and info.value.report.frames_out == 0  # type: ignore[attr-defined]


def start_error_is_one_line(mode: str, tmp: Path) -> None:
    with pytest.raises(ElementError) as info:
        Pipeline.from_launch(f"t_countsrc ! t_fail error=start ! t_recordsink location={tmp / 'r.json'}").run(mode=mode)
    assert str(info.value) == "t_fail: RuntimeError: t_fail refused the caps"  # the first line only


def gap_names_the_element(mode: str, tmp: Path) -> None:
    out = tmp / "rec.json"
    with pytest.raises(ElementError, match=r"^t_badseq: output seq must be 3 \(every frame once, in order\), got 4$"):
        Pipeline.from_launch(f"t_countsrc frames=20 ! t_badseq at=3 ! t_recordsink location={out}").run(mode=mode)
    rec = read(out)
    assert rec["finished"] and rec["seqs"] == [0, 1, 2]


def bad_mask_names_the_element(mode: str, tmp: Path) -> None:
    with pytest.raises(ElementError) as info:
        Pipeline.from_launch(f"t_countsrc frames=5 ! t_copy bad_mask=true ! t_recordsink location={tmp / 'r.json'}").run(mode=mode)
    assert str(info.value) == "t_copy: frame 0 mask must be uint8 (48, 64), got float32 (48, 64)"


def sink_error_finalizes(mode: str, tmp: Path) -> None:
    out = tmp / "rec.json"
    with pytest.raises(ElementError) as info:
        Pipeline.from_launch(f"t_countsrc frames=200 ! t_lookahead depth=3 ! t_recordsink fail_at=4 location={out}").run(mode=mode)
    assert str(info.value) == "t_recordsink: ValueError: t_recordsink disk must have room, got full at frame 4"
    assert read(out)["finished"] and read(out)["seqs"] == [0, 1, 2, 3]


SCENARIOS = [
    five_hops_keep_everything,
    lookahead_and_copies,
    element_error_finalizes,
    media_error_stays_media_error,
    plugin_error_class_survives,
    open_error_surfaces,
    start_error_is_one_line,
    gap_names_the_element,
    bad_mask_names_the_element,
    sink_error_finalizes,
]


def element_processes(root: int) -> list[int]:
    """Live element processes (named ``cf:ELEMENT``) anywhere under ``root``, from /proc: they
    are forked by multiprocessing's fork server, so grandchildren of the supervisor."""
    parent_of: dict[int, int] = {}
    named: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        if fields[0] == "Z":
            continue
        parent_of[int(entry)] = int(fields[1])
        if head.partition("(")[2].startswith("cf:"):
            named.add(int(entry))
    out = []
    for pid in named:
        up = parent_of.get(pid)
        while up is not None and up != root:
            up = parent_of.get(up)
        if up == root:
            out.append(pid)
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"
