"""Runs a pipeline's runners and sees them to the end: spawning, signals, errors, cleanup.

:class:`Supervisor` is the loop in the caller's main thread, the same for both modes: it
folds the runners' reports, drives the progress callback, turns the first SIGINT/SIGTERM
into a graceful stop (the source stops reading, EOS flows, the sink finalizes), and
escalates when things do not end: ``grace_s`` after a stop it aborts (every runner leaves,
sinks finalize what they have), ``abort_s`` later it sends SIGTERM, ``term_s`` later
SIGKILL. A second signal aborts at once. A crew (:class:`ProcessCrew` here, the threads
crew in cleanfeed.stream.pipeline) is what it supervises.

Process mode: every element runs :func:`child_main` in its own process, forked from
multiprocessing's fork server with the runtime already imported (see cleanfeed.stream.forking); it
takes the caller's environment as it is at the run's start, as a spawned process would. A
child dies with its supervisor (PR_SET_PDEATHSIG, through the fork server, which leaves
when the supervisor does), is named ``cf:ELEMENT`` for top and ps, ignores SIGINT (Ctrl+C
reaches the whole process group; the supervisor decides), and takes a SIGTERM sent to it
directly as "stop the pipeline" (a second one, or one during an abort, makes it leave at
once).
The element class travels as module + qualified name (+ file, for modules that are not
on the child's path), never pickled, so plug-in elements work too.

Restarts (``max_restarts`` > 0, process mode only: threads cannot die one by one). A
filter's process that dies (a signal, or a non-zero exit without an error report) is
spawned again from the same spec, on the same endpoints, up to ``max_restarts`` times in a
run; one more death stops the run ("stage NAME died N times (last: killed by SIGKILL);
stopping") through the usual abort, so the sink finalizes. Sources and sinks are not
restarted: a source's position in its input and a sink's muxer state cannot be rebuilt
from the outside, so their death stops the run as before, saying so.

Why replay and from where: the frames that were inside the dead process (received, not
yet passed on) would otherwise be lost, and the sink's seq check would stop the run at the
gap. Their pixels are still in their shared-memory slots (a slot returns to the source only
after the sink rendered it), so only headers need re-sending, and only the sender before
the dead stage can do it: each outlet keeps the messages it sent since the stream start,
up to slot-count frames (every frame not yet at the sink holds a slot, so that is enough).
The seq to resume from must be exact: re-sending a frame the next stage already has would
hand the restarted element a slot that may hold another frame by now, and skipping one
loses it. Messages the dead process had already pushed can still sit in the next stage's
socket, so that count is not final while that socket lives. Hence the order, driven through
the restart board in the control file: (1) the next stage drops its input socket (and with
it whatever the dead process left there), binds a fresh one, and posts the seq it needs
next; (2) the previous stage drops its output socket (and the messages queued for the
dead peer), connects a fresh one and queues the stream start and everything after the
frame before that seq; (3) the stage is spawned to resume at that seq. (2) comes first
because ZeroMQ reconnects on its own: a new process bound on the old endpoint before the
old socket went would receive what that socket still held, out of order. Every frame then
reaches the next stage exactly once, in order, and the seq checks stay as strict as ever.
The receiver of a link stays "not done" until its runner ended and its own outlet
delivered, so a sender keeps its replay for as long as it can be asked for.

The restarted element lost its memory. Frames it gets again go through its optional
``recover`` (inpaint covers them with its fallback fill and flags them degraded: they are
late, and the frames it would propagate from are gone); a tracker re-seeds through its
optional ``reseed`` from a copy of the last frame it emitted, which the next stage keeps
(only on a link after an element with ``reseed``: one picture and mask copy per frame).
The shared-memory name is unlinked once every process mapped it, so a restarted process
opens the segment through a running peer's descriptor (cleanfeed.stream.shm.find_segment).
Limits: pass-through packets next to the crash may be repeated or missed (they have no seq);
an element that wrote into a frame in place before dying hands the restarted one those
half-written pixels (idempotent writes such as inpaint fills and masks are unaffected); two
neighbouring stages dying together are not restarted; if the sender no longer has a frame
to re-send (frames travelling inline, beyond the kept count) the run stops saying how many
frames were lost.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import mmap
import multiprocessing
import os
import secrets
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from time import monotonic
from types import FrameType
from typing import Any, Protocol

import numpy as np
import zmq

from cleanfeed.errors import ElementError
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Element, Sink, Source
from cleanfeed.stream.forking import PR_SET_NAME, PRELOAD, START_METHOD, die_with_parent, let_go_of_fork_server, prctl
from cleanfeed.stream.links import LastFrame, ZmqInlet, ZmqOutlet, ZmqReporter
from cleanfeed.stream.logs import configure
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.runner import Aborted, ElementRunner, LivePlan, Resume, error_record
from cleanfeed.stream.shm import PREFIX, ShmSlots, unlink_segment
from cleanfeed.stream.stats import Collector, Progress
from cleanfeed.stream.wire import pack, unpack

log = logging.getLogger(__name__)

EXTRA_SLOTS = 4
RESTART_TIMEOUT_S = 30.0
"""How long a restart may wait for the dead stage's receiver to reset its end."""

FIELDS = ("reset_gen", "reset_ack", "resume_seq", "replay_gen", "replay_seq", "replayed", "replay_ack", "lost",
          "eos_in")
"""One link's restart board: ``reset_gen`` (supervisor: the receiver must drop its socket),
``reset_ack`` + ``resume_seq`` (receiver: done, and the next seq it needs), ``replay_gen`` +
``replay_seq`` (supervisor: the sender must re-send from that seq), ``replayed``,
``replay_ack`` and ``lost`` (sender: frames re-sent, done, frames it no longer had),
``eos_in`` (receiver: read EOS on this link)."""
_FIELD = struct.Struct("<q")
BOARD = struct.Struct("<" + "q" * len(FIELDS))


# -- the shared flags ---------------------------------------------------------------------
class FileControl:
    """The run's flags in a small file mapped by every process of a run.

    Byte 0: stop, 1: abort, 2: go (holds the source back until every process is up, so
    start-up does not count as frame latency), 3: a child got SIGTERM (the run counts as
    interrupted), then one byte per link: "the receiver is done" (it ran to its end and its
    own outlet delivered). A sender keeps its end open until then, because ZeroMQ drops
    what a peer had queued but not yet read when that peer disconnects, and because a
    receiver that dies before it is done needs its sender's replay (see the module doc).
    Then, per link, the restart board (:data:`BOARD`, little-endian int64 fields). A mapped
    file rather than multiprocessing primitives: no semaphores to leak, nothing pickled,
    and reading a flag is a memory read.
    """

    HEADER = 4

    def __init__(self, mm: mmap.mmap) -> None:
        self._mm = mm
        self.links = (len(mm) - self.HEADER) // (1 + BOARD.size)
        self._board = self.HEADER + self.links

    @classmethod
    def create(cls, path: Path, links: int = 0) -> FileControl:
        path.write_bytes(bytes(cls.HEADER + links * (1 + BOARD.size)))
        return cls.open(path)

    @classmethod
    def open(cls, path: Path | str) -> FileControl:
        fd = os.open(path, os.O_RDWR)
        try:
            return cls(mmap.mmap(fd, os.fstat(fd).st_size))
        finally:
            os.close(fd)

    def mark_eos(self, link: int) -> None:
        self._mm[self.HEADER + link] = 1

    def eos_seen(self, link: int) -> bool:
        return self._mm[self.HEADER + link] != 0

    # -- the restart board ----------------------------------------------------------------
    def get(self, link: int, field: str) -> int:
        return int(_FIELD.unpack_from(self._mm, self._board + link * BOARD.size + 8 * FIELDS.index(field))[0])

    def put(self, link: int, field: str, value: int) -> None:
        _FIELD.pack_into(self._mm, self._board + link * BOARD.size + 8 * FIELDS.index(field), value)

    @property
    def stopping(self) -> bool:
        return self._mm[0] != 0

    @property
    def aborting(self) -> bool:
        return self._mm[1] != 0

    def request_stop(self) -> None:
        self._mm[0] = 1

    def request_abort(self) -> None:
        self._mm[0] = 1
        self._mm[1] = 1

    @property
    def released(self) -> bool:
        return self._mm[2] != 0

    def release(self) -> None:
        self._mm[2] = 1

    @property
    def terminated(self) -> bool:
        return self._mm[3] != 0

    def mark_terminated(self) -> None:
        self._mm[3] = 1

    def wait_released(self) -> None:
        """Blocks until the supervisor says go (or the run ends before it starts)."""
        while not (self.released or self.stopping):
            time.sleep(0.005)

    def close(self) -> None:
        self._mm.close()


# -- signals ------------------------------------------------------------------------------
class SignalTrap:
    """Counts SIGINT/SIGTERM while a pipeline runs; handlers only where Python allows them
    (the main thread), restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.first is None:
            self.first = signal.Signals(signum).name

    def __enter__(self) -> SignalTrap:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"process died from {name}"
    return f"process exited with code {code} before the end of stream"


def short_exit(code: int) -> str:
    """How a process ended, in a few words: "killed by SIGKILL", "exit code 3"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# -- the loop -----------------------------------------------------------------------------
class Crew(Protocol):
    """The runners of one run, whatever they run in."""

    names: list[str]

    def start(self) -> None: ...

    def release(self) -> None: ...

    def poll(self, timeout: float) -> list[dict[str, Any]]: ...

    def exit_codes(self) -> dict[str, int]: ...

    def finished(self) -> bool: ...

    def signalled(self) -> str | None: ...

    def request_stop(self) -> None: ...

    def request_abort(self) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class Deadlines:
    """Seconds between the escalation steps (see the module doc)."""

    grace_s: float = 10.0
    abort_s: float = 5.0
    term_s: float = 2.0


@dataclass
class Supervisor:
    """Drives one run to its end (see the module doc). After :meth:`run`: ``interrupted_by``
    names the signal that stopped it, ``unfinished`` the runners that could not be ended."""

    crew: Crew
    collector: Collector
    trap: SignalTrap | None = None
    progress: Callable[[Progress], None] | None = None
    stats_every_s: float = 0.5
    deadlines: Deadlines = field(default_factory=Deadlines)
    monitor: Callable[[dict[str, Any]], None] | None = None
    """Gets the live stats document (Collector.snapshot) every ``stats_every_s``."""
    interrupted_by: str | None = field(default=None, init=False)
    unfinished: list[str] = field(default_factory=list, init=False)
    stopped_at: float | None = field(default=None, init=False)
    aborted_at: float | None = field(default=None, init=False)
    termed_at: float | None = field(default=None, init=False)
    killed_at: float | None = field(default=None, init=False)
    dead: set[str] = field(default_factory=set, init=False)
    deaths: dict[str, int] = field(default_factory=dict, init=False)

    def run(self) -> None:
        """Returns when every runner has ended (or could not be ended: ``unfinished``)."""
        seen: set[str] = set()
        next_progress = monotonic() + self.stats_every_s
        ok = released = False
        try:
            self.crew.start()
            while True:
                self._absorb(self.crew.poll(0.05))
                if not released and set(self.crew.names) <= self.collector.ready:
                    released = True
                    self.crew.release()
                for name, code in self.crew.exit_codes().items():
                    if name not in seen:
                        seen.add(name)
                        if self._exited(name, code):
                            seen.discard(name)  # on its way back: its new process is watched again
                self._advance_restarts()
                self._react()
                if self.crew.finished():
                    break
                now = monotonic()
                if self._escalate(now):
                    break
                if now >= next_progress:
                    next_progress = now + self.stats_every_s
                    if self.progress is not None:
                        self.progress(self.collector.progress(now))
                    if self.monitor is not None:
                        self.monitor(self.collector.snapshot(now))
            self._absorb_tail()
            if self.progress is not None:
                self.progress(self.collector.progress(monotonic()))
            ok = True
        finally:
            if not ok:  # the progress callback raised, or worse: still leave nothing behind
                self._wind_down()
            self.crew.close()

    def _absorb(self, messages: list[dict[str, Any]]) -> None:
        for msg in messages:
            self.collector.add(msg)

    def _absorb_tail(self) -> None:
        """Reports still in flight when the last runner ended."""
        end = monotonic() + 0.5
        while monotonic() < end and not set(self.crew.names) <= self.collector.done | self.dead:
            self._absorb(self.crew.poll(0.05))
        self._absorb(self.crew.poll(0))

    def _exited(self, name: str, code: int) -> bool:
        """A runner's process ended; True when it is being restarted (see the module doc)."""
        end = monotonic() + 0.5
        while name not in self.collector.done and monotonic() < end:
            self._absorb(self.crew.poll(0.05))
        if name in self.collector.done:
            return False
        if self.killed_at is not None or self.termed_at is not None:
            self.dead.add(name)
            return False
        message = describe_exit(code)
        limit = getattr(self.crew, "max_restarts", 0)
        if limit > 0 and self.aborted_at is None and not self.collector.errors:
            deaths = self.deaths[name] = self.deaths.get(name, 0) + 1
            refusal = self.crew.restartable(name)  # type: ignore[attr-defined]
            if refusal is None and deaths <= limit:
                log.warning("%s: %s; restarting it (%d of at most %d)", name, message, deaths, limit)
                self.crew.restart(name)  # type: ignore[attr-defined]
                self.collector.restarted(name)
                return True
            if refusal is None:
                message = f"stage {name} died {deaths} times (last: {short_exit(code)}); stopping"
            else:
                message = f"{message} ({refusal})"
        self.dead.add(name)
        self.collector.fail(name, message)
        self._abort()
        return False

    def _advance_restarts(self) -> None:
        advance = getattr(self.crew, "advance", None)
        if advance is None:
            return
        for name, message in advance():
            self.dead.add(name)
            self.collector.fail(name, message)
            self._abort()

    def _react(self) -> None:
        signals = self.trap.count if self.trap is not None else 0
        if self.interrupted_by is None:
            self.interrupted_by = (self.trap.first if self.trap is not None else None) or self.crew.signalled()
        if (self.interrupted_by or self.collector.errors) and self.stopped_at is None:
            self.stopped_at = monotonic()
            self.crew.request_stop()
        if signals >= 2:
            self._abort()

    def _abort(self) -> None:
        if self.aborted_at is None:
            self.stopped_at = self.stopped_at or monotonic()
            self.aborted_at = monotonic()
            self.crew.request_abort()

    def _escalate(self, now: float) -> bool:
        """Moves to the next step when one is overdue; True when waiting is pointless."""
        d = self.deadlines
        if self.aborted_at is None:
            if self.stopped_at is not None and now - self.stopped_at > d.grace_s:
                self._abort()
            return False
        if self.termed_at is None:
            if now - self.aborted_at > d.abort_s:
                self.termed_at = now
                self.crew.terminate()
            return False
        if self.killed_at is None:
            if now - self.termed_at > d.term_s:
                self.killed_at = now
                self.crew.kill()
            return False
        if now - self.killed_at > d.term_s:
            self.unfinished = [n for n in self.crew.names if n not in self.collector.done]
            return True
        return False

    def _wind_down(self) -> None:
        self.crew.request_abort()
        end = monotonic() + self.deadlines.abort_s
        while not self.crew.finished() and monotonic() < end:
            self._absorb(self.crew.poll(0.05))
        if not self.crew.finished():
            self.crew.terminate()
            end = monotonic() + self.deadlines.term_s
            while not self.crew.finished() and monotonic() < end:
                self._absorb(self.crew.poll(0.05))
        self.crew.kill()


# -- process mode -------------------------------------------------------------------------
def slot_count(elements: list[Element]) -> int:
    """Enough slots that elements holding their frames never starve the source."""
    return sum(e.held_max for e in elements[1:]) + 2 * (len(elements) - 1) + EXTRA_SLOTS


def check_importable(element: Element) -> None:
    """Process mode rebuilds each element in a fresh interpreter from its class's module."""
    cls = type(element)
    module = sys.modules.get(cls.__module__)
    if cls.__module__ == "__main__" and getattr(module, "__file__", None) is None:
        raise ElementError(
            element.name,
            f"class {cls.__qualname__} must be defined in an importable module to run in its own process, "
            "got one defined in an interactive session or python -c (use mode=thread)",
        )
    if "<locals>" in cls.__qualname__:
        raise ElementError(
            element.name, f"class {cls.__qualname__} must be defined at module level to run in its own process"
        )


def element_spec(element: Element) -> dict[str, Any]:
    cls = type(element)
    module = sys.modules.get(cls.__module__)
    return {
        "name": element.name, "module": cls.__module__, "qualname": cls.__qualname__,
        "file": getattr(module, "__file__", None), "settings": element.settings(),
    }


def load_class(module: str, qualname: str, file: str | None) -> type[Element]:
    """Imports the element's module (by name, else from its file) and finds the class."""
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            if not file:
                raise
            spec = importlib.util.spec_from_file_location(module, file)
            if spec is None or spec.loader is None:
                raise
            mod = importlib.util.module_from_spec(spec)
            sys.modules[module] = mod
            spec.loader.exec_module(mod)
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _die_with_parent(supervisor: int) -> None:
    """The kernel kills this child when the process that started it dies, even by SIGKILL. That
    is the supervisor, or the fork server, which leaves when the supervisor does; either way no
    element outlives its run (cleanfeed.stream.forking.die_with_parent)."""
    if not die_with_parent(signal.SIGKILL, supervisor):  # it died before prctl took effect
        os._exit(1)


def _name_process(element: str) -> None:
    """``cf:NAME`` as the process name, so top and ps tell the elements apart."""
    prctl(PR_SET_NAME, f"cf:{element}"[:15].encode())


def child_main(blob: bytes) -> None:
    """The body of one element's process; ``blob`` is its msgpack spec (see ProcessCrew)."""
    spec = unpack(blob)
    let_go_of_fork_server()
    _die_with_parent(spec["parent"])
    os.environ.clear()  # the fork server's environment is the one it started with
    os.environ.update(spec["env"])
    _name_process(spec["element"]["name"])
    configure(spec["log_level"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = FileControl.open(spec["control"])
    terms = 0

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal terms
        terms += 1
        if terms > 1 or control.aborting:
            raise Aborted()
        control.mark_terminated()
        control.request_stop()

    signal.signal(signal.SIGTERM, on_term)
    try:
        _child_body(spec, control)
    except Aborted:
        os._exit(0)  # told twice to leave: cleanup would only delay that


def _child_body(spec: dict[str, Any], control: FileControl) -> None:
    name = spec["element"]["name"]
    ctx = zmq.Context()
    reporter = ZmqReporter(ctx, spec["stats"])
    try:
        element = load_class(spec["element"]["module"], spec["element"]["qualname"], spec["element"]["file"])(
            name=name, **spec["element"]["settings"]
        )
        element.prepare()  # before "ready": the source waits for every element's weights
    except Exception as exc:
        reporter.send(error_record(name, exc).to_message())
        reporter.close()
        ctx.term()
        sys.exit(3)
    slots = ShmSlots(
        ctx, control, name=spec["shm"], count=spec["slots"], credits=spec["credits"],
        unlink_on_attach=isinstance(element, Sink), peers=tuple(spec.get("peers") or ()),
    )
    i = spec["index"]
    keep = spec.get("keep", 0)
    inlet = outlet = None
    if spec["inlet"]:
        inlet = ZmqInlet(
            ctx, spec["inlet"], spec["in_link"], slots, control, board=control, index=i - 1,
            keep_last=LastFrame(spec["last_frame"]) if spec.get("last_frame") else None,
            next_seq=spec.get("resume") or 0,
        )
    if spec["outlet"]:
        outlet = ZmqOutlet(
            ctx, spec["outlet"], spec["out_link"], slots, control, delivered=lambda: control.eos_seen(i),
            board=control, index=i, keep=keep,
        )
        slots.on_wait = outlet.service
    resume = None
    if spec.get("resume") is not None:
        resume = Resume(spec["resume"], lambda: control.get(i - 1, "replayed"), lambda: _previous(spec.get("reseed")))
    runner = ElementRunner(
        element, inlet=inlet, outlet=outlet, slots=slots, control=control, reporter=reporter,
        stats_every_s=spec["every"], live=LivePlan(**spec["live"]) if spec.get("live") else None, resume=resume,
    )
    reporter.send({"kind": "ready", "element": name})
    if isinstance(element, Source):
        control.wait_released()
    runner.run()
    flush = not (runner.aborted or control.aborting)
    if inlet is not None:
        inlet.close(flush)
    if outlet is not None:
        outlet.close(flush)
    if i > 0 and flush:
        control.mark_eos(i - 1)  # done: the sender may go (it keeps its replay until then)
    slots.close()
    reporter.close()
    ctx.term()
    control.close()


def _previous(path: str | None) -> VideoFrame | None:
    """The last frame a dead stage emitted, as its next stage kept it (cleanfeed.stream.links.LastFrame)."""
    if not path or not os.path.exists(path):
        return None
    with np.load(path) as data:
        pix_fmt = str(data["pix_fmt"])
        mask = data["mask"]
        height, width = mask.shape
        picture = Picture(pix_fmt, width, height, data["picture"])
        return VideoFrame(int(data["seq"]), None, Fraction(1, 1), picture, mask)


@dataclass
class _Restart:
    """A dead stage on its way back (see the module doc): first its receiver resets its end
    and posts the seq to resume at (``seq`` None until then), then its sender drops the
    socket the dead stage had and queues the replay; only then is it spawned, so nothing the
    old socket still held can reach the new process. ``gen`` is the step awaited."""

    index: int
    gen: int
    since: float
    seq: int | None = None


class ProcessCrew:
    """One process per element, ZeroMQ links in a private directory, one slot pool.

    With ``max_restarts`` > 0 a filter whose process died can be brought back
    (:meth:`restartable`, :meth:`restart`, then :meth:`advance` in the supervisor's loop);
    the links then keep what they need to replay (see the module doc).
    """

    def __init__(
        self, elements: list[Element], stats_every_s: float = 0.5, plans: list[dict[str, Any]] | None = None,
        max_restarts: int = 0,
    ) -> None:
        """``plans``: each runner's cleanfeed.stream.runner.LivePlan as a dict (live runs), else None."""
        self._plans = plans
        self.max_restarts = max_restarts
        for el in elements:
            check_importable(el)
        self.names = [e.name for e in elements]
        self._procs: list[Any] = []
        self._pending: dict[int, _Restart] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="cleanfeed-"))
        if len(str(self._dir)) > 80:  # ipc:// paths must fit a unix socket address
            shutil.rmtree(self._dir)
            self._dir = Path(tempfile.mkdtemp(prefix="cleanfeed-", dir="/tmp"))
        self._ctx = zmq.Context()
        self._stats = self._ctx.socket(zmq.PULL)
        self._stats.setsockopt(zmq.RCVHWM, 0)  # take every report in at once: none lost when a child exits
        try:
            self._stats.bind(f"ipc://{self._dir}/stats")
            self.control = FileControl.create(self._dir / "control", links=len(elements) - 1)
            self.shm_name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            self._specs = self._make_specs(elements, stats_every_s)
        except BaseException:
            self._stats.close(linger=0)
            self._ctx.term()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def _make_specs(self, elements: list[Element], every: float) -> list[dict[str, Any]]:
        n = len(elements)
        links = [f"ipc://{self._dir}/link{i}" for i in range(n - 1)]
        names = [f"{elements[i].name} -> {elements[i + 1].name}" for i in range(n - 1)]
        slots = slot_count(elements)
        restarts = self.max_restarts > 0
        specs = []
        for i, el in enumerate(elements):
            up = elements[i - 1] if i > 0 else None
            specs.append({
                "element": element_spec(el),
                "index": i, "inlet": links[i - 1] if i > 0 else None, "in_link": names[i - 1] if i > 0 else "",
                "outlet": links[i] if i < n - 1 else None, "out_link": names[i] if i < n - 1 else "",
                "stats": f"ipc://{self._dir}/stats", "control": str(self._dir / "control"),
                "shm": self.shm_name if isinstance(el, Source) else None, "slots": slots,
                "credits": f"ipc://{self._dir}/credits" if isinstance(el, Source) else None,
                "every": every, "parent": os.getpid(), "env": dict(os.environ),
                "log_level": logging.getLogger().getEffectiveLevel(),
                "live": self._plans[i] if self._plans else None,
                "keep": slots + EXTRA_SLOTS if restarts else 0,
                "last_frame": str(self._dir / f"last{i - 1}.npz") if restarts and hasattr(up, "reseed") else None,
            })
        return specs

    def _spawn(self, spec: dict[str, Any]) -> Any:
        ctx = multiprocessing.get_context(START_METHOD)
        # Children start deaf to Ctrl+C: forked ones from the fork server (cleanfeed.stream.forking),
        # spawned ones from this disposition, which a new interpreter keeps.
        main = START_METHOD == "spawn" and threading.current_thread() is threading.main_thread()
        saved = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            proc = ctx.Process(target=child_main, args=(pack(spec),), name=f"cleanfeed:{spec['element']['name']}",
                               daemon=False)
            proc.start()
            return proc
        finally:
            if main:
                signal.signal(signal.SIGINT, saved)

    def start(self) -> None:
        if START_METHOD == "forkserver":  # read when the server starts: with the first process, if it is not running
            multiprocessing.get_context(START_METHOD).set_forkserver_preload(PRELOAD)
        for spec in self._specs:
            self._procs.append(self._spawn(spec))

    def release(self) -> None:
        self.control.release()

    # -- restarts ---------------------------------------------------------------------------
    def restartable(self, name: str) -> str | None:
        """Why the dead stage ``name`` cannot come back (None: it can)."""
        i = self.names.index(name)
        if i == 0 or i == len(self.names) - 1:
            return "a source or a sink is not restarted"
        if self.control.get(i, "eos_in"):
            return "it died after its end of stream"
        if any(j in self._pending for j in (i - 1, i + 1)) or any(
            self._procs[j].exitcode is not None for j in (i - 1, i + 1)
        ):
            return "a neighbouring stage is gone too"
        return None

    def restart(self, name: str) -> None:
        """Asks the dead stage's receiver to reset its input; :meth:`advance` does the rest."""
        i = self.names.index(name)
        self._procs[i].join(0)
        gen = self.control.get(i, "reset_gen") + 1
        self.control.put(i, "reset_gen", gen)
        self._pending[i] = _Restart(i, gen, monotonic())

    def advance(self) -> list[tuple[str, str]]:
        """Moves restarts on; returns (stage, message) for each that failed."""
        failures: list[tuple[str, str]] = []
        for i, r in list(self._pending.items()):
            if r.seq is None and self.control.get(i, "reset_ack") == r.gen:
                r.seq, r.since = self.control.get(i, "resume_seq"), monotonic()
                r.gen = self.control.get(i - 1, "replay_gen") + 1
                self.control.put(i - 1, "replay_seq", r.seq)  # before the generation: the sender reads them in that order
                self.control.put(i - 1, "replay_gen", r.gen)
            elif r.seq is not None and self.control.get(i - 1, "replay_ack") == r.gen:
                del self._pending[i]
                self._respawn(i, r.seq)
                lost = self.control.get(i - 1, "lost")
                if lost:
                    failures.append((self.names[i], f"was restarted, but {lost} frames that were in flight are lost "
                                                    f"({self.names[i - 1]} no longer had them to re-send)"))
            else:
                j = i + 1 if r.seq is None else i - 1
                if monotonic() - r.since > RESTART_TIMEOUT_S or self._procs[j].exitcode is not None:
                    del self._pending[i]
                    what = "reset its input" if r.seq is None else "take back its output"
                    failures.append((self.names[i], f"could not be restarted: {self.names[j]} did not {what} "
                                                    f"within {RESTART_TIMEOUT_S:g} s"))
        return failures

    def _respawn(self, i: int, seq: int) -> None:
        old = self._procs[i]
        peers = [p.pid for j, p in enumerate(self._procs) if j != i and p.exitcode is None]
        spec = dict(self._specs[i], resume=seq, peers=peers, reseed=self._specs[i + 1]["last_frame"])
        self._procs[i] = self._spawn(spec)
        old.close()

    # -- the Crew protocol ----------------------------------------------------------------
    def poll(self, timeout: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self._stats.poll(int(timeout * 1000), zmq.POLLIN):
            return out
        while True:
            try:
                out.append(unpack(self._stats.recv(zmq.NOBLOCK)))
            except zmq.Again:
                return out

    def exit_codes(self) -> dict[str, int]:
        return {
            name: p.exitcode for i, (name, p) in enumerate(zip(self.names, self._procs, strict=True))
            if p.exitcode is not None and i not in self._pending
        }

    def finished(self) -> bool:
        return not self._pending and all(p.exitcode is not None for p in self._procs)

    def signalled(self) -> str | None:
        """A SIGTERM sent straight to one of the children counts like one sent to us."""
        return "SIGTERM" if self.control.terminated else None

    def request_stop(self) -> None:
        self.control.request_stop()

    def request_abort(self) -> None:
        self._pending.clear()
        self.control.request_abort()

    def terminate(self) -> None:
        for p in self._procs:
            if p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def kill(self) -> None:
        for p in self._procs:
            if p.exitcode is None:
                p.kill()

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def close(self) -> None:
        try:
            for p in self._procs:
                p.join(timeout=5)
                if p.exitcode is None:
                    p.kill()
                    p.join()
                p.close()
        finally:
            unlink_segment(self.shm_name)
            self._stats.close(linger=0)
            self._ctx.term()
            self.control.close()
            shutil.rmtree(self._dir, ignore_errors=True)
