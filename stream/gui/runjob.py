"""The full run, started from the page: the `cleanfeed run` chain in a worker process, watched by a thread.

The run is the `cleanfeed run` recipe (cleanfeed.stream.recipe): the settings panel becomes a
RunOptions (``run_options``), whose chain the worker builds and whose `cleanfeed run` command
line (cleanfeed.stream.cli.run.command_line) the page shows, to reproduce the run with the
downloaded prompt file. It runs in a child process (``python -m cleanfeed.stream.gui.worker``) that starts the pipeline's own element
processes at a lower CPU priority (see worker.py): the page's process only reads progress
lines, and its threads come first for the CPU, so clicks stay fast while it runs.
Cancel sends the worker SIGTERM, which the pipeline treats as a graceful stop (the source
stops reading, the sink finalizes a playable file); the worker dies with the app (PDEATHSIG).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanfeed.stream.cli import run as run_cli
from cleanfeed.stream.recipe import ElementSpec, RunOptions

SEGMENT_ENGINES = ("auto", "classical", "sam")
TRACK_ENGINES = ("auto", "classical", "deaot")
CODECS = ("h264", "hevc", "ffv1")


@dataclass
class RunSettings:
    """What the settings panel holds; every field maps to a `cleanfeed run` option or an element property."""

    segment_engine: str = "auto"
    """auto | classical | sam (sam needs sam_checkpoint or one in the models folder)."""
    track_engine: str = "auto"
    """auto | classical | deaot."""
    inpaint_engine: str = "auto"
    """One of the inpaint element's engines."""
    sam_checkpoint: str | None = None
    deaot_checkpoint: str | None = None
    models: str | None = None
    window: int = 5
    """Inpaint lookahead in frames."""
    dilate: int = 8
    """Mask growth in pixels before inpainting."""
    codec: str = "h264"
    crf: int = 20
    """Quality for h264/hevc, 0 (lossless) .. 51."""
    preset: str | None = None
    """x264/x265 preset; None: the recipe's default (cleanfeed.stream.recipe.FILE_PRESET)."""


def run_options(source: str, output: str, prompts_file: str, settings: RunSettings,
                masks_dir: str | None = None) -> RunOptions:
    """The `cleanfeed run` recipe for this run: the prompts from the app's prompt file, the
    settings panel's engines, checkpoints and numbers."""
    s = settings
    return RunOptions(
        input=source, output=output, prompts=prompts_file, save_masks=masks_dir or None,
        classical=s.segment_engine == "classical" and s.track_engine == "classical",
        sam=s.sam_checkpoint if s.segment_engine == "sam" and s.sam_checkpoint else None,
        deaot=s.deaot_checkpoint if s.track_engine == "deaot" and s.deaot_checkpoint else None,
        models=s.models or None, window=s.window, dilate=s.dilate, codec=s.codec, crf=s.crf, preset=s.preset,
        segment_engine=s.segment_engine, track_engine=s.track_engine, inpaint_engine=s.inpaint_engine,
    )


def command_line(options: RunOptions) -> str:
    """The `cleanfeed run` command for ``options`` (the per-stage engines are in the launch line)."""
    return run_cli.command_line(options)


def launch_line(specs: list[ElementSpec]) -> str:
    """The exact pipeline, as `cleanfeed launch` takes it."""
    return "cleanfeed launch " + shlex.quote(run_cli.launch_line(specs))


@dataclass
class RunStatus:
    """What the progress bar shows. state: starting, running, cancelling, done, cancelled, failed."""

    state: str = "starting"
    frames_out: int = 0
    frames_total: int | None = None
    fps: float = 0.0
    eta_s: float | None = None
    message: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        if not self.frames_total:
            return 0.0
        return min(1.0, self.frames_out / self.frames_total)

    def describe(self) -> str:
        total = f"/{self.frames_total}" if self.frames_total else ""
        eta = f", ETA {self.eta_s:.0f} s" if self.eta_s is not None and not self.finished else ""
        line = f"{self.state}: {self.frames_out}{total} frames, {self.fps:.1f} fps{eta}"
        return f"{line}. {self.message}" if self.message else line


class RunJob:
    """One run in a worker process (see the module doc); poll :meth:`status`, :meth:`cancel` to stop."""

    def __init__(self, options: RunOptions, workdir: Path, masks_dir: Path | None = None,
                 output: Path | None = None) -> None:
        self.workdir = workdir
        self.masks_dir = masks_dir
        self.output = output
        self.masks_zip: Path | None = None
        self._status = RunStatus()
        self._lock = threading.Lock()
        self._log: list[str] = []
        workdir.mkdir(parents=True, exist_ok=True)
        job = workdir / "job.json"
        job.write_text(json.dumps({"options": options.to_json()}), encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "cleanfeed.stream.gui.worker", str(job), str(os.getpid())], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=str(workdir),
        )
        self._started = time.monotonic()
        self._reader = threading.Thread(target=self._read, name="cleanfeed-gui-run", daemon=True)
        self._errors = threading.Thread(target=self._read_stderr, name="cleanfeed-gui-run-log", daemon=True)
        self._reader.start()
        self._errors.start()

    @property
    def pid(self) -> int:
        """The worker's process id (its pipeline's processes are its children)."""
        return self._proc.pid

    def status(self) -> RunStatus:
        with self._lock:
            return RunStatus(**vars(self._status))

    @property
    def log_tail(self) -> str:
        with self._lock:
            return "\n".join(self._log[-20:])

    def cancel(self) -> bool:
        """Asks for a graceful stop; False when the run already ended."""
        with self._lock:
            if self._status.finished:
                return False
            self._status.state = "cancelling"
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return True

    def wait(self, timeout: float | None = None) -> RunStatus:
        self._reader.join(timeout)
        return self.status()

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            with self._lock:
                self._log.append(line.rstrip())
                del self._log[:-200]

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._absorb(msg)
        code = self._proc.wait()
        self._errors.join(timeout=2)
        self._finish(code)

    def _absorb(self, msg: dict[str, Any]) -> None:
        with self._lock:
            s = self._status
            if "progress" in msg:
                p = msg["progress"]
                if s.state == "starting":
                    s.state = "running"
                s.frames_out, s.frames_total, s.fps = int(p["frames_out"]), p.get("frames_total"), float(p["fps"])
                if s.fps > 0 and s.frames_total:
                    s.eta_s = max(0.0, (s.frames_total - s.frames_out) / s.fps)
            elif "done" in msg:
                s.report = msg["done"]
                s.frames_out = int(s.report.get("frames_out", s.frames_out))
            elif "error" in msg:
                s.message = str(msg["error"])
                s.report = msg.get("report") or {}
                if msg.get("interrupted"):
                    s.state = "cancelled"
                else:
                    s.state = "failed"

    def _finish(self, code: int) -> None:
        if code == 0 and self.masks_dir is not None and self.masks_dir.is_dir():
            self.masks_zip = zip_masks(self.masks_dir, self.workdir / "masks.zip")
        with self._lock:
            s = self._status
            if code == 0 and s.state not in ("failed", "cancelled"):
                s.state = "done"
                s.eta_s = 0.0
                s.message = f"finished in {time.monotonic() - self._started:.1f} s"
            elif s.state in ("starting", "running", "cancelling"):
                if s.state == "cancelling":
                    s.state = "cancelled"
                else:
                    s.state = "failed"
                    tail = self._log[-1] if self._log else f"worker exited with code {code}"
                    s.message = s.message or tail
            if s.state == "cancelled" and not s.message:
                s.message = "stopped; the output holds the frames done so far"


def zip_masks(folder: Path, target: Path) -> Path:
    """The masks folder's PNGs in one zip (stored: PNGs are compressed already)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for png in sorted(folder.glob("*.png")):
            zf.write(png, png.name)
    return target
