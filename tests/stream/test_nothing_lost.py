"""Nothing lost, nothing silent: an input is never overwritten, a run that did not do its job does
not exit 0, late frames are reported, and a bad input, output or prompt is one line before
anything starts. Real files, the CLI in a subprocess, as a user runs it."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from media import frame_count, make_image_sequence, make_video

from cleanfeed.errors import MediaError
from cleanfeed.stream.media.open import InputOptions
from cleanfeed.stream.media.overlap import refuse_overwrite
from cleanfeed.stream.media.reader import MediaReader, ReaderOptions
from cleanfeed.stream.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
BOX = "40,20,80,50"  # inside the 160x96 test video
CLI = (
    "import sys\n"
    "from tests.stream import fake_elements\n"
    "from cleanfeed.stream.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def cleanfeed(*args: str, cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, env=env, **kw)


def only_line(proc: subprocess.CompletedProcess, code: int, text: str) -> str:
    """The run failed with ``code`` and said so in exactly one line that contains ``text``."""
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cleanfeed: error:") and text in lines[0], lines[0]
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("lost") / "in.mp4", frames=12, audio=False)


# -- 1. the input is never overwritten ---------------------------------------------------------
@pytest.mark.parametrize("how", ["same path", "other path", "symlink", "hard link"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(clip, tmp_path, how):
    source = tmp_path / "same.mkv"
    make_video(source, frames=12, audio=True, codec="libx264")
    before = digest(source)
    output = {
        "same path": str(source),
        "other path": str(tmp_path / "sub" / ".." / "same.mkv"),
        "symlink": str(tmp_path / "link.mkv"),
        "hard link": str(tmp_path / "hard.mkv"),
    }[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        os.symlink(source, output)
    if how == "hard link":
        os.link(source, output)
    proc = cleanfeed("run", str(source), "-o", output, "--box", BOX)
    only_line(proc, 3, "must not overwrite the input")
    assert digest(source) == before
    assert frame_count(source) == 12


def test_an_output_among_an_input_sequences_frames_is_refused(tmp_path):
    made, _ = make_image_sequence(tmp_path / "frames", frames=6)
    pattern = str(made)
    before = {p.name: digest(p) for p in (tmp_path / "frames").iterdir()}
    only_line(cleanfeed("run", pattern, "-o", pattern, "--box", BOX), 3, "must not overwrite the input")
    only_line(cleanfeed("run", pattern, "-o", str(tmp_path / "o.mp4"), "--box", BOX, "--save-masks",
                        str(tmp_path / "frames")), 3, "must not overwrite the input")
    assert {p.name: digest(p) for p in (tmp_path / "frames").iterdir()} == before


def test_refuse_overwrite_compares_files_not_strings(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"x")
    (tmp_path / "00001.png").write_bytes(b"x")
    (tmp_path / "x").mkdir()
    refuse_overwrite([str(a)], [str(b), str(tmp_path / "out" / "%05d.png"), "udp://127.0.0.1:5000"])
    refuse_overwrite(["rtsp://127.0.0.1/x", "-"], [str(a)])
    refuse_overwrite([str(tmp_path / "%05d.png")], [str(tmp_path / "%d.png")])  # writes 1.png, not 00001.png
    refuse_overwrite([str(tmp_path / "%05d.png")], [str(tmp_path / "clean_%05d.png")])
    for read, write in ((tmp_path / "%05d.png", tmp_path / "00001.png"), (tmp_path / "00001.png", tmp_path / "%05d.png"),
                        (tmp_path / "%05d.png", tmp_path / "x" / ".." / "%05d.png"), (tmp_path, tmp_path / "m.mkv")):
        with pytest.raises(MediaError, match="must not overwrite the input"):
            refuse_overwrite([str(read)], [str(write)])


def test_a_run_writes_beside_the_output_and_renames_it_in_place(clip, tmp_path):
    out = tmp_path / "out.mp4"
    proc = cleanfeed("run", str(clip), "-o", str(out), "--box", BOX, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert frame_count(out) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no .part left behind


def test_a_run_that_writes_no_frame_exits_3_and_leaves_an_existing_output_as_it_was(tmp_path):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"yesterday's recording")
    proc = cleanfeed("launch", f"t_countsrc frames=3 ! t_fail at=0 ! filesink location={out}")
    assert proc.returncode != 0, proc.stderr
    assert out.read_bytes() == b"yesterday's recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


# -- 2. a prompt that never applies ------------------------------------------------------------
def test_a_prompt_past_the_last_frame_is_refused_up_front(clip, tmp_path):
    out = tmp_path / "out.mp4"
    line = only_line(cleanfeed("run", str(clip), "-o", str(out), "--box", BOX, "--frame", "500"), 2, "frame 500")
    assert "12 frames" in line
    assert not out.exists()


def test_a_prompt_past_the_end_of_a_pipe_is_an_error_at_its_end(tmp_path):
    clip = make_video(tmp_path / "in.ts", frames=12, audio=False)
    out = tmp_path / "out.mkv"
    with open(clip, "rb") as stdin:
        proc = cleanfeed("run", "-", "-o", str(out), "--box", BOX, "--frame", "40", "--quiet", stdin=stdin)
    assert proc.returncode == 2, proc.stderr
    assert "frame 40" in proc.stderr and "never applied" in proc.stderr and "12 frames" in proc.stderr
    assert frame_count(out) == 12  # what was written is kept, and playable


# -- 3. a run that writes nothing --------------------------------------------------------------
def test_a_run_that_gets_no_frame_exits_3_with_one_reason(tmp_path):
    """A stream with sound and no picture frame: nothing to write, and the run must not say "done"."""
    empty = tmp_path / "empty.ts"
    made = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-f", "mpegts", str(empty)],
                          capture_output=True)
    assert made.returncode == 0, made.stderr
    with open(empty, "rb") as stdin:
        proc = cleanfeed("run", "-", "-o", str(tmp_path / "o.mkv"), "--box", BOX, stdin=stdin)
    assert proc.returncode == 3, proc.stderr
    assert not (tmp_path / "o.mkv").exists()


# -- 4. late frames are reported -----------------------------------------------------------------
LATE = "t_countsrc frames=8 ! t_slow ms=120 ! t_recordsink"


def test_late_frames_are_counted_and_warned_about(tmp_path):
    proc = cleanfeed("launch", "--live", "--latency", "60", LATE)
    assert proc.returncode == 0, proc.stderr
    assert "8 late" in proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "warning:" in line and "budget" in line]
    assert len(warning) == 1 and "8 of 8 frames" in warning[0] and "60 ms" in warning[0] and "--latency" in warning[0]


def test_fail_on_late_makes_late_frames_exit_4(tmp_path):
    proc = cleanfeed("launch", "--live", "--latency", "60", "--fail-on-late", LATE)
    assert proc.returncode == 4, proc.stderr
    assert "cleanfeed: error: 8 of 8 frames left later than the 60 ms budget" in proc.stderr


def test_a_run_on_time_says_nothing_of_lateness(tmp_path):
    proc = cleanfeed("launch", "--live", "--latency", "5000", "--fail-on-late", "t_countsrc frames=4 ! t_recordsink")
    assert proc.returncode == 0, proc.stderr
    assert not re.search(r"\blate\b", proc.stderr) and "budget" not in proc.stderr


# -- 5 and 6. one line, the right code, the user's own words -----------------------------------
@pytest.mark.parametrize(("args", "code", "text"), [
    (["--box", "-10,-10,50,50"], 2, "--box must be"),
    (["--box", BOX, "--window", "99"], 2, "--window must be <= 30, got 99"),
    (["--box", BOX, "--crf", "99"], 2, "--crf must be"),
    (["--box", "0,0,160,96"], 2, "must cover at most 60% of the 160x96 frame, got 100%"),
    (["--point", "60,30,0"], 2, "must have a point on it (label 1)"),
    (["--box", "40,20,200,50"], 2, "must lie inside the 160x96 frame"),
    (["--mask", "missing.png"], 2, "does not exist"),
    (["--box", BOX, "--bogus"], 2, "unrecognized arguments: --bogus"),
])
def test_bad_settings_are_one_line_before_anything_starts(clip, tmp_path, args, code, text):
    out = tmp_path / "out.mp4"
    only_line(cleanfeed("run", str(clip), "-o", str(out), *args), code, text)
    assert not out.exists()


def test_a_missing_input_is_one_line(tmp_path):
    only_line(cleanfeed("run", str(tmp_path / "nothere.mp4"), "-o", str(tmp_path / "o.mp4"), "--box", BOX),
              3, "does not exist")


def test_a_gpu_this_machine_lacks_is_an_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error is for machines without it")
    only_line(cleanfeed("run", "in.mp4", "-o", "o.mp4", "--box", BOX, "--device", "cuda"), 2,
              "--device must be a CUDA GPU that PyTorch sees, got cuda")


def test_the_engines_are_one_line_and_log_level_works_after_the_command(clip, tmp_path):
    empty_models = tmp_path / "models"
    empty_models.mkdir()
    proc = cleanfeed("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--box", BOX, "--models", str(empty_models))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    engines = [line for line in lines if line.startswith("cleanfeed: engines:")]
    assert len(engines) == 1 and "segment GrabCut (no SAM checkpoint)" in engines[0], proc.stderr
    assert "inpaint flow-guided propagation" in engines[0] and str(empty_models) in engines[0]
    assert "using the classical engine" not in proc.stderr
    quiet = cleanfeed("run", str(clip), "-o", str(tmp_path / "q.mp4"), "--box", BOX, "--log-level", "error")
    assert quiet.returncode == 0 and quiet.stderr.count("cleanfeed:") == 0, quiet.stderr


def test_a_reader_stopped_early_does_not_call_its_input_truncated(clip, caplog):
    reader = MediaReader(str(clip), ReaderOptions(open=InputOptions()))
    items = reader.items(lambda caps, seq, pts, tb: _Frame())
    next(items)
    items.close()
    with caplog.at_level(logging.WARNING):
        reader.close()
    assert "truncated" not in caplog.text


class _Frame:
    """Stands in for a VideoFrame: the reader only fills its picture."""

    def __init__(self) -> None:
        from cleanfeed.stream.picture import Picture

        self.picture = Picture.empty("yuv420p", 160, 96)


def test_check_runs_before_any_process_and_only_once(clip, tmp_path):
    pipe = Pipeline.from_launch(f"filesrc location={clip} ! segment box={BOX} frame=3 ! fakesink")
    probe = pipe.check()
    assert probe is not None and probe.exact_frames == 12 and probe.caps.width == 160
    assert pipe.check() is probe


def test_a_truncated_checkpoint_is_one_line_before_anything_starts(clip, tmp_path):
    cut = tmp_path / "sam_vit_b_01ec64.pth"
    cut.write_bytes(b"PK\x03\x04" + bytes(1000))  # a zip-based torch.save file whose download stopped
    out = tmp_path / "o.mp4"
    only_line(cleanfeed("run", str(clip), "-o", str(out), "--box", BOX, "--sam", str(cut)), 2, "truncated")
    only_line(cleanfeed("run", str(clip), "-o", str(out), "--box", BOX, "--models", str(tmp_path)), 2, "truncated")
    assert not out.exists()
