"""What a runner is handed, the same in a thread or a process: the ends of its links
(:class:`Inlet`, :class:`Outlet`), where its frames live (:class:`Slots`), the run's flags
(:class:`Control`) and a :class:`Reporter`. Threads get the plain versions here
(:class:`ThreadControl`, :class:`HeapSlots`; queue links in cleanfeed.stream.links.queues);
processes get shared memory, a mapped control file and ZeroMQ (cleanfeed.stream.shm,
cleanfeed.stream.control, cleanfeed.stream.links.sockets).

Both exceptions are BaseExceptions so that an element's ``except Exception`` cannot swallow
a stop or an abort.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cleanfeed.stream.buffers import Caps, Item, VideoFrame
from cleanfeed.stream.element import Source

WAIT_S = 0.1
"""How long a runner waits at most before it looks at the run's flags again."""


@dataclass(frozen=True)
class Resume:
    """Where a restarted filter's runner picks the stream up (cleanfeed.stream.crews.processes).

    The runner starts at the seq the next stage still needs, and the frames its upstream
    re-sends (those that were inside the dead process) go through the element's optional
    ``recover(frame) -> list[VideoFrame]`` instead of ``process`` (an element that needs
    history covers them, flagged degraded); an element with an optional ``reseed(frame)``
    gets, before them, a copy of the last frame the dead process emitted (a tracker takes
    its masks back as references).

    ``seq``: the first frame the next stage has not received. ``replayed()``: how many frames
    upstream re-sends (read once the re-sent stream start arrived). ``previous()``: the last
    frame the dead process emitted, when it was kept (for ``reseed``), else None.
    """

    seq: int
    replayed: Callable[[], int]
    previous: Callable[[], VideoFrame | None]


class StopRequested(BaseException):
    """Raised inside a source (by its allocator) when a graceful stop was asked for.

    A BaseException, like KeyboardInterrupt, so a source's ``except Exception`` does not
    turn a stop into a media error.
    """


class Aborted(BaseException):
    """Raised in a runner when the run is aborted: leave now, sinks finalize what they have."""


class Control(Protocol):
    """The run's two flags, shared by every runner: stop (the source stops reading, EOS
    flows) and abort (everyone leaves at the next wait)."""

    @property
    def stopping(self) -> bool: ...

    @property
    def aborting(self) -> bool: ...

    def request_stop(self) -> None: ...

    def request_abort(self) -> None: ...


class ThreadControl:
    """Control flags for threads mode."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._abort = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def aborting(self) -> bool:
        return self._abort.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def request_abort(self) -> None:
        self._stop.set()
        self._abort.set()


class Inlet(Protocol):
    def get(self, timeout: float) -> Item | None: ...

    def close(self, flush: bool) -> None: ...


class Outlet(Protocol):
    def put(self, item: Item) -> None: ...

    def service(self) -> None:
        """Called while the runner waits: an outlet that can replay answers a restarted next
        stage here (cleanfeed.stream.crews.processes); others have nothing to do."""

    def close(self, flush: bool) -> None: ...


class Reporter(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...


class Slots(Protocol):
    """Where frames live: heap objects (threads) or shared-memory slots (processes)."""

    @property
    def wait_s(self) -> float: ...

    def prepare_source(self, caps: Caps, source: Source) -> None: ...

    def hold(self, frame: VideoFrame) -> None: ...

    def place(self, frame: VideoFrame) -> None: ...

    def release(self, frame: VideoFrame) -> None: ...

    def release_held(self) -> None: ...

    def close(self) -> None: ...


class HeapSlots:
    """Threads mode: frames are plain objects, nothing to place or return."""

    wait_s = 0.0

    def prepare_source(self, caps: Caps, source: Source) -> None:
        """Sources keep the heap allocator."""

    def hold(self, frame: VideoFrame) -> None:
        """Nothing is tracked."""

    def place(self, frame: VideoFrame) -> None:
        """The object itself travels."""

    def release(self, frame: VideoFrame) -> None:
        """The garbage collector frees it."""

    def release_held(self) -> None:
        """Nothing is held."""

    def close(self) -> None:
        """Nothing to close."""

