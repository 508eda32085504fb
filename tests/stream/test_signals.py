"""Signals: graceful stops, aborts, crashed children, a killed supervisor; nothing left behind."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanfeed.errors import ElementError, Interrupted
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.shm import PREFIX, SHM_DIR
from cleanfeed.stream.supervisor import Deadlines
from tests.stream.runtime_checks import alive, element_processes

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from tests.stream import fake_elements
from cleanfeed.errors import Interrupted
from cleanfeed.stream.pipeline import Pipeline

said = False

def progress(p):
    global said
    if not said and p.frames_out >= 5:
        said = True
        print("running", flush=True)

try:
    report = Pipeline.from_launch(sys.argv[1]).run(mode=sys.argv[2], progress=progress, stats_every_s=0.05)
except Interrupted as err:
    print("interrupted", err, err.report.interrupted, flush=True)
    sys.exit(err.exit_code)
print("finished", report.frames_out, flush=True)
"""


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _end_started() -> Iterator[None]:
    """The pipelines run until signalled (frames=0): one a failed assertion left running is killed here."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _start(line: str, mode: str, tmp: Path, group: bool = False) -> subprocess.Popen:
    """``group``: in a process group of its own, as a terminal's job or a service is."""
    env = {**os.environ, "TMPDIR": str(tmp)}  # a killed supervisor's run directory lands here
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, line, mode], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        process_group=0 if group else None,
    )
    _STARTED.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready:
        proc.kill()
        pytest.fail(f"pipeline did not start: {proc.communicate()[1]}")
    line_out = proc.stdout.readline()
    assert line_out == "running\n", (line_out, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def _gone(pids: list[int], within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _check_record(path: Path) -> list[int]:
    rec = json.loads(path.read_text())
    assert rec["finished"] is True
    assert rec["seqs"] == list(range(len(rec["seqs"])))  # no gap, no repeat, even when cut short
    return rec["seqs"]


@pytest.mark.parametrize("mode", ["process", "thread"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_gracefully_finalizes_and_exits_non_zero(sig: signal.Signals, mode: str, tmp_path) -> None:
    out = tmp_path / "rec.json"
    proc = _start(f"t_countsrc frames=0 delay_ms=2 ! identity ! t_lookahead depth=2 ! t_recordsink location={out}", mode, tmp_path)
    kids = element_processes(proc.pid)
    assert len(kids) == (4 if mode == "process" else 0)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert stdout.startswith(f"interrupted interrupted by {sig.name} after ") and stdout.endswith("outputs were finalized True\n")
    assert len(_check_record(out)) >= 5
    assert _gone(kids)
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(f"{PREFIX}{proc.pid}-")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("cleanfeed-")]  # the run directory went too


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_whole_process_group_stops_gracefully(sig: signal.Signals, tmp_path) -> None:
    """Ctrl+C in a terminal, or systemd stopping a service, signals every process of the group:
    the supervisor, the elements and the fork server they came from. The server must not die of
    it (its elements would die with it); the run stops as if only the supervisor was told."""
    out = tmp_path / "rec.json"
    proc = _start(f"t_countsrc frames=0 delay_ms=2 ! identity ! t_recordsink location={out}", "process", tmp_path, group=True)
    kids = element_processes(proc.pid)
    assert len(kids) == 3
    os.killpg(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert stdout.startswith(f"interrupted interrupted by {sig.name} after ") and stdout.endswith("outputs were finalized True\n")
    assert len(_check_record(out)) >= 5
    assert _gone(kids)


def test_a_second_signal_aborts_without_waiting_for_the_slow_sink(tmp_path) -> None:
    out = tmp_path / "rec.json"
    proc = _start(f"t_countsrc frames=0 ! identity ! t_recordsink delay_ms=150 location={out}", "process", tmp_path)
    kids = element_processes(proc.pid)
    proc.send_signal(signal.SIGINT)  # graceful: ~10 frames in flight at 150 ms each
    time.sleep(0.2)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - start < 1.2
    _check_record(out)
    assert _gone(kids)


def test_sigterm_to_one_child_stops_the_whole_pipeline(tmp_path) -> None:
    out = tmp_path / "rec.json"
    proc = _start(f"t_countsrc frames=0 delay_ms=2 ! identity ! identity ! t_recordsink location={out}", "process", tmp_path)
    kids = element_processes(proc.pid)
    os.kill(kids[2], signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert stdout.startswith("interrupted interrupted by SIGTERM")
    _check_record(out)
    assert _gone(kids)


def test_a_child_killed_by_sigkill_ends_the_run_with_its_name(tmp_path) -> None:
    out = tmp_path / "rec.json"
    start = time.monotonic()
    with pytest.raises(ElementError) as info:
        Pipeline.from_launch(f"t_countsrc frames=200 ! identity ! t_crash at=7 ! identity ! t_recordsink location={out}").run(mode="process")
    assert str(info.value) == "t_crash: process died from SIGKILL"
    assert info.value.element == "t_crash"
    seqs = _check_record(out)  # the sink finalized what it had
    assert len(seqs) <= 7
    assert time.monotonic() - start < 8  # an abort, not the 10 s graceful wait
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(f"{PREFIX}{os.getpid()}-")]


def test_killing_the_supervisor_takes_every_child_along(tmp_path) -> None:
    out = tmp_path / "rec.json"
    proc = _start(f"t_countsrc frames=0 delay_ms=2 ! identity ! t_recordsink location={out}", "process", tmp_path)
    kids = element_processes(proc.pid)
    assert len(kids) == 3
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(kids), "children outlived their supervisor"
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(f"{PREFIX}{proc.pid}-")]


def _interrupt_soon(delay: float) -> threading.Timer:
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_a_stuck_child_is_aborted_then_terminated_after_the_grace_period(tmp_path) -> None:
    out = tmp_path / "rec.json"
    pipe = Pipeline.from_launch(f"t_countsrc frames=0 delay_ms=2 ! t_stuck at=20 ! t_recordsink location={out}",
                                deadlines=Deadlines(grace_s=0.3, abort_s=0.3, term_s=2.0))
    start = time.monotonic()
    _interrupt_soon(1.5)  # pytest runs tests in the main thread, where run() traps SIGINT
    with pytest.raises(Interrupted, match=r"^interrupted by SIGINT after 20 frames; outputs were finalized"):
        pipe.run(mode="process")
    assert time.monotonic() - start < 6
    assert _check_record(out) == list(range(20))  # the sink finalized at abort, not after the hang


def test_a_stuck_thread_is_named_when_the_run_gives_up_on_it(tmp_path) -> None:
    out = tmp_path / "rec.json"
    pipe = Pipeline.from_launch(f"t_countsrc frames=0 delay_ms=2 ! t_stuck at=10 seconds=4 ! t_recordsink location={out}",
                                deadlines=Deadlines(grace_s=0.2, abort_s=0.2, term_s=0.2))
    _interrupt_soon(0.5)
    with pytest.raises(ElementError, match=r"^t_stuck: did not stop after an abort; its thread was left running$"):
        pipe.run(mode="thread")
    assert _check_record(out) == list(range(10))
