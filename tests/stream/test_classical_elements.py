"""The classical elements called directly: testsrc, segment, track, dilate, inpaint, overlay."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from chain import run_filters

from cleanfeed.errors import PromptError, PropertyError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Element, Filter
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.registry import create, lookup
from cleanfeed.stream.testclip import SyntheticClip

CLASSICAL = ("testsrc", "segment", "track", "dilate", "inpaint", "overlay")


def frames_of(**props: object) -> tuple[Caps, list[VideoFrame]]:
    src = create("testsrc", props)
    caps = src.open()
    frames = [f for f in src.read() if isinstance(f, VideoFrame)]
    src.close()
    return caps, frames


def chain(caps: Caps, frames: list[VideoFrame], elements: list[Filter]) -> list[VideoFrame]:
    return run_filters(caps, frames, elements)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))


@pytest.mark.parametrize("factory", CLASSICAL)
def test_elements_describe_themselves(factory: str) -> None:
    cls: type[Element] = lookup(factory)
    assert cls.factory == factory and cls.klass.count("/") >= 1
    assert cls.description.split("\n")[0].endswith(".") and cls.example.strip()
    for prop in cls.properties:
        assert prop.blurb and prop.name == prop.name.lower() and "-" not in prop.name
        if prop.default is not None:
            prop.coerce(prop.default, factory)


# -- testsrc -------------------------------------------------------------------------------------
def test_testsrc_caps_timestamps_and_truth() -> None:
    caps, frames = frames_of(width=160, height=96, frames=4, rate="25", logo_size=40, truth_mask=True)
    assert caps == Caps(160, 96, Fraction(25), Fraction(1, 25), "yuv420p", frames=4)
    assert [(f.seq, f.pts, f.time_base) for f in frames] == [(i, i, Fraction(1, 25)) for i in range(4)]
    clip = SyntheticClip(160, 96, 4, logo_size=40)
    for f in frames:
        truth = clip.frame(f.seq)
        assert f.meta["logo_box"] == list(truth.box)
        np.testing.assert_array_equal(f.mask, truth.mask.astype(np.uint8))
        assert np.abs(f.picture.rgb().astype(int) - truth.image).mean() < 4, "I420 of the rendered frame"
        np.testing.assert_array_equal(f.picture.data, Picture.from_rgb(truth.image, "yuv420p").data)


def test_testsrc_rgb24_and_no_truth_mask() -> None:
    caps, frames = frames_of(width=161, height=97, frames=2, logo_size=40, pix_fmt="rgb24", logo="scene")
    assert caps.pix_fmt == "rgb24"
    np.testing.assert_array_equal(frames[1].picture.data, SyntheticClip(161, 97, 2, logo="scene", logo_size=40).frame(1).image)
    assert not frames[1].mask.any()


def test_testsrc_rejects_odd_yuv_sizes() -> None:
    with pytest.raises(PropertyError, match="testsrc size must be even for yuv420p, got 161x96"):
        create("testsrc", {"width": 161, "height": 96})
    with pytest.raises(PropertyError, match="testsrc property motion must be one of pan, static, zoom, got 'orbit'"):
        create("testsrc", {"motion": "orbit"})


# -- segment --------------------------------------------------------------------------------------
def test_segment_writes_the_mask_on_the_prompted_frame_only() -> None:
    caps, frames = frames_of(width=480, height=270, frames=4, logo_size=70)
    box = tuple(frames[2].meta["logo_box"])
    seg = create("segment", {"box": box, "frame": 2, "object_id": 3})
    out = chain(caps, frames, [seg])
    assert [f.seq for f in out] == [0, 1, 2, 3]
    truth = SyntheticClip(480, 270, 4, logo_size=70).frame(2).mask
    assert iou(out[2].mask == 3, truth) >= 0.8
    assert set(np.unique(out[2].mask)) == {0, 3}
    assert out[2].meta["reference"] == [3]
    assert out[2].meta["prompts"] == [{"id": 3, "frame": 2, "box": list(box)}]
    assert out[2].meta["segment"] == [{"id": 3, "method": "grabcut", "reason": ""}]
    for f in (out[0], out[1], out[3]):
        assert not f.mask.any() and "reference" not in f.meta


def test_segment_validates_prompts_against_the_caps() -> None:
    seg = create("segment", {"box": "10,10,2000,50"})
    with pytest.raises(PromptError, match="^box 10,10,2000,50 must lie inside the 1280x720 frame$"):
        seg.start(Caps(1280, 720, Fraction(30), Fraction(1, 30)))
    seg = create("segment", {"points": "5,5,1;700,5,0"})
    with pytest.raises(PromptError, match="point 700,5 must lie inside the 640x360 frame"):
        seg.start(Caps(640, 360, Fraction(30), Fraction(1, 30)))


def test_segment_needs_a_prompt() -> None:
    with pytest.raises(PromptError, match="segment needs a prompt: box=X0,Y0,X1,Y1, points=X,Y,L;..., "
                                          "mask_file=PATH or prompts_file=PATH"):
        create("segment", {})
    with pytest.raises(PromptError, match="point must be X,Y or X,Y,LABEL"):
        create("segment", {"points": "5,5,2"})


def test_segment_mask_file_is_used_as_is_and_checked(tmp_path: Path) -> None:
    caps, frames = frames_of(width=160, height=96, frames=2, logo_size=40)
    mask = np.zeros((96, 160), np.uint8)
    mask[10:20, 30:60] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    out = chain(caps, frames, [create("segment", {"mask_file": str(tmp_path / "m.png"), "object_id": 9})])
    np.testing.assert_array_equal(out[0].mask, (mask > 0) * 9)
    cv2.imwrite(str(tmp_path / "small.png"), mask[:50])
    seg = create("segment", {"mask_file": str(tmp_path / "small.png")})
    with pytest.raises(PromptError, match=r"must be 160x96 like the video, got 160x50"):
        seg.start(caps)
    cv2.imwrite(str(tmp_path / "empty.png"), mask * 0)
    with pytest.raises(PromptError, match="must mark the object, got an empty mask"):
        create("segment", {"mask_file": str(tmp_path / "empty.png")}).start(caps)


def _labels(height: int = 96, width: int = 160) -> np.ndarray:
    labels = np.zeros((height, width), np.uint8)
    labels[10:30, 10:40] = 1
    labels[40:70, 60:90] = 2
    labels[20:50, 110:150] = 3
    return labels


def _palette_png(path: Path, indices: np.ndarray) -> None:
    from PIL import Image

    img = Image.fromarray(indices, "P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12))  # DAVIS's first colours
    img.save(path)


@pytest.mark.parametrize("kind", ["label", "palette"])
def test_segment_mask_file_of_several_ids_gives_one_object_per_id(tmp_path: Path, kind: str) -> None:
    caps, frames = frames_of(width=160, height=96, frames=2, logo_size=40)
    labels = _labels()
    path = tmp_path / "ids.png"
    if kind == "label":
        cv2.imwrite(str(path), labels)
    else:
        _palette_png(path, labels)
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ndim == 3  # OpenCV would give colours, not ids
    out = chain(caps, frames, [create("segment", {"mask_file": str(path)})])
    np.testing.assert_array_equal(out[0].mask, labels)
    assert out[0].meta["reference"] == [1, 2, 3]
    assert [s["id"] for s in out[0].meta["segment"]] == [1, 2, 3]
    assert not out[1].mask.any()


def test_segment_mask_file_of_ids_in_a_prompts_file_and_its_rules(tmp_path: Path) -> None:
    _palette_png(tmp_path / "ids.png", _labels())
    (tmp_path / "p.json").write_text(json.dumps({"version": 1, "objects": [{"frame": 0, "mask": "ids.png"}]}))
    out = chain(*frames_of(width=160, height=96, frames=2, logo_size=40), [create("segment", {"prompts_file": str(tmp_path / "p.json")})])
    np.testing.assert_array_equal(out[0].mask, _labels())
    with pytest.raises(PromptError, match=r"holds objects 1, 2, 3: give it without a box or points"):
        create("segment", {"mask_file": str(tmp_path / "ids.png"), "box": "0,0,10,10"})
    with pytest.raises(PromptError, match=r"holds objects 1, 2, 3 with their own ids: its id must be left at 1, got 7"):
        create("segment", {"mask_file": str(tmp_path / "ids.png"), "object_id": 7})
    (tmp_path / "q.json").write_text(json.dumps({"version": 1, "objects": [
        {"id": 2, "frame": 0, "box": [0, 0, 10, 10]}, {"frame": 0, "mask": "ids.png"}]}))
    with pytest.raises(PromptError, match="object 2 must be prompted once per frame"):
        create("segment", {"prompts_file": str(tmp_path / "q.json")})


def test_segment_binary_and_anti_aliased_masks_stay_one_object(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    binary = np.zeros((96, 160), np.uint8)
    binary[10:30, 10:40] = 255
    binary[40:70, 60:90] = 255
    cv2.imwrite(str(tmp_path / "binary.png"), binary)
    out = chain(*frames_of(width=160, height=96, frames=2, logo_size=40), [create("segment", {"mask_file": str(tmp_path / "binary.png"), "object_id": 4})])
    np.testing.assert_array_equal(out[0].mask, (binary > 0) * 4)
    one = np.zeros((96, 160), np.uint8)
    one[10:30, 10:40] = 1
    _palette_png(tmp_path / "one.png", one)
    out = chain(*frames_of(width=160, height=96, frames=2, logo_size=40), [create("segment", {"mask_file": str(tmp_path / "one.png"), "object_id": 5})])
    np.testing.assert_array_equal(out[0].mask, one * 5)
    smooth = cv2.GaussianBlur(binary, (0, 0), 2.0)
    assert len(np.unique(smooth)) > 20
    cv2.imwrite(str(tmp_path / "smooth.png"), smooth)
    with caplog.at_level("WARNING"):
        out = chain(*frames_of(width=160, height=96, frames=2, logo_size=40), [create("segment", {"mask_file": str(tmp_path / "smooth.png")})])
    np.testing.assert_array_equal(out[0].mask, (smooth > 0).astype(np.uint8))
    assert "read as one object" in caplog.text


def test_segment_prompts_file_with_several_objects(tmp_path: Path) -> None:
    caps, frames = frames_of(width=320, height=180, frames=4, logo_size=50)
    mask = np.zeros((180, 320), np.uint8)
    mask[100:120, 20:50] = 1
    cv2.imwrite(str(tmp_path / "two.png"), mask)
    logo = frames[0].meta["logo_box"]
    (tmp_path / "p.json").write_text(json.dumps({"version": 1, "objects": [
        {"id": 1, "frame": 0, "box": logo},
        {"id": 2, "frame": 3, "mask": "two.png"},
    ]}))
    out = chain(caps, frames, [create("segment", {"prompts_file": str(tmp_path / "p.json")})])
    assert out[0].meta["reference"] == [1] and (out[0].mask == 1).sum() > 500
    assert out[3].meta["reference"] == [2] and (out[3].mask == 2).sum() == 600
    (tmp_path / "bad.json").write_text(json.dumps({"version": 2, "objects": []}))
    with pytest.raises(PromptError, match="must have \"version\": 1, got 2"):
        create("segment", {"prompts_file": str(tmp_path / "bad.json")})
    with pytest.raises(PromptError, match="prompts file 'nope.json' does not exist"):
        create("segment", {"prompts_file": "nope.json"})


# -- track ----------------------------------------------------------------------------------------
def test_track_follows_the_reference_and_passes_earlier_frames() -> None:
    caps, frames = frames_of(width=320, height=180, frames=30, logo="scene", logo_size=50)
    seg = create("segment", {"box": tuple(frames[3].meta["logo_box"]), "frame": 3})
    track = create("track")
    assert track.lookahead == 0
    out = chain(caps, frames, [seg, track])
    clip = SyntheticClip(320, 180, 30, logo="scene", logo_size=50)
    assert not out[0].mask.any() and "objects_lost" not in out[0].meta
    for f in out[4:]:
        assert iou(f.mask == 1, clip.frame(f.seq).mask) >= 0.75, f"frame {f.seq}"
        assert f.meta["objects_lost"] == [] and f.meta["track"] == {"1": "rigid"}


def test_track_adds_a_second_object_while_the_first_keeps_tracking() -> None:
    caps, frames = frames_of(width=320, height=180, frames=12, logo_size=50, truth_mask=True)
    for f in frames:
        if f.seq == 0:
            f.meta["reference"] = [1]
        elif f.seq == 5:
            f.mask[...] = 0
            f.mask[120:150, 40:80] = 2
            f.meta["reference"] = [2]
        else:
            f.mask[...] = 0
    out = chain(caps, frames, [create("track")])
    truth = SyntheticClip(320, 180, 12, logo_size=50)
    assert iou(out[4].mask == 1, truth.frame(4).mask) >= 0.9 and not (out[4].mask == 2).any()
    assert iou(out[5].mask == 1, truth.frame(5).mask) >= 0.9 and (out[5].mask == 2).sum() == 1200
    assert (out[11].mask == 2).sum() > 900 and iou(out[11].mask == 1, truth.frame(11).mask) >= 0.9
    assert out[11].meta["track"] == {"1": "rigid", "2": "rigid"}


# -- dilate ---------------------------------------------------------------------------------------
def test_dilate_grows_each_id_by_k_pixels() -> None:
    frame = VideoFrame.new(0, 0, Fraction(1, 30), Picture.empty("yuv420p", 64, 48))
    frame.mask[10:12, 10:12] = 1
    frame.mask[30:32, 40:42] = 2
    (out,) = create("dilate", {"pixels": 3}).process(frame)
    ys, xs = np.nonzero(out.mask == 1)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (7, 14, 7, 14)
    assert (out.mask == 2).sum() == (out.mask == 1).sum() and set(np.unique(out.mask)) == {0, 1, 2}
    assert out.mask[10, 7] == 1 and out.mask[7, 7] == 0, "elliptical, not square"


def test_dilate_keeps_existing_ids_where_objects_meet() -> None:
    frame = VideoFrame.new(0, 0, Fraction(1, 30), Picture.empty("rgb24", 40, 20))
    frame.mask[5:15, 5:15] = 2
    frame.mask[5:15, 17:27] = 1
    before = frame.mask.copy()
    create("dilate", {"pixels": 4}).process(frame)
    assert (frame.mask[before > 0] == before[before > 0]).all()
    assert frame.mask[10, 16] == 1, "lower id wins in the gap"
    frame.mask[...] = 0
    create("dilate", {"pixels": 0}).process(frame)
    assert not frame.mask.any()


# -- inpaint --------------------------------------------------------------------------------------
def test_inpaint_holds_window_frames_and_emits_in_order() -> None:
    caps, frames = frames_of(width=160, height=96, frames=9, logo_size=40, truth_mask=True)
    inpaint = create("inpaint", {"window": 3})
    assert inpaint.lookahead == 3
    inpaint.start(caps)
    emitted = []
    for i, f in enumerate(frames):
        emitted += [o.seq for o in inpaint.process(f)]
        assert len(emitted) == max(0, i - 2)
    emitted += [o.seq for o in inpaint.flush()]
    assert emitted == list(range(9))
    assert create("inpaint", {"method": "telea"}).lookahead == 0
    assert create("inpaint", {"window": 0}).lookahead == 0


def test_inpaint_changes_only_mask_pixels_rgb24() -> None:
    caps, frames = frames_of(width=160, height=96, frames=8, logo_size=40, truth_mask=True, pix_fmt="rgb24")
    before = [f.picture.data.copy() for f in frames]
    out = chain(caps, frames, [create("dilate", {"pixels": 2}), create("inpaint", {"window": 2})])
    for f, old in zip(out, before, strict=True):
        keep = f.mask == 0
        np.testing.assert_array_equal(f.picture.data[keep], old[keep])
        assert np.abs(f.picture.data[~keep].astype(int) - old[~keep]).mean() > 5
        assert f.meta["inpaint"]["propagated"] + f.meta["inpaint"]["carried"] + f.meta["inpaint"]["spatial"] == (~keep).sum()


def test_inpaint_changes_only_the_masks_2x2_support_yuv420p() -> None:
    caps, frames = frames_of(width=160, height=96, frames=6, logo="scene", logo_size=40, truth_mask=True)
    before = [f.picture.data.copy() for f in frames]
    out = chain(caps, frames, [create("inpaint", {"window": 2})])
    for f, old in zip(out, before, strict=True):
        sel = f.mask > 0
        support = np.repeat(np.repeat(sel.reshape(48, 2, 80, 2).any(axis=(1, 3)), 2, 0), 2, 1)
        luma_new, luma_old = f.picture.data[:96], old[:96]
        np.testing.assert_array_equal(luma_new[~sel], luma_old[~sel])
        chroma_keep = ~support.reshape(48, 2, 80, 2)[:, 0, :, 0]
        u_new = f.picture.data[96:].reshape(-1)[: 48 * 80].reshape(48, 80)
        u_old = old[96:].reshape(-1)[: 48 * 80].reshape(48, 80)
        np.testing.assert_array_equal(u_new[chroma_keep], u_old[chroma_keep])


def test_inpaint_passes_frames_without_mask_untouched() -> None:
    caps, frames = frames_of(width=160, height=96, frames=5, logo_size=40, truth_mask=True)
    frames[2].mask[...] = 0
    before = frames[2].picture.data.copy()
    out = chain(caps, frames, [create("inpaint", {"window": 2})])
    assert [f.seq for f in out] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(out[2].picture.data, before)
    assert "inpaint" not in out[2].meta and "inpaint" in out[3].meta


# -- overlay --------------------------------------------------------------------------------------
def test_overlay_tints_masks_and_leaves_the_rest() -> None:
    frame = VideoFrame.new(0, 0, Fraction(1, 30), Picture.from_rgb(np.full((60, 80, 3), 100, np.uint8)))
    frame.mask[20:40, 20:40] = 1
    (out,) = create("overlay", {"alpha": 0.5, "labels": False}).process(frame)
    rgb = out.picture.rgb()
    np.testing.assert_allclose(rgb[30, 30], [165, 62, 88], atol=2)  # (100 + colour of id 1) / 2, via I420
    np.testing.assert_array_equal(rgb[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(rgb[30, 60], [100, 100, 100])
    assert out.mask[30, 30] == 1, "the mask itself is untouched"


def test_overlay_draws_contours_and_labels_on_yuv420p() -> None:
    caps, frames = frames_of(width=160, height=96, frames=1, logo_size=40, truth_mask=True)
    frame = frames[0]
    before = frame.picture.rgb()
    (out,) = create("overlay", {}).process(frame)
    after = out.picture.rgb()
    changed = np.abs(after.astype(int) - before).max(axis=2) > 8
    assert changed[frame.mask > 0].mean() > 0.9
    x0, y0, x1, y1 = frame.meta["logo_box"]
    assert changed[max(0, y0 - 14) : y1 + 14, max(0, x0 - 14) : x1 + 14].sum() == changed.sum(), "region only"
