"""`cleanfeed gui` in a real browser (Playwright + Debian's Chromium): upload, click, mask, run, download.

Skips only where Chromium or the playwright package is missing (CI installs both). Saves
screenshots; docs/gui.png in the README is one of them, copied by hand.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from logo_clip import write_logo_clip

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
W, H, FRAMES, RATE = 320, 180, 48, 24
LOGO = (200, 40, 260, 90)  # x0, y0, x1, y1: a white square with a blue core, fixed on a moving background


def write_clip(path: Path) -> Path:
    """A 2 s 320x180 H.264 clip: a moving gradient with the logo square on top."""
    return write_logo_clip(path, width=W, height=H, frames=FRAMES, rate=RATE, logo=LOGO, border=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"cleanfeed gui exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"cleanfeed gui did not answer on {url} within {timeout} s")


def _frames_of(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout)["streams"][0]["nb_read_frames"])


PIXEL_JS = """([x, y]) => {
  const img = document.querySelector('#cf-frame img');
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
}"""


@pytest.fixture()
def browser_page(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    pytest.importorskip("gradio", reason="gradio is not installed (pip install 'cleanfeed[gui]')")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, accept_downloads=True,
            viewport={"width": 1280, "height": 1400},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


@pytest.mark.slow
def test_gui_upload_click_run_download(tmp_path: Path, browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    clip = write_clip(tmp_path / "logo.mp4")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    log = (tmp_path / "gui.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli.main", "gui", "--port", str(port), "--workdir",
                             str(tmp_path / "work"), "--max-upload-mb", "50"], env=env, stdout=log, stderr=log)
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc, 60)
        page.goto(url)
        page.wait_for_selector("#cf-upload input[type=file]", state="attached", timeout=20_000)
        assert "classical (GrabCut)" in page.inner_text("#cf-engine")

        page.set_input_files("#cf-upload input[type=file]", str(clip))
        page.wait_for_function("document.querySelector('#cf-facts').innerText.includes('48 frames')", timeout=20_000)
        assert "320x180, 24 fps, 48 frames, 2.00 s, audio: none" in page.inner_text("#cf-facts")
        img = page.wait_for_selector("#cf-frame img", timeout=10_000)
        cx, cy = (LOGO[0] + LOGO[2]) // 2, (LOGO[1] + LOGO[3]) // 2
        before = page.evaluate(PIXEL_JS, [cx, cy])

        box = img.bounding_box()
        assert box is not None
        scale = min(1.0, box["width"] / W, box["height"] / H)  # drawn centred in the img box, never enlarged
        left, top = box["x"] + (box["width"] - W * scale) / 2, box["y"] + (box["height"] - H * scale) / 2
        started = time.monotonic()
        page.mouse.click(left + (cx + 0.5) * scale, top + (cy + 0.5) * scale)
        page.wait_for_function("document.querySelector('#cf-status').innerText.includes('object 1 on frame 0')",
                               timeout=10_000)
        click_s = time.monotonic() - started
        page.wait_for_function(f"(() => {{ const p = ({PIXEL_JS})([{cx}, {cy}]); return p[0] > {before[0] + 60}; }})()",
                               timeout=10_000)
        after = page.evaluate(PIXEL_JS, [cx, cy])
        assert after[0] > before[0] + 60, f"no mask tint at the logo: {before} -> {after}"
        page.screenshot(path=str(shots / "mask.png"), full_page=True)

        page.click("#cf-preview-btn")
        page.wait_for_selector("#cf-preview video[src]", timeout=20_000)
        assert page.inner_text("#cf-status").startswith("preview ready")

        page.click("#cf-run")
        page.wait_for_function("document.querySelector('#cf-run-status').innerText.length > 0", timeout=20_000)
        started = time.monotonic()
        page.click("#cf-new")  # the page answers while the run goes on
        page.wait_for_function("document.querySelector('#cf-status').innerText.includes('object 2 is current')",
                               timeout=10_000)
        during_run_s = time.monotonic() - started
        assert not page.inner_text("#cf-run-status").startswith("done"), "the run ended before the page was tested"
        page.wait_for_function("document.querySelector('#cf-run-status').innerText.match(/^(done|failed)/)"
                               " || document.querySelector('#cf-status .cf-error')", timeout=120_000)
        assert not page.locator("#cf-status .cf-error").count(), page.inner_text("#cf-status")
        assert page.inner_text("#cf-run-status").startswith("done: 48/48 frames"), page.inner_text("#cf-run-status")
        links = page.locator("#cf-downloads a")
        links.first.wait_for(timeout=10_000)
        names = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
        assert any(n.endswith("cleaned.mp4") for n in names), names
        assert any(n.endswith("masks.zip") for n in names) and any(n.endswith("prompts.json") for n in names), names
        with page.expect_download(timeout=15_000) as caught:
            page.locator("#cf-downloads a[href$='cleaned.mp4']").first.click()
        result = tmp_path / "result.mp4"
        caught.value.save_as(str(result))
        assert _frames_of(result) == FRAMES
        page.screenshot(path=str(shots / "done.png"), full_page=True)
        print(f"click to mask on screen: {click_s * 1000:.0f} ms; a click answered during the run: "
              f"{during_run_s * 1000:.0f} ms")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
