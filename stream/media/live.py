"""A live network input that survives its server: reconnection with backoff, and an output
that keeps its cadence while the input is gone.

PyAV sees a killed server or a dropped link as a clean end of stream (docs/streaming.md), so
for a live input the end is only "maybe disconnected": a receiving thread opens the input
again with exponential backoff until ``reconnect_timeout_s`` has passed since the loss; a
server that stops answering is caught by FFmpeg's ``timeout`` option, which each attempt gets
(capped by the time left). The consumer side never waits on that thread for longer than a
frame period once the input is late: it emits the last frame again (or a slate) at the input's
rate, flagged ``meta["gap"]`` and counted as ``repeated``, so a sink downstream never stalls.

A presentation of known length (an RTSP server serving a file announces its range, which
PyAV gives as the container's duration) ends when a session has played it to its end: its
last frame within ``END_PERIODS`` frames of the range's end. A session that ends before that
was cut short, as a killed server looks the same (a clean end of stream), and is reconnected
like a live one. From that last frame on, the output waits for the end of stream instead of
repeating frames, so the run ends with the presentation's frames and nothing added.

Timestamps: each session of the input starts its own clock (RTSP restarts near 0). Output pts
continue on one running clock: the first session keeps the input's pts; a new session is
mapped so that its first frame follows the last frame sent (real or repeated) by one frame
period, and every repeated frame moves the current session one period later. Pass-through
packets get the same shift (held back at a session's start until its first video frame fixes
the mapping). Frames received before a gap are all delivered before any repeat: nothing is
dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import Caps, Packet, VideoFrame
from cleanfeed.stream.media.decode import fill_picture
from cleanfeed.stream.media.reader import MediaReader, NewFrame, ReaderOptions
from cleanfeed.stream.picture import Picture

log = logging.getLogger(__name__)

GAP_FILLS = ("repeat", "slate")
QUEUE_FRAMES = 64
"""Decoded frames the receiving thread may hold ahead of the consumer (a few seconds at most)."""
PENDING_PACKETS = 500
"""Pass-through packets held at a session's start while its clock is not known yet."""
END_PERIODS = 3
"""How close (in frame periods) a session's last frame must come to the end of a presentation of
known length for it to count as played to the end: the range's end is rounded, and FFmpeg's start
time is the first timestamp it saw (RTSP's first keyframe has none)."""

Count = Callable[[str, int], None]


@dataclass(frozen=True)
class LiveOptions:
    reconnect_timeout_s: float = 30.0
    """After a loss, how long to keep trying to reconnect before ending the stream."""
    gap_fill: str = "repeat"
    """What fills the output while the input is gone: the last frame again, or a slate."""
    backoff_first_s: float = 0.1
    """Wait before the first reconnection attempt; doubled after each failure."""
    backoff_max_s: float = 2.0
    late_periods: float = 1.0
    """How many frame periods a frame may be late before the gap fill starts while the input has
    not (yet) been seen to end; once it has ended, repeats start at once."""


@dataclass
class _Event:
    kind: str  # "item" | "lost" | "back" | "gone" | "end"
    session: int
    item: Any = None
    reason: str = ""


def slate_picture(caps: Caps) -> Picture:
    """A plain dark frame saying the signal is lost, in the stream's layout."""
    picture = Picture.empty(caps.pix_fmt, caps.width, caps.height)
    w, h = caps.width, caps.height
    scale = max(0.3, w / 640)
    text = "SIGNAL LOST"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))
    org = (max(0, (w - tw) // 2), min(h - 1, (h + th) // 2))
    if caps.pix_fmt == "yuv420p":
        picture.data[:h] = 24
        picture.data[h:] = 128
        cv2.putText(picture.data[:h], text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 200, max(1, int(2 * scale)))
    else:
        picture.data[:] = 24
        cv2.putText(picture.data, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 200, 200), max(1, int(2 * scale)))
    return picture


class LiveReader:
    """Reads a live input across reconnections; :meth:`items` yields frames at a steady cadence."""

    def __init__(self, first: MediaReader, options: LiveOptions) -> None:
        if options.gap_fill not in GAP_FILLS:
            raise MediaError(f"gap_fill must be one of {', '.join(GAP_FILLS)}, got {options.gap_fill!r}")
        self.caps = first.caps
        self.location = first.location
        self.shown = first.shown
        self.options = options
        self.end_s = first.end_s
        self._reader_options: ReaderOptions = first.options
        self._first: MediaReader | None = first
        self._stop = threading.Event()
        self._queue: queue.Queue[_Event] = queue.Queue(QUEUE_FRAMES)
        self._thread: threading.Thread | None = None

    # -- the receiving thread -----------------------------------------------------------------
    def _put(self, event: _Event) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(event, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _receive(self) -> None:
        reader, self._first = self._first, None
        session = 0
        while reader is not None:
            reason = "the input ended"
            last_at: Fraction | None = None
            try:
                for item in reader.decoded():
                    at = None if isinstance(item, Packet) else _seconds(item)
                    last_at = last_at if at is None else at
                    if not self._put(_Event("item", session, item)):
                        return
            except MediaError as err:
                reason = str(err)
            except Exception as err:  # noqa: BLE001 - a live feed must outlive odd FFmpeg failures
                reason = f"{type(err).__name__}: {err}"
            finally:
                reader.close()
            if self._stop.is_set():
                return
            if self._played_to_end(last_at):
                self._put(_Event("end", session))
                return
            if not self._put(_Event("lost", session, reason=reason)):
                return
            reader = self._reconnect(reason)
            session += 1
            if reader is not None and not self._put(_Event("back", session, reader)):
                reader.close()
                return

    def _reconnect(self, reason: str) -> MediaReader | None:
        """A new reader, or None once the reconnect timeout has passed (a "gone" event is sent)."""
        lost_at = time.monotonic()
        delay = self.options.backoff_first_s
        attempts, last_error = 0, reason
        while True:
            left = self.options.reconnect_timeout_s - (time.monotonic() - lost_at)
            if left <= 0:
                message = (f"{self.shown}: no connection for {self.options.reconnect_timeout_s:g} s after "
                           f"{attempts} attempt(s) (last: {last_error}); ending the stream")
                self._put(_Event("gone", -1, reason=message))
                return None
            if self._stop.wait(min(delay, left)):
                return None
            attempts += 1
            left = self.options.reconnect_timeout_s - (time.monotonic() - lost_at)
            opts = self._reader_options
            opened = replace(opts.open, timeout_s=max(0.1, min(opts.open.timeout_s, left)))
            try:
                return MediaReader(self.location, replace(opts, open=opened))
            except MediaError as err:
                last_error = str(err)
                log.debug("%s: reconnection attempt %d failed: %s", self.shown, attempts, err)
            delay = min(delay * 2, self.options.backoff_max_s)

    def _played_to_end(self, at: Fraction | None) -> bool:
        """Whether a frame at ``at`` seconds is the end of a presentation of known length."""
        if self.end_s is None or at is None:
            return False
        return at >= self.end_s - END_PERIODS / self.caps.rate

    # -- the consumer ---------------------------------------------------------------------------
    def items(self, new_frame: NewFrame, count: Count) -> Iterator[VideoFrame | Packet]:
        """Frames (seq gapless from 0, pts strictly increasing) and pass-through packets."""
        caps = self.caps
        tb = caps.time_base
        period = float(1 / caps.rate)
        step = max(1, round(1 / (caps.rate * tb)))
        self._thread = threading.Thread(target=self._receive, name=f"live:{self.shown}", daemon=True)
        self._thread.start()
        seq = 0
        last_out: int | None = None
        offset: Fraction | None = None  # seconds added to the current session's timestamps
        last_frame: Any = None  # the last decoded AVFrame, for repeats
        last_emit: float | None = None
        gone_since: float | None = None  # monotonic time the input was seen to end
        at_end = False  # the last frame of a presentation of known length was sent: no repeats
        pending: list[Packet] = []
        slate: Picture | None = None
        try:
            while True:
                if last_emit is None or at_end:
                    wait: float | None = 0.5
                else:
                    late = 1.0 if gone_since is not None else 1.0 + self.options.late_periods
                    wait = max(0.0, last_emit + late * period - time.monotonic())
                try:
                    event = self._queue.get(timeout=wait)
                except queue.Empty:
                    if last_emit is None or at_end:
                        continue
                    # the input is late or gone: keep the cadence with a repeat
                    frame = new_frame(caps, seq, None if last_out is None else last_out + step, tb)
                    if self.options.gap_fill == "slate" or last_frame is None:
                        slate = slate if slate is not None else slate_picture(caps)
                        np.copyto(frame.picture.data, slate.data)
                    else:
                        fill_picture(last_frame, frame.picture)
                    frame.mask[:] = 0
                    frame.meta["gap"] = True
                    last_out = frame.pts
                    if offset is not None:
                        offset += step * tb
                    seq += 1
                    count("repeated", 1)
                    last_emit = time.monotonic()
                    yield frame
                    continue
                if event.kind == "end":
                    log.info("%s: the presentation ended (%.2f s)", self.shown, float(self.end_s or 0))
                    return
                if event.kind == "lost":
                    gone_since, at_end = time.monotonic(), False
                    log.warning("%s: input lost (%s); reconnecting for up to %g s", self.shown, event.reason,
                                self.options.reconnect_timeout_s)
                    continue
                if event.kind == "gone":
                    log.error("%s", event.reason)
                    return
                if event.kind == "back":
                    count("reconnects", 1)
                    lost_for = time.monotonic() - gone_since if gone_since is not None else 0.0
                    log.warning("%s: reconnected after %.1f s", self.shown, lost_for)
                    gone_since, offset = None, None
                    pending.clear()
                    continue
                item = event.item
                if isinstance(item, Packet):
                    if offset is None:
                        if len(pending) < PENDING_PACKETS:
                            pending.append(item)
                        continue
                    yield _shifted(item, offset)
                    continue
                out, offset = _place(item, tb, step, last_out, offset, event.session == 0)
                frame = new_frame(caps, seq, out, tb)
                fill_picture(item, frame.picture)
                last_frame, last_out = item, out
                at_end = self._played_to_end(_seconds(item))
                seq += 1
                last_emit = time.monotonic()
                yield frame
                if pending and offset is not None:
                    for packet in pending:
                        yield _shifted(packet, offset)
                    pending.clear()
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        first, self._first = self._first, None
        if first is not None:
            first.close()
        while True:  # unblock a thread waiting to put, and release held frames
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event.kind == "back" and isinstance(event.item, MediaReader):
                event.item.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=1.0)


def _place(
    frame: Any, tb: Fraction, step: int, last_out: int | None, offset: Fraction | None, first_session: bool
) -> tuple[int, Fraction | None]:
    """The output pts of a decoded frame on the running clock, and the session's offset.

    The first session keeps the input's clock (unless it would go backwards); a later one
    starts one frame after the last frame sent.
    """
    if frame.pts is None or frame.time_base is None:
        return (0 if last_out is None else last_out + step), offset
    at = frame.pts * Fraction(frame.time_base)
    if offset is None:
        if last_out is None:
            offset = Fraction(0)
        elif first_session and round(at / tb) > last_out:
            offset = Fraction(0)
        else:
            offset = (last_out + step) * tb - at
    out = round((at + offset) / tb)
    if last_out is not None and out <= last_out:  # never backwards: move the session on
        offset += (last_out + step - out) * tb
        out = last_out + step
    return out, offset


def _seconds(frame: Any) -> Fraction | None:
    """A decoded frame's time on its session's clock, when it has one."""
    if frame.pts is None or frame.time_base is None:
        return None
    return frame.pts * Fraction(frame.time_base)


def _shifted(packet: Packet, offset: Fraction) -> Packet:
    ticks = round(offset / packet.time_base)
    if ticks:
        if packet.pts is not None:
            packet.pts += ticks
        if packet.dts is not None:
            packet.dts += ticks
    return packet
