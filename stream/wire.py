"""The wire format of a link: a msgpack header, then raw payloads; never pickle.

A message is a list of parts (ZeroMQ multipart). Part 0 is a msgpack map, always with
``v`` (the wire version) and ``kind``; what follows depends on the kind:

- ``start``: ``caps`` (see :func:`caps_to_dict`), ``shm`` (the shared-memory pool the frames
  live in on this host, or None). No payload.
- ``frame``: ``seq``, ``pts``, ``tb`` ([num, den]), ``pix_fmt``, ``size`` ([w, h]), ``shapes``,
  ``dtypes``, ``meta``, ``stamps``, ``slot``. When ``slot`` is an int the pixels are in that
  shared-memory slot and there is no payload; when it is None, parts 1 and 2 are the picture
  bytes and the HxW mask bytes (a link to another host, or a frame that does not fit the pool).
- ``packet``: ``stream``, ``pts``, ``dts``, ``duration``, ``tb``, ``keyframe``; part 1 is the data.
- ``eos``: nothing else. ``error``: ``element``, ``message``.

Fractions (time bases, rates, and any Fraction inside meta or stream params) travel as
[num, den] (an ext type inside meta/params, so they come back as Fractions). Every decoding
problem raises :class:`WireError` naming the link, so a bad peer is never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any

import msgpack
import numpy as np

from cleanfeed.errors import WireError
from cleanfeed.stream.buffers import Caps, Eos, ErrorEvent, Item, Packet, StreamInfo, StreamStart, VideoFrame
from cleanfeed.stream.picture import FORMATS, Picture, picture_shape

VERSION = 1
_FRACTION_EXT = 1

Part = bytes | memoryview
SlotResolver = Callable[[int], tuple[np.ndarray, np.ndarray]]
"""Maps a slot index to the (picture, mask) arrays that live in it."""
Alloc = Callable[[str, int, int], tuple[np.ndarray, np.ndarray]]
"""(pix_fmt, width, height) -> writable (picture, mask) arrays to copy an inline frame into."""


def _pack_default(value: Any) -> Any:
    if isinstance(value, Fraction):
        return msgpack.ExtType(_FRACTION_EXT, msgpack.packb([value.numerator, value.denominator]))
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not msgpack-able")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _FRACTION_EXT:
        num, den = msgpack.unpackb(data)
        return Fraction(num, den)
    raise ValueError(f"unknown msgpack ext type {code}")


def pack(value: Any) -> bytes:
    """msgpack with Fractions kept; raises TypeError for anything else that is not plain data."""
    return msgpack.packb(value, default=_pack_default, use_bin_type=True)


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False)


def _fraction(value: Fraction) -> list[int]:
    return [value.numerator, value.denominator]


@lru_cache(maxsize=64)
def _cached_fraction(num: int, den: int) -> Fraction:
    """The few time bases of a stream are built once: Fraction() costs microseconds per frame."""
    return Fraction(num, den)


def _from_pair(value: Any, what: str) -> Fraction:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)) or value[1] == 0:
        raise ValueError(f"{what} must be [num, den] with den != 0, got {value!r}")
    return _cached_fraction(value[0], value[1])


# -- caps ---------------------------------------------------------------------------------
def caps_to_dict(caps: Caps) -> dict[str, Any]:
    """Caps as plain data (used in the start header and in runner reports)."""
    return {
        "width": caps.width,
        "height": caps.height,
        "rate": _fraction(caps.rate),
        "tb": _fraction(caps.time_base),
        "pix_fmt": caps.pix_fmt,
        "live": caps.live,
        "frames": caps.frames,
        "streams": [
            {"index": s.index, "kind": s.kind, "codec": s.codec, "tb": _fraction(s.time_base), "params": dict(s.params)}
            for s in caps.streams
        ],
    }


def caps_from_dict(data: dict[str, Any]) -> Caps:
    """Inverse of :func:`caps_to_dict`; raises ValueError/KeyError/TypeError on bad data."""
    streams = tuple(
        StreamInfo(int(s["index"]), str(s["kind"]), str(s["codec"]), _from_pair(s["tb"], "stream time base"), dict(s["params"]))
        for s in data["streams"]
    )
    frames = data["frames"]
    return Caps(
        width=int(data["width"]),
        height=int(data["height"]),
        rate=_from_pair(data["rate"], "rate"),
        time_base=_from_pair(data["tb"], "time base"),
        pix_fmt=str(data["pix_fmt"]),
        streams=streams,
        live=bool(data["live"]),
        frames=None if frames is None else int(frames),
    )


# -- encoding -----------------------------------------------------------------------------
def encode(item: Item, *, link: str = "?", by_slot: bool = False, shm: dict[str, Any] | None = None) -> list[Part]:
    """Turns an item into message parts.

    ``by_slot``: a frame whose ``slot`` is set travels as its header only (the receiver maps
    the same shared-memory slot); otherwise its pixels follow the header. ``shm`` is the pool
    description carried by a start message. Raises WireError naming ``link`` when meta is
    not plain data.
    """
    if isinstance(item, VideoFrame):
        return _encode_frame(item, link, by_slot)
    if isinstance(item, Packet):
        header = {
            "v": VERSION, "kind": "packet", "stream": item.stream, "pts": item.pts, "dts": item.dts,
            "duration": item.duration, "tb": _fraction(item.time_base), "keyframe": item.keyframe,
        }
        return [pack(header), bytes(item.data)]
    if isinstance(item, StreamStart):
        try:
            return [pack({"v": VERSION, "kind": "start", "caps": caps_to_dict(item.caps), "shm": shm})]
        except TypeError as exc:
            raise WireError(f"link {link}: stream params must be msgpack-able, got {exc}") from None
    if isinstance(item, Eos):
        return [pack({"v": VERSION, "kind": "eos"})]
    if isinstance(item, ErrorEvent):
        return [pack({"v": VERSION, "kind": "error", "element": item.element, "message": item.message})]
    raise WireError(f"link {link}: item must be a StreamStart, VideoFrame, Packet, Eos or ErrorEvent, got {type(item).__name__}")


def _encode_frame(frame: VideoFrame, link: str, by_slot: bool) -> list[Part]:
    pic = frame.picture
    slot = frame.slot if by_slot else None
    if frame.mask.dtype != np.uint8 or frame.mask.shape != (pic.height, pic.width):
        raise WireError(
            f"link {link}: frame {frame.seq} mask must be uint8 {(pic.height, pic.width)}, got {frame.mask.dtype} {frame.mask.shape}"
        )
    header = {
        "v": VERSION, "kind": "frame", "seq": frame.seq, "pts": frame.pts, "tb": _fraction(frame.time_base),
        "pix_fmt": pic.pix_fmt, "size": [pic.width, pic.height],
        "shapes": [list(pic.data.shape), list(frame.mask.shape)],
        "dtypes": ["uint8", "uint8"],  # Picture checks its data; the mask is checked above
        "meta": frame.meta, "stamps": frame.stamps, "slot": slot,
    }
    try:
        head = pack(header)
    except TypeError as exc:
        raise WireError(
            f"link {link}: frame {frame.seq} meta must be msgpack-able (str keys, numbers, str, bytes, lists, "
            f"dicts, bool, None, Fraction), got {exc}"
        ) from None
    if slot is not None:
        return [head]
    return [head, memoryview(np.ascontiguousarray(pic.data)).cast("B"), memoryview(np.ascontiguousarray(frame.mask)).cast("B")]


# -- decoding -----------------------------------------------------------------------------
def decode(
    parts: Sequence[Part], *, link: str = "?", resolve: SlotResolver | None = None, alloc: Alloc | None = None
) -> tuple[Item, dict[str, Any] | None]:
    """Turns message parts back into an item; the second value is a start message's pool
    description (None otherwise). ``resolve`` maps slot frames to their arrays; frames that
    carry a slot index cannot be decoded without it. Inline pixels are copied into arrays
    from ``alloc`` (a source's own slots) or into new ones. Raises WireError naming ``link``."""
    if not parts:
        raise WireError(f"link {link}: message must have at least a header part, got none")
    try:
        header = unpack(parts[0])
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError(f"link {link}: message header must be msgpack, got {len(parts[0])} bytes ({exc})") from None
    if not isinstance(header, dict):
        raise WireError(f"link {link}: message header must be a map, got {type(header).__name__}")
    if header.get("v") != VERSION:
        raise WireError(f"link {link}: wire version must be {VERSION}, got {header.get('v')!r}")
    kind = header.get("kind")
    try:
        if kind == "frame":
            return _decode_frame(header, parts, link, resolve, alloc), None
        if kind == "packet":
            _expect_parts(parts, 2, "packet", link)
            item: Item = Packet(
                stream=int(header["stream"]), data=bytes(parts[1]), pts=_opt_int(header["pts"]), dts=_opt_int(header["dts"]),
                duration=_opt_int(header["duration"]), time_base=_from_pair(header["tb"], "time base"),
                keyframe=bool(header["keyframe"]),
            )
            return item, None
        if kind == "start":
            _expect_parts(parts, 1, "start", link)
            shm = header["shm"]
            if shm is not None and not isinstance(shm, dict):
                raise ValueError(f"shm must be a map or nil, got {shm!r}")
            return StreamStart(caps_from_dict(header["caps"])), shm
        if kind == "eos":
            _expect_parts(parts, 1, "eos", link)
            return Eos(), None
        if kind == "error":
            _expect_parts(parts, 1, "error", link)
            return ErrorEvent(str(header["element"]), str(header["message"])), None
    except WireError:
        raise
    except KeyError as exc:
        raise WireError(f"link {link}: {kind} header must have field {exc.args[0]!r}, got {sorted(header)}") from None
    except (ValueError, TypeError) as exc:
        raise WireError(f"link {link}: {kind} header is malformed: {exc}") from None
    raise WireError(f"link {link}: message kind must be start, frame, packet, eos or error, got {kind!r}")


def _expect_parts(parts: Sequence[Part], count: int, kind: str, link: str) -> None:
    if len(parts) != count:
        raise WireError(f"link {link}: {kind} message must have {count} part(s), got {len(parts)}")


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"timestamp must be an integer or nil, got {value!r}")
    return value


def _decode_frame(
    header: dict[str, Any], parts: Sequence[Part], link: str, resolve: SlotResolver | None, alloc: Alloc | None
) -> VideoFrame:
    pix_fmt = header["pix_fmt"]
    if pix_fmt not in FORMATS:
        raise ValueError(f"pix_fmt must be one of {', '.join(FORMATS)}, got {pix_fmt!r}")
    width, height = (int(v) for v in header["size"])
    shape = picture_shape(pix_fmt, width, height)
    if [list(shape), [height, width]] != header["shapes"] or header["dtypes"] != ["uint8", "uint8"]:
        raise ValueError(
            f"shapes/dtypes must be {[list(shape), [height, width]]} uint8 for {pix_fmt} {width}x{height}, "
            f"got {header['shapes']} {header['dtypes']}"
        )
    meta, stamps = header["meta"], header["stamps"]
    if not isinstance(meta, dict) or not isinstance(stamps, dict):
        raise ValueError("meta and stamps must be maps")
    slot = header["slot"]
    if slot is not None:
        _expect_parts(parts, 1, "slot frame", link)
        if resolve is None:
            raise WireError(f"link {link}: frame {header['seq']} refers to shared-memory slot {slot}, but no pool is attached")
        if not isinstance(slot, int):
            raise ValueError(f"slot must be an integer, got {slot!r}")
        data, mask = resolve(slot)
        if data.shape != shape or mask.shape != (height, width):
            raise WireError(f"link {link}: frame {header['seq']} must fit the pool's {data.shape}, got {pix_fmt} {width}x{height}")
    else:
        _expect_parts(parts, 3, "frame", link)
        into = alloc(pix_fmt, width, height) if alloc is not None else (None, None)
        data = _array(parts[1], shape, "picture", link, into[0])
        mask = _array(parts[2], (height, width), "mask", link, into[1])
    picture = Picture(pix_fmt, width, height, data)
    return VideoFrame(
        seq=int(header["seq"]), pts=_opt_int(header["pts"]), time_base=_from_pair(header["tb"], "time base"),
        picture=picture, mask=mask, meta=meta, stamps={str(k): float(v) for k, v in stamps.items()}, slot=slot,
    )


def _array(part: Part, shape: tuple[int, ...], what: str, link: str, into: np.ndarray | None) -> np.ndarray:
    """A writable copy (elements paint into frames in place), in ``into`` when it fits."""
    view = memoryview(part)
    expected = int(np.prod(shape))
    if view.nbytes != expected:
        raise WireError(f"link {link}: {what} payload must be {expected} bytes for {shape}, got {view.nbytes}")
    src = np.frombuffer(view, np.uint8).reshape(shape)
    if into is None or into.shape != shape or into.dtype != np.uint8:
        return src.copy()
    np.copyto(into, src)
    return into
