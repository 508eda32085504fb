"""Runs a pipeline's runners and sees them to the end: spawning, signals, errors, cleanup.

:class:`Supervisor` is the loop in the caller's main thread, the same for both modes: it
folds the runners' reports, drives the progress callback, turns the first SIGINT/SIGTERM
into a graceful stop (the source stops reading, EOS flows, the sink finalizes), and
escalates when things do not end: ``grace_s`` after a stop it aborts (every runner leaves,
sinks finalize what they have), ``abort_s`` later it sends SIGTERM, ``term_s`` later
SIGKILL. A second signal aborts at once. A crew (:class:`ProcessCrew` here, the threads
crew in stream.pipeline) is what it supervises.

Process mode: every element runs :func:`child_main` in its own spawned process. A child
dies with its supervisor (PR_SET_PDEATHSIG), ignores SIGINT (Ctrl+C reaches the whole
process group; the supervisor decides), and takes a SIGTERM sent to it directly as
"stop the pipeline" (a second one, or one during an abort, makes it leave at once).
The element class travels as module + qualified name (+ file, for modules that are not
on the child's path), never pickled, so plug-in elements work too.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import logging
import mmap
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from types import FrameType
from typing import Any, Protocol

import zmq

from stream.element import Element, Sink, Source
from stream.errors import ElementError
from stream.links import ZmqInlet, ZmqOutlet, ZmqReporter
from stream.logs import configure
from stream.runner import Aborted, ElementRunner, LivePlan, error_record
from stream.shm import PREFIX, ShmSlots, unlink_segment
from stream.stats import Collector, Progress
from stream.wire import pack, unpack

PR_SET_PDEATHSIG = 1
EXTRA_SLOTS = 4


# -- the shared flags ---------------------------------------------------------------------
class FileControl:
    """The run's flags in a small file mapped by every process of a run.

    Byte 0: stop, 1: abort, 2: go (holds the source back until every process is up, so
    start-up does not count as frame latency), 3: a child got SIGTERM (the run counts as
    interrupted), then one byte per link: "EOS arrived". A
    sender keeps its end open until its receiver has read EOS, because ZeroMQ drops what a
    peer had queued but not yet read when that peer disconnects. A mapped file rather than
    multiprocessing primitives: no semaphores to leak, nothing pickled, and reading a flag
    is a memory read.
    """

    HEADER = 4

    def __init__(self, mm: mmap.mmap) -> None:
        self._mm = mm

    @classmethod
    def create(cls, path: Path, links: int = 0) -> FileControl:
        path.write_bytes(bytes(cls.HEADER + links))
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
                        self._exited(name, code)
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

    def _exited(self, name: str, code: int) -> None:
        end = monotonic() + 0.5
        while name not in self.collector.done and monotonic() < end:
            self._absorb(self.crew.poll(0.05))
        if name in self.collector.done:
            return
        self.dead.add(name)
        if self.killed_at is not None or self.termed_at is not None:
            return
        self.collector.fail(name, describe_exit(code))
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
    """Enough slots that elements holding lookahead frames never starve the source."""
    return sum(e.lookahead for e in elements[1:]) + 2 * (len(elements) - 1) + EXTRA_SLOTS


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


def _die_with_parent(parent: int) -> None:
    """PR_SET_PDEATHSIG: the kernel kills this child if the supervisor dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def child_main(blob: bytes) -> None:
    """The body of one element's process; ``blob`` is its msgpack spec (see ProcessCrew)."""
    spec = unpack(blob)
    _die_with_parent(spec["parent"])
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
    except Exception as exc:
        reporter.send(error_record(name, exc).to_message())
        reporter.close()
        ctx.term()
        sys.exit(3)
    slots = ShmSlots(
        ctx, control, name=spec["shm"], count=spec["slots"], credits=spec["credits"],
        unlink_on_attach=isinstance(element, Sink),
    )
    i = spec["index"]
    inlet = outlet = None
    if spec["inlet"]:
        inlet = ZmqInlet(ctx, spec["inlet"], spec["in_link"], slots, control, on_eos=lambda: control.mark_eos(i - 1))
    if spec["outlet"]:
        outlet = ZmqOutlet(ctx, spec["outlet"], spec["out_link"], slots, control, delivered=lambda: control.eos_seen(i))
    runner = ElementRunner(
        element, inlet=inlet, outlet=outlet, slots=slots, control=control, reporter=reporter,
        stats_every_s=spec["every"], live=LivePlan(**spec["live"]) if spec.get("live") else None,
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
    slots.close()
    reporter.close()
    ctx.term()
    control.close()


class ProcessCrew:
    """One spawned process per element, ZeroMQ links in a private directory, one slot pool."""

    def __init__(
        self, elements: list[Element], stats_every_s: float = 0.5, plans: list[dict[str, Any]] | None = None
    ) -> None:
        """``plans``: each runner's stream.runner.LivePlan as a dict (live runs), else None."""
        self._plans = plans
        for el in elements:
            check_importable(el)
        self.names = [e.name for e in elements]
        self._procs: list[Any] = []
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

    def _make_specs(self, elements: list[Element], every: float) -> list[bytes]:
        n = len(elements)
        links = [f"ipc://{self._dir}/link{i}" for i in range(n - 1)]
        names = [f"{elements[i].name} -> {elements[i + 1].name}" for i in range(n - 1)]
        specs = []
        for i, el in enumerate(elements):
            specs.append(pack({
                "element": element_spec(el),
                "index": i, "inlet": links[i - 1] if i > 0 else None, "in_link": names[i - 1] if i > 0 else "",
                "outlet": links[i] if i < n - 1 else None, "out_link": names[i] if i < n - 1 else "",
                "stats": f"ipc://{self._dir}/stats", "control": str(self._dir / "control"),
                "shm": self.shm_name if isinstance(el, Source) else None, "slots": slot_count(elements),
                "credits": f"ipc://{self._dir}/credits" if isinstance(el, Source) else None,
                "every": every, "parent": os.getpid(), "log_level": logging.getLogger().getEffectiveLevel(),
                "live": self._plans[i] if self._plans else None,
            }))
        return specs

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        main = threading.current_thread() is threading.main_thread()
        saved = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # children start deaf to Ctrl+C
        try:
            for name, blob in zip(self.names, self._specs, strict=True):
                proc = ctx.Process(target=child_main, args=(blob,), name=f"cleanfeed:{name}", daemon=False)
                proc.start()
                self._procs.append(proc)
        finally:
            if main:
                signal.signal(signal.SIGINT, saved)

    def release(self) -> None:
        self.control.release()

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
        return {name: p.exitcode for name, p in zip(self.names, self._procs, strict=True) if p.exitcode is not None}

    def finished(self) -> bool:
        return all(p.exitcode is not None for p in self._procs)

    def signalled(self) -> str | None:
        """A SIGTERM sent straight to one of the children counts like one sent to us."""
        return "SIGTERM" if self.control.terminated else None

    def request_stop(self) -> None:
        self.control.request_stop()

    def request_abort(self) -> None:
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
