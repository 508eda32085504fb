"""The fleet on Ray: one actor per feed, placed by Ray with the feed's cpus and gpus, whose only
job is to run the feed's `cleanfeed run` as a child process on its node and say how it goes; a
split feed (cleanfeed.stream.fleet.split) has one actor per part, each running its part's
`cleanfeed launch`, and the two parts are supervised as one feed (see :class:`Fleet`).

Frames never enter Ray: the child reads and writes its own input and output, and the actor
hands back a few small maps (the child's pid, its stats document, its exit code and last error
line). Supervision is the driver's (:class:`Fleet`): a try that fails is tried again on the
same actor, at once, up to ``max_restarts`` times; an actor that died with its node is replaced
by a new one, which Ray places on a node still there.

The child dies with the actor (PR_SET_PDEATHSIG: SIGTERM for a live feed, on which `cleanfeed
run` finalizes its output; SIGKILL for a file feed, see :meth:`FeedProcess.attempt`), and a
stopped fleet sends each child SIGINT, on which `cleanfeed run` finalizes its output. The actor is an
asyncio actor on purpose: the death signal follows the *thread* that started the child, and an
asyncio actor's event loop thread lives as long as the actor, where a threaded actor's pool
thread might not.

Ray is imported only here and only when a fleet runs: without it the command says how to
install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cleanfeed.errors import CleanfeedError
from cleanfeed.stream.fleet.report import FeedState, State, document
from cleanfeed.stream.fleet.spec import FeedSpec, FleetSpec, complete
from cleanfeed.stream.fleet.split import DECODE, MODELS, LinkEnd, Split, link, tcp_endpoint
from cleanfeed.stream.forking import alive, die_with_parent
from cleanfeed.stream.signals import short_exit

RUN_MODULE = "cleanfeed.stream.cli.main"
"""The feed's process is the command line's own `run` (the stream layer names it, it does not import it)."""
USAGE_EXIT = 2
"""A `cleanfeed run` that refused its options: trying again cannot help."""
INTERRUPTED_EXIT = 130
STARTING_POLL_S = 0.25
"""While a feed is starting, its actor is asked every quarter second: "running" (and so a
restart's end) and then its first frames show that soon, not up to a whole poll later (its own
run rewrites its stats every second: the first frames still show up to that late)."""
POLL_WAIT_S = 0.1
"""How long a poll waits for the statuses it asked for; those that come later are taken at the next."""
STOP_GRACE_S = 30.0
"""How long a stopped fleet waits for its feeds to finalize their outputs before it kills them."""
FOLDER_PREFIX = "cleanfeed-feed-"
"""An actor's temp folder is ``FOLDER_PREFIX + PID + "-" + random``: the worker's pid tells a later
sweep (:func:`sweep`) whether its owner is gone without a close (a killed worker, a dead node)."""
TRY_FILE = "try.json"
SWEEP_WAIT_S = 5.0


class FleetUnavailableError(CleanfeedError, ImportError):
    """Ray is not installed."""

    exit_code = 2


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FleetUnavailableError("cleanfeed fleet needs Ray: pip install 'cleanfeed[fleet]'") from None
    return ray


def _child_setup(death_signal: int, niceness: int) -> None:
    """In the feed's process before exec: die with the actor that started it, and run at the
    fleet command's niceness, not at the one Ray gives its workers (15 by default, which puts a
    feed behind anything else its node runs); lowering it may not be allowed, then it stays."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    if not die_with_parent(death_signal):
        os._exit(INTERRUPTED_EXIT)


class FeedProcess:
    """The Ray actor of one feed, or of one part of a split feed (see the module's docstring); one
    try at a time."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._stopped = False
        self._ending: int | None = None
        """The signal :meth:`end` asked the running try's process for."""
        sweep()  # what an actor killed on this node left: this one may be its feed's next try
        self._folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
        self._stats = os.path.join(self._folder, "stats.json")

    async def attempt(self, args: list[str], cwd: str, output: str | None, omp_threads: str | None,
                      live: bool, niceness: int = 0, link: LinkEnd | None = None) -> dict[str, Any]:
        """Runs `cleanfeed run` with ``args`` in ``cwd`` to its end; its exit code, last error
        line and final stats. ``output``: the local output file, whose folder is made first and
        whose hidden part files this try left behind (a killed try) are removed.
        ``omp_threads``: the fleet command's OMP_NUM_THREADS (None: unset). Ray sets it to the
        actor's CPUs (1) for a worker; a feed is a pipeline of processes that a hand-started run
        would not limit so, and the feed must run as it would by hand. ``live``: when the actor
        dies (its node, its worker), a live feed's process gets SIGTERM and finalizes what it
        recorded; a file feed's gets SIGKILL, so that no partial output takes the final name (a
        batch re-run would take it for complete) and its next try starts over. ``link``: this
        part's end of a split feed's link (``args`` are then a `cleanfeed launch` without it); its
        keys go into this actor's private folder."""
        self._ending = None
        if link is not None:
            args = link.args(args, os.path.join(self._folder, "link"))
        before = _parts(output)
        if output:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._stats)
        cmd = [sys.executable, "-m", RUN_MODULE, *args, "--quiet", "--stats", self._stats]
        self._proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=functools.partial(_child_setup, signal.SIGTERM if live else signal.SIGKILL, niceness), env=_child_env(omp_threads))
        _write_try(self._folder, output, before, self._proc.pid)
        if self._stopped:  # the fleet stopped while this try was starting: stop() found no process to tell
            await self.stop()
        elif self._ending is not None:  # the same for end()
            await self.end(self._ending == signal.SIGKILL)
        tail: deque[str] = deque(maxlen=40)
        assert self._proc.stderr is not None
        async for raw in self._proc.stderr:
            tail.append(raw.decode(errors="replace").rstrip())
        code = await self._proc.wait()
        self._proc = None
        if code != 0:
            for part in _parts(output) - before:
                with contextlib.suppress(OSError):
                    part.unlink()
        return {"code": code, "error": None if code == 0 else _error_line(tail, code), "stats": self._read_stats()}

    async def status(self) -> dict[str, Any]:
        import ray

        proc = self._proc
        return {"pid": proc.pid if proc is not None else None, "node": ray.util.get_node_ip_address(),
                "stats": self._read_stats(), "worker": os.getpid()}

    async def stop(self) -> None:
        """SIGINT to the running try: `cleanfeed run` finalizes its output and exits 130."""
        self._stopped = True
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGINT)

    async def end(self, kill: bool) -> None:
        """Ends the running try, not the actor, because the other part of its split feed failed (both
        start again): SIGKILL for a file feed (no partial output takes the final name), SIGINT for a
        live one (it finalizes what it recorded)."""
        self._ending = signal.SIGKILL if kill else signal.SIGINT
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(self._ending)

    async def endpoint(self) -> str:
        """A tcp endpoint on this node's address with a port free here: a split feed's receiving
        part binds it (a port taken in between fails that try, and the feed is tried again)."""
        import ray

        host = ray.util.get_node_ip_address()
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        return tcp_endpoint(host, port)

    async def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def _read_stats(self) -> dict[str, Any]:
        try:
            with open(self._stats) as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}


def _write_try(folder: str, output: str | None, before: set[Path], pid: int) -> None:
    """Leaves in the actor's folder what a sweep needs if the actor dies without a close: the part
    files that were there before this try (not its to remove) and the try's process (while it
    lives, it may still finalize its part into the output)."""
    doc = {"output": output, "before": sorted(map(str, before)), "pid": pid}
    with contextlib.suppress(OSError):
        Path(folder, TRY_FILE).write_text(json.dumps(doc))


def sweep() -> int:
    """Removes the temp folders of this node's feed actors that died without a close (a killed
    worker, a killed fleet) and the hidden part files their last try left beside its output;
    the number of folders removed. A folder whose actor or try process still lives is left: the
    process of a live feed finalizes its output on its actor's death, part file included, and
    may take seconds to. Runs in each new actor (a feed's next try after its worker died often
    lands on the same node) and in the driver once Ray stopped (the fleet's last tries)."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
        owner = folder.name[len(FOLDER_PREFIX):].partition("-")[0]
        if not owner.isdigit() or alive(int(owner)):
            continue  # a folder of another version's naming, or of a living actor
        try:
            doc = json.loads((folder / TRY_FILE).read_text())
        except (OSError, ValueError):
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        if isinstance(doc.get("pid"), int) and alive(doc["pid"]):
            continue
        if isinstance(doc.get("output"), str):
            keep = set(doc.get("before") or [])
            for part in _parts(doc["output"]):
                if str(part) not in keep:
                    with contextlib.suppress(OSError):
                        part.unlink()
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed



def _child_env(omp_threads: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = omp_threads
    return env


def _parts(output: str | None) -> set[Path]:
    if not output:
        return set()
    path = Path(output)
    return set(path.parent.glob(f".{glob.escape(path.name)}.*.part"))


def _error_line(tail: deque[str], code: int) -> str:
    """The child's own one-line error when it said one (main's "cleanfeed: error: ..." or
    "cleanfeed: internal error: ..."; not a log line's warning), else how it ended."""
    for line in reversed(tail):
        for head in ("cleanfeed: error: ", "cleanfeed: internal error: "):
            if line.startswith(head):
                return line[len(head):] if "internal" not in head else line[len("cleanfeed: "):]
    return short_exit(code)


@dataclass
class _Part:
    """One pipeline of a feed: the whole feed (``name`` ""), or one part of a split feed, with
    its own actor and resources."""

    name: str
    args: list[str] | tuple[str, ...]
    cpus: float
    gpus: float
    actor: Any = None
    ref: Any = None
    """Its running try's result, None once that ended."""
    result: dict[str, Any] | None = None
    status: Any = None
    """Its actor's status() call not yet taken in."""
    pid: int | None = None
    """Its try's process, as its last status said."""


@dataclass
class _Running:
    """A feed being run: its parts (one, or a split feed's decode and models parts, the latter
    the sink whose figures are the feed's), and for a split feed its try's state."""

    feed: FeedSpec
    parts: list[_Part]
    opening: Any = None
    """While a split feed's try starts: the models actor's endpoint() result."""
    failure: dict[str, Any] | None = None
    """The first failed end among this try's parts (a split feed's other part is then ended)."""

    @property
    def sink(self) -> _Part:
        return self.parts[-1]

    def refs(self) -> list[Any]:
        return [r for r in (self.opening, *(p.ref for p in self.parts)) if r is not None]


class Fleet:
    """Runs a fleet's feeds on Ray until each ended or the fleet is stopped.

    ``args``: each feed's validated `cleanfeed run` arguments by name, or a split feed's two
    parts (cleanfeed.stream.fleet.split.Split). ``address``: a running cluster to join; without it
    a local Ray instance is started for the run and stopped after it, with as many logical CPUs
    as the feeds that run at once reserve (at least the machine's cores): a feed's ``cpus`` is
    what Ray books for placement, and on one machine the OS shares the cores between the feeds'
    processes anyway.

    A split feed's parts are supervised together: the models part's actor first names an
    endpoint on its node, then both tries start with that try's link ends; when one part fails
    the other's try is ended and both are tried again (one restart of the feed), with a new
    endpoint and new keys. The feed's figures are the models part's (its sink's)."""

    def __init__(self, spec: FleetSpec, args: Mapping[str, list[str] | Split], address: str | None = None,
                 poll_s: float = 1.0) -> None:
        self.spec = spec
        self.args = dict(args)
        self.address = address
        self.poll_s = poll_s
        self.feeds = {f.name: FeedState(f.name, f.input, f.output) for f in spec.feeds}
        self.started_in_s: float | None = None
        """Seconds Ray took to start or join (None when no feed needed it)."""
        self._t0 = time.monotonic()
        self._node_ip: str | None = None
        self._workers: set[int] = set()
        """The pids of this node's Ray workers that ran a feed's actor (see _sweep_after_ray)."""

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def document(self, final: bool = False) -> dict[str, Any]:
        return {**document(self.feeds, self.elapsed(), final), "ray_start_s": self.started_in_s}

    def run(self, on_update: Callable[[dict[str, Any]], None], should_stop: Callable[[], bool]) -> dict[str, FeedState]:
        """Runs every feed; ``on_update`` gets the fleet document every ``poll_s`` and once at the
        end (final); ``should_stop`` is asked as often, and once true the feeds are stopped."""
        pending = [f for f in self.spec.feeds if not self._skip(f)]
        if pending and not should_stop():
            ray = import_ray()
            self._start_ray(ray)
            try:
                self._loop(ray, pending, on_update, should_stop)
            finally:
                ray.shutdown()
                self._sweep_after_ray()
        for feed in pending:
            if not self.feeds[feed.name].state.ended:
                self.feeds[feed.name].state = State.STOPPED
        on_update(self.document(final=True))
        return self.feeds

    def _sweep_after_ray(self) -> None:
        """The last tries' folders and part files, once their workers exited: ray.shutdown()
        returns before a local instance's workers are gone (a killed actor's worker too)."""
        deadline = time.monotonic() + SWEEP_WAIT_S
        while any(alive(pid) for pid in self._workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        sweep()

    def _skip(self, feed: FeedSpec) -> bool:
        """A batch's file output already complete (see spec.complete): resumed past, not run again."""
        path = self.spec.local(feed.output)
        if feed.live or path is None or not complete(path):
            return False
        self.feeds[feed.name].state = State.SKIPPED
        return True

    def _start_ray(self, ray: Any) -> None:
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        begin = time.monotonic()
        settings: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
                                    "logging_level": "error"}
        if self.address:
            _reachable(self.address)
            try:
                ray.init(address=self.address, **settings)
            except (ConnectionError, ValueError, RuntimeError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise FleetUnavailableError(f"--address {self.address} must be a running Ray cluster, got {first}") from None
        else:
            at_once = self.spec.concurrency or len(self.spec.feeds)
            booked = sum(sorted((_cpus(f) for f in self.spec.feeds), reverse=True)[:at_once])
            # workers at the command's niceness: theirs is what a feed's process starts with (see _child_setup)
            ray.init(num_cpus=max(os.cpu_count() or 1, int(booked + 0.999)),
                     _system_config={"worker_niceness": os.getpriority(os.PRIO_PROCESS, 0)}, **settings)
        self.started_in_s = time.monotonic() - begin
        self._node_ip = ray.util.get_node_ip_address()
        for sig, handler in saved.items():  # ray.init installs its own SIGTERM handler (sys.exit) in the driver
            if handler is not None:
                signal.signal(sig, handler)

    def _loop(self, ray: Any, pending: list[FeedSpec], on_update: Callable[[dict[str, Any]], None],
              should_stop: Callable[[], bool]) -> None:
        totals = ray.cluster_resources()
        queue = list(pending)
        running: dict[str, _Running] = {}
        stopping_since: float | None = None
        next_poll = 0.0
        limit = self.spec.concurrency or len(queue)
        while queue or running:
            if should_stop() and stopping_since is None:
                stopping_since = time.monotonic()
                queue.clear()
                for job in running.values():
                    for part in job.parts:
                        if part.actor is not None:
                            part.actor.stop.remote()
            while queue and len(running) < limit and stopping_since is None:
                feed = queue.pop(0)
                short = _short_of(feed, totals)
                if short:
                    self._end(feed.name, State.FAILED, short)
                    continue
                job = running[feed.name] = _Running(feed, self._plan(feed))
                self._try(ray, job)
            refs = {ref: name for name, job in running.items() for ref in job.refs()}
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.2) if refs else ([], [])
            for ref in ready:
                name = refs[ref]
                job = running[name]
                if self._take(ray, job, ref, stopping_since is not None):
                    del running[name]
                    for part in job.parts:
                        _close(ray, part.actor)
            if time.monotonic() >= next_poll:
                starting = any(self.feeds[n].state in (State.STARTING, State.RESTARTING)
                               or not self.feeds[n].stats.get("frames_in") for n in running)
                next_poll = time.monotonic() + (STARTING_POLL_S if starting else self.poll_s)
                self._poll(ray, running)
                on_update(self.document())
            if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_S:
                for name, job in running.items():
                    for part in job.parts:
                        if part.actor is not None:
                            ray.kill(part.actor)
                    self._end(name, State.FAILED, f"did not stop within {STOP_GRACE_S:g} s of the fleet's stop")
                running.clear()

    def _plan(self, feed: FeedSpec) -> list[_Part]:
        plan = self.args[feed.name]
        if isinstance(plan, Split):
            return [_Part(DECODE, plan.decode, feed.decode_cpus, 0.0), _Part(MODELS, plan.models, feed.cpus, feed.gpus)]
        return [_Part("", plan, feed.cpus, feed.gpus)]

    def _try(self, ray: Any, job: _Running) -> None:
        """Starts a try of ``job``'s feed: every part's, or a split feed's link first (see the class doc)."""
        state = self.feeds[job.feed.name]
        state.state = State.STARTING if state.restarts == 0 else State.RESTARTING
        state.pid = None
        state.started_s = None
        job.failure = None
        for part in job.parts:
            part.result = part.status = part.pid = None  # a status asked before this try says nothing of it
            if part.actor is None:  # the first try, or its actor died: Ray places a new one on a node still there
                part.actor = ray.remote(FeedProcess).options(num_cpus=part.cpus, num_gpus=part.gpus).remote()
        if len(job.parts) == 1:
            job.sink.ref = self._attempt(job, job.sink, None)
        else:
            job.opening = job.sink.actor.endpoint.remote()

    def _attempt(self, job: _Running, part: _Part, end: LinkEnd | None) -> Any:
        output = self.spec.local(job.feed.output) if part is job.sink else None
        return part.actor.attempt.remote(list(part.args), str(self.spec.base), str(output) if output else None,
                                         os.environ.get("OMP_NUM_THREADS"), job.feed.live,
                                         os.getpriority(os.PRIO_PROCESS, 0), end)

    def _take(self, ray: Any, job: _Running, ref: Any, stopping: bool) -> bool:
        """Takes one of ``job``'s results in; True when the feed ended."""
        if ref == job.opening:
            job.opening = None
            endpoint = self._result(ray, job, job.sink, ref)
            if isinstance(endpoint, str) and not stopping:
                self.feeds[job.feed.name].link = endpoint
                sending, receiving = link(endpoint)
                job.parts[0].ref = self._attempt(job, job.parts[0], sending)
                job.sink.ref = self._attempt(job, job.sink, receiving)
                return False
            if stopping:
                job.failure = {"code": INTERRUPTED_EXIT, "error": None}
        else:
            part = next(p for p in job.parts if p.ref == ref)
            part.ref = None
            part.result = self._result(ray, job, part, ref)
        if job.failure is not None and not stopping:
            for part in job.parts:  # the other part of a split feed: both start again
                if part.ref is not None and part.actor is not None:
                    part.actor.end.remote(not job.feed.live)
        if job.refs():
            return False
        sink = job.sink.result or {}
        result = {**(job.failure if job.failure is not None and not (stopping and sink) else sink),
                  "stats": sink.get("stats")}
        return self._settle(ray, job, result, stopping)

    def _result(self, ray: Any, job: _Running, part: _Part, ref: Any) -> Any:
        """What ``ref`` (``part``'s) returned; a try's end that failed is noted as the job's
        failure when it is the first of its try."""
        state = self.feeds[job.feed.name]
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as err:  # the actor, or its node, died
            result = {"code": None, "error": f"its Ray worker died ({type(err).__name__})", "stats": state.stats}
            part.actor = None
        except ray.exceptions.RayError as err:
            result = {"code": None, "error": f"Ray: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
                      "stats": state.stats}
        if isinstance(result, dict) and result.get("code") != 0 and job.failure is None:
            job.failure = {**result, "error": f"{part.name} part: {result['error']}" if part.name else result["error"]}
        return result

    def _settle(self, ray: Any, job: _Running, result: Mapping[str, Any], stopping: bool) -> bool:
        """Takes a try's end into account; True when the feed ended, False when it was tried again."""
        state = self.feeds[job.feed.name]
        state.stats = result.get("stats") or state.stats
        state.pid = None
        code = result["code"]
        if code == 0:
            self._end(job.feed.name, State.DONE, None)
            return True
        if stopping and code in (INTERRUPTED_EXIT, -signal.SIGINT, -signal.SIGTERM):
            self._end(job.feed.name, State.STOPPED, None)
            return True
        if stopping or code == USAGE_EXIT or state.restarts >= self.spec.max_restarts:
            self._end(job.feed.name, State.FAILED, result["error"] or short_exit(code or 1))
            return True
        state.restarts += 1
        state.error = result["error"]
        self._try(ray, job)
        return False

    def _poll(self, ray: Any, running: Mapping[str, _Running]) -> None:
        """Takes in the parts' statuses that came back and asks again those that answered: the
        sink part's figures and process are the feed's, which runs once every part's process does.
        Nothing waits here for an actor still starting (its worker can take seconds): the loop
        goes on, and its answer is taken at a later poll."""
        for job in running.values():
            for part in job.parts:
                if part.actor is not None and part.status is None:
                    part.status = part.actor.status.remote()
        asked = [p.status for job in running.values() for p in job.parts if p.status is not None]
        ready = set(ray.wait(asked, num_returns=len(asked), timeout=POLL_WAIT_S)[0]) if asked else set()
        for name, job in running.items():
            for part in job.parts:
                if part.status is None or part.status not in ready:
                    continue
                try:
                    status = ray.get(part.status)
                except ray.exceptions.RayError:
                    continue
                finally:
                    part.status = None
                part.pid = status["pid"]
                if status["node"] == self._node_ip:
                    self._workers.add(status["worker"])
                if part is not job.sink:
                    continue
                state = self.feeds[name]
                state.node = status["node"]
                if status["stats"]:
                    state.stats = status["stats"]
                if status["pid"] is not None and state.pid != status["pid"]:
                    state.pid = status["pid"]
                    state.started_s = round(self.elapsed(), 3)
            state = self.feeds[name]
            if state.state in (State.STARTING, State.RESTARTING) and all(p.pid is not None for p in job.parts):
                state.state = State.RUNNING

    def _end(self, name: str, state: State, error: str | None) -> None:
        feed = self.feeds[name]
        feed.state = state
        feed.error = error
        feed.pid = None


def _cpus(feed: FeedSpec) -> float:
    """The CPUs Ray books for ``feed`` (both parts of a split feed)."""
    return feed.cpus + (feed.decode_cpus if feed.split else 0.0)


def _reachable(address: str) -> None:
    """A cluster's head answering at ``address`` (host:port), said in one line at once: Ray's own
    client keeps retrying an address where nothing listens for minutes, deaf to SIGTERM."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", ray://..., or what Ray alone knows how to read
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as err:
        raise FleetUnavailableError(f"--address {address} must be a running Ray cluster, got {err.strerror or err}") from None


def _short_of(feed: FeedSpec, totals: Mapping[str, float]) -> str | None:
    """Why the cluster can never place ``feed`` (Ray would wait for it forever), or None."""
    needs = [("", feed.cpus, feed.gpus)]
    if feed.split:
        needs = [(f"{DECODE} part ", feed.decode_cpus, 0.0), (f"{MODELS} part ", feed.cpus, feed.gpus)]
    for part, cpus, gpus in needs:
        for key, want in (("CPU", cpus), ("GPU", gpus)):
            if want > totals.get(key, 0.0):
                return f"{part}needs {want:g} {key}, the cluster has {totals.get(key, 0.0):g}"
    return None


def _close(ray: Any, actor: Any) -> None:
    """Ends a feed's actor once its feed ended, so that its CPUs and GPUs go to the next feed."""
    if actor is None:
        return
    with contextlib.suppress(Exception):
        ray.get(actor.close.remote(), timeout=5)
    with contextlib.suppress(Exception):
        ray.kill(actor)
