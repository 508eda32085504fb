"""A pipeline: elements in a chain, checked when built, run in processes or threads, reported.

    pipe = Pipeline.from_launch("filesrc location=in.mp4 ! identity ! filesink location=out.mp4")
    report = pipe.run(mode="process", progress=print)

``mode="process"`` (the default) runs every element in its own process, links are
ZeroMQ sockets and pixels stay in shared memory; ``mode="thread"`` runs the same runners in
threads joined by bounded queues, for a debugger. Either way the same rules hold (see
cleanfeed.stream.runner, cleanfeed.stream.supervisor and cleanfeed.stream.crews): every frame
once and in order, errors finalize the outputs and surface as the element's own error, a
signal stops gracefully, nothing is left running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from time import monotonic
from typing import Any

from cleanfeed.errors import (
    CleanfeedError,
    ElementError,
    Interrupted,
    LinkError,
    MediaError,
    PromptError,
    PropertyError,
    UnknownElementError,
)
from cleanfeed.stream.buffers import Probe
from cleanfeed.stream.crews.processes import ProcessCrew
from cleanfeed.stream.crews.protocol import Crew
from cleanfeed.stream.crews.threads import ThreadCrew
from cleanfeed.stream.element import Element, EngineChoice, Filter, Sink, Source
from cleanfeed.stream.error_records import rebuild_error
from cleanfeed.stream.launch import parse
from cleanfeed.stream.live import LivePlan, refuse_short_budget
from cleanfeed.stream.media.overlap import refuse_overwrite
from cleanfeed.stream.properties import normalize_name
from cleanfeed.stream.registry import lookup
from cleanfeed.stream.signals import SignalTrap
from cleanfeed.stream.stats import Collector, Progress, RunReport
from cleanfeed.stream.supervisor import Deadlines, Supervisor

__all__ = ["MODES", "Pipeline", "Progress", "RunReport"]

MODES = ("process", "thread")


def _role(element: Element) -> str:
    if isinstance(element, Source):
        return "source"
    if isinstance(element, Sink):
        return "sink"
    if isinstance(element, Filter):
        return "filter"
    return element.role


def _check_roles(elements: Sequence[Element]) -> None:
    """Source first, sink last, filters between; a bad link names both ends."""
    if len(elements) < 2:
        got = ", ".join(e.factory or e.name for e in elements) or "none"
        raise LinkError(f"pipeline must have a source and a sink, got {got}")
    for up, down in zip(elements, elements[1:], strict=False):
        if _role(up) == "sink":
            raise LinkError(f"cannot link {up.name} to {down.name}: {up.name} is a sink")
        if _role(down) == "source":
            raise LinkError(f"cannot link {up.name} to {down.name}: {down.name} is a source")
    first, last = elements[0], elements[-1]
    if _role(first) != "source":
        raise LinkError(f"pipeline must start with a source, got {first.name} (a {_role(first)})")
    if _role(last) != "sink":
        raise LinkError(f"pipeline must end with a sink, got {last.name} (a {_role(last)})")


def _unique_names(elements: Sequence[Element]) -> None:
    """Like GStreamer: a name used twice becomes factory0, factory1, ... (unique names stay)."""
    counts: dict[str, int] = {}
    for el in elements:
        counts[el.name] = counts.get(el.name, 0) + 1
    taken = {el.name for el in elements if counts[el.name] == 1}
    next_index: dict[str, int] = {}
    for el in elements:
        if counts[el.name] == 1:
            continue
        base = el.factory or el.name
        i = next_index.get(base, 0)
        while f"{base}{i}" in taken:
            i += 1
        el.name = f"{base}{i}"
        taken.add(el.name)
        next_index[base] = i + 1


class Pipeline:
    """A chain source ! filter ... ! sink. See the module doc.

    ``latency_ms`` is the run's latency budget: frames whose end-to-end latency exceeds it
    are counted in ``RunReport.late_frames``, and every element gets a deadline for each
    frame (birth + budget, less what comes after it; see cleanfeed.stream.runner.LivePlan), so a
    filter holding frames emits overdue ones on time through ``Filter.expire``. A budget
    smaller than the chain's lookahead plus the encoder's delay is refused (PropertyError
    naming ``latency_label``, e.g. "--max-latency", with the numbers): before the run when
    the source states its rate up front (a ``rate`` property), else in the source's process
    as soon as ``open()`` told the rate, before any frame is read. ``live``: sources reading a file are paced to its
    timestamps, as a camera would deliver them. ``deadlines`` (cleanfeed.stream.supervisor.Deadlines)
    sets how long a stop may take before the run aborts, and an abort before processes are
    terminated and killed. ``max_restarts`` (process mode): a filter whose process dies is
    restarted, the frames that were inside it re-sent, up to that many times in a run, after
    which the run stops with the element's name and how it died (0, the default: the first
    death stops the run; ``cleanfeed run/launch --max-restarts`` default to 3). Threads
    cannot die one by one, so thread mode has nothing to restart.

    These settings are given to the constructor (or ``from_launch``) and read-only after:
    a run's plans and checks are derived from them, so changing one between ``check`` and
    ``run`` would run something other than what was checked.
    """

    def __init__(
        self, elements: list[Element], latency_ms: float | None = None, live: bool = False, max_restarts: int = 0,
        *, latency_label: str = "latency", deadlines: Deadlines | None = None,
    ) -> None:
        _check_roles(elements)
        _unique_names(elements)
        if max_restarts < 0:
            raise PropertyError(f"max_restarts must be >= 0, got {max_restarts}")
        self.elements = list(elements)
        self._latency_ms = latency_ms
        self._live = live
        self._latency_label = latency_label
        self._deadlines = deadlines or Deadlines()
        self._max_restarts = max_restarts
        self._checked = False
        self.probe: Probe | None = None
        """What the source told of its input before the run (None: it could not tell)."""

    @property
    def latency_ms(self) -> float | None:
        return self._latency_ms

    @property
    def live(self) -> bool:
        return self._live

    @property
    def latency_label(self) -> str:
        return self._latency_label

    @property
    def deadlines(self) -> Deadlines:
        return self._deadlines

    @property
    def max_restarts(self) -> int:
        return self._max_restarts

    @classmethod
    def from_launch(
        cls, text: str, *, latency_ms: float | None = None, live: bool = False, max_restarts: int = 0,
        latency_label: str = "latency", deadlines: Deadlines | None = None,
    ) -> Pipeline:
        """Builds from gst-launch syntax; an unknown element or bad property names its column.

        ``name=`` sets an element's name (as in gst-launch) unless the element has a
        property of that name. The keywords are the constructor's settings.
        """
        elements = []
        for spec in parse(text):
            try:
                factory = lookup(spec.factory)
            except UnknownElementError as exc:
                raise UnknownElementError(f"{exc} (column {spec.column + 1})") from None
            table = {p.name: p for p in factory.properties}
            props = dict(spec.props)
            name = props.pop("name", None) if "name" not in table else None
            for key, value in props.items():
                column = spec.prop_columns.get(key, spec.column) + 1
                prop = table.get(normalize_name(key))
                if prop is None:
                    known = ", ".join(sorted(table)) or "none"
                    raise PropertyError(f"{factory.factory} has no property {key!r} (properties: {known}) (column {column})")
                try:
                    prop.coerce(value, factory.factory)
                except PropertyError as exc:
                    raise PropertyError(f"{exc} (column {column})") from None
            try:
                elements.append(factory(name=name, **props))
            except PropertyError as exc:
                raise PropertyError(f"{exc} (column {spec.column + 1})") from None
        return cls(elements, latency_ms=latency_ms, live=live, max_restarts=max_restarts,
                   latency_label=latency_label, deadlines=deadlines)

    @property
    def lookahead(self) -> int:
        """Frames held inside the pipeline at most (sum of the elements' lookaheads)."""
        return sum(e.lookahead for e in self.elements)

    def live_plans(self, fail_on_late: bool = False) -> list[LivePlan] | None:
        """What each runner must do in a live run (None: not live, no budget)."""
        if not self.live and self.latency_ms is None:
            return None
        sink = self.elements[-1]
        encoder_frames, encoder = sink.delay() if isinstance(sink, Sink) else (0, "")
        n = len(self.elements)
        plans = []
        for i in range(n):
            later = sum(e.lookahead for e in self.elements[i + 1 :])
            plans.append(LivePlan(
                live=self.live, pace=self.live and i == 0, budget_ms=self.latency_ms, label=self.latency_label,
                after_frames=later + encoder_frames, after_hops=n - 1 - i, check=i == 0,
                chain_frames=self.lookahead, encoder_frames=encoder_frames, encoder=encoder,
                fail_on_late=fail_on_late,
            ))
        return plans

    def check_budget(self, plans: list[LivePlan] | None) -> None:
        """Refuses a budget too small before anything runs, when the source's rate is known."""
        rate = getattr(self.elements[0], "rate", None)
        if plans is None or self.latency_ms is None or not isinstance(rate, Fraction) or rate <= 0:
            return
        first = plans[0]
        refuse_short_budget(self.latency_ms, self.latency_label, rate, first.chain_frames, first.encoder_frames,
                            first.encoder)

    def check(self) -> Probe | None:
        """Everything that can be checked before a process starts, so that a bad input, output or
        prompt is the only line a command prints: an output that would overwrite an input, the
        input itself (the source probes it where that costs nothing), then each element's settings
        against it. ``run`` calls it too; a second call does nothing.
        """
        if not self._checked:
            refuse_overwrite([r for e in self.elements for r in e.reads()],
                             [w for e in self.elements for w in e.writes()])
            source = self.elements[0]
            self.probe = source.probe() if isinstance(source, Source) else None
            if self.probe is not None:
                for element in self.elements[1:]:
                    element.check(self.probe)
            self._checked = True
        return self.probe

    def engine_choices(self) -> dict[str, EngineChoice]:
        """Element name -> which engine it runs and why (see ``Element.engine_choice``)."""
        return {e.name: said for e in self.elements if (said := e.engine_choice()) is not None}

    def _judge(self, report: RunReport) -> CleanfeedError | None:
        """A run that ended without error but did not do its job: nothing written, or a prompt
        the stream never reached (the object is still in the output)."""
        if report.frames_out == 0:
            why = ("the input gave no frame" if report.frames_in == 0
                   else f"{report.frames_in} frames came in and none reached the output")
            return MediaError(f"no frame was written: {why}")
        unmet = [said for e in self.elements if (said := e.unmet(report.frames_in)) is not None]
        return PromptError("; ".join(unmet)) if unmet else None

    def describe(self) -> str:
        parts = []
        for el in self.elements:
            parts.append(el.factory if el.name == el.factory else f"{el.factory} name={el.name}")
        return " ! ".join(parts)

    def run(
        self, mode: str = "process", progress: Callable[[Progress], None] | None = None, stats_every_s: float = 0.5,
        monitor: Callable[[dict[str, Any]], None] | None = None, fail_on_late: bool = False,
    ) -> RunReport:
        """Runs to the end of stream and returns the report.

        ``fail_on_late`` (--fail-on-late): an element whose cheapest path cannot keep up with the
        input says so with LateError at start (cleanfeed.stream.shedding), not only a warning.

        ``monitor`` gets the live stats document (cleanfeed.stream.stats) every ``stats_every_s`` from
        the calling thread, and the final one (``RunReport.to_json()``, ``final`` true) once
        the run ended, also when it failed or was interrupted.

        Raises, after every output was finalized and nothing is left running: the element's
        own CleanfeedError (a MediaError stays a MediaError), ElementError(name, message) for
        any other failure or a crashed process, Interrupted when stopped by SIGINT/SIGTERM.
        The exception carries the run's report as ``.report``.
        """
        if mode not in MODES:
            raise PropertyError(f"run mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.check()
        names = [e.name for e in self.elements]
        plans = self.live_plans(fail_on_late)
        self.check_budget(plans)
        collector = Collector(names, self.latency_ms)
        crew: Crew = (ProcessCrew(self.elements, stats_every_s, plans, max_restarts=self.max_restarts)
                      if mode == "process" else ThreadCrew(self.elements, stats_every_s, plans))
        start = monotonic()
        with SignalTrap() as trap:
            supervisor = Supervisor(
                crew, collector, trap=trap, progress=progress, stats_every_s=stats_every_s, deadlines=self.deadlines,
                monitor=monitor,
            )
            supervisor.run()
        wall = monotonic() - start
        exc: CleanfeedError | None = None
        if collector.errors:
            exc = rebuild_error(collector.errors[0])
        elif supervisor.unfinished:
            exc = ElementError(supervisor.unfinished[0], "did not stop after an abort; its thread was left running")
        elif supervisor.interrupted_by:
            frames = int(collector.progress(monotonic()).frames_out)
            exc = Interrupted(f"interrupted by {supervisor.interrupted_by} after {frames} frames; outputs were finalized")
        report = collector.report(
            mode=mode, wall_s=wall, lookahead=self.lookahead, interrupted=supervisor.interrupted_by is not None,
            error=str(exc) if exc is not None and not isinstance(exc, Interrupted) else None,
        )
        if exc is None:
            exc = self._judge(report)
            if exc is not None:
                report.error = str(exc)
        if monitor is not None:
            try:
                monitor(report.to_json())
            except Exception:
                if exc is None:
                    raise  # else the run's own failure is the one to report
        if exc is not None:
            exc.report = report  # type: ignore[attr-defined]
            raise exc
        return report
