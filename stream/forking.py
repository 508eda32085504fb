"""How element processes start: forked from multiprocessing's fork server, which imported the
runtime once. A fresh ``spawn`` costs each element about 0.3 s of CPU (a new interpreter
importing numpy, OpenCV, ZeroMQ and the runtime): seven elements took 1.2 s to start on two
cores, against 0.6 s forked (bench/results/2026-11-25-spine-cpu.md).

The fork server belongs to the run's process group, so Ctrl+C and a SIGTERM sent to the group
(systemd stopping a service, ``kill -- -PGID``) reach it too. It must outlive them: when it
dies, every element it forked gets its death signal (SIGKILL) and the supervisor loses their
exit codes, so no output would be finalized. This module is the first the server imports
(:data:`PRELOAD`); in the server, and only there, it makes the server ignore both signals,
which its children inherit until ``child_main`` installs their own handling.

The server leaves when the process that started it does (it reads end-of-file on a pipe that
only that process keeps open; see :func:`let_go_of_fork_server`). A child asks to die with its
parent through :func:`die_with_parent` (element processes, and the web app's run worker).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
PRELOAD = ["cleanfeed.stream.forking", "cleanfeed.stream.crews.child"]
"""What the fork server imports before it forks anything: this module first, then the runtime."""
_SERVER_MAIN = "from multiprocessing.forkserver import main"
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def in_fork_server() -> bool:
    """True in the fork server's own process (its command line is multiprocessing's)."""
    return any(_SERVER_MAIN in arg for arg in getattr(sys, "orig_argv", ()))


def let_go_of_fork_server() -> None:
    """multiprocessing hands every forked child the write end of the pipe whose closing tells
    the fork server that its starter is gone (so a child could fork more). A child keeping it
    would keep the server, and with it itself, alive after a supervisor killed by SIGKILL."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        os.close(fd)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]


def prctl(option: int, arg: int | bytes) -> None:
    """Linux's prctl(2) for this process; nothing elsewhere."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


def die_with_parent(signum: int, watched: int | None = None) -> bool:
    """PR_SET_PDEATHSIG: the kernel sends this process ``signum`` when the process that started it
    dies, even by SIGKILL. False when that parent (or ``watched``, a process this one serves)
    died before the request took effect: no signal will come, the caller must leave by itself."""
    parent = os.getppid()
    try:
        prctl(PR_SET_PDEATHSIG, int(signum))
    except (OSError, AttributeError):  # no prctl in this libc: nothing to watch with
        return True
    return os.getppid() == parent and (watched is None or alive(watched))


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's process under a reused pid counts as alive:
    not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


if in_fork_server():
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, signal.SIG_IGN)


def stop_helpers() -> None:
    """Stops the fork server and multiprocessing's resource tracker, if this process started them,
    and waits for them: left to notice the end-of-file on their pipes, they outlive the command by
    a fraction of a second, orphans a service manager or a test would see. Both classes have had
    a ``_stop`` (close the pipe, wait for the pid) since Python 3.8; where it is missing, the
    end-of-file still ends them."""
    import multiprocessing.resource_tracker as tracker

    for helper in (getattr(multiprocessing.forkserver, "_forkserver", None),
                   getattr(tracker, "_resource_tracker", None)):
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            try:
                stop()
            except (OSError, ChildProcessError):  # already gone
                pass
