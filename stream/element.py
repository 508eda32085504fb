"""The element bases: a source produces, a filter transforms, a sink consumes.

An element describes itself (factory name, klass, description, an example pipeline and a
property table) so that ``cleanfeed inspect`` can print it and the launch parser can check
``key=value`` before anything runs. Properties become attributes of the instance
(``self.location``), validated when the element is built.

Life cycle, driven by a runner (threads or one process per element): ``prepare()`` once
before the source reads its first frame, ``start(caps) -> caps`` once, then ``process(frame)`` per frame (a filter may hold up to
``lookahead`` frames before emitting them, in order), then ``flush()`` at end of stream,
then ``stop()``. Pass-through packets (audio) never reach a filter; the runner forwards them.

Live runs with a latency budget: before ``start()`` the runner sets ``element.deadline`` (a
:class:`Deadline`: when each frame must leave this element); a filter that holds frames
implements ``expire(now)`` to let overdue ones go on time (see :meth:`Filter.expire`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cleanfeed.errors import PropertyError
from cleanfeed.stream.buffers import Caps, Packet, Probe, VideoFrame
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.properties import Property, normalize_name

Allocator = Callable[[Caps], tuple[Picture, np.ndarray, "int | None"]]
"""Returns an empty picture, a zeroed mask and the shared-memory slot they live in (None: heap)."""


def heap_allocator(caps: Caps) -> tuple[Picture, np.ndarray, None]:
    return Picture.empty(caps.pix_fmt, caps.width, caps.height), np.zeros((caps.height, caps.width), np.uint8), None


@dataclass(frozen=True)
class EngineChoice:
    """Which engine an element runs and why, for the one line a command prints about its engines."""

    engine: str
    """``GrabCut``, ``SAM``, ``optical flow`` ..."""
    why: str
    """``no SAM checkpoint``, ``checkpoint=PATH``, ``asked for`` ..."""
    looked_in: str | None = None
    """The models folder searched in vain, said once for all elements."""


@dataclass(frozen=True)
class Deadline:
    """When frames must leave one element of a live run so they reach the output on time.

    ``budget_s`` is the pipeline's latency budget (frame birth at the source to the sink's
    render); ``margin_s`` is what still comes after this element: the lookahead of later
    elements and the encoder's delay (frames / rate) plus a few milliseconds per later hop.
    Set by the runner before ``start()`` (it knows the rate only then).
    """

    budget_s: float
    margin_s: float = 0.0

    def due(self, frame: VideoFrame) -> float:
        """The monotonic time by which ``frame`` must be emitted (inf for an unstamped frame)."""
        born = frame.born
        return math.inf if born is None else born + self.budget_s - self.margin_s


class Element:
    """Base of every element. Subclasses set the class variables and override the hooks."""

    deadline: Deadline | None = None
    """Set by the runner in live runs with a latency budget, before ``start()``; else None."""
    fail_on_late: bool = False
    """Set by the runner with ``deadline``: --fail-on-late was given, so a start-up check that
    finds even the element's cheap path slower than the input raises LateError (else it warns)."""
    live: bool = False
    """Set by the runner before a filter's or sink's ``start()``: the stream is live (a live
    input, a run paced to real time with --live, or one with a latency budget)."""

    factory: ClassVar[str] = ""
    klass: ClassVar[str] = ""  # GStreamer-style, e.g. "Filter/Video/Inpaint"
    description: ClassVar[str] = ""
    example: ClassVar[str] = ""  # an example pipeline for inspect
    role: ClassVar[str] = "filter"  # "source" | "filter" | "sink"
    properties: ClassVar[tuple[Property, ...]] = ()
    """The only declaration of an element's properties: each becomes an instance attribute
    when the element is built (not a class annotation too, which could drift from the table)."""

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any:
            """A property's value, for type checkers: they cannot read the table, so a property
            attribute reads as Any (a name the table lacks still fails at run time)."""

    def __init__(self, name: str | None = None, **props: Any) -> None:
        self.name = name or self.factory
        table = {p.name: p for p in self.properties}
        given = {normalize_name(key): value for key, value in props.items()}
        for key in given:
            if key not in table:
                known = ", ".join(sorted(table)) or "none"
                raise PropertyError(f"{self.factory} has no property {key!r} (properties: {known})")
        for prop in self.properties:
            value = prop.coerce(given[prop.name], self.factory) if prop.name in given else prop.default
            setattr(self, prop.name, value)
        self.configure()

    def configure(self) -> None:
        """Checks properties against each other; raise PropertyError. Runs in the builder's process."""

    def settings(self) -> dict[str, Any]:
        """Property values as given (for re-creating this element in another process)."""
        return {p.name: getattr(self, p.name) for p in self.properties}

    @property
    def lookahead(self) -> int:
        """How many later frames this element must see before it can emit frame N."""
        return 0

    @property
    def held_max(self) -> int:
        """How many frames this element may hold at once: its lookahead, unless it holds frames
        while a worker thread computes (the pipeline sizes its shared-memory slots from this)."""
        return self.lookahead

    @property
    def holds_stream(self) -> bool:
        """True for a filter that keeps every frame until the end of the stream (offline processing).

        Shared memory cannot hold a whole clip, so such a filter copies what it keeps (to disk, if
        it is wise) and the runner gives the input's slot back as soon as ``process`` returns; the
        frames it emits later travel inline. ``lookahead`` stays what the *slots* need (0).
        """
        return False

    def reads(self) -> list[str]:
        """Locations (files, image patterns) this element reads, so that a pipeline refuses an
        output that would overwrite one of them before anything is opened for writing."""
        return []

    def writes(self) -> list[str]:
        """Locations this element writes (see :meth:`reads`)."""
        return []

    def check(self, probe: Probe) -> None:
        """Checks the settings against the input the source probed, in the builder's process
        before any element starts (raise PromptError, PropertyError...). Not called when the
        source cannot tell before it runs (a pipe, a network stream): ``start`` checks then."""

    def unmet(self, frames: int) -> str | None:
        """After a run that reached the end of its input (``frames`` frames), what this element
        was asked to do and never could (a prompt on a frame the stream never reached), in words;
        the pipeline makes it the run's error, since the output then still shows the object."""
        return None

    def engine_choice(self) -> EngineChoice | None:
        """Which engine this element runs and why; None for elements without a choice of engine."""
        return None

    def prepare(self) -> None:
        """Does the slow part of getting ready that needs no caps (loading a model's weights).

        Called in the element's own process (process mode; before the threads start in thread
        mode), and the source is released only once every element is prepared: a live run's
        first frames do not wait in the links while a checkpoint loads, and come out on time.
        """

    def start(self, caps: Caps) -> Caps:
        """Called once with the input caps; returns the output caps. Raise to refuse them."""
        return caps

    def stop(self) -> None:
        """Releases resources; called after flush, also after an error."""

    def background_busy_s(self) -> float:
        """Seconds this element's worker threads (stream/background.py) have computed so far: the
        runner adds them to the stage's busy time, which otherwise counts its own hooks only."""
        return 0.0

    def count(self, counter: str, n: int = 1) -> None:
        """Adds ``n`` to one of this element's named counters (``reconnects``, ``repeated``, ...).

        Counters are totals since the run began. The runner sends them with its statistics,
        so they show up without further wiring: per stage in ``--stats``
        (``stages[name]["counters"]``), summed over the stages in ``counters``, and on the
        Prometheus endpoint; ``reconnects`` is also a top-level figure. Plain dict, not a
        property table entry: an element may count things nobody declared up front.
        """
        counts: dict[str, int] = self.__dict__.setdefault("_counts", {})
        counts[counter] = counts.get(counter, 0) + n

    def counted(self) -> dict[str, int]:
        """A copy of the named counters (see :meth:`count`)."""
        return dict(self.__dict__.get("_counts", {}))


class Source(Element):
    role: ClassVar[str] = "source"

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self.allocator: Allocator = heap_allocator

    def open(self) -> Caps:
        """Opens the input and returns its caps (raise MediaError for an unusable input)."""
        raise NotImplementedError

    def probe(self) -> Probe | None:
        """Looks at the input before the run, in the builder's process (raise MediaError for an
        unusable one); None where looking would cost the input (a pipe) or a connection."""
        return None

    def read(self) -> Iterator[VideoFrame | Packet]:
        """Yields frames (seq gapless from 0) and pass-through packets until the input ends."""
        raise NotImplementedError

    def close(self) -> None:
        """Closes the input; safe to call more than once."""

    def new_frame(self, caps: Caps, seq: int, pts: int | None, time_base: Fraction) -> VideoFrame:
        """An empty frame whose pixels the source fills in place (possibly in shared memory)."""
        picture, mask, slot = self.allocator(caps)
        return VideoFrame(seq, pts, time_base, picture, mask, slot=slot)


class Filter(Element):
    role: ClassVar[str] = "filter"

    def process(self, frame: VideoFrame) -> list[VideoFrame]:
        return [frame]

    def flush(self) -> list[VideoFrame]:
        """Emits every frame still held, in order."""
        return []

    def expire(self, now: float) -> list[VideoFrame]:
        """Emits, in order, every held frame that must leave by ``now`` (``self.deadline.due``).

        Called by the runner of a live run with a deadline: while it waits for input (every few
        milliseconds) and after each ``process``, with ``now`` already moved forward by how long
        the runner may be busy before its next call. A filter that holds frames (lookahead > 0)
        emits the overdue ones finished some faster way (and marks them ``meta["degraded"]``);
        it must never skip one. Frames it emits here are never emitted again.
        """
        return []


class Sink(Element):
    role: ClassVar[str] = "sink"

    def render(self, frame: VideoFrame) -> None:
        raise NotImplementedError

    def render_packet(self, packet: Packet) -> None:
        """Pass-through packets (audio); sinks that cannot mux them ignore them."""

    def finish(self) -> None:
        """Finalizes the output (EOS, error or interrupt): it must be playable afterwards."""

    def delay(self) -> tuple[int, str]:
        """Frames the output holds before they reach it (an encoder's delay) and what holds
        them, e.g. ``(11, "x264 veryfast")``: part of a live run's latency budget."""
        return 0, ""
