"""The fixed-432x240 E2FGVI (E2FGVI-CVPR22.pth): its official layout loads strictly, it refuses
other frame sizes, our offline mode gives upstream test.py's numbers on the e2fgvi_11f golden, and
the `inpaint` element resizes frames to 432x240 and back as test.py does, writing only the mask."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from chain import run_filters  # noqa: E402
from e2fgvi_weights import golden_clip, load_layout, seeded_state_dict  # noqa: E402

from cleanfeed.engines.e2fgvi.checkpoint import load_e2fgvi  # noqa: E402
from cleanfeed.engines.e2fgvi.model import FIXED_FRAME, InpaintGenerator  # noqa: E402
from cleanfeed.engines.e2fgvi.offline import inpaint_offline  # noqa: E402
from cleanfeed.engines.e2fgvi.schedule import SlidingConfig  # noqa: E402
from cleanfeed.engines.e2fgvi.sliding import MemoryStore, SlidingInpainter  # noqa: E402
from cleanfeed.engines.e2fgvi.windows import dilate_mask, offline_windows  # noqa: E402
from cleanfeed.errors import CheckpointError, PropertyError  # noqa: E402
from cleanfeed.stream.adapters.inpaint_e2fgvi import choose  # noqa: E402
from cleanfeed.stream.buffers import Caps, VideoFrame  # noqa: E402
from cleanfeed.stream.picture import Picture  # noqa: E402
from cleanfeed.stream.registry import create  # noqa: E402

GOLDEN = Path(__file__).parent / "goldens" / "e2fgvi_11f.npz"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN))


@pytest.fixture(scope="module")
def weights(golden: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return seeded_state_dict(load_layout("e2fgvi"), int(golden["seed"]))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, weights: dict[str, torch.Tensor]) -> Path:
    path = tmp_path_factory.mktemp("e2fgvi432") / "E2FGVI-CVPR22.pth"
    torch.save(weights, path)  # the authors release a plain state dict
    return path


@pytest.fixture(scope="module")
def net(checkpoint: Path) -> InpaintGenerator:
    return load_e2fgvi(checkpoint, "e2fgvi")[0]


def test_the_official_layout_is_ours_and_loads_strictly(checkpoint: Path, weights: dict[str, torch.Tensor]) -> None:
    built = InpaintGenerator(FIXED_FRAME).state_dict()
    assert [(k, tuple(v.shape)) for k, v in built.items()] == list(
        load_layout("e2fgvi").items()
    )  # names, shapes, order
    assert tuple(built["sc.bias"].shape) == (128, 60, 108) and "sc.bias_conv.weight" not in built
    net, variant = load_e2fgvi(checkpoint)  # auto: told from the weights
    assert variant == "e2fgvi" and net.fixed_size == (240, 432) and not net.training
    assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())
    with pytest.raises(
        CheckpointError, match=r"holds E2FGVI \(fixed 432x240\) weights, expected E2FGVI-HQ \(any frame size\)"
    ):
        load_e2fgvi(checkpoint, "e2fgvi_hq")
    hq = InpaintGenerator().state_dict()  # the HQ layout is untouched by the variant
    assert [(k, tuple(v.shape)) for k, v in hq.items()] == list(load_layout("e2fgvi_hq").items())


def test_other_frame_sizes_are_refused(net: InpaintGenerator) -> None:
    for height, width in ((120, 216), (480, 864), (240, 540)):  # all sizes E2FGVI-HQ would take
        with pytest.raises(
            ValueError, match=rf"E2FGVI \(fixed 432x240\) frame size must be 240x432 .*got {height}x{width}"
        ):
            net(torch.zeros(1, 2, 3, height, width), 2)
    with pytest.raises(ValueError, match=r"feature size must be 60x108, got 30x54"):
        net.sc(torch.zeros(1, 1, 10, 18, 512), 1, (30, 54))


@pytest.mark.slow
def test_offline_mode_matches_upstreams_test_py(net: InpaintGenerator, golden: dict[str, np.ndarray]) -> None:
    """test.py at 240x432: no resize (PIL returns a copy), no padding; about a minute on 2 cores."""
    frames, masks = golden_clip(int(golden["frames"]), int(golden["height"]), int(golden["width"]))
    windows = offline_windows(
        len(frames), int(golden["neighbor_stride"]), int(golden["ref_length"]), int(golden["num_ref"])
    )
    for k, window in enumerate(windows):
        listed = [i for i in golden["window_frames"][k].tolist() if i >= 0]
        assert list(window.frames) == listed and len(window.neighbors) == int(golden["window_local"][k])

    raw: dict[int, np.ndarray] = {}
    out = inpaint_offline(net, list(frames), list(masks), on_window=lambda c, o: raw.setdefault(c, o))
    stride = int(golden["raw_stride"])
    first = raw[windows[0].center][:, :, ::stride, ::stride]  # every frame's output: 6 local, 1 reference
    assert first.shape == golden["raw_w0"].shape
    diff = np.abs(first - golden["raw_w0"]).max()
    assert diff < 1e-4, f"window 0: {diff}"

    dilated = golden["dilated"]
    ours = np.stack(out)
    np.testing.assert_array_equal(ours[~dilated], frames[~dilated])
    theirs = golden["final_masked"]
    differ = ours[dilated] != theirs
    assert not (differ & ~golden["near_step"][dilated]).any()
    assert (np.abs(ours[dilated].astype(int) - theirs.astype(int)) <= 1).all()


# -- resizing: the schedule with a stand-in model (the real one below, in the element) -----------


def test_model_sees_test_pys_resized_frames_and_answers_come_back_in_the_mask() -> None:
    """120x216 frames: test.py's resize (Pillow's default filter, masks nearest) reaches the model;
    the answer is resized back (bicubic) and kept only in the frame's own dilated mask. Both ways
    in: frames pushed (stream) and frames already in the store at full size (the offline spill)."""
    rgb, masks = golden_clip(2, 120, 216)
    seen: list[torch.Tensor] = []

    def echo(masked: torch.Tensor, local: int) -> tuple[torch.Tensor, None]:
        seen.append(masked.clone())
        return masked[0], None  # holes (0) come back as grey 127

    small = [np.asarray(Image.fromarray(f).resize((432, 240))) for f in rgb]  # test.py's resize_frames
    holes = [
        dilate_mask(np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((432, 240), Image.NEAREST)))
        for m in masks
    ]
    images = torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float().div(255) * 2 - 1
    expected_input = images * (1 - torch.from_numpy(np.stack(holes) * 255)[:, None].float().div(255))
    results = []
    for mode in ("stream", "offline"):
        config = SlidingConfig(mode, neighbor_stride=2, region="full", resize_to=FIXED_FRAME)
        store = MemoryStore()
        engine = SlidingInpainter(echo, config, 120, 216, store=store)
        for i in range(2):
            if mode == "offline":
                store.put(i, rgb[i])  # as the element's spill holds it: whole frames
            patches = engine.push(None if mode == "offline" else rgb[i], masks[i])
        patches += list(engine.finish())
        assert engine.windows_run == 1 and torch.equal(seen[-1][0], expected_input)
        results.append(patches)
    for stream, offline in zip(*results, strict=True):
        assert stream.box == offline.box and np.array_equal(stream.rgb, offline.rgb)
    for patch, m, s, hole in zip(results[0], masks, small, holes, strict=True):
        where = dilate_mask(m) > 0
        rows, cols = np.nonzero(where)
        assert (patch.box.y0, patch.box.x0, patch.box.y1, patch.box.x1) == (
            rows.min(),
            cols.min(),
            rows.max() + 1,
            cols.max() + 1,
        )
        np.testing.assert_array_equal(patch.where, where[patch.box.slices])
        composite = np.where(hole[..., None] > 0, np.uint8(127), s)
        back = np.asarray(Image.fromarray(composite).resize((216, 120), Image.BICUBIC))
        np.testing.assert_array_equal(patch.rgb, back[patch.box.slices])
    with pytest.raises(ValueError, match=r"resize_to must come with region='full' .*got region='auto'"):
        SlidingConfig(region="auto", resize_to=FIXED_FRAME)


# -- the element with the real model ----------------------------------------------------------


def frames_of(rgb: np.ndarray, masks: np.ndarray) -> tuple[Caps, list[VideoFrame]]:
    height, width = rgb.shape[1:3]
    frames = [
        VideoFrame(i, 2 * i, Fraction(1, 50), Picture.from_rgb(image, "rgb24"), (m > 0).astype(np.uint8), {})
        for i, (image, m) in enumerate(zip(rgb, masks, strict=True))
    ]
    return Caps(width=width, height=height, rate=Fraction(25), time_base=Fraction(1, 50), pix_fmt="rgb24"), frames


def test_element_resizes_a_small_clip_and_writes_only_the_mask(
    checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rgb, masks = golden_clip(2, 120, 216)
    caps, frames = frames_of(rgb, masks)
    originals = [f.picture.rgb() for f in frames]
    element = create(
        "inpaint",
        {
            "engine": "e2fgvi",
            "model": "e2fgvi",
            "checkpoint": str(checkpoint),
            "neighbor_stride": 2,
            "region": "auto",
            "device": "cpu",
        },
    )
    with caplog.at_level(logging.DEBUG):  # the engine's details; the command's one engines line says less
        out = run_filters(caps, frames, [element])
    said = " | ".join(r.getMessage() for r in caplog.records)
    assert "region=full (region=auto does not apply)" in said and "frames resized to 432x240 and back" in said, said
    assert [f.seq for f in out] == [0, 1] and element._e2fgvi.statistics()["windows_run"] == 1
    for frame, before, m in zip(out, originals, masks, strict=True):
        changed = (frame.picture.rgb() != before).any(axis=2)
        inside = dilate_mask(m) > 0
        assert changed.any() and not (changed & ~inside).any()
        assert frame.meta["inpaint"]["e2fgvi"] == int(inside.sum())
    element.stop()


def test_element_at_432x240_is_inpaint_offline(checkpoint: Path, net: InpaintGenerator) -> None:
    rgb, masks = golden_clip(2, 240, 432)
    expected = inpaint_offline(net, list(rgb), list(masks), neighbor_stride=2)
    caps, frames = frames_of(rgb.copy(), masks)
    element = create(
        "inpaint", {"checkpoint": str(checkpoint), "mode": "offline", "neighbor_stride": 2, "device": "cpu"}
    )
    out = run_filters(caps, frames, [element])
    for i, frame in enumerate(out):
        np.testing.assert_array_equal(frame.picture.rgb(), expected[i], err_msg=f"frame {i}")
    assert any((e != f).any() for e, f in zip(expected, rgb, strict=True))
    element.stop()


def test_auto_finds_the_432_file_after_hq_and_exported_backends_refuse_it(tmp_path: Path, checkpoint: Path) -> None:
    (tmp_path / "E2FGVI-CVPR22.pth").write_bytes(b"x")  # stand-ins: found by name (an empty file is refused)
    choice, _ = choose("auto", None, "auto", str(tmp_path))
    assert choice is not None and choice.checkpoint.name == "E2FGVI-CVPR22.pth"
    (tmp_path / "E2FGVI-HQ-CVPR22.pth").write_bytes(b"x")
    choice, _ = choose("auto", None, "auto", str(tmp_path))
    assert choice is not None and choice.checkpoint.name == "E2FGVI-HQ-CVPR22.pth"
    caps, _ = frames_of(np.zeros((1, 240, 432, 3), np.uint8), np.zeros((1, 240, 432), np.uint8))
    element = create("inpaint", {"checkpoint": str(checkpoint), "model": "e2fgvi", "backend": "onnxruntime"})
    with pytest.raises(PropertyError, match="model=e2fgvi runs on backend=torch only .*got backend=onnxruntime"):
        element.start(caps)
