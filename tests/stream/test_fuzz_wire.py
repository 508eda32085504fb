"""Fuzzing the wire format (hypothesis): garbage, truncated and well-formed-but-wrong messages
decode to an item or raise WireError naming the link, never anything else."""

from __future__ import annotations

from fractions import Fraction

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanfeed.errors import WireError
from cleanfeed.stream.buffers import Caps, Eos, ErrorEvent, Packet, StreamStart, VideoFrame
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.wire import VERSION, decode, encode

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINK = "fuzz -> test"

plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["v", "kind", "seq", "pts", "dts", "tb", "pix_fmt", "size", "shapes", "dtypes", "meta", "stamps", "slot", "caps",
          "shm", "stream", "duration", "keyframe", "element", "message", "width", "height", "rate", "streams", "frames",
          "live"]


def _pool(slot: int) -> tuple[np.ndarray, np.ndarray]:
    """A one-size pool: 8x4 yuv420p slots."""
    if not 0 <= slot < 4:
        raise WireError(f"link {LINK}: slot must be 0-3, got {slot}")
    return np.zeros((6, 8), np.uint8), np.zeros((4, 8), np.uint8)


def _check(parts: list[bytes]) -> None:
    try:
        item, shm = decode(parts, link=LINK, resolve=_pool)
    except WireError as err:
        text = str(err)
        assert text.startswith(f"link {LINK}: ") and "\n" not in text, text
        return
    assert isinstance(item, (StreamStart, VideoFrame, Packet, Eos, ErrorEvent))


@SETTINGS
@given(st.lists(st.binary(max_size=64), max_size=4))
def test_garbage_parts(parts: list[bytes]) -> None:
    _check(parts)


@st.composite
def mangled_headers(draw: st.DrawFn) -> list[bytes]:
    """A real message with fields dropped, replaced or added, and payload parts cut or added."""
    frame = VideoFrame.new(3, 9000, Fraction(1, 90000), Picture("yuv420p", 8, 4, np.arange(48, dtype=np.uint8).reshape(6, 8)), {"k": [1]})
    caps = Caps(8, 4, Fraction(25), Fraction(1, 90000), "yuv420p")
    items = [frame, StreamStart(caps), Packet(1, b"abc", 0, 0, 10, Fraction(1, 48000)), Eos(), ErrorEvent("el", "boom")]
    item = draw(st.sampled_from(items))
    if isinstance(item, VideoFrame) and draw(st.booleans()):
        item.slot = draw(st.integers(-2, 5))
        parts = [bytes(p) for p in encode(item, by_slot=True)]
    else:
        parts = [bytes(p) for p in encode(item)]
    header = msgpack.unpackb(parts[0], raw=False, strict_map_key=False)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            header.pop(key, None)
        else:
            header[key] = draw(plain)
    if draw(st.booleans()) and isinstance(header.get("caps"), dict):
        header["caps"][draw(st.sampled_from(["width", "rate", "tb", "streams", "frames", "pix_fmt"]))] = draw(plain)
    parts[0] = msgpack.packb(header, use_bin_type=True)
    cut = draw(st.integers(0, 2))
    if cut == 1 and len(parts) > 1:
        parts[-1] = parts[-1][: draw(st.integers(0, max(len(parts[-1]) - 1, 0)))]
    elif cut == 2:
        parts.append(draw(st.binary(max_size=16)))
    return parts


@SETTINGS
@given(mangled_headers())
def test_mangled_messages(parts: list[bytes]) -> None:
    _check(parts)


def test_a_good_message_still_decodes() -> None:
    frame = VideoFrame.new(0, 0, Fraction(1, 90000), Picture("yuv420p", 8, 4, np.arange(48, dtype=np.uint8).reshape(6, 8)))
    item, _ = decode(encode(frame), link=LINK)
    assert isinstance(item, VideoFrame) and item.picture.data.ravel().tolist() == list(range(48))
    assert msgpack.unpackb(encode(Eos())[0]) == {"v": VERSION, "kind": "eos"}
