"""The loop that drives one element, the same in a thread or in its own process.

A runner knows only its element and the ends of its links (``Inlet.get``/``Outlet.put``),
its slot bookkeeping (:class:`Slots`), the run's :class:`Control` flags and a reporter.
What it guarantees, whatever the element does:

- every frame an element emits is stamped ``frame.stamps[name] = monotonic()`` and must
  carry the next seq (each frame exactly once, in order); a gap, a repeat or a frame a
  filter never gives back is an error naming that element;
- packets pass filters untouched and reach the sink's ``render_packet``;
- an element that raises reports (name, class name, one-line message), sends ErrorEvent
  then EOS downstream so the sink finalizes a playable output, asks the source to stop, and
  keeps draining its input (returning slots) until upstream's EOS: nothing deadlocks;
- on abort every runner leaves at its next wait; a sink still calls ``finish()``.

Statistics (cleanfeed.stream.stats) go out every ``stats_every_s`` and at exit: frames, busy time, the
sink's per-frame latencies and degraded count (frames whose ``meta["degraded"]`` is true),
and the element's own named counters (``Element.count``).

Live runs (:class:`LivePlan`: pacing, deadlines, the budget check) are planned in
cleanfeed.stream.live; errors travel as records (cleanfeed.stream.error_records); what a runner
is handed (links, slots, flags, reporter) is described in cleanfeed.stream.ports.

A source that may wait a long time for input (a network receiver) can declare a
``stop_check`` attribute; the runner sets it to a function to call while waiting, which
raises (StopRequested, Aborted) when the run wants the source to stop.

Restarts (process mode, cleanfeed.stream.crews.processes): the runner of a restarted filter
gets a :class:`Resume` (cleanfeed.stream.ports says what it changes), and every runner calls
its outlet's ``service()`` while it waits, so a restarted next stage is answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from time import monotonic
from typing import Any

import numpy as np

from cleanfeed.errors import ElementError
from cleanfeed.stream.buffers import Caps, Eos, ErrorEvent, Item, Packet, StreamStart, VideoFrame
from cleanfeed.stream.element import Element, Filter, Sink, Source
from cleanfeed.stream.error_records import error_record
from cleanfeed.stream.live import EXPIRE_POLL_S, LivePlan, Pacer
from cleanfeed.stream.ports import WAIT_S, Aborted, Control, Inlet, Outlet, Reporter, Resume, Slots, StopRequested
from cleanfeed.stream.stats import ElementCounters
from cleanfeed.stream.wire import caps_to_dict


# -- the runner ---------------------------------------------------------------------------
@dataclass
class _SeqError(Exception):
    """A gap or repeat in the seq numbers, blamed on the element that caused it."""

    culprit: str
    message: str


class ElementRunner:
    """Runs one element until end of stream, error or abort; see the module doc."""

    def __init__(
        self, element: Element, *, inlet: Inlet | None, outlet: Outlet | None, slots: Slots, control: Control,
        reporter: Reporter, stats_every_s: float = 0.5, live: LivePlan | None = None, resume: Resume | None = None,
    ) -> None:
        self.element = element
        self.live = live or LivePlan()
        self._process_s = 0.0  # how long process() has been taking (a decaying maximum)
        self.name = element.name
        self.inlet = inlet
        self.outlet = outlet
        self.slots = slots
        self.control = control
        self.reporter = reporter
        self.every = stats_every_s
        self.counters = ElementCounters()
        self.started = False
        self.failed = False
        self.aborted = False
        self._eos_in = False
        self._next_in = 0
        self._next_out = 0
        self._last_report = monotonic()
        self.resume = resume
        self._recover_until = 0  # frames below this seq were re-sent after a restart
        if resume is not None:
            self._next_in = self._next_out = resume.seq
            self.counters.frames_in = self.counters.frames_out = resume.seq

    # -- entry ----------------------------------------------------------------------------
    def run(self) -> None:
        """Never raises: every outcome is reported; the final report says ``done``."""
        try:
            if isinstance(self.element, Source):
                self._run_source(self.element)
            elif isinstance(self.element, Sink):
                self._guard(self._run_sink, self.element)
            elif isinstance(self.element, Filter):
                self._guard(self._run_filter, self.element)
            else:
                raise TypeError(f"element {self.name} must be a Source, Filter or Sink, got {type(self.element).__name__}")
        except Aborted:
            self.aborted = True
        except BaseException as exc:  # a bug in the runner itself, or SystemExit: still report it
            if not self.failed:
                self._report_error(self.name, exc)
        finally:
            self._finalize()

    def _guard(self, body: Any, element: Element) -> None:
        try:
            body(element)
        except _SeqError as exc:
            self._fail(exc.culprit, ElementError(exc.culprit, exc.message))
        except Exception as exc:
            self._fail(self.name, exc)

    def _finalize(self) -> None:
        el = self.element
        try:
            if isinstance(el, Sink) and self.started:
                self._call_safely(el.finish)
            if isinstance(el, Source):
                self._call_safely(el.close)
            elif self.started:
                self._call_safely(el.stop)
            self.slots.release_held()
        finally:
            self.reporter.send(self.counters.message(self.name, "done", self.element.counted(),
                                                     self.element.background_busy_s()) | {"aborted": self.aborted})

    def _call_safely(self, hook: Any) -> None:
        try:
            hook()
        except Exception as exc:
            if not self.failed:
                self.failed = True
                self._report_error(self.name, exc)

    # -- links ----------------------------------------------------------------------------
    def _put(self, item: Item) -> None:
        assert self.outlet is not None
        self.outlet.put(item)

    def _get(self) -> Item:
        assert self.inlet is not None
        while True:
            if self.control.aborting:
                raise Aborted()
            item = self.inlet.get(WAIT_S)
            if item is not None:
                return item
            self._service()
            self._tick()

    def _get_or_expire(self, flt: Filter) -> Item | None:
        """Like ``_get`` for a filter with a deadline: waits at most EXPIRE_POLL_S, then lets the
        filter emit what is due before the next wait ends (None: nothing arrived)."""
        if self.control.aborting:
            raise Aborted()
        item = self.inlet.get(EXPIRE_POLL_S) if self.inlet is not None else None
        if item is None:
            self._expire(flt, EXPIRE_POLL_S)
            self._service()
            self._tick()
        return item

    def _service(self) -> None:
        """Lets an outlet that can replay answer a restarted next stage while this one waits."""
        if self.outlet is not None:
            self.outlet.service()

    def _expire(self, flt: Filter, ahead_s: float) -> None:
        """Emits what ``flt`` says is due ``ahead_s`` from now (the runner's next chance)."""
        t0 = monotonic()
        outs = self._outputs(flt.expire(t0 + ahead_s), "expire")
        if outs:
            self.counters.busy_s += monotonic() - t0
            for out in outs:
                self._emit(out)

    def _tick(self, force: bool = False) -> None:
        now = monotonic()
        if force or now - self._last_report >= self.every:
            self._last_report = now
            self.reporter.send(self.counters.message(self.name, counters=self.element.counted(),
                                                     background_s=self.element.background_busy_s()))

    # -- errors ---------------------------------------------------------------------------
    def _report_error(self, culprit: str, exc: BaseException) -> None:
        self.reporter.send(error_record(culprit, exc).to_message())

    def _fail(self, culprit: str, exc: BaseException) -> None:
        """Report, end the stream downstream, stop the source, then drain until upstream's EOS."""
        self.failed = True
        self._report_error(culprit, exc)
        self.control.request_stop()
        self.slots.release_held()
        if self.outlet is not None:
            self._put(ErrorEvent(culprit, error_record(culprit, exc).message))
            self._put(Eos())
        while self.inlet is not None and not self._eos_in:
            item = self._get()
            if isinstance(item, VideoFrame):
                self.slots.release(item)
            elif isinstance(item, Eos):
                self._eos_in = True

    # -- frames ---------------------------------------------------------------------------
    def _accept(self, frame: VideoFrame) -> None:
        """Checks an incoming frame's seq (a lost or repeated message blames its sender)."""
        self.slots.hold(frame)
        if frame.seq != self._next_in:
            culprit = next(reversed(frame.stamps), self.name)
            raise _SeqError(culprit, f"output seq must be {self._next_in} (every frame once, in order), got {frame.seq}")
        self._next_in += 1
        self.counters.frames_in += 1

    def _emit(self, frame: VideoFrame) -> None:
        if not isinstance(frame, VideoFrame):
            raise ElementError(self.name, f"emitted frames must be VideoFrame, got {type(frame).__name__}")
        if frame.seq != self._next_out:
            raise ElementError(self.name, f"output seq must be {self._next_out} (every frame once, in order), got {frame.seq}")
        mask, pic = frame.mask, frame.picture
        if mask.dtype != np.uint8 or mask.shape != (pic.height, pic.width):
            raise ElementError(
                self.name, f"frame {frame.seq} mask must be uint8 {(pic.height, pic.width)}, got {mask.dtype} {mask.shape}"
            )
        self._next_out += 1
        self.slots.place(frame)
        frame.stamps[self.name] = monotonic()
        self._put(frame)
        self.counters.frames_out += 1

    def _outputs(self, outs: Any, hook: str) -> list[VideoFrame]:
        if not isinstance(outs, (list, tuple)):
            raise ElementError(self.name, f"{hook}() must return a list of frames, got {type(outs).__name__}")
        return list(outs)

    # -- roles ----------------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.control.aborting:
            raise Aborted()
        if self.control.stopping:
            raise StopRequested()
        self._service()

    def _run_source(self, src: Source) -> None:
        items: Iterator[VideoFrame | Packet] | None = None
        if hasattr(src, "stop_check"):
            src.stop_check = self._check_stop
        try:
            caps = src.open()
            if not isinstance(caps, Caps):
                raise ElementError(self.name, f"open() must return Caps, got {type(caps).__name__}")
            if self.live.check:
                self.live.refuse_short_budget(caps.rate)  # before a single frame is read
            self.slots.prepare_source(caps, src)
            self.started = True
            self.reporter.send({"kind": "caps", "element": self.name, "caps": caps_to_dict(caps)})
            self._put(StreamStart(caps))
            pacer = Pacer() if self.live.pace and not caps.live else None
            items = src.read()
            while not self.control.stopping:
                t0, w0 = monotonic(), self.slots.wait_s
                try:
                    item = next(items)
                except StopIteration:
                    break
                self.counters.busy_s += monotonic() - t0 - (self.slots.wait_s - w0)
                if isinstance(item, VideoFrame):
                    if pacer is not None:
                        pacer.wait(item, self._check_stop)
                    self._emit(item)
                elif isinstance(item, Packet):
                    self._put(item)
                    self.counters.packets += 1
                else:
                    raise ElementError(self.name, f"read() must yield VideoFrame or Packet, got {type(item).__name__}")
                self._tick()
            self._close_items(items)
        except StopRequested:
            self._close_items(items)
        except Exception as exc:
            try:
                self._close_items(items)
            except Exception:
                pass  # the first error is the one to report
            self._fail(self.name, exc)
            return
        self._put(Eos())

    @staticmethod
    def _close_items(items: Iterator[Any] | None) -> None:
        """Lets a generator's own ``finally`` run now, not whenever it is collected."""
        close = getattr(items, "close", None)
        if close is not None:
            close()

    def _run_filter(self, flt: Filter) -> None:
        timed = False  # a deadline, and frames held that may come due: poll, and expire
        while True:
            item = self._get_or_expire(flt) if timed else self._get()
            if item is None:
                continue
            if isinstance(item, VideoFrame):
                self._accept(item)
                t0 = monotonic()
                recover = getattr(flt, "recover", None) if item.seq < self._recover_until else None
                outs = self._outputs(recover(item) if recover is not None else flt.process(item), "process")
                took = monotonic() - t0
                self.counters.busy_s += took
                if flt.holds_stream:
                    self.slots.release(item)  # the element copied what it keeps
                for out in outs:
                    self._emit(out)
                if timed:
                    self._process_s = max(took, self._process_s * 0.9)
                    self._expire(flt, self._process_s + EXPIRE_POLL_S)
            elif isinstance(item, Packet):
                self._put(item)
                self.counters.packets += 1
            elif isinstance(item, StreamStart):
                self._live_start(flt, item.caps)
                caps = flt.start(item.caps)
                self.started = True
                timed = flt.deadline is not None and flt.held_max > 0
                self._put(StreamStart(caps))
                if self.resume is not None:
                    self._resumed(flt)
            elif isinstance(item, ErrorEvent):
                self._put(item)
            elif isinstance(item, Eos):
                self._eos_in = True
                if self.started:
                    self._drain_flush(flt)
                    if self._next_out != self._next_in:
                        raise ElementError(
                            self.name, f"must emit every frame it receives, emitted {self._next_out} of {self._next_in}"
                        )
                self._put(Eos())
                return
            self._tick()

    def _resumed(self, flt: Filter) -> None:
        """After a restart: which frames were re-sent, and the dead process's last output."""
        assert self.resume is not None
        self._recover_until = self.resume.seq + self.resume.replayed()
        reseed = getattr(flt, "reseed", None)
        previous = self.resume.previous() if reseed is not None else None
        if reseed is not None and previous is not None:
            reseed(previous)

    def _live_start(self, element: Element, caps: Caps) -> None:
        """Refuses a budget too small for this stream's rate; tells the element its deadline and
        whether the stream is live."""
        if self.live.check:
            self.live.refuse_short_budget(caps.rate)
        element.deadline = self.live.deadline(caps.rate)
        element.fail_on_late = self.live.fail_on_late
        element.live = caps.live or self.live.live or self.live.budget_ms is not None

    def _drain_flush(self, flt: Filter) -> None:
        """Emits what ``flush`` gives as it comes: a list, or a generator for a filter that does its
        real work at the end (offline processing), whose frames then leave and are counted one by one."""
        t0 = monotonic()
        outs = flt.flush()
        if not isinstance(outs, (list, tuple, Iterator)):
            raise ElementError(self.name, f"flush() must return a list of frames, got {type(outs).__name__}")
        try:
            for out in outs:
                self.counters.busy_s += monotonic() - t0
                self._emit(out)
                self._tick()
                t0 = monotonic()
            self.counters.busy_s += monotonic() - t0
        finally:
            self._close_items(outs if isinstance(outs, Iterator) else None)

    def _run_sink(self, sink: Sink) -> None:
        while True:
            item = self._get()
            if isinstance(item, VideoFrame):
                self._accept(item)
                if item.meta.get("degraded"):
                    self.counters.degraded += 1
                t0 = monotonic()
                sink.render(item)
                done = monotonic()
                self.counters.busy_s += done - t0
                born = item.born
                if born is not None:
                    if self.counters.first_born is None:
                        self.counters.first_born = born
                    self.counters.latencies_ms.append((done - born) * 1000)
                self.counters.last_render = done
                self.slots.release(item)
            elif isinstance(item, Packet):
                t0 = monotonic()
                sink.render_packet(item)
                self.counters.busy_s += monotonic() - t0
                self.counters.packets += 1
            elif isinstance(item, StreamStart):
                self._live_start(sink, item.caps)
                sink.start(item.caps)
                self.started = True
            elif isinstance(item, Eos):
                self._eos_in = True
                return
            self._tick()
