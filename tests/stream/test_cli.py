"""The `cleanfeed` command end to end, as a user runs it: real files, real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import bytes_written, ffprobe, frame_count, frame_pts, make_video, streams

CLI = [sys.executable, "-m", "cleanfeed.stream.cli.main"]
BOX = "40,20,80,50"  # inside the 160x96 test video


def cleanfeed(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def one_line_error(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    """A user error: the expected exit code, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert lines and lines[-1].startswith("cleanfeed: error:"), proc.stderr
    assert text in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("cli") / "in.mp4", frames=30, audio=True)


def test_run_keeps_frames_timestamps_and_audio(clip, tmp_path):
    out = tmp_path / "out.mp4"
    masks = tmp_path / "masks"
    stats = tmp_path / "stats.json"
    proc = cleanfeed("run", str(clip), "-o", str(out), "--box", BOX, "--save-masks", str(masks), "--stats", str(stats))
    assert proc.returncode == 0, proc.stderr
    assert frame_count(out) == frame_count(clip) == 30
    assert frame_pts(out) == frame_pts(clip)
    assert [s["codec_type"] for s in streams(out)].count("audio") == 1
    assert len(list(masks.glob("*.png"))) == 30
    report = json.loads(stats.read_text())
    assert report["frames_in"] == report["frames_out"] == 30
    assert "30 frames in, 30 frames out" in proc.stderr


def test_nothing_of_a_run_outlives_it(clip, tmp_path):
    """The fork server and multiprocessing's resource tracker leave with the command: a service
    manager that waits for the process group, or a test counting processes, sees none after exit."""
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:  # a file, not a pipe: reading a pipe to its end would wait for the helpers
        proc = subprocess.Popen([*CLI, "run", str(clip), "-o", str(tmp_path / "out.mkv"), "--box", BOX, "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        assert proc.wait(timeout=180) == 0, log.read_text()
    group = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(fields[2]) == proc.pid and fields[0] != "Z":  # pgid == the run's pid
            group.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    assert group == []


def test_thread_mode_gives_the_same_frames(clip, tmp_path):
    out = tmp_path / "out.mkv"
    proc = cleanfeed("run", str(clip), "-o", str(out), "--box", BOX, "--mode", "thread", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert frame_count(out) == 30
    assert proc.stderr == ""


def test_print_pipeline_is_a_valid_launch_line(clip, tmp_path):
    out = tmp_path / "o.mp4"
    line = cleanfeed("run", str(clip), "-o", str(out), "--point", "60,35", "--point", "10,10,0", "--print-pipeline")
    assert line.returncode == 0, line.stderr
    assert "segment frame=0 points=60,35,1;10,10,0" in line.stdout
    proc = cleanfeed("launch", line.stdout.strip(), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert frame_count(out) == 30


def test_launch_takes_separate_tokens(clip, tmp_path):
    out = tmp_path / "copy.mp4"
    proc = cleanfeed("launch", "filesrc", f"location={clip}", "!", "identity", "!", "filesink", f"location={out}", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert frame_count(out) == 30


def test_inspect_lists_and_describes():
    listing = cleanfeed("inspect")
    for name in ("filesrc", "filesink", "segment", "track", "dilate", "inpaint", "overlay", "testsrc", "identity"):
        assert name in listing.stdout
    one = cleanfeed("inspect", "inpaint")
    assert one.returncode == 0
    assert "Lookahead:    5 frame(s) with default properties" in one.stdout
    assert "window" in one.stdout and "default: 5" in one.stdout
    # segment cannot be built without a prompt, yet its lookahead is known: it never holds frames
    assert "Lookahead:    0 frames\n" in cleanfeed("inspect", "segment").stdout
    one_line_error(cleanfeed("inspect", "inpiant"), 2, "no element named 'inpiant'; did you mean 'inpaint'?")


# -- bad input: one line, a non-zero exit, never a traceback ----------------------------------------------------------

def test_missing_input(tmp_path):
    one_line_error(cleanfeed("run", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4"), "--box", BOX),
                   3, "does not exist")


def test_not_a_video(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 100)
    proc = cleanfeed("run", str(text), "-o", str(tmp_path / "o.mp4"), "--box", BOX)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "notes.txt" in proc.stderr.strip().splitlines()[-1]


def test_unknown_element_and_property_and_value(clip, tmp_path):
    out = tmp_path / "o.mp4"
    one_line_error(cleanfeed("launch", f"filesrc location={clip} ! idenity ! filesink location={out}"), 2,
                   "no element named 'idenity'")
    one_line_error(cleanfeed("launch", f"filesrc location={clip} ! inpaint windw=3 ! filesink location={out}"), 2,
                   "inpaint has no property 'windw'")
    one_line_error(cleanfeed("launch", f"filesrc location={clip} ! inpaint window=many ! filesink location={out}"), 2,
                   "inpaint property window must be an integer, got 'many'")
    one_line_error(cleanfeed("launch", f"filesrc location={clip} ! filesink location={out} crf=99"), 2,
                   "filesink property crf must be <= 51, got 99")
    one_line_error(cleanfeed("launch", "filesrc location=x.mp4 ! ! filesink"), 2, "expected an element before '!'")


def test_box_outside_the_frame_or_empty(clip, tmp_path):
    one_line_error(cleanfeed("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--box", "100,10,400,50"), 2,
                   "must lie inside the 160x96 frame")
    one_line_error(cleanfeed("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--box", "50,50,50,60"), 2,
                   "box must have X1 > X0")
    one_line_error(cleanfeed("run", str(clip), "-o", str(tmp_path / "o.mp4")), 2, "nothing to remove")


def test_mask_of_the_wrong_size(clip, tmp_path):
    import cv2
    import numpy as np

    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.full((10, 10), 255, np.uint8))
    one_line_error(cleanfeed("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--mask", str(mask)), 2,
                   "must be 160x96 like the video, got 10x10")


def test_output_that_cannot_be_written(clip, tmp_path):
    proc = cleanfeed("run", str(clip), "-o", str(tmp_path / "no" / "such" / "dir" / "o.mp4"), "--box", BOX)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "cannot write" in proc.stderr.strip().splitlines()[-1]


def test_rtsp_that_never_answers(tmp_path):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    start = time.monotonic()
    proc = cleanfeed("launch", f"urisrc uri=rtsp://127.0.0.1:{port}/x timeout_s=1 ! fakesink", timeout=60)
    assert time.monotonic() - start < 20
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "did not answer" in proc.stderr.strip().splitlines()[-1]
    server.close()


def test_truncated_input_decodes_what_it_can(tmp_path):
    whole = make_video(tmp_path / "whole.ts", frames=40, audio=False)
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "o.mp4"
    proc = cleanfeed("run", str(cut), "-o", str(out), "--box", BOX)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    n = frame_count(out)
    assert 10 < n < 40
    assert f"{n} frames in, {n} frames out" in proc.stderr


# -- stopping --------------------------------------------------------------------------------------------------------

def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_finalizes_output_and_leaves_no_children(tmp_path, sig):
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen([*CLI, "launch", "--quiet",
                             "testsrc width=320 height=180 frames=100000 ! identity delay_ms=5 ! "
                             f"filesink location={out} preset=ultrafast"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        children: set[int] = set()
        while time.monotonic() < deadline and bytes_written(out) < 20000:
            children |= _descendants(proc.pid)
            time.sleep(0.2)
        children |= _descendants(proc.pid)
        assert len(children) >= 3, "expected one process per element"
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed check above: the run has 100000 frames to go
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    time.sleep(0.5)
    assert not [pid for pid in children if _alive(pid)]
    info = ffprobe(out, "-show_entries", "format=duration")
    assert float(info["format"]["duration"]) > 0
    assert frame_count(out) > 10
