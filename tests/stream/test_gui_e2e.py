"""`cleanfeed gui` in a real browser (Playwright + Debian's Chromium): upload, click, mask, run, download.

Skips only where Chromium or the playwright package is missing (CI installs both). Saves
screenshots; docs/gui.png in the README is one of them, copied by hand.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from logo_clip import write_logo_clip

from cleanfeed.bench.gui_click import CHROMIUM, CHROMIUM_ARGS, free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
W, H, FRAMES, RATE = 320, 180, 48, 24
LOGO = (200, 40, 260, 90)  # x0, y0, x1, y1: a white square with a blue core, fixed on a moving background


def write_clip(path: Path) -> Path:
    """A 2 s 320x180 H.264 clip: a moving gradient with the logo square on top."""
    return write_logo_clip(path, width=W, height=H, frames=FRAMES, rate=RATE, logo=LOGO, border=10)


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
            args=CHROMIUM_ARGS,
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


@pytest.fixture()
def gui_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    """`cleanfeed gui` on a free loopback port, stopped after the test; yields its URL."""
    port = free_port()
    # the work folder lies outside the app's temp folder and its working directory, as a user's may
    (tmp_path / "apptmp").mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False", TMPDIR=str(tmp_path / "apptmp"))
    log = (tmp_path / "gui.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cleanfeed.stream.cli.main", "gui", "--port", str(port), "--workdir",
                             str(tmp_path / "work"), "--max-upload-mb", "50"], env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, proc, 60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _drawn(page, width: int, height: int):  # type: ignore[no-untyped-def]
    """Where the frame's pixel (0, 0) is on the page and the scale: drawn centred in the img box, never enlarged."""
    page.wait_for_function("(() => { const i = document.querySelector('#cf-frame img');"
                           " return i && i.complete && i.naturalWidth > 0; })()", timeout=10_000)
    box = page.locator("#cf-frame img").bounding_box()
    assert box is not None
    scale = min(1.0, box["width"] / width, box["height"] / height)
    return box["x"] + (box["width"] - width * scale) / 2, box["y"] + (box["height"] - height * scale) / 2, scale


@pytest.mark.slow
def test_gui_upload_click_run_download(tmp_path: Path, browser_page, gui_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    clip = write_clip(tmp_path / "logo.mp4")
    shots = tmp_path / "shots"
    shots.mkdir()
    page.goto(gui_url)
    page.wait_for_selector("#cf-upload input[type=file]", state="attached", timeout=20_000)
    assert "classical (GrabCut)" in page.inner_text("#cf-engine")

    page.set_input_files("#cf-upload input[type=file]", str(clip))
    page.wait_for_function("document.querySelector('#cf-facts').innerText.includes('48 frames')", timeout=20_000)
    assert "320x180, 24 fps, 48 frames, 2.00 s, audio: none" in page.inner_text("#cf-facts")
    page.wait_for_selector("#cf-frame img", timeout=10_000)
    cx, cy = (LOGO[0] + LOGO[2]) // 2, (LOGO[1] + LOGO[3]) // 2
    before = page.evaluate(PIXEL_JS, [cx, cy])

    left, top, scale = _drawn(page, W, H)
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


def _status_has(page, text: str, timeout_ms: int = 10_000) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("(t) => document.querySelector('#cf-status').innerText.includes(t)", arg=text,
                           timeout=timeout_ms)


@pytest.mark.slow
def test_gui_drag_a_box_and_clicks_stay_clicks(tmp_path: Path, browser_page, gui_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    clip = write_clip(tmp_path / "logo.mp4")
    page.goto(gui_url)
    where = page.locator("#cf-location textarea, #cf-location input").first
    where.wait_for(timeout=20_000)
    where.fill(str(clip))  # a path on the server this time
    page.click("#cf-open")
    page.wait_for_function("document.querySelector('#cf-facts').innerText.includes('48 frames')", timeout=20_000)
    page.wait_for_selector("#cf-frame img", timeout=10_000)
    cx, cy = (LOGO[0] + LOGO[2]) // 2, (LOGO[1] + LOGO[3]) // 2
    before = page.evaluate(PIXEL_JS, [cx, cy])
    left, top, scale = _drawn(page, W, H)

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x + 0.5) * scale, top + (y + 0.5) * scale

    def objects() -> str:
        return str(page.inner_text("#cf-objects"))

    def shown() -> str:
        return str(page.evaluate("document.querySelector('#cf-frame img').src"))

    def settled(old: str) -> None:
        """Waits for the frame image after ``old`` to be on screen: a click while the img is replaced is lost."""
        page.wait_for_function("(old) => { const i = document.querySelector('#cf-frame img');"
                               " return i && i.src !== old && i.complete && i.naturalWidth > 0; }", arg=old,
                               timeout=10_000)

    # drag a box around the logo (mode "+": a drag makes a box in every mode)
    x0, y0, x1, y1 = LOGO[0] - 6, LOGO[1] - 6, LOGO[2] + 5, LOGO[3] + 5  # corner pixels, both in the box
    old = shown()
    page.mouse.move(*at(x0, y0))
    page.mouse.down()
    page.mouse.move(*at((x0 + x1) / 2, (y0 + y1) / 2), steps=4)
    band = page.locator("#cf-drag-band")
    assert band.is_visible(), "no rubber band while dragging"
    page.mouse.move(*at(x1, y1), steps=4)
    page.screenshot(path=str(tmp_path / "drag.png"), full_page=True)
    page.mouse.up()
    _status_has(page, f"box {x0},{y0},{x1 + 1},{y1 + 1}: object 1 on frame 0")
    page.wait_for_function(f"(() => {{ const p = ({PIXEL_JS})([{cx}, {cy}]); return p[0] > {before[0] + 60}; }})()",
                           timeout=10_000)
    assert band.count() == 0
    settled(old)
    time.sleep(1.0)  # a stray click's point would have come back by now
    assert "object 1: frames 0 (this frame: box)" in objects(), objects()
    assert page.inner_text("#cf-status").startswith(f"box {x0},{y0},{x1 + 1},{y1 + 1}: object 1 on frame 0")

    # a plain click, and a press that moves less than the threshold, stay clicks: points
    old = shown()
    page.mouse.click(*at(cx, cy))
    page.wait_for_function("document.querySelector('#cf-objects').innerText.includes('box, 1 point)')",
                           timeout=10_000)
    settled(old)
    old = shown()
    page.mouse.move(*at(cx - 5, cy))
    page.mouse.down()
    page.mouse.move(at(cx - 5, cy)[0] + 2, at(cx - 5, cy)[1] + 1)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#cf-objects').innerText.includes('box, 2 points)')",
                           timeout=10_000)
    settled(old)

    # Escape drops a drag: no box, no point
    page.mouse.move(*at(20, 20))
    page.mouse.down()
    page.mouse.move(*at(60, 70), steps=4)
    page.keyboard.press("Escape")
    assert band.count() == 0
    page.mouse.up()
    time.sleep(1.0)
    assert "object 1: frames 0 (this frame: box, 2 points)" in objects(), objects()

    # the box by two clicks still works (keyboard and touch users), for a second object
    page.click("#cf-new")
    _status_has(page, "object 2 is current")
    page.locator("#cf-mode label", has_text="box").click()
    old = shown()
    page.mouse.click(*at(20, 20))
    _status_has(page, "box: first corner set")
    settled(old)
    page.mouse.click(*at(60, 70))
    _status_has(page, ": object 2 on frame 0")
    said = page.inner_text("#cf-status")  # Gradio rounds a click's position: a pixel either way
    assert re.match(r"box 2[01],2[01],6[12],7[12]: object 2 on frame 0", said), said
    assert "object 2: frames 0 (this frame: box)" in objects(), objects()
    assert not page.locator("#cf-status .cf-error").count(), page.inner_text("#cf-status")
