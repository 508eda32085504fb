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
only that process keeps open; see :func:`let_go_of_fork_server`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
PRELOAD = ["cleanfeed.stream.forking", "cleanfeed.stream.crews.child"]
"""What the fork server imports before it forks anything: this module first, then the runtime."""
_SERVER_MAIN = "from multiprocessing.forkserver import main"


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


if in_fork_server():
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, signal.SIG_IGN)
