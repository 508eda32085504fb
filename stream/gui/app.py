"""The Gradio page: layout and wiring only; every action is a cleanfeed.stream.gui.session.Session method.

Handlers never raise: a CleanfeedError becomes the status line (in red), anything else an
"internal error" line with the details in the log, and the session keeps what it had. Each
browser tab has its own Session (a folder under the app's work directory). A timer polls the
run's progress; that handler only reads the run's status, so it answers at once whatever
else is going on. Gradio's image has no drag event: a script (stream/gui/drag.py) turns a
drag on the frame into a hidden textbox's change, handled like the 2-click box.

The frame goes to the browser as a JPEG file the app encodes (quality 90, ~10 ms for 1080p),
not as Gradio's PNG of the array: a 1080p PNG takes ~300 ms to encode on a 2-core CPU and is
~4 MB to send and decode, which alone broke "a click answered in < 200 ms". Actions that do
not change the picture (a new object) do not send it again.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import gradio as gr

from cleanfeed.errors import CleanfeedError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.gui.book import FramePrompt
from cleanfeed.stream.gui.choices import StageChoices, stage_choices
from cleanfeed.stream.gui.drag import DRAG_JS, ELEM_ID, parse_drag
from cleanfeed.stream.gui.masker import Masker, MaskResult, open_masker
from cleanfeed.stream.gui.overlay import colour_hex
from cleanfeed.stream.gui.runjob import CODECS, RunStatus
from cleanfeed.stream.gui.session import MODES, GuiConfig, Session

log = logging.getLogger(__name__)

MODE_LABELS = {"positive": "+ on the object", "negative": "− not the object", "box": "▭ box (drag, or 2 clicks)"}
VIEW_QUALITY = 90
"""JPEG quality of the frame shown (masks' outlines stay crisp; see the module doc)."""
VIEWS_KEPT = 16
"""Frame files kept per tab; Gradio copies each into its cache as it sends it."""
VIDEO_TYPES = [".mp4", ".mkv", ".mov", ".webm", ".avi", ".ts", ".m4v", ".mpg", ".flv"]


@dataclass
class AppConfig:
    """`cleanfeed gui`'s options."""

    models: str | None = None
    max_upload_mb: float = 2048.0
    workdir: Path | None = None
    device: str = "auto"


class SharedMasker:
    """One masker (one SAM model in memory) for every tab, used by one click at a time."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._lock = threading.Lock()
        self.name = masker.name

    def mask(self, caps: Caps, frame: VideoFrame, prompt: Any) -> MaskResult:
        with self._lock:
            forget = getattr(self._masker, "forget", None)
            if forget is not None:  # tabs may show different videos: never reuse another tab's embedding
                forget()
            return self._masker.mask(caps, frame, prompt)

    def close(self) -> None:
        self._masker.close()


def _ok(text: str) -> str:
    return f"<div class='cf-ok'>{html.escape(text)}</div>"


def _bad(text: str) -> str:
    return f"<div class='cf-error' role='alert'>⚠ {html.escape(text)}</div>"


def run_outcome(status: RunStatus) -> str:
    """The status line once a run has ended: "run started" must not stay up after its end."""
    if status.state == "failed":
        return _bad(f"run failed: {status.describe()}")
    return _ok(f"run {status.state}: {status.describe()}")


def guarded(n_outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turns errors into the status line (always the last output); other outputs stay unchanged."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except CleanfeedError as err:
                message = _bad(str(err))
            except Exception as err:  # a bug: say so in the page, keep the session
                log.exception("gui: %s failed", fn.__name__)
                message = _bad(f"internal error: {type(err).__name__}: {err}")
            skips = tuple(gr.skip() for _ in range(n_outputs - 1))
            return (*skips, message) if n_outputs > 1 else message

        return run

    return wrap


def _here(prompt: FramePrompt) -> str:
    """What an object has on the frame shown, e.g. "box, 2 points"."""
    n = len(prompt.points)
    return ", ".join((["box"] if prompt.box is not None else []) + ([f"{n} point{'s' if n != 1 else ''}"] if n else []))


def _objects_html(session: Session) -> str:
    rows = []
    here = session.book.on_frame(session.frame_index)
    for obj, frames in session.objects():
        mark = "▶ " if obj == session.book.current else ""
        shown = ("frames " + ", ".join(map(str, frames[:12])) + (" …" if len(frames) > 12 else "")) if frames \
            else "no prompt yet"
        if obj in here and not here[obj].empty:
            shown += f" (this frame: {_here(here[obj])})"
        rows.append(f"<span class='cf-obj' style='border-color:{colour_hex(obj)}'>{mark}<b style='color:"
                    f"{colour_hex(obj)}'>■</b> object {obj}: {html.escape(shown)}</span>")
    return " ".join(rows) or "<i>no objects yet: click the object on the frame</i>"


def _picture(session: Session) -> str:
    """The session's view (the frame with masks, points and boxes) as a JPEG file for the image."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(session.view(), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, VIEW_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame as JPEG")
    folder = session.workdir / "views"
    folder.mkdir(exist_ok=True)
    path = folder / f"view-{time.time_ns()}-{threading.get_ident()}.jpg"
    path.write_bytes(data.tobytes())
    for old in sorted(folder.glob("view-*.jpg"), key=lambda f: f.name)[:-VIEWS_KEPT]:
        old.unlink(missing_ok=True)
    return str(path)


def _ids(session: Session) -> gr.Dropdown:
    ids = [str(i) for i in session.book.ids]
    current = str(session.book.current) if session.book.current is not None else None
    return gr.Dropdown(choices=ids, value=current)


CSS = """
.cf-error { color: #b00020; font-weight: 600; }
.cf-ok { color: #1b5e20; }
.cf-obj { border-left: 6px solid; padding: 0 6px; margin-right: 8px; display: inline-block; }
#cf-progress { height: 14px; background: #ddd; border-radius: 7px; overflow: hidden; }
#cf-progress > div { height: 100%; background: #2e7d32; transition: width 0.3s; }
"""


def _servable(s: Session, path: str) -> str | None:
    """A server-side video as the page may play it: Gradio serves only files that resolve into its
    temp folder, the working directory or the work folder, so a file elsewhere is shown through a
    hard link in the session's work folder (a copy across file systems, up to the upload limit;
    larger ones are not shown). URLs play as they are; an image sequence has no player."""
    source = Path(path)
    if not source.is_file():
        return path if "://" in path else None
    shown = s.workdir / f"original-{time.monotonic_ns()}{source.suffix}"
    try:
        os.link(source, shown)
    except OSError:
        limit = s.config.max_upload_mb
        if limit is not None and source.stat().st_size > limit * 2**20:
            return None
        shutil.copyfile(source, shown)
    return str(shown)


class Page:
    """The page's components, filled in panel by panel (see :func:`build_app`)."""

    state: gr.State
    # the input panel
    upload: gr.File
    location: gr.Textbox
    open_btn: gr.Button
    facts: gr.Markdown
    prompt_in: gr.File
    # the frame panel: the picture, the prompt tools, the objects and the status line
    image: gr.Image
    dragged: gr.Textbox
    frame_slider: gr.Slider
    mode: gr.Radio
    current: gr.Dropdown
    new_btn: gr.Button
    undo_btn: gr.Button
    clear_btn: gr.Button
    delete_btn: gr.Button
    objects: gr.HTML
    status: gr.HTML
    # the preview panel
    preview_btn: gr.Button
    preview: gr.Video
    # the settings panel, in RunSettings' order of the run handler's arguments
    settings: list[Any]
    # the run panel and its results
    run_btn: gr.Button
    cancel_btn: gr.Button
    bar: gr.HTML
    progress: gr.Markdown
    original: gr.Video
    result: gr.Video
    downloads: gr.File
    command: gr.Code
    timer: gr.Timer

    @property
    def edit_outputs(self) -> list[Any]:
        """What a prompt edit updates: the session, the picture, the objects, the object list, the status."""
        return [self.state, self.image, self.objects, self.current, self.status]


Tab = Callable[[Session | None], Session]
"""The tab's session (made on its first use)."""


def build_app(config: AppConfig) -> gr.Blocks:
    """The page for ``config``; call ``.launch(...)`` on it."""
    root = Path(config.workdir or tempfile.mkdtemp(prefix="cleanfeed-gui-"))
    root.mkdir(parents=True, exist_ok=True)
    masker, masker_note = open_masker("auto", None, config.models, config.device)
    shared = SharedMasker(masker)
    choices = stage_choices(config.models)

    def session_of(state: Session | None) -> Session:
        if state is not None:
            return state
        gui = GuiConfig(workdir=Path(tempfile.mkdtemp(prefix="tab-", dir=root)), models=config.models,
                        max_upload_mb=config.max_upload_mb, device=config.device)
        return Session(gui, masker=shared, masker_note=masker_note)  # type: ignore[arg-type]

    page = Page()
    with gr.Blocks(title="cleanfeed") as demo:
        page.state = gr.State(None)
        gr.Markdown("# cleanfeed: click what to remove\nLoad a video, click the object on any frame, "
                    "preview the tracking, then run the whole video.")
        gr.Markdown(f"**Segmenting with:** {html.escape(masker_note)}", elem_id="cf-engine")
        with gr.Row():
            input_panel(page)
            frame_panel(page)
        preview_panel(page)
        settings_panel(page, choices)
        run_panel(page)
        wire_input(page, session_of)
        wire_frame(page, session_of)
        wire_preview(page, session_of)
        wire_run(page, session_of)
        demo.load(lambda s: session_of(s), [page.state], [page.state])
        demo.load(None, None, None, js=DRAG_JS)  # mouse down, move, up on the frame: a box (stream/gui/drag.py)
    return demo


# -- the panels' layout --------------------------------------------------------------------------
def input_panel(page: Page) -> None:
    """The video (an upload, or a path or URL on the server) and a prompt file to load."""
    with gr.Column(scale=1, min_width=280):
        page.upload = gr.File(label="Upload a video", file_types=VIDEO_TYPES, type="filepath", elem_id="cf-upload")
        page.location = gr.Textbox(label="…or a path / URL on the server (file, frames/%05d.png, rtsp://)",
                                   elem_id="cf-location")
        page.open_btn = gr.Button("Open", elem_id="cf-open")
        page.facts = gr.Markdown("No video yet.", elem_id="cf-facts")
        page.prompt_in = gr.File(label="Load a prompt file (JSON)", file_types=[".json"], type="filepath",
                                 elem_id="cf-prompt-in")


def frame_panel(page: Page) -> None:
    """The frame to click or drag on, the frame slider, the prompt tools, the objects and the status line."""
    with gr.Column(scale=3):
        page.image = gr.Image(label="Frame: click the object, or drag a box around it", interactive=False,
                              elem_id="cf-frame", height=480, format="jpeg", buttons=[])
        page.dragged = gr.Textbox(visible="hidden", elem_id=ELEM_ID, label="dragged box (x0,y0,x1,y1)")
        page.frame_slider = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="cf-slider")
        with gr.Row():
            page.mode = gr.Radio([(MODE_LABELS[m], m) for m in MODES], value="positive", label="A click adds",
                                 elem_id="cf-mode")
            page.current = gr.Dropdown(choices=[], label="Object", elem_id="cf-object", allow_custom_value=False)
        with gr.Row():
            page.new_btn = gr.Button("New object", elem_id="cf-new")
            page.undo_btn = gr.Button("Undo", elem_id="cf-undo")
            page.clear_btn = gr.Button("Clear this frame", elem_id="cf-clear")
            page.delete_btn = gr.Button("Delete object", variant="stop", elem_id="cf-delete")
        page.objects = gr.HTML("<i>no objects yet: click the object on the frame</i>", elem_id="cf-objects")
        page.status = gr.HTML("", elem_id="cf-status")


def preview_panel(page: Page) -> None:
    """A short clip of the tracked masks from the frame shown."""
    with gr.Row():
        page.preview_btn = gr.Button("Preview tracking (next seconds)", elem_id="cf-preview-btn")
        page.preview = gr.Video(label="Preview", interactive=False, elem_id="cf-preview", autoplay=True, loop=True)


def settings_panel(page: Page, choices: list[StageChoices]) -> None:
    """The engines, checkpoints and numbers of the run (cleanfeed.stream.gui.runjob.RunSettings)."""
    with gr.Accordion("Settings", open=False):
        with gr.Row():
            seg_engine = gr.Dropdown(choices[0].options, value="auto", label="Segment engine", info=choices[0].note)
            track_engine = gr.Dropdown(choices[1].options, value="auto", label="Track engine", info=choices[1].note)
            inpaint_engine = gr.Dropdown(choices[2].options, value="auto", label="Inpaint engine")
        with gr.Row():
            sam_ckpt = gr.Textbox(label="SAM checkpoint (optional path)")
            deaot_ckpt = gr.Textbox(label="DeAOT checkpoint (optional path)")
        with gr.Row():
            window = gr.Slider(0, 30, value=5, step=1, label="Lookahead window (frames)")
            dilate = gr.Slider(0, 64, value=8, step=1, label="Mask dilation (pixels)")
            codec = gr.Dropdown(list(CODECS), value="h264", label="Output codec")
            crf = gr.Slider(0, 51, value=20, step=1, label="Quality (CRF: lower is better)")
    page.settings = [seg_engine, track_engine, inpaint_engine, sam_ckpt, deaot_ckpt, window, dilate, codec, crf]


def run_panel(page: Page) -> None:
    """Run and cancel, the progress, the original and the result, the downloads and the command line."""
    with gr.Row():
        page.run_btn = gr.Button("Run the whole video", variant="primary", elem_id="cf-run")
        page.cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cf-cancel")
    page.bar = gr.HTML("<div id='cf-progress'><div style='width:0%'></div></div>")
    page.progress = gr.Markdown("", elem_id="cf-run-status")
    with gr.Row():
        page.original = gr.Video(label="Original", interactive=False, elem_id="cf-original")
        page.result = gr.Video(label="Result", interactive=False, elem_id="cf-result")
    page.downloads = gr.File(label="Downloads: result video, masks (zip of PNGs), prompt file", file_count="multiple",
                             interactive=False, elem_id="cf-downloads")
    page.command = gr.Code(label="Reproduce from a shell", language="shell", interactive=False, elem_id="cf-command")
    page.timer = gr.Timer(0.5)


# -- the panels' handlers ------------------------------------------------------------------------
def _frame_outputs(s: Session) -> tuple[Any, ...]:
    return s, _picture(s), _objects_html(s), _ids(s)


def _action(page: Page, tab: Tab, fn: Callable[[Session], str], redraws: bool = True) -> Callable[..., Any]:
    """A button's handler; ``redraws=False``: the picture stays as it was unless a box corner was shown."""

    @guarded(len(page.edit_outputs))
    def handler(s: Session | None) -> tuple[Any, ...]:
        s = tab(s)
        had_corner = s.corner is not None
        said = fn(s)
        view = _picture(s) if s.store is not None and (redraws or had_corner) else gr.skip()
        return s, view, _objects_html(s), _ids(s), _ok(said)

    return handler


def wire_input(page: Page, tab: Tab) -> None:
    """Opening a video (upload, path or URL) and loading a prompt file."""
    state = page.state

    def _loaded(s: Session, path: str, uploaded: bool) -> tuple[Any, ...]:
        f = s.load(path, uploaded=uploaded)
        slider = gr.Slider(0, max(1, f.frames - 1 if f.frames else 0), value=0, step=1,
                           interactive=not f.live, label=f"Frame (0..{(f.frames or 1) - 1})")
        playable = None if f.live else path if uploaded else _servable(s, path)
        return (*_frame_outputs(s), slider, f"**{html.escape(f.shown.split('/')[-1])}**: {f.describe()}",
                playable, _ok("loaded: click the object to remove"))

    load_outputs = [state, page.image, page.objects, page.current, page.frame_slider, page.facts, page.original,
                    page.status]

    @guarded(len(load_outputs))
    def on_upload(s: Session | None, path: str | None) -> tuple[Any, ...]:
        s = tab(s)
        if not path:
            return (s, *(gr.skip() for _ in load_outputs[1:-1]), "")
        return _loaded(s, path, uploaded=True)

    @guarded(len(load_outputs))
    def on_open(s: Session | None, text: str) -> tuple[Any, ...]:
        return _loaded(tab(s), text, uploaded=False)

    page.upload.upload(on_upload, [state, page.upload], load_outputs)
    page.open_btn.click(on_open, [state, page.location], load_outputs)
    page.location.submit(on_open, [state, page.location], load_outputs)

    @guarded(2)
    def on_prompt_file(s: Session | None, path: str | None) -> tuple[Any, ...]:
        s = tab(s)
        if not path:
            return s, ""
        n = s.load_prompts(path)
        return s, _ok(f"{n} prompt(s) loaded")

    page.prompt_in.upload(on_prompt_file, [state, page.prompt_in], [state, page.status]).then(
        _action(page, tab, lambda s: "prompt file loaded"), [state], page.edit_outputs)


def wire_frame(page: Page, tab: Tab) -> None:
    """Clicks, drags and the slider on the frame; new object, undo, clear, delete and the object list."""
    state, edit_outputs = page.state, page.edit_outputs

    @guarded(len(edit_outputs))
    def on_click(s: Session | None, how: str, evt: gr.SelectData) -> tuple[Any, ...]:
        s = tab(s)
        x, y = evt.index[0], evt.index[1]
        said = s.click(float(x), float(y), how)
        return (*_frame_outputs(s), _ok(said))

    @guarded(len(edit_outputs))
    def on_drag(s: Session | None, text: str) -> tuple[Any, ...]:
        s = tab(s)
        corners = parse_drag(text)
        if corners is None:  # not a drag: nothing to do
            return s, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        said = s.box(*corners)
        return (*_frame_outputs(s), _ok(said))

    @guarded(len(edit_outputs))
    def on_slide(s: Session | None, index: float) -> tuple[Any, ...]:
        s = tab(s)
        if s.store is None:
            return (s, gr.skip(), gr.skip(), gr.skip(), "")
        s.goto(int(index))
        return (*_frame_outputs(s), "")

    @guarded(len(edit_outputs))
    def on_select(s: Session | None, value: str | None) -> tuple[Any, ...]:
        s = tab(s)
        if value:
            s.select(int(value))
        return s, gr.skip(), _objects_html(s), gr.skip(), ""

    def _delete(s: Session) -> str:
        target = s.book.current
        s.delete()
        return f"object {target} deleted (undo brings it back)"

    page.image.select(on_click, [state, page.mode], edit_outputs)
    page.dragged.change(on_drag, [state, page.dragged], edit_outputs, trigger_mode="multiple")
    page.frame_slider.change(on_slide, [state, page.frame_slider], edit_outputs, trigger_mode="always_last")
    page.new_btn.click(_action(page, tab, lambda s: f"object {s.new_object()} is current: click it", redraws=False),
                       [state], edit_outputs)
    page.undo_btn.click(_action(page, tab, lambda s: "undone" if s.undo() else "nothing to undo"), [state],
                        edit_outputs)
    page.clear_btn.click(_action(page, tab, lambda s: "cleared this frame" if s.clear()
                                 else "nothing to clear on this frame"), [state], edit_outputs)
    page.delete_btn.click(_action(page, tab, _delete), [state], edit_outputs)
    page.current.input(on_select, [state, page.current], edit_outputs)


def wire_preview(page: Page, tab: Tab) -> None:
    """The preview button: a clip of the tracked masks, also shown faintly on the frames."""

    @guarded(3)
    def on_preview(s: Session | None) -> tuple[Any, ...]:
        s = tab(s)
        clip = s.preview()
        return str(clip), _picture(s), _ok("preview ready: tracked masks are shown faintly on the frames too")

    page.preview_btn.click(on_preview, [page.state], [page.preview, page.image, page.status])


def wire_run(page: Page, tab: Tab) -> None:
    """Run (with the settings panel's values), cancel, and the timer that shows the progress and the end."""
    state = page.state

    @guarded(4)
    def on_run(s: Session | None, seg: str, track: str, inpaint: str, sam: str, deaot: str,
               win: float, dil: float, cod: str, q: float) -> tuple[Any, ...]:
        s = tab(s)
        st = s.settings
        st.segment_engine, st.track_engine, st.inpaint_engine = seg, track, inpaint
        st.sam_checkpoint, st.deaot_checkpoint = (sam or "").strip() or None, (deaot or "").strip() or None
        st.window, st.dilate, st.codec, st.crf = int(win), int(dil), cod, int(q)
        run = s.start_run()
        text = f"{run.command}\n\n# the exact pipeline:\n{run.launch}"
        return s, text, gr.Timer(active=True), _ok("run started")

    @guarded(1)
    def on_cancel(s: Session | None) -> str:
        s = tab(s)
        return _ok("stopping: the output keeps the frames done so far") if s.cancel_run() else _ok("no run to cancel")

    def on_tick(s: Session | None) -> tuple[Any, ...]:
        status_now = s.run_status() if s is not None else None
        if status_now is None or s is None or s.run is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        pct = round(100 * status_now.fraction)
        bar_html = f"<div id='cf-progress'><div style='width:{pct}%'></div></div>"
        text = status_now.describe()
        run = s.run
        if status_now.finished and not run.shown:
            run.shown = True
            files = [str(p) for p in (run.video, run.job.masks_zip if run.job else None, run.prompts)
                     if p is not None and Path(p).is_file()]
            video = str(run.video) if run.video.is_file() else None
            return bar_html, text, video, files, run_outcome(status_now)
        return bar_html, text, gr.skip(), gr.skip(), gr.skip()

    page.run_btn.click(on_run, [state, *page.settings], [state, page.command, page.timer, page.status])
    page.cancel_btn.click(on_cancel, [state], [page.status])
    page.timer.tick(on_tick, [state], [page.bar, page.progress, page.result, page.downloads, page.status],
                    show_progress="hidden")
