"""Process mode: one process per element (cleanfeed.stream.crews.child), ZeroMQ links in a
private directory, one shared-memory slot pool, and restarts.

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

import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from time import monotonic
from typing import Any

import zmq

from cleanfeed.stream.control import FileControl
from cleanfeed.stream.crews.child import ChildSpec, ElementSpec, check_importable, child_main
from cleanfeed.stream.element import Element, Source
from cleanfeed.stream.forking import PRELOAD, START_METHOD
from cleanfeed.stream.live import LivePlan
from cleanfeed.stream.shm import PREFIX, unlink_segment
from cleanfeed.stream.wire import unpack

EXTRA_SLOTS = 4
RESTART_TIMEOUT_S = 30.0
"""How long a restart may wait for the dead stage's receiver to reset its end."""


def slot_count(elements: list[Element]) -> int:
    """Enough slots that elements holding their frames never starve the source."""
    return sum(e.held_max for e in elements[1:]) + 2 * (len(elements) - 1) + EXTRA_SLOTS


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
    (:meth:`restartable`, :meth:`restart`, then :meth:`advance_restarts` in the supervisor's loop);
    the links then keep what they need to replay (see the module doc).
    """

    def __init__(
        self, elements: list[Element], stats_every_s: float = 0.5, plans: list[LivePlan] | None = None,
        max_restarts: int = 0,
    ) -> None:
        """``plans``: each runner's LivePlan (live runs), else None."""
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

    def _make_specs(self, elements: list[Element], every: float) -> list[ChildSpec]:
        n = len(elements)
        links = [f"ipc://{self._dir}/link{i}" for i in range(n - 1)]
        names = [f"{elements[i].name} -> {elements[i + 1].name}" for i in range(n - 1)]
        slots = slot_count(elements)
        restarts = self.max_restarts > 0
        specs = []
        for i, el in enumerate(elements):
            up = elements[i - 1] if i > 0 else None
            source = isinstance(el, Source)
            specs.append(ChildSpec(
                element=ElementSpec.of(el),
                index=i, inlet=links[i - 1] if i > 0 else None, in_link=names[i - 1] if i > 0 else "",
                outlet=links[i] if i < n - 1 else None, out_link=names[i] if i < n - 1 else "",
                stats=f"ipc://{self._dir}/stats", control=str(self._dir / "control"),
                shm=self.shm_name if source else None, slots=slots,
                credits=f"ipc://{self._dir}/credits" if source else None,
                every=every, parent=os.getpid(), env=dict(os.environ),
                log_level=logging.getLogger().getEffectiveLevel(),
                live=self._plans[i] if self._plans else None,
                keep=slots + EXTRA_SLOTS if restarts else 0,
                last_frame=str(self._dir / f"last{i - 1}.npz") if restarts and hasattr(up, "reseed") else None,
            ))
        return specs

    def _spawn(self, spec: ChildSpec) -> Any:
        ctx = multiprocessing.get_context(START_METHOD)
        # Children start deaf to Ctrl+C: forked ones from the fork server (cleanfeed.stream.forking),
        # spawned ones from this disposition, which a new interpreter keeps.
        main = START_METHOD == "spawn" and threading.current_thread() is threading.main_thread()
        saved = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            proc = ctx.Process(target=child_main, args=(spec.to_blob(),), name=f"cleanfeed:{spec.element.name}",
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
        """Asks the dead stage's receiver to reset its input; :meth:`advance_restarts` does the rest."""
        i = self.names.index(name)
        self._procs[i].join(0)
        gen = self.control.get(i, "reset_gen") + 1
        self.control.put(i, "reset_gen", gen)
        self._pending[i] = _Restart(i, gen, monotonic())

    def advance_restarts(self) -> list[tuple[str, str]]:
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
        spec = replace(self._specs[i], resume=seq, peers=tuple(peers), reseed=self._specs[i + 1].last_frame)
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
