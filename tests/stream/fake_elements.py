"""Tiny elements for runtime tests, registered under ``t_*`` names.

They live in a module of their own so that process-mode children can import them (the
runtime sends the element's module name and file to the child). The recording sink writes
what it saw to a JSON file at ``finish()``, because in process mode it lives in another
process.
"""

from __future__ import annotations

import json
import os
import signal
import time
import zlib
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cleanfeed.errors import CleanfeedError, MediaError
from cleanfeed.stream.buffers import Caps, Packet, StreamInfo, VideoFrame
from cleanfeed.stream.element import Filter, Sink, Source
from cleanfeed.stream.picture import Picture, picture_shape
from cleanfeed.stream.properties import Property
from cleanfeed.stream.registry import register

EXTRADATA = bytes(range(256)) + b"\x00\xff"
TIME_BASE = Fraction(1, 90_000)


class FakeEngineError(CleanfeedError, RuntimeError):
    """An error class of a plug-in (not in cleanfeed.errors) that must survive the trip."""

    exit_code = 4


def pattern(seq: int, pix_fmt: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The picture and mask frame ``seq`` carries: different per frame and per pixel."""
    shape = picture_shape(pix_fmt, width, height)
    idx = np.arange(int(np.prod(shape)), dtype=np.uint32).reshape(shape)
    data = ((idx * 7 + seq * 13) % 251).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[seq % height, :] = 1 + seq % 200
    return data, mask


def crcs(data: np.ndarray, mask: np.ndarray) -> list[int]:
    return [zlib.crc32(np.ascontiguousarray(data).tobytes()), zlib.crc32(np.ascontiguousarray(mask).tobytes())]


def expected_crcs(n: int, pix_fmt: str = "yuv420p", width: int = 64, height: int = 48, invert: bool = False) -> list[list[int]]:
    out = []
    for seq in range(n):
        data, mask = pattern(seq, pix_fmt, width, height)
        out.append(crcs(255 - data if invert else data, mask))
    return out


@register
class CountSource(Source):
    factory: ClassVar[str] = "t_countsrc"
    description: ClassVar[str] = "Test source: numbered synthetic frames (frames=0: endless)."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("frames", "frames to produce, 0 = until stopped", 20, 0),
        Property.int("width", "width", 64, 2),
        Property.int("height", "height", 48, 2),
        Property.enum("pix_fmt", "layout", ("yuv420p", "rgb24"), "yuv420p"),
        Property.int("packets_every", "a pass-through packet after every N frames (0: none)", 0, 0),
        Property.float("delay_ms", "sleep per frame", 0.0, 0.0),
        Property.bool("fail_open", "raise MediaError in open()", False),
        Property.bool("heap", "build frames on the heap instead of new_frame()", False),
    )

    def open(self) -> Caps:
        if self.fail_open:
            raise MediaError(f"t_countsrc input must exist, got missing-{self.width}.mp4")
        audio = StreamInfo(1, "audio", "aac", Fraction(1, 48_000), {"rate": 48_000, "extradata": EXTRADATA, "tb": Fraction(1, 3)})
        self.caps = Caps(
            self.width, self.height, Fraction(30), TIME_BASE, self.pix_fmt, (audio,), frames=self.frames or None
        )
        return self.caps

    def read(self) -> Iterator[VideoFrame | Packet]:
        seq = 0
        while not self.frames or seq < self.frames:
            if self.delay_ms:
                time.sleep(self.delay_ms / 1000)
            data, mask = pattern(seq, self.pix_fmt, self.width, self.height)
            pts = seq * 3000
            meta = {"n": seq, "frac": Fraction(1, seq + 1), "tags": ["a", {"b": 1}], "blob": b"\x00\x01"}
            if self.heap:
                frame = VideoFrame.new(seq, pts, TIME_BASE, Picture(self.pix_fmt, self.width, self.height, data), meta)
                frame.mask = mask
            else:
                frame = self.new_frame(self.caps, seq, pts, TIME_BASE)
                frame.picture.data[...] = data
                frame.mask[...] = mask
                frame.meta.update(meta)
            yield frame
            if self.packets_every and (seq + 1) % self.packets_every == 0:
                yield Packet(1, bytes([seq % 256]) * 5, seq * 1600, seq * 1600, 1600, Fraction(1, 48_000), keyframe=True)
            seq += 1


@register
class LookaheadFilter(Filter):
    factory: ClassVar[str] = "t_lookahead"
    description: ClassVar[str] = "Test filter: holds `depth` frames before emitting the oldest."
    properties: ClassVar[tuple[Property, ...]] = (Property.int("depth", "frames held", 3, 0),)

    @property
    def lookahead(self) -> int:
        return int(self.depth)

    def start(self, caps: Caps) -> Caps:
        self._held: deque[VideoFrame] = deque()
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        self._held.append(frame)
        return [self._held.popleft()] if len(self._held) > self.depth else []

    def flush(self) -> list[VideoFrame]:
        out = list(self._held)
        self._held.clear()
        return out


@register
class CopyFilter(Filter):
    factory: ClassVar[str] = "t_copy"
    description: ClassVar[str] = "Test filter: emits a copy (new arrays), optionally with inverted pixels."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.bool("invert", "invert the pixels", False),
        Property.bool("bad_mask", "emit a float mask (a contract violation)", False),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        out = frame.copy()
        if self.invert:
            out.picture = Picture(out.picture.pix_fmt, out.width, out.height, 255 - out.picture.data)
        out.mask = out.mask.astype(np.float32) if self.bad_mask else out.mask.copy()
        return [out]


@register
class FailFilter(Filter):
    factory: ClassVar[str] = "t_fail"
    description: ClassVar[str] = "Test filter: raises on frame `at`."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("at", "frame that fails", 5, 0),
        Property.enum("error", "what to raise", ("runtime", "media", "start", "engine"), "runtime"),
    )

    def start(self, caps: Caps) -> Caps:
        if self.error == "start":
            raise RuntimeError("t_fail refused the caps\nsecond line")
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if frame.seq == self.at:
            if self.error == "media":
                raise MediaError(f"t_fail input must be readable, got a bad frame {frame.seq}")
            if self.error == "engine":
                raise FakeEngineError(f"t_fail engine must have weights, got none at frame {frame.seq}")
            raise RuntimeError(f"t_fail broke on frame {frame.seq}")
        return [frame]


@register
class BadSeqFilter(Filter):
    factory: ClassVar[str] = "t_badseq"
    description: ClassVar[str] = "Test filter: drops frame `at` (a gap downstream)."
    properties: ClassVar[tuple[Property, ...]] = (Property.int("at", "frame dropped", 3, 0),)

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        return [] if frame.seq == self.at else [frame]


@register
class CrashFilter(Filter):
    factory: ClassVar[str] = "t_crash"
    description: ClassVar[str] = "Test filter: its process kills itself with SIGKILL on frame `at`."
    properties: ClassVar[tuple[Property, ...]] = (Property.int("at", "frame", 5, 0),)

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if frame.seq == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return [frame]


@register
class StuckFilter(Filter):
    factory: ClassVar[str] = "t_stuck"
    description: ClassVar[str] = "Test filter: hangs in process() on frame `at` (for escalation tests)."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("at", "frame", 3, 0),
        Property.float("seconds", "how long it hangs", 30.0, 0.0),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if frame.seq == self.at:
            time.sleep(self.seconds)
        return [frame]


@register
class RecordSink(Sink):
    factory: ClassVar[str] = "t_recordsink"
    description: ClassVar[str] = "Test sink: records seqs, pixel CRCs, meta, packets; writes JSON at finish()."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("location", "JSON file written at finish()", None),
        Property.float("delay_ms", "sleep per frame", 0.0, 0.0),
        Property.int("fail_at", "raise in render() on this frame (-1: never)", -1, -1),
    )

    def configure(self) -> None:
        self.record: dict[str, Any] = {"seqs": [], "crcs": [], "meta": [], "packets": [], "finished": False}

    def start(self, caps: Caps) -> Caps:
        self.record["caps"] = repr(caps)
        self.record["pid"] = os.getpid()
        self.record["env"] = os.environ.get("CLEANFEED_TEST_ENV")
        self.record["comm"] = Path("/proc/self/comm").read_text().strip() if Path("/proc/self/comm").exists() else None
        return caps

    def render(self, frame: VideoFrame) -> None:
        if frame.seq == self.fail_at:
            raise ValueError(f"t_recordsink disk must have room, got full at frame {frame.seq}")
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)
        self.record["seqs"].append(frame.seq)
        self.record["crcs"].append(crcs(frame.picture.data, frame.mask))
        if frame.seq < 3:
            self.record["meta"].append(repr(frame.meta))
        self.record["stamps"] = list(frame.stamps)

    def render_packet(self, packet: Packet) -> None:
        self.record["packets"].append([packet.stream, packet.data.hex(), packet.pts])

    def finish(self) -> None:
        self.record["finished"] = True
        if self.location:
            with open(self.location, "w") as fh:
                json.dump(self.record, fh)


@register
class StallFilter(Filter):
    factory: ClassVar[str] = "t_stall"
    description: ClassVar[str] = "Test filter: sleeps `ms` before passing on each frame listed in `at` (a slow stage)."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.ints("at", "frames that stall", (20,)),
        Property.float("ms", "how long each stalls", 500.0, 0.0),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if frame.seq in self.at:
            time.sleep(self.ms / 1000)
        return [frame]


@register
class SlowPrepareFilter(Filter):
    factory: ClassVar[str] = "t_slowprepare"
    description: ClassVar[str] = (
        "Test filter: prepare() sleeps `ms` (a checkpoint loading), then fails with `fail` (bug: a RuntimeError; "
        "bad: the engine's own CleanfeedError, as for a corrupt checkpoint)."
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.float("ms", "how long prepare takes", 1000.0, 0.0),
        Property.enum("fail", "how prepare fails", ("no", "bug", "bad"), "no"),
    )

    def prepare(self) -> None:
        time.sleep(self.ms / 1000)
        if self.fail == "bug":
            raise RuntimeError("weights are corrupt")
        if self.fail == "bad":
            raise FakeEngineError("checkpoint w.pth is not a fake checkpoint")

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        return [frame]


@register
class CoverSink(Sink):
    factory: ClassVar[str] = "t_coversink"
    description: ClassVar[str] = (
        "Test sink for testsrc frames: per frame, its latency, meta degraded, and how far the pixels under "
        "the true logo are from the logo and from the clean scene; JSON at finish()."
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.string("location", "JSON file written at finish()", None),
        Property.int("width", "testsrc width", 160, 32),
        Property.int("height", "testsrc height", 96, 32),
        Property.int("frames", "testsrc frames", 150, 1),
        Property.fraction("rate", "testsrc rate", Fraction(25)),
        Property.int("logo_size", "testsrc logo_size", 40, 8),
        Property.int("seed", "testsrc seed", 0, 0),
    )

    def start(self, caps: Caps) -> Caps:
        from cleanfeed.stream.testclip import SyntheticClip

        self._clip = SyntheticClip(self.width, self.height, self.frames, float(self.rate), "pan", "fixed",
                                   self.logo_size, self.seed)
        self.rows: list[dict[str, Any]] = []
        return caps

    def render(self, frame: VideoFrame) -> None:
        latency_ms = (time.monotonic() - frame.born) * 1000 if frame.born is not None else None
        truth = self._clip.frame(frame.seq)
        out = frame.picture.rgb().astype(np.int16)
        where = truth.mask
        self.rows.append({
            "seq": frame.seq, "latency_ms": latency_ms, "degraded": bool(frame.meta.get("degraded", False)),
            "to_logo": float(np.abs(out[where] - truth.image[where].astype(np.int16)).mean()),
            "to_clean": float(np.abs(out[where] - truth.clean[where].astype(np.int16)).mean()),
        })

    def finish(self) -> None:
        if self.location:
            with open(self.location, "w") as fh:
                json.dump(getattr(self, "rows", []), fh)


# -- crash survival (tests/stream/test_crash_*.py) ------------------------------------------
def _die_once(marker: str | None) -> bool:
    """True the first time (the marker file did not exist yet: it does now)."""
    if not marker:
        return True
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


@register
class SlowFilter(Filter):
    factory: ClassVar[str] = "t_slow"
    description: ClassVar[str] = "Test filter: sleeps `ms` per frame; appends its pid to `pidfile` at start()."
    properties: ClassVar[tuple[Property, ...]] = (
        Property.float("ms", "sleep per frame", 10.0, 0.0),
        Property.string("pidfile", "file the process appends its pid to", None),
    )

    def start(self, caps: Caps) -> Caps:
        if self.pidfile:
            with open(self.pidfile, "a") as fh:
                fh.write(f"{os.getpid()}\n")
        return caps

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        time.sleep(self.ms / 1000)
        return [frame]


@register
class CrashOnceFilter(LookaheadFilter):
    factory: ClassVar[str] = "t_crashonce"
    description: ClassVar[str] = (
        "Test filter: holds `depth` frames; its process SIGKILLs itself on frame `at` the first time "
        "(a `marker` file remembers; none: every time)."
    )
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("depth", "frames held", 0, 0),
        Property.int("at", "frame", 5, 0),
        Property.string("marker", "file created on the first crash", None),
        Property.float("ms", "sleep per frame", 0.0, 0.0),
    )

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if self.ms:
            time.sleep(self.ms / 1000)
        if frame.seq == self.at and _die_once(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().process(frame)


def _write_pid(path: str | None) -> None:
    if path:
        with open(path, "a") as fh:
            fh.write(f"{os.getpid()}\n")


def _with_pidfile(props: tuple[Property, ...]) -> tuple[Property, ...]:
    return (*props, Property.string("pidfile", "file the process appends its pid to at start()", None))


def _real(factory: str) -> type:
    from cleanfeed.stream.registry import lookup

    return lookup(factory)


@register
class PidInpaint(_real("inpaint")):  # type: ignore[misc]
    factory: ClassVar[str] = "t_inpaint"
    description: ClassVar[str] = "Test filter: the real inpaint element, telling its pid (so a test can kill it)."
    properties: ClassVar[tuple[Property, ...]] = _with_pidfile(_real("inpaint").properties)

    def start(self, caps: Caps) -> Caps:
        _write_pid(self.pidfile)
        return super().start(caps)


@register
class PidTrack(_real("track")):  # type: ignore[misc]
    factory: ClassVar[str] = "t_track"
    description: ClassVar[str] = "Test filter: the real track element, telling its pid (so a test can kill it)."
    properties: ClassVar[tuple[Property, ...]] = _with_pidfile(_real("track").properties)

    def start(self, caps: Caps) -> Caps:
        _write_pid(self.pidfile)
        return super().start(caps)


@register
class MaskSink(Sink):
    factory: ClassVar[str] = "t_masksink"
    description: ClassVar[str] = (
        "Test sink: per frame, its seq, mask area, how well the mask's bounding box matches meta logo_box (IoU) "
        "and meta degraded; JSON at finish()."
    )
    properties: ClassVar[tuple[Property, ...]] = (Property.string("location", "JSON file written at finish()", None),)

    def configure(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def render(self, frame: VideoFrame) -> None:
        ys, xs = np.nonzero(frame.mask)
        iou = 0.0
        truth = frame.meta.get("logo_box")
        if len(xs) and truth:
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            ix = max(0, min(box[2], truth[2]) - max(box[0], truth[0]))
            iy = max(0, min(box[3], truth[3]) - max(box[1], truth[1]))
            inter = ix * iy
            area = (box[2] - box[0]) * (box[3] - box[1]) + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter
            iou = inter / area if area else 0.0
        self.rows.append({"seq": frame.seq, "area": int(len(xs)), "iou": iou,
                          "degraded": bool(frame.meta.get("degraded", False))})

    def finish(self) -> None:
        if self.location:
            with open(self.location, "w") as fh:
                json.dump(self.rows, fh)


# -- shedding (tests/stream/test_shedding.py) -----------------------------------------------
@register
class SlowFullInpaint(_real("inpaint")):  # type: ignore[misc]
    factory: ClassVar[str] = "t_slowinpaint"
    description: ClassVar[str] = ("Test filter: the real inpaint element whose full path (the engine) sleeps "
                                  "`full_ms` more per frame: slower than the input, it must shed.")
    properties: ClassVar[tuple[Property, ...]] = (
        *_real("inpaint").properties, Property.float("full_ms", "sleep per frame on the full path", 80.0, 0.0))

    def _full(self, frame: VideoFrame) -> list[VideoFrame]:
        time.sleep(self.full_ms / 1000)
        return super()._full(frame)


@register
class SlowFullTrack(_real("track")):  # type: ignore[misc]
    factory: ClassVar[str] = "t_slowtrack"
    description: ClassVar[str] = ("Test filter: the real track element whose flow sleeps `full_ms` more per "
                                  "frame: slower than the input, it must shed.")
    properties: ClassVar[tuple[Property, ...]] = (
        *_real("track").properties, Property.float("full_ms", "sleep per frame on the full path", 80.0, 0.0))

    def _track(self, frame: VideoFrame, refs: list[int]) -> list[VideoFrame]:
        if not refs:
            time.sleep(self.full_ms / 1000)
        return super()._track(frame, refs)


@register
class ReferenceFilter(Filter):
    factory: ClassVar[str] = "t_reference"
    description: ClassVar[str] = ("Test filter: marks frame `at` as a reference of object 1 (its mask, from "
                                  "testsrc truth_mask=true) and clears every other frame's mask, as segment does.")
    properties: ClassVar[tuple[Property, ...]] = (Property.int("at", "the reference frame", 0, 0),)

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        if frame.seq == self.at:
            frame.mask[frame.mask > 0] = 1
            frame.meta["reference"] = [1]
        else:
            frame.mask[...] = 0
        return [frame]
