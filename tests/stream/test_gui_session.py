"""The app's logic without a browser: loading, frames, clicks to masks, undo, preview, settings, errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from logo_clip import write_logo_clip
from media import make_video

from cleanfeed.errors import MediaError, PromptError
from cleanfeed.prompts.promptfile import load_prompts
from cleanfeed.prompts.shapes import Box, Point
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.gui.book import PromptBook
from cleanfeed.stream.gui.masker import ClassicalMasker
from cleanfeed.stream.gui.runjob import RunSettings, command_line, run_options
from cleanfeed.stream.gui.session import GuiConfig, Session
from cleanfeed.stream.gui.video import FrameStore
from cleanfeed.stream.media.open import InputOptions
from cleanfeed.stream.media.reader import MediaReader, ReaderOptions
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.recipe import chain

W, H = 160, 96
LOGO = (100, 20, 140, 52)


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    # short GOPs with B-frames: seeking to any frame is exercised
    return write_logo_clip(tmp_path / "logo.mp4", width=W, height=H, logo=LOGO, gop=8, bframes=2)


@pytest.fixture()
def session(tmp_path: Path) -> Session:
    return Session(GuiConfig(tmp_path / "work", max_upload_mb=1.0), masker=ClassicalMasker())


def _decoded_by_filesrc(path: Path) -> list[np.ndarray]:
    reader = MediaReader(str(path), ReaderOptions(InputOptions(), audio=False))
    try:
        caps = reader.caps
        return [f.picture.data.copy() for f in reader.items(
            lambda c, seq, pts, tb: VideoFrame.new(seq, pts, tb, Picture.empty(caps.pix_fmt, caps.width, caps.height)))
            if isinstance(f, VideoFrame)]
    finally:
        reader.close()


def test_frames_by_number_equal_the_pipelines_frames_in_any_order(clip: Path) -> None:
    truth = _decoded_by_filesrc(clip)
    store = FrameStore(str(clip))
    assert store.count == len(truth) == 24
    for index in (23, 0, 9, 10, 3, 17, 16, 2, 23):
        np.testing.assert_array_equal(store.frame(index).picture.data, truth[index], err_msg=f"frame {index}")
        assert store.frame(index).seq == index
    with pytest.raises(MediaError, match="frame must be 0..23, got 24"):
        store.frame(24)
    store.close()


def test_load_says_the_facts_and_a_bad_input_keeps_the_loaded_video(session: Session, clip: Path,
                                                                   tmp_path: Path) -> None:
    facts = session.load(str(clip))
    assert facts.describe() == "160x96, 24 fps, 24 frames, 1.00 s, audio: none"
    with_audio = make_video(tmp_path / "a.mp4", frames=12)
    assert "audio: aac 48000 Hz stereo" in Session(GuiConfig(tmp_path / "w2"), ClassicalMasker()).load(
        str(with_audio)).describe()
    (tmp_path / "notes.txt").write_text("not a video at all\n" * 10)
    session.click(120, 36, "positive")
    with pytest.raises(MediaError, match="is not a media file FFmpeg can read"):
        session.load(str(tmp_path / "notes.txt"))
    with pytest.raises(MediaError, match="does not exist"):
        session.load(str(tmp_path / "gone.mp4"))
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 * 1024 * 1024))
    with pytest.raises(MediaError, match=r"video must be at most 1 MB \(--max-upload-mb\), got 2.0 MB"):
        session.load(str(big), uploaded=True)
    with pytest.raises(MediaError, match="video must be an upload or a path/URL on the server, got nothing"):
        session.load("  ")
    assert session.facts is not None and session.facts.location == str(clip)
    assert [p.frame for p in session.prompts()] == [0]  # nothing done so far was lost


def test_a_click_shows_the_mask_the_run_segments(session: Session, clip: Path) -> None:
    session.load(str(clip))
    said = session.click(120, 36, "positive")
    assert said.startswith("object 1 on frame 0: ") and "by grabcut" in said
    ids = session.ids_map(0)
    x0, y0, x1, y1 = LOGO
    assert ids[36, 120] == 1 and ids[:, :90].sum() == 0
    assert (ids[y0 + 8:y1 - 8, x0 + 8:x1 - 8] == 1).mean() > 0.75
    view = session.view()
    assert view.shape == (H, W, 3) and not np.array_equal(view, session.store.frame(0).picture.rgb())  # type: ignore[union-attr]
    with pytest.raises(PromptError, match="click must lie inside the 160x96 frame, got 200,5"):
        session.click(200, 5, "positive")
    with pytest.raises(PromptError, match="click mode must be one of positive, negative, box, got 'drag'"):
        session.click(5, 5, "drag")


def test_box_by_two_clicks_negative_points_and_several_objects(session: Session, clip: Path) -> None:
    session.load(str(clip))
    assert session.click(98, 18, "box").startswith("box: first corner set")
    session.click(141, 53, "box")
    assert session.book.get(1, 0).box == Box(98, 18, 142, 54)
    session.click(5, 5, "negative")
    assert session.book.get(1, 0).points == (Point(5.0, 5.0, False),)
    assert session.new_object() == 2
    session.goto(10)
    session.click(30, 40, "positive")
    assert session.objects() == [(1, [0]), (2, [10])]
    assert [(p.obj_id, p.frame) for p in session.prompts()] == [(1, 0), (2, 10)]
    session.click(50, 50, "box")
    with pytest.raises(PromptError, match="box must be at least 3x3 pixels, got 2x1"):
        session.click(51, 50, "box")


def test_a_dragged_box_takes_the_two_click_path(session: Session, clip: Path) -> None:
    with pytest.raises(MediaError, match="a video must be loaded first, got none"):
        session.box(1, 1, 10, 10)
    session.load(str(clip))
    said = session.box(141, 53, 98, 18)  # dragged up and to the left: corners in any order
    assert said.startswith("box 98,18,142,54: object 1 on frame 0: ") and "by grabcut" in said
    assert session.book.get(1, 0).box == Box(98, 18, 142, 54) and session.book.get(1, 0).points == ()
    ids = session.ids_map(0)
    x0, y0, x1, y1 = LOGO
    assert (ids[y0 + 8:y1 - 8, x0 + 8:x1 - 8] == 1).mean() > 0.75 and ids[:, :90].sum() == 0
    drawn = session.view()
    two = Session(GuiConfig(session.workdir / "two"), masker=ClassicalMasker())
    two.load(str(clip))
    two.click(98, 18, "box")
    assert two.click(141, 53, "box") == said  # the same box by two clicks: the same prompt, mask and message
    np.testing.assert_array_equal(two.view(), drawn)
    # a drag replaces the object's box on the frame (undoable) and drops a pending first corner
    session.click(10, 10, "box")
    assert session.corner == (10, 10)
    session.box(97, 17, 142.9, 54.2)  # pixels: fractions are cut
    assert session.corner is None and session.book.get(1, 0).box == Box(97, 17, 143, 55)
    assert session.undo() and session.book.get(1, 0).box == Box(98, 18, 142, 54)


def test_a_dragged_box_outside_the_frame_or_too_small_is_refused_and_changes_nothing(session: Session,
                                                                                        clip: Path) -> None:
    session.load(str(clip))
    session.click(120, 36, "positive")
    before = session.prompts()
    for corners, message in [
        ((-1, 10, 50, 50), "box must lie inside the 160x96 frame, got -1,10,50,50"),
        ((10, 10, 160, 50), "box must lie inside the 160x96 frame, got 10,10,160,50"),
        ((10, 96, 50, 20), "box must lie inside the 160x96 frame, got 10,96,50,20"),
        ((10, 10, 10, 10), "box must be at least 3x3 pixels, got 1x1"),
        ((10, 10, 40, 11), "box must be at least 3x3 pixels, got 31x2"),
        ((float("nan"), 10, 40, 40), "box must lie inside the 160x96 frame, got nan,10,40,40"),
    ]:
        with pytest.raises(PromptError) as caught:
            session.box(*corners)
        assert str(caught.value) == message
    assert session.prompts() == before


def test_the_drag_message_from_the_page() -> None:
    from cleanfeed.stream.gui.drag import DRAG_JS, ELEM_ID, THRESHOLD_PX, parse_drag

    assert parse_drag("194,34,265,95 #1") == (194.0, 34.0, 265.0, 95.0)
    assert parse_drag("  5,6,7,8  ") == (5.0, 6.0, 7.0, 8.0)
    assert parse_drag("") is None and parse_drag(None) is None and parse_drag(" #3") is None
    for bad in ("1,2,3", "1,2,3,4,5", "a,b,c,d", "1,2,inf,4", "1,2,nan,4"):
        with pytest.raises(PromptError, match="a dragged box must be x0,y0,x1,y1 in pixels, got"):
            parse_drag(bad)
    # the script writes where the page's handler reads, and knows a click from a drag
    assert f"#{ELEM_ID} textarea" in DRAG_JS and f"const THRESHOLD = {THRESHOLD_PX};" in DRAG_JS
    assert "__" not in DRAG_JS.replace("__cleanfeedDrag", "")  # every placeholder filled


def test_undo_clear_and_delete_lose_nothing_for_good(session: Session, clip: Path) -> None:
    session.load(str(clip))
    session.click(120, 36, "positive")
    session.click(110, 25, "positive")
    session.new_object()
    session.click(20, 20, "positive")
    session.delete(2)
    assert session.book.ids == [1]
    assert session.undo() and session.book.ids == [1, 2]
    session.select(1)
    assert session.clear() and session.book.frames_of(1) == []
    assert not session.clear()
    assert session.undo() and len(session.book.get(1, 0).points) == 2
    assert session.undo() and session.book.ids == [1, 2]  # undoes the undone delete's redo: the delete itself
    with pytest.raises(PromptError, match="object must be one of 1, 2, got 7"):
        session.select(7)
    book = PromptBook()
    assert not book.undo()
    with pytest.raises(PromptError, match="object 3 does not exist"):
        book.delete(3)


def test_prompt_file_round_trip_through_the_session(session: Session, clip: Path, tmp_path: Path) -> None:
    session.load(str(clip))
    with pytest.raises(PromptError, match="must hold at least one object, got none: click the object first"):
        session.save_prompts()
    session.click(120, 36, "positive")
    session.goto(12)
    session.click(98, 18, "box")
    session.click(141, 53, "box")
    path = session.save_prompts(tmp_path / "p.json")
    assert load_prompts(path) == session.prompts()
    other = Session(GuiConfig(tmp_path / "w3"), masker=ClassicalMasker())
    other.load(str(clip))
    assert other.load_prompts(str(path)) == 2 and other.prompts() == session.prompts()


def test_preview_tracks_the_next_seconds_into_a_clip(session: Session, clip: Path) -> None:
    session.config.preview_seconds = 0.5
    with pytest.raises(MediaError, match="a video must be loaded first, got none"):
        session.preview()
    session.load(str(clip))
    with pytest.raises(PromptError, match="a preview must have at least one prompted object, got none"):
        session.preview()
    session.click(120, 36, "positive")
    path = session.preview()
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    session.goto(5)
    assert session.view()[36, 120].tolist() != session.store.frame(5).picture.rgb()[36, 120].tolist()  # type: ignore[union-attr]


def test_settings_become_the_run_command_and_the_exact_pipeline() -> None:
    s = RunSettings(segment_engine="classical", track_engine="auto", inpaint_engine="classical", window=3,
                    dilate=4, codec="ffv1", crf=10)
    options = run_options("in.mp4", "out.mkv", "p.json", s, "masks")
    assert command_line(options) == ("cleanfeed run in.mp4 -o out.mkv --prompts p.json --save-masks masks --window 3 "
                                     "--dilate 4 --codec ffv1 --crf 10")
    specs = dict(chain(options))
    assert specs["segment"]["engine"] == "classical" and "engine" not in specs["track"]
    assert specs["inpaint"] == {"window": 3, "engine": "classical"} and specs["dilate"] == {"pixels": 4}
    assert specs["filesink"]["codec"] == "ffv1" and specs["savemask"] == {"location": "masks"}
    both = run_options("in.mp4", "o.mp4", "p.json", RunSettings(segment_engine="classical", track_engine="classical"))
    assert "--classical" in command_line(both)


def test_a_run_needs_a_prompt(session: Session, clip: Path) -> None:
    with pytest.raises(MediaError, match="a video must be loaded first, got none"):
        session.start_run()
    session.load(str(clip))
    with pytest.raises(PromptError, match="a run must have at least one prompted object, got none: click the object first"):
        session.start_run()
    assert session.run is None


def test_gui_without_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from cleanfeed.stream.cli.main import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["gui", "--port", "9"]) == 2
    assert capsys.readouterr().err.strip() == "cleanfeed: error: cleanfeed gui needs Gradio: pip install 'cleanfeed[gui]'"


def test_other_commands_do_not_import_gradio() -> None:
    import subprocess
    import sys

    code = "import sys, cleanfeed.stream.cli.main as m; m._build_parser(); print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "False"
