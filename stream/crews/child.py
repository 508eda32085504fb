"""The body of one element's process, and the spec it is started from.

Every element runs :func:`child_main` in its own process, forked from multiprocessing's fork
server with the runtime already imported (see cleanfeed.stream.forking); it takes the
caller's environment as it is at the run's start, as a spawned process would. A child dies
with its supervisor (PR_SET_PDEATHSIG, through the fork server, which leaves when the
supervisor does), is named ``cf:ELEMENT`` for top and ps, ignores SIGINT (Ctrl+C reaches the
whole process group; the supervisor decides), and takes a SIGTERM sent to it directly as
"stop the pipeline" (a second one, or one during an abort, makes it leave at once).

The element class travels as module + qualified name (+ file, for modules that are not on
the child's path), never pickled, so plug-in elements work too; the whole spec travels as
msgpack (:meth:`ChildSpec.to_blob`), plain data only.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
from dataclasses import dataclass, field, fields
from fractions import Fraction
from types import FrameType
from typing import Any

import numpy as np
import zmq

from cleanfeed.errors import ElementError
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.control import FileControl
from cleanfeed.stream.element import Element, Sink, Source
from cleanfeed.stream.error_records import error_record
from cleanfeed.stream.forking import PR_SET_NAME, die_with_parent, let_go_of_fork_server, prctl
from cleanfeed.stream.links.sockets import LastFrame, ZmqInlet, ZmqOutlet, ZmqReporter
from cleanfeed.stream.live import LivePlan
from cleanfeed.stream.logs import configure
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.ports import Aborted, Resume
from cleanfeed.stream.runner import ElementRunner
from cleanfeed.stream.shm import ShmSlots
from cleanfeed.stream.wire import pack, unpack


@dataclass(frozen=True)
class ElementSpec:
    """Which element a child builds: its class by module and qualified name (``file`` when the
    module is not on the child's path) and its settings."""

    name: str
    module: str
    qualname: str
    file: str | None
    settings: dict[str, Any]

    @classmethod
    def of(cls, element: Element) -> ElementSpec:
        kind = type(element)
        module = sys.modules.get(kind.__module__)
        return cls(element.name, kind.__module__, kind.__qualname__, getattr(module, "__file__", None),
                   element.settings())

    def build(self) -> Element:
        return load_class(self.module, self.qualname, self.file)(name=self.name, **self.settings)


@dataclass(frozen=True)
class ChildSpec:
    """Everything one element's process needs, as plain values.

    ``index``: the element's place in the chain (link ``i - 1`` comes in, link ``i`` goes
    out). ``inlet``/``outlet``: the endpoints (None at the ends), ``in_link``/``out_link``
    their names for messages. ``stats``: the supervisor's report socket; ``control``: the
    run's control file. ``shm``/``credits``: the slot pool's name and credit socket (the
    source creates them; None elsewhere). ``slots``: the pool's size. ``every``: seconds
    between reports. ``parent``: the supervisor's pid. ``env``/``log_level``: the caller's.
    ``live``: the runner's live plan (None: not a live run). Restarts: ``keep`` (frames the
    outlet keeps for a replay), ``last_frame`` (the file where the inlet keeps the last frame
    for an upstream that can re-seed), and for a restarted process ``resume`` (the seq to
    resume at), ``peers`` (running processes whose descriptors reach the slot pool) and
    ``reseed`` (the file with the last frame the dead process emitted).
    """

    element: ElementSpec
    index: int
    inlet: str | None
    in_link: str
    outlet: str | None
    out_link: str
    stats: str
    control: str
    shm: str | None
    slots: int
    credits: str | None
    every: float
    parent: int
    env: dict[str, str]
    log_level: int
    live: LivePlan | None = None
    keep: int = 0
    last_frame: str | None = None
    resume: int | None = None
    peers: tuple[int, ...] = field(default=())
    reseed: str | None = None

    def to_blob(self) -> bytes:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["element"] = dict(vars(self.element))
        values["live"] = dict(vars(self.live)) if self.live is not None else None
        values["peers"] = list(self.peers)
        return pack(values)

    @classmethod
    def from_blob(cls, blob: bytes) -> ChildSpec:
        values = unpack(blob)
        values["element"] = ElementSpec(**values["element"])
        values["live"] = LivePlan(**values["live"]) if values["live"] is not None else None
        values["peers"] = tuple(values["peers"])
        return cls(**values)


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
    """The body of one element's process; ``blob`` is its :class:`ChildSpec` (``to_blob``)."""
    spec = ChildSpec.from_blob(blob)
    let_go_of_fork_server()
    _die_with_parent(spec.parent)
    os.environ.clear()  # the fork server's environment is the one it started with
    os.environ.update(spec.env)
    _name_process(spec.element.name)
    configure(spec.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = FileControl.open(spec.control)
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


def _child_body(spec: ChildSpec, control: FileControl) -> None:
    name = spec.element.name
    ctx = zmq.Context()
    reporter = ZmqReporter(ctx, spec.stats)
    try:
        element = spec.element.build()
        element.prepare()  # before "ready": the source waits for every element's weights
    except Exception as exc:
        reporter.send(error_record(name, exc).to_message())
        reporter.close()
        ctx.term()
        sys.exit(3)
    slots = ShmSlots(
        ctx, control, name=spec.shm, count=spec.slots, credits=spec.credits,
        unlink_on_attach=isinstance(element, Sink), peers=spec.peers,
    )
    inlet, outlet = _links(spec, ctx, slots, control)
    runner = ElementRunner(
        element, inlet=inlet, outlet=outlet, slots=slots, control=control, reporter=reporter,
        stats_every_s=spec.every, live=spec.live, resume=_resume(spec, control),
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
    if spec.index > 0 and flush:
        control.mark_eos(spec.index - 1)  # done: the sender may go (it keeps its replay until then)
    slots.close()
    reporter.close()
    ctx.term()
    control.close()


def _links(spec: ChildSpec, ctx: zmq.Context, slots: ShmSlots, control: FileControl,
           ) -> tuple[ZmqInlet | None, ZmqOutlet | None]:
    i = spec.index
    inlet = outlet = None
    if spec.inlet:
        inlet = ZmqInlet(
            ctx, spec.inlet, spec.in_link, slots, control, board=control, index=i - 1,
            keep_last=LastFrame(spec.last_frame) if spec.last_frame else None, next_seq=spec.resume or 0,
        )
    if spec.outlet:
        outlet = ZmqOutlet(
            ctx, spec.outlet, spec.out_link, slots, control, delivered=lambda: control.eos_seen(i),
            board=control, index=i, keep=spec.keep,
        )
        slots.on_wait = outlet.service
    return inlet, outlet


def _resume(spec: ChildSpec, control: FileControl) -> Resume | None:
    """Where a restarted process picks the stream up (None: a first start)."""
    if spec.resume is None:
        return None
    link = spec.index - 1
    return Resume(spec.resume, lambda: control.get(link, "replayed"), lambda: _previous(spec.reseed))


def _previous(path: str | None) -> VideoFrame | None:
    """The last frame a dead stage emitted, as its next stage kept it (cleanfeed.stream.links.sockets.LastFrame)."""
    if not path or not os.path.exists(path):
        return None
    with np.load(path) as data:
        pix_fmt = str(data["pix_fmt"])
        mask = data["mask"]
        height, width = mask.shape
        picture = Picture(pix_fmt, width, height, data["picture"])
        return VideoFrame(int(data["seq"]), None, Fraction(1, 1), picture, mask)
