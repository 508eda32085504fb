"""Wire format: every item survives a round trip; malformed messages name their link."""

from __future__ import annotations

from fractions import Fraction

import msgpack
import numpy as np
import pytest

from cleanfeed.errors import WireError
from cleanfeed.stream.buffers import Caps, Eos, ErrorEvent, Packet, StreamInfo, StreamStart, VideoFrame
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.wire import caps_from_dict, caps_to_dict, decode, encode, pack, unpack

LINK = "segment -> track"


def _frame(pix_fmt: str = "yuv420p", seq: int = 7) -> VideoFrame:
    rng = np.random.default_rng(seq)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = VideoFrame.new(seq, 9000 * seq, Fraction(1, 90_000), Picture.from_rgb(rgb, pix_fmt))
    frame.mask[10:20, 5:30] = 3
    frame.meta = {"prompts": [{"box": [1, 2, 3, 4], "id": 1}], "degraded": False, "ratio": Fraction(2, 3), "raw": b"\x00\x01", "none": None}
    frame.stamps = {"src": 12.5, "segment": 12.75}
    return frame


def _roundtrip(item, **kw):
    parts = [bytes(p) for p in encode(item, link=LINK, **kw)]
    return decode(parts, link=LINK, **{k: v for k, v in kw.items() if k == "resolve"})


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "rgb24"])
def test_frame_round_trip_keeps_pixels_mask_meta_and_stamps(pix_fmt: str) -> None:
    frame = _frame(pix_fmt)
    back, shm = _roundtrip(frame)
    assert shm is None
    assert isinstance(back, VideoFrame)
    assert (back.seq, back.pts, back.time_base) == (7, 63_000, Fraction(1, 90_000))
    assert back.picture.pix_fmt == pix_fmt and (back.width, back.height) == (64, 48)
    np.testing.assert_array_equal(back.picture.data, frame.picture.data)
    np.testing.assert_array_equal(back.mask, frame.mask)
    assert back.meta == frame.meta and isinstance(back.meta["ratio"], Fraction)
    assert back.stamps == frame.stamps and back.born == 12.5
    assert back.slot is None
    back.picture.data[0, 0] = 1  # elements paint in place: decoded arrays must be writable
    back.mask[0, 0] = 1


def test_frame_with_none_pts_round_trips() -> None:
    frame = _frame()
    frame.pts = None
    back, _ = _roundtrip(frame)
    assert back.pts is None


def test_slot_frame_travels_as_header_only_and_maps_its_slot() -> None:
    frame = _frame()
    frame.slot = 3
    parts = encode(frame, link=LINK, by_slot=True)
    assert len(parts) == 1
    views = {3: (frame.picture.data.copy(), frame.mask.copy())}
    back, _ = decode(parts, link=LINK, resolve=views.__getitem__)
    assert back.slot == 3
    assert back.picture.data is views[3][0] and back.mask is views[3][1]


def test_slot_frame_without_pool_is_an_error_naming_the_link() -> None:
    frame = _frame()
    frame.slot = 1
    with pytest.raises(WireError, match=r"^link segment -> track: frame 7 refers to shared-memory slot 1, but no pool is attached"):
        decode(encode(frame, link=LINK, by_slot=True), link=LINK)


def test_inline_frame_is_copied_into_allocated_arrays() -> None:
    frame = _frame()
    dest = (np.zeros_like(frame.picture.data), np.zeros_like(frame.mask))
    back, _ = decode(encode(frame, link=LINK), link=LINK, alloc=lambda fmt, w, h: dest)
    assert back.picture.data is dest[0] and back.mask is dest[1]
    np.testing.assert_array_equal(dest[0], frame.picture.data)


def test_packet_round_trip() -> None:
    pkt = Packet(1, b"\x00\xffaudio", 1024, 1000, 1024, Fraction(1, 48_000), keyframe=True)
    back, _ = _roundtrip(pkt)
    assert isinstance(back, Packet)
    assert (back.stream, back.data, back.pts, back.dts, back.duration, back.time_base, back.keyframe) == (
        1, b"\x00\xffaudio", 1024, 1000, 1024, Fraction(1, 48_000), True,
    )


def test_caps_with_streams_and_extradata_round_trip_exactly() -> None:
    caps = Caps(
        1920, 1080, Fraction(30_000, 1001), Fraction(1, 90_000), "yuv420p",
        streams=(
            StreamInfo(1, "audio", "aac", Fraction(1, 48_000), {"rate": 48_000, "layout": "stereo", "extradata": bytes(range(256))}),
            StreamInfo(2, "subtitle", "mov_text", Fraction(1, 1000), {"tb": Fraction(1, 3), "nested": {"a": [1, 2.5, None]}}),
        ),
        live=True, frames=None,
    )
    back, shm = _roundtrip(StreamStart(caps), shm={"name": "cleanfeed-x", "count": 4})
    assert back == StreamStart(caps)
    assert shm == {"name": "cleanfeed-x", "count": 4}
    assert caps_from_dict(unpack(pack(caps_to_dict(caps)))) == caps


def test_events_round_trip() -> None:
    assert _roundtrip(Eos())[0] == Eos()
    assert _roundtrip(ErrorEvent("inpaint", "inpaint failed: out of memory"))[0] == ErrorEvent("inpaint", "inpaint failed: out of memory")


def test_meta_that_is_not_plain_data_is_refused_naming_the_link() -> None:
    frame = _frame()
    frame.meta["bad"] = object()
    with pytest.raises(WireError, match=r"^link segment -> track: frame 7 meta must be msgpack-able .*got object is not msgpack-able"):
        encode(frame, link=LINK)


def test_numpy_scalars_in_meta_become_numbers() -> None:
    frame = _frame()
    frame.meta["score"] = np.float32(0.5)
    back, _ = _roundtrip(frame)
    assert back.meta["score"] == 0.5


def _header(**changes):
    good = encode(_frame(), link=LINK)
    head = unpack(bytes(good[0]))
    head.update(changes)
    return [pack(head), bytes(good[1]), bytes(good[2])]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([], r"message must have at least a header part, got none"),
        ([b"\xc1garbage"], r"message header must be msgpack, got 8 bytes"),
        ([msgpack.packb([1, 2])], r"message header must be a map, got list"),
        ([msgpack.packb({"v": 99, "kind": "eos"})], r"wire version must be 1, got 99"),
        ([msgpack.packb({"v": 1, "kind": "nonsense"})], r"message kind must be start, frame, packet, eos or error, got 'nonsense'"),
        ([msgpack.packb({"v": 1, "kind": "eos"}), b"extra"], r"eos message must have 1 part\(s\), got 2"),
        ([msgpack.packb({"v": 1, "kind": "packet", "stream": 1})], r"packet message must have 2 part\(s\), got 1"),
        ([msgpack.packb({"v": 1, "kind": "error"})], r"error header must have field 'element'"),
        ([msgpack.packb({"v": 1, "kind": "start", "caps": {"width": 1}, "shm": None})], r"start header must have field"),
    ],
)
def test_malformed_messages_raise_wire_error_naming_the_link(parts, message: str) -> None:
    with pytest.raises(WireError, match=r"^link segment -> track: " + message):
        decode(parts, link=LINK)


def test_malformed_frames_raise_wire_error_naming_the_link() -> None:
    parts = _header()
    with pytest.raises(WireError, match=r"^link segment -> track: picture payload must be 4608 bytes for \(72, 64\), got 4"):
        decode([parts[0], b"abcd", parts[2]], link=LINK)
    with pytest.raises(WireError, match=r"^link segment -> track: frame message must have 3 part\(s\), got 2"):
        decode(parts[:2], link=LINK)
    with pytest.raises(WireError, match=r"^link segment -> track: frame header is malformed: pix_fmt must be one of yuv420p, rgb24, got 'nv12'"):
        decode(_header(pix_fmt="nv12"), link=LINK)
    with pytest.raises(WireError, match=r"^link segment -> track: frame header is malformed: shapes/dtypes must be"):
        decode(_header(dtypes=["float32", "uint8"]), link=LINK)
    with pytest.raises(WireError, match=r"^link segment -> track: frame header is malformed: time base must be \[num, den\]"):
        decode(_header(tb=[1, 0]), link=LINK)
    with pytest.raises(WireError, match=r"^link segment -> track: frame header must have field 'seq'"):
        head = unpack(parts[0])
        del head["seq"]
        decode([pack(head), parts[1], parts[2]], link=LINK)


def test_unknown_item_type_is_refused() -> None:
    with pytest.raises(WireError, match=r"^link a -> b: item must be a StreamStart, VideoFrame, Packet, Eos or ErrorEvent, got str"):
        encode("hello", link="a -> b")  # type: ignore[arg-type]
