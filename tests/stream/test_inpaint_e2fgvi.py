"""`inpaint` with E2FGVI-HQ: the element's offline mode is test.py (through a spill file), stream
mode holds only its lookahead, auto says what it chose, and `cleanfeed run --e2fgvi … --inpaint-mode
offline` on PNG frames and masks gives upstream's own final frames."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from chain import run_filters  # noqa: E402
from e2fgvi_weights import golden_clip, load_layout, seeded_state_dict  # noqa: E402
from live_run import late_rows, run_live  # noqa: E402

from cleanfeed.engines.e2fgvi.model import InpaintGenerator  # noqa: E402
from cleanfeed.engines.e2fgvi.offline import inpaint_offline  # noqa: E402
from cleanfeed.errors import CheckpointError, PropertyError  # noqa: E402
from cleanfeed.stream.adapters.inpaint_windows import BackgroundWindows  # noqa: E402
from cleanfeed.stream.buffers import Caps, VideoFrame  # noqa: E402
from cleanfeed.stream.element import Deadline  # noqa: E402
from cleanfeed.stream.picture import Picture  # noqa: E402
from cleanfeed.stream.registry import create  # noqa: E402

GOLDEN = Path(__file__).parents[1] / "engines" / "e2fgvi" / "goldens" / "e2fgvi_hq_20f.npz"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, golden: dict[str, np.ndarray]) -> Path:
    path = tmp_path_factory.mktemp("e2fgvi") / "E2FGVI-HQ-CVPR22.pth"
    torch.save(seeded_state_dict(load_layout("e2fgvi_hq"), int(golden["seed"])), path)
    return path


def frames_of(rgb: np.ndarray, masks: np.ndarray, pix_fmt: str = "rgb24") -> tuple[Caps, list[VideoFrame]]:
    height, width = rgb.shape[1:3]
    frames = [VideoFrame(i, 100 + 2 * i, Fraction(1, 50), Picture.from_rgb(image, pix_fmt), (m > 0).astype(np.uint8),
                         {"mark": i}) for i, (image, m) in enumerate(zip(rgb, masks, strict=True))]
    return Caps(width=width, height=height, rate=Fraction(25), time_base=Fraction(1, 50), pix_fmt=pix_fmt), frames


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Both sides of an exact comparison on one intra-op thread: how torch splits a reduction over
    threads moves the last bit of a float, and rounding to uint8 then differs by one level at a
    pixel or two; what is compared here is the data path (the spill), not the reduction order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_offline_element_is_test_py_through_its_spill(checkpoint: Path, golden: dict[str, np.ndarray],
                                                      caplog: pytest.LogCaptureFixture, one_thread: None) -> None:
    rgb, masks = golden_clip(7, int(golden["height"]), int(golden["width"]))
    model = InpaintGenerator().eval()
    model.load_state_dict(torch.load(checkpoint), strict=True)
    expected = inpaint_offline(model, list(rgb), list(masks))
    caps, frames = frames_of(rgb, masks)
    element = create("inpaint", {"checkpoint": str(checkpoint), "mode": "offline", "device": "cpu"})
    assert element.holds_stream and element.lookahead == 0
    with caplog.at_level(logging.DEBUG):
        out = run_filters(caps, frames, [element])
    said = [r.getMessage() for r in caplog.records if "using" in r.getMessage()]
    assert len(said) == 1 and f"E2FGVI from {checkpoint}" in said[0] and "offline mode" in said[0], said
    assert [f.seq for f in out] == list(range(7)) and [f.pts for f in out] == [100 + 2 * i for i in range(7)]
    assert [f.meta["mark"] for f in out] == list(range(7))
    for i, frame in enumerate(out):
        np.testing.assert_array_equal(frame.picture.rgb(), expected[i], err_msg=f"frame {i}")
        assert frame.meta["inpaint"]["e2fgvi"] > 0
    element.stop()


def test_stream_element_holds_its_lookahead_and_writes_only_the_mask(checkpoint: Path) -> None:
    rgb, masks = golden_clip(9, 120, 216)
    caps, frames = frames_of(rgb, masks, "yuv420p")
    originals = [f.picture.rgb() for f in frames]
    element = create("inpaint", {"engine": "e2fgvi", "checkpoint": str(checkpoint), "neighbor_stride": 3,
                                 "region": "auto", "margin": 8})
    assert element.lookahead == 3 and not element.holds_stream
    element.start(caps)
    counts = [len(element.process(f)) for f in frames]
    assert counts == [0, 0, 0, 3, 0, 0, 3, 0, 0]  # each window finishes the 3 frames from its centre
    tail = list(element.flush())
    assert [f.seq for f in tail] == [6, 7, 8]
    for frame, before, m in zip(frames, originals, masks, strict=True):
        changed = np.abs(frame.picture.rgb().astype(int) - before.astype(int)).max(axis=2) > 2
        grown = cv2.dilate((m > 0).astype(np.uint8), np.ones((11, 11), np.uint8)) > 0  # 4 px cross, +1 chroma
        assert changed.any() and not (changed & ~grown).any()  # yuv420p chroma reaches one pixel further
    element.stop()


def test_live_windows_in_a_thread_paint_what_inline_windows_paint(checkpoint: Path) -> None:
    """With a deadline the windows run in a thread; frames not overdue get the same pixels."""
    rgb, masks = golden_clip(9, 120, 216)
    painted = []
    for live in (False, True):
        caps, frames = frames_of(rgb, masks, "yuv420p")
        element = create("inpaint", {"engine": "e2fgvi", "checkpoint": str(checkpoint), "neighbor_stride": 3,
                                     "region": "auto", "margin": 8})
        if live:
            element.deadline = Deadline(3600.0, 0.0)  # frames without a birth stamp are never overdue
        element.start(caps)
        windows = element._e2fgvi._windows
        assert isinstance(windows, BackgroundWindows) == live
        out = []
        for frame in frames:
            out += element.process(frame)
            if live:  # a thread that keeps up, as on a GPU: nothing is held beyond held_max
                end = time.monotonic() + 60
                while windows.backlog and time.monotonic() < end:
                    time.sleep(0.01)
                out += element.expire(time.monotonic())
        out += list(element.flush())
        assert [f.seq for f in out] == list(range(9)) and not any(f.meta.get("degraded") for f in out)
        painted.append([f.picture.rgb() for f in out])
        element.stop()
    for i, (inline, threaded) in enumerate(zip(*painted, strict=True)):
        np.testing.assert_array_equal(threaded, inline, err_msg=f"frame {i}")


def test_auto_falls_back_and_e2fgvi_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    element = create("inpaint", {"models": str(tmp_path)})
    assert element._e2fgvi is None and "no E2FGVI checkpoint" in element._why
    with pytest.raises(CheckpointError, match="inpaint engine=e2fgvi needs an E2FGVI checkpoint"):
        create("inpaint", {"engine": "e2fgvi", "models": str(tmp_path)})


def test_a_wrong_checkpoint_names_the_expected_model(tmp_path: Path) -> None:
    path = tmp_path / "sam.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1)}, path)
    element = create("inpaint", {"checkpoint": str(path)})
    caps, _ = frames_of(np.zeros((1, 60, 108, 3), np.uint8), np.zeros((1, 60, 108), np.uint8))
    with pytest.raises(CheckpointError, match="E2FGVI"):
        element.start(caps)


def test_offline_mode_refuses_a_live_input(checkpoint: Path) -> None:
    caps, _ = frames_of(np.zeros((1, 60, 108, 3), np.uint8), np.zeros((1, 60, 108), np.uint8))
    live = Caps(width=caps.width, height=caps.height, rate=caps.rate, time_base=caps.time_base, live=True)
    element = create("inpaint", {"checkpoint": str(checkpoint), "mode": "offline"})
    with pytest.raises(PropertyError, match="mode=offline needs the whole clip .* use mode=stream"):
        element.start(live)


def write_pngs(folder: Path, images: np.ndarray) -> None:
    folder.mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), image[..., ::-1] if image.ndim == 3 else image)


def test_run_offline_on_png_frames_gives_upstreams_frames(checkpoint: Path, golden: dict[str, np.ndarray],
                                                          tmp_path: Path) -> None:
    """The issue's command line, in process mode: 20 frames through more frames than shared-memory slots."""
    rgb, masks = golden_clip(int(golden["frames"]), int(golden["height"]), int(golden["width"]))
    write_pngs(tmp_path / "frames", rgb)
    write_pngs(tmp_path / "masks", (masks > 0).astype(np.uint8) * 255)
    (tmp_path / "out").mkdir()
    cmd = [sys.executable, "-m", "cleanfeed.stream.cli.main", "run", str(tmp_path / "frames" / "%05d.png"),
           "--masks", str(tmp_path / "masks"), "--e2fgvi", str(checkpoint), "--inpaint-mode", "offline",
           "--device", "cpu", "-o", str(tmp_path / "out" / "%05d.png"), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    ours = np.stack([cv2.imread(str(tmp_path / "out" / f"{i:05d}.png"))[..., ::-1] for i in range(len(rgb))])
    dilated = golden["dilated"]
    np.testing.assert_array_equal(ours[~dilated], rgb[~dilated])
    differ = ours[dilated] != golden["final_masked"]
    assert not (differ & ~golden["near_step"][dilated]).any()
    assert (np.abs(ours[dilated].astype(int) - golden["final_masked"].astype(int)) <= 1).all()


def test_live_e2fgvi_slower_than_the_stream_still_emits_every_frame_on_time(checkpoint: Path, tmp_path: Path) -> None:
    """On this CPU a window of the full-size generator takes longer than the frames it covers:
    with a deadline, frames still leave on time, the overdue ones covered by the fallback."""
    frames, budget_ms, jitter_ms = 50, 500.0, 150.0
    rows_file = tmp_path / "rows.json"
    line = (f"testsrc width=160 height=96 frames={frames} rate=25 logo_size=40 truth_mask=true ! "
            f"inpaint engine=e2fgvi checkpoint={checkpoint} device=cpu neighbor_stride=2 ! "
            f"t_coversink location={rows_file} frames={frames} logo_size=40")
    report, rows = run_live(line, rows_file, budget_ms)
    assert report.frames_out == frames and not late_rows(rows, budget_ms + jitter_ms), late_rows(rows, budget_ms)
    degraded = [r for r in rows if r["degraded"]]
    assert degraded, "every window kept up: the test did not test the deadline"
    for r in degraded:  # covered by the fallback: the scene, not the logo
        assert r["to_clean"] < r["to_logo"] / 3, r
