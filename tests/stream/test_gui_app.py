"""The web app's start-up output and its status line at a run's end."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from cleanfeed.bench.gui_click import free_port  # noqa: E402
from cleanfeed.stream.gui.app import run_outcome  # noqa: E402
from cleanfeed.stream.gui.runjob import RunStatus  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("state", "message", "shown"), [
    ("done", "", "run done: done: 10/10 frames, 5.0 fps"),
    ("cancelled", "the output keeps the frames done so far", "run cancelled: cancelled: 10/10 frames"),
    ("failed", "inpaint: out of memory", "run failed: failed: 10/10 frames, 5.0 fps. inpaint: out of memory"),
])
def test_the_status_line_shows_how_the_run_ended(state: str, message: str, shown: str) -> None:
    html = run_outcome(RunStatus(state=state, frames_out=10, frames_total=10, fps=5.0, message=message))
    assert shown in html and "run started" not in html
    assert ("cf-error" in html) == (state == "failed")


def test_start_up_prints_the_address_and_no_share_advice(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "-m", "cleanfeed.stream.cli.main", "gui", "--port", str(port), "--workdir",
                             str(tmp_path / "work")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            end = time.monotonic() + 120
            while "cleanfeed gui on" not in out and time.monotonic() < end and proc.poll() is None:
                if sel.select(timeout=1):
                    out += proc.stdout.readline()
    finally:
        proc.terminate()
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    out += rest or ""
    assert f"cleanfeed gui on http://127.0.0.1:{port}/" in out, out
    assert "share=True" not in out and "public link" not in out, out
